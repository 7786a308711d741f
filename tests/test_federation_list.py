"""Reading and checking one signed federation list (`bridge.federation.document`): a good list
gives its version, expiry and domains; a forged, wrongly signed, expired, rolled-back,
malformed or oversized one is refused with the reason an operator reads in the log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws
from joserfc.jwk import OKPKey

from bridge.federation.document import (
    BadKey,
    FederationList,
    ListRefused,
    Problem,
    admit,
    public_key,
    read,
    sign,
)
from tests.federation_keys import document, key_pair, signed_list

NOW = datetime.now(UTC)


def operator_key() -> str:
    return key_pair()[1]


def refusal(token: str | bytes, key: str | None = None, max_bytes: int = 1024 * 1024) -> str:
    """What reading ``token`` with the operator's (or ``key``) public key is refused for."""
    with pytest.raises(ListRefused) as refused:
        read(token, public_key(key or operator_key()), max_bytes)
    return str(refused.value)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_good_list_gives_its_version_expiry_and_domains() -> None:
    expires = datetime(2031, 5, 1, 12, tzinfo=UTC)
    token = signed_list(7, ["Bund.Example", "tchap.example:8448", "bund.example"], expires)
    listed = read(token + "\n", public_key(operator_key()))
    assert listed == FederationList(7, expires, frozenset({"bund.example", "tchap.example:8448"}))
    assert admit(listed, now=NOW, last=None, floor=0) is True


def test_es256_lists_and_jwk_keys_are_read_too() -> None:
    token = signed_list(3, ["bund.example"], key="p256", curve="P-256")
    pem = key_pair("p256", "P-256")[1]
    assert read(token, public_key(pem)).version == 3
    jwk = json.dumps(OKPKey.import_key(operator_key()).as_dict(private=False))
    assert read(signed_list(4, ["a.example"]), public_key(jwk)).domains == {"a.example"}


def test_a_forged_list_is_refused() -> None:
    """Someone swaps the document of a genuine list for their own, keeping its signature."""
    header, _, signature = signed_list(8, ["bund.example"]).split(".")
    forged = f"{header}.{b64(document(9, ['bund.example', 'evil.example']))}.{signature}"
    assert refusal(forged) == (
        "bad_signature: the signature does not match the configured key (forged, changed "
        "after signing, or signed with another key)"
    )


def test_a_list_signed_with_another_key_is_refused() -> None:
    assert refusal(signed_list(8, ["bund.example"], key="someone else")).startswith(
        "bad_signature: the signature does not match the configured key"
    )
    assert refusal(signed_list(8, ["bund.example"], key="p256", curve="P-256")) == (
        'bad_signature: signed with "ES256"; the configured Ed25519 key verifies EdDSA or '
        "Ed25519 only"
    )


