"""`bridge.federation.document.read`: whatever a federation list's file or URL holds, forged
or genuinely signed, the result is a list whose fields hold what the bridge relies on, or
`ListRefused`, never another exception, and each input is read in time proportional to its
size (a generous deadline per example catches anything worse)."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

from bridge.federation.document import (
    DOMAIN_RE,
    MAX_VERSION,
    FederationList,
    ListRefused,
    parse_document,
    public_key,
    read,
)
from tests.federation_keys import key_pair

KEY = public_key(key_pair()[1])
SIGNER = OKPKey.import_key(key_pair()[0])
LIMIT = 64 * 1024
DEADLINE = timedelta(seconds=5)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "version": st.integers(min_value=-5, max_value=2**64) | SCALARS,
        "expires": st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
        | SCALARS,
        "domains": st.lists(
            st.from_regex(DOMAIN_RE, fullmatch=True) | st.text(max_size=20), max_size=5
        )
        | VALUES,  # fmt: skip
        "other": VALUES,
    },
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, alg: str = "EdDSA") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA" is RFC 9864's old name
        return jws.serialize_compact({"alg": alg}, payload, SIGNER, algorithms=[alg])


def check(token: bytes | str) -> None:
    try:
        listed = read(token, KEY, LIMIT)
    except ListRefused:
        return
    assert isinstance(listed, FederationList)
    assert 1 <= listed.version <= MAX_VERSION
    assert listed.expires.tzinfo is UTC
    assert all(DOMAIN_RE.fullmatch(domain) and domain == domain.lower()
               for domain in listed.domains)  # fmt: skip


@settings(deadline=DEADLINE)
@given(st.binary(max_size=2048))
@example(b"." * (LIMIT + 1))
@example(b"e30.e30.e30")
@example(b"eyJhbGciOiJub25lIn0.e30.")
def test_any_bytes_are_a_list_or_refused(data: bytes) -> None:
    check(data)


@settings(deadline=DEADLINE)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=4), st.binary(max_size=300),
       st.binary(max_size=80))  # fmt: skip
@example({"alg": "EdDSA", "crit": ["b64"], "b64": False}, b"{}", b"x")
@example({"alg": "EdDSA", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}, b"{}", b"x" * 64)
def test_any_header_payload_and_signature_are_refused_or_read(
    header: dict[str, Any], payload: bytes, signature: bytes
) -> None:
    check(f"{b64(json.dumps(header).encode())}.{b64(payload)}.{b64(signature)}")


@settings(deadline=DEADLINE)
@given(DOCUMENTS)
@example({"version": 1, "expires": "2031-01-01T00:00:00Z", "domains": ["[::1]:8448"]})
def test_genuinely_signed_documents_are_read_or_refused(document: dict[str, Any]) -> None:
    check(signed(json.dumps(document).encode()))
    check(signed(json.dumps(document).encode(), "Ed25519"))


@settings(deadline=DEADLINE)
@given(st.binary(max_size=4096))
@example(b"[" * 100_000)
@example(b'{"version": 1, "expires": "2031-01-01T00:00:00Z", "domains": ' + b"[" * 60_000)
@example(b'{"version": 1e400, "expires": "x", "domains": []}')
def test_any_signed_payload_is_read_or_refused(payload: bytes) -> None:
    try:
        parse_document(payload)
    except ListRefused:
        pass
    check(signed(payload))
