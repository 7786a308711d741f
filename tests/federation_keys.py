"""Keys and signed federation lists for the tests, made the way an operator makes them
(`bridge.federation.document`: the same functions as ``passerelle federation-list``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache

from bridge.federation.document import Curve, generate_key_pair, sign


def key_pair(name: str = "operator", curve: Curve = "Ed25519") -> tuple[str, str]:
    """A (private, public) PEM key pair, the same for one name all along a test run."""
    return _key_pair(name, curve)


@cache
def _key_pair(name: str, curve: Curve) -> tuple[str, str]:
    return generate_key_pair(curve)


def document(version: int, domains: list[str], expires: datetime | None = None) -> bytes:
    """A list document; by default it expires in a day."""
    moment = expires if expires is not None else datetime.now(UTC) + timedelta(days=1)
    return json.dumps(
        {"version": version, "expires": moment.isoformat(), "domains": domains}
    ).encode()


def signed_list(
    version: int,
    domains: list[str],
    expires: datetime | None = None,
    key: str = "operator",
    curve: Curve = "Ed25519",
) -> str:
    """A signed list (compact JWS), by default with the operator's Ed25519 key."""
    return sign(document(version, domains, expires), key_pair(key, curve)[0])