def test_unsigned_and_secret_keyed_lists_are_refused() -> None:
    """``alg: none``, and HS256 keyed with the public key (the classic algorithm confusion)."""
    payload = b64(document(9, ["evil.example"]))
    unsigned = f"{b64(json.dumps({'alg': 'none'}).encode())}.{payload}.AAAA"
    assert refusal(unsigned).startswith('bad_signature: signed with "none"')
    # Signed by hand: JOSE libraries now refuse to make a public key an HMAC secret.
    header = b64(json.dumps({"alg": "HS256"}).encode())
    mac = hmac.new(operator_key().encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    confused = f"{header}.{payload}.{b64(mac.digest())}"
    assert refusal(confused).startswith('bad_signature: signed with "HS256"')


def test_an_expired_list_is_refused() -> None:
    listed = read(signed_list(5, ["bund.example"], NOW - timedelta(minutes=1)),
                  public_key(operator_key()))  # fmt: skip
    with pytest.raises(ListRefused) as refused:
        admit(listed, now=NOW, last=None, floor=0)
    assert refused.value.problem is Problem.EXPIRED
    assert str(refused.value).startswith("expired: expired at ")


def test_a_rolled_back_list_is_refused_and_a_reused_version_too() -> None:
    key = public_key(operator_key())
    last = read(signed_list(5, ["bund.example"]), key)
    older = read(signed_list(4, ["bund.example", "gone.example"]), key)
    with pytest.raises(ListRefused) as refused:
        admit(older, now=NOW, last=last, floor=5)
    assert str(refused.value) == (
        "rolled_back: version 4 is older than version 5, the last one taken"
    )
    other = read(signed_list(5, ["bund.example", "gone.example"]), key)
    with pytest.raises(ListRefused) as refused:
        admit(other, now=NOW, last=last, floor=5)
    assert refused.value.problem is Problem.VERSION_REUSED
    assert admit(last, now=NOW, last=last, floor=5) is False  # the same list again
    assert admit(read(signed_list(6, []), key), now=NOW, last=last, floor=5) is True


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "malformed: the document is not JSON: Expecting value"),
        (b"\xff\xfe", "malformed: the document is not UTF-8 text"),
        (b"[1, 2]", "malformed: the document is not a JSON object"),
        (b'{"version": 1, "expires": "2031-01-01T00:00:00Z"}', "malformed: 'domains' is missing"),
        (b'{"version": 1, "expires": "2031-01-01T00:00:00Z", "domains": [], "exclude": []}',
         'malformed: unknown key "exclude"'),
        (b'{"version": true, "expires": "2031-01-01T00:00:00Z", "domains": []}',
         "malformed: 'version' is not a positive 64-bit integer"),
        (b'{"version": 0, "expires": "2031-01-01T00:00:00Z", "domains": []}',
         "malformed: 'version' is not a positive 64-bit integer"),
        (b'{"version": 1, "expires": "2031-01-01T00:00:00", "domains": []}',
         "malformed: 'expires' has no time zone offset (e.g. Z)"),
        (b'{"version": 1, "expires": "next week", "domains": []}',
         "malformed: 'expires' is not an RFC 3339 time"),
        (b'{"version": 1, "expires": "2031-01-01T00:00:00Z", "domains": "a.example"}',
         "malformed: 'domains' is not a list"),
        (b'{"version": 1, "expires": "2031-01-01T00:00:00Z", "domains": ["a.example", "a b"]}',
         "malformed: domains[1] is not a domain"),
    ],
)  # fmt: skip
def test_a_malformed_list_is_refused_with_what_is_wrong(payload: bytes, reason: str) -> None:
    """Signed by the right key, but not a federation list: `sign` refuses to sign these, so
    they are signed here with joserfc directly."""
    private = OKPKey.import_key(key_pair()[0])
    token = jws.serialize_compact({"alg": "Ed25519"}, payload, private, algorithms=["Ed25519"])
    assert refusal(token).startswith(reason)


@pytest.mark.parametrize(
    "token",
    ["", "not a token", "a.b", "a.b.c.d", "é.b.c", "e30.e30.AAAA", "W10.e30.AAAA",
     "eyJhbGciOiJFZERTQSIsImNyaXQiOlsieCJdLCJ4IjoxfQ.e30.AAAA"],
)  # fmt: skip
def test_what_is_not_a_signed_list_is_refused_as_malformed(token: str) -> None:
    assert refusal(token).startswith("malformed: ")


def test_an_oversized_list_is_refused_before_it_is_read() -> None:
    token = signed_list(2, [f"host{i}.example" for i in range(100)])
    assert refusal(token, max_bytes=1024) == (
        f"too_large: {len(token)} bytes, more than the 1024 allowed"
    )
    assert refusal("x" * 5000, max_bytes=4096).startswith("too_large: 5000 bytes")


def test_sign_refuses_a_document_that_is_not_a_list() -> None:
    with pytest.raises(ListRefused) as refused:
        sign(b'{"version": 1}', key_pair()[0])
    assert str(refused.value) == "malformed: 'domains' is missing"


def test_keys_that_cannot_verify_lists_are_refused() -> None:
    with pytest.raises(BadKey, match="is a private key: give the public key"):
        public_key(key_pair()[0])
    private_jwk = json.dumps(OKPKey.import_key(key_pair()[0]).as_dict(private=True))
    with pytest.raises(BadKey, match="is a private key"):
        public_key(private_jwk)
    rsa_pem = (
        rsa.generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(BadKey, match="is not an Ed25519 or P-256 key"):
        public_key(rsa_pem)
    with pytest.raises(BadKey, match="is neither a PEM public key nor a JWK"):
        public_key("CHANGE_ME")
    with pytest.raises(BadKey, match="is not an Ed25519 .OKP. or P-256 .EC. JWK"):
        public_key('{"kty": "oct", "k": "c2VjcmV0"}')
