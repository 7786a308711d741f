"""One federation list: a JSON document signed as a compact JWS, read and checked without I/O.

The document the federation's operator signs::

    {"version": 7, "expires": "2027-01-31T00:00:00Z", "domains": ["bund.example", "bmi.example"]}

``version`` is a positive integer that grows with every new list, ``expires`` an RFC 3339 time
with its offset, ``domains`` the domains (``host`` or ``host:port``, as a Matrix server name
may be) whose people belong to the federation. No other key is taken: a key the bridge does
not know might mean something it would then ignore.

It is signed with EdDSA (an Ed25519 key; RFC 9864's name ``Ed25519`` for the same is accepted
too) or ES256 (a P-256 key), and verified against the configured public key (PEM or JWK) with
joserfc: it is typed, has no dependency besides ``cryptography``, verifies only the algorithms
it is given, checks ``crit`` headers and refuses unknown ones, and never takes a key from the
token itself (``jwk``/``jku`` headers), which is what a verifier of a signed list must get
right. (jwcrypto would do the job as well, but is untyped.) Before joserfc sees a token, it is
measured and its shape checked, so that a hostile file costs at most its size.

Every way a list can be wrong raises `ListRefused`, with a `Problem` named for the metric and
the log and a sentence saying exactly what is wrong.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, import_key

from bridge.json_input import Unreadable, loads

MAX_BYTES = 1024 * 1024
"""Default size limit of a signed list: about 40,000 domains."""
MAX_VERSION = 2**63 - 1
"""Versions are kept in a 64-bit column."""
MAX_DOMAIN = 255
KEYS = frozenset(("version", "expires", "domains"))
DOMAIN_RE = re.compile(
    r"(?:\[[0-9a-f:.]{2,45}\]|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::[0-9]{1,5})?"
)
"""A domain as accounts carry it: a host name (or a bracketed IPv6 address), perhaps a port."""
COMPACT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")
"""The shape of a compact JWS: three base64url segments (the payload may be empty)."""
ALGORITHMS = {"Ed25519": ("EdDSA", "Ed25519"), "P-256": ("ES256",)}
"""The JWS algorithms each kind of key verifies."""
SIGNING_ALGORITHM = {"Ed25519": "EdDSA", "P-256": "ES256"}
Curve = Literal["Ed25519", "P-256"]


class Problem(StrEnum):
    """Why a list is refused: the ``reason`` label of the alert metric."""

    UNREADABLE = "unreadable"
    """The file or URL could not be read (missing, refused, timed out, redirected away)."""
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    """Not a compact JWS, or its document is not a federation list."""
    BAD_SIGNATURE = "bad_signature"
    """Not signed by the configured key: forged, changed after signing, or another key's."""
    EXPIRED = "expired"
    ROLLED_BACK = "rolled_back"
    """Older than the last list taken."""
    VERSION_REUSED = "version_reused"
    """The version of the last list taken, with other contents."""


class ListRefused(Exception):
    """A federation list that is not taken; ``str()`` is ``problem: detail``."""

    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail


class BadKey(ValueError):
    """A configured key that cannot verify (or sign) federation lists; the message says why,
    never the key."""


@dataclass(frozen=True)
class FederationList:
    version: int
    expires: datetime
    """Always in UTC."""
    domains: frozenset[str]


@dataclass(frozen=True)
class PublicKey:
    """The key a network's lists must be signed with."""

    key: OKPKey | ECKey
    curve: Curve

    @property
    def algorithms(self) -> tuple[str, ...]:
        return ALGORITHMS[self.curve]


def public_key(text: str) -> PublicKey:
    """The verifying key from a PEM ``PUBLIC KEY`` block or a JWK (JSON); `BadKey` for
    anything else, a private key included (the bridge never needs one)."""
    text = text.strip()
    if text.startswith("{"):
        return _jwk(text)
    try:
        loaded = load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        if "PRIVATE KEY" in text:
            raise BadKey("is a private key: give the public key that goes with it") from None
        raise BadKey("is neither a PEM public key nor a JWK") from None
    if isinstance(loaded, ed25519.Ed25519PublicKey):
        return PublicKey(OKPKey.import_key(text), "Ed25519")
    if isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name == "secp256r1":
        return PublicKey(ECKey.import_key(text), "P-256")
    raise BadKey("is not an Ed25519 or P-256 key (EdDSA or ES256 only)")


def _jwk(text: str) -> PublicKey:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):
        raise BadKey("is not a valid JWK (not JSON)") from None
    if not isinstance(fields, dict):
        raise BadKey("is not a valid JWK (not a JSON object)")
    if "d" in fields:
        raise BadKey("is a private key: give the public key that goes with it")
    curve = {("OKP", "Ed25519"): "Ed25519", ("EC", "P-256"): "P-256"}.get(
        (str(fields.get("kty")), str(fields.get("crv")))
    )
    if curve is None:
        raise BadKey("is not an Ed25519 (OKP) or P-256 (EC) JWK (EdDSA or ES256 only)")
    try:
        key = import_key(fields)
    except (JoseError, ValueError, TypeError) as e:
        raise BadKey(f"is not a valid JWK ({type(e).__name__})") from None
    assert isinstance(key, OKPKey | ECKey)
    return PublicKey(key, "Ed25519" if curve == "Ed25519" else "P-256")


def read(token: bytes | str, key: PublicKey, max_bytes: int = MAX_BYTES) -> FederationList:
    """The list a signed token carries, once its size, shape and signature are checked (not
    yet its expiry or version: see `admit`)."""
    raw = token.encode() if isinstance(token, str) else bytes(token)
    if len(raw) > max_bytes:
        raise ListRefused(Problem.TOO_LARGE, f"{len(raw)} bytes, more than the {max_bytes} allowed")
    text = raw.strip(b" \t\r\n")
    if not COMPACT_RE.fullmatch(text.decode("ascii", "replace")):
        raise ListRefused(Problem.MALFORMED, "not a compact JWS (three base64url parts and dots)")
    registry = jws.JWSRegistry(algorithms=list(key.algorithms))
    registry.max_payload_length = max_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc's note that "EdDSA" is old
        try:
            signed = jws.extract_compact(text, registry=registry)
            header = signed.headers()
            alg = header.get("alg")
            if alg not in key.algorithms:
                raise ListRefused(
                    Problem.BAD_SIGNATURE,
                    f"signed with {_shown(alg)}; the configured {key.curve} key verifies "
                    f"{' or '.join(key.algorithms)} only",
                )
            valid = jws.validate_compact(signed, key.key, registry=registry)
        except JoseError as e:
            raise ListRefused(Problem.MALFORMED, f"not a valid JWS ({e.error})") from None
        except (ValueError, TypeError) as e:
            raise ListRefused(Problem.MALFORMED, f"not a valid JWS ({type(e).__name__})") from None
    if not valid:
        raise ListRefused(
            Problem.BAD_SIGNATURE,
            "the signature does not match the configured key (forged, changed after signing, "
            "or signed with another key)",
        )
    return parse_document(signed.payload)


def parse_document(payload: bytes) -> FederationList:
    """The list a (signed) JSON document describes; `ListRefused` (malformed) says what is
    wrong with it."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ListRefused(Problem.MALFORMED, "the document is not UTF-8 text") from None
    try:
        document = loads(text)
    except Unreadable as e:
        raise ListRefused(Problem.MALFORMED, f"the document is {e.msg}") from None
    if not isinstance(document, dict):
        raise ListRefused(Problem.MALFORMED, "the document is not a JSON object")
    for name in document:
        if name not in KEYS:
            raise ListRefused(Problem.MALFORMED, f"unknown key {_shown(name)}")
    missing = sorted(KEYS - document.keys())
    if missing:
        raise ListRefused(Problem.MALFORMED, f"{missing[0]!r} is missing")
    return FederationList(
        _version(document["version"]), _expires(document["expires"]), _domains(document["domains"])
    )


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise ListRefused(Problem.MALFORMED, "'version' is not a positive 64-bit integer")
    return value


def _expires(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ListRefused(Problem.MALFORMED, "'expires' is not an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ListRefused(Problem.MALFORMED, "'expires' is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ListRefused(Problem.MALFORMED, "'expires' has no time zone offset (e.g. Z)")
    return moment.astimezone(UTC)


def _domains(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise ListRefused(Problem.MALFORMED, "'domains' is not a list")
    domains = set()
    for i, domain in enumerate(value):
        if (
            not isinstance(domain, str)
            or len(domain) > MAX_DOMAIN
            or not DOMAIN_RE.fullmatch(domain.lower())
        ):
            raise ListRefused(Problem.MALFORMED, f"domains[{i}] is not a domain")
        domains.add(domain.lower())
    return frozenset(domains)


def admit(
    candidate: FederationList, *, now: datetime, last: FederationList | None, floor: int
) -> bool:
    """Whether ``candidate`` replaces the list in force (False: it is the same list again).
    ``last`` is the last list taken and ``floor`` the highest version ever taken (the same,
    unless the key changed since); a list older than that, the same version with other
    contents, or an expired list raises `ListRefused`."""
    if candidate.version < floor:
        raise ListRefused(
            Problem.ROLLED_BACK,
            f"version {candidate.version} is older than version {floor}, the last one taken",
        )
    if candidate.version == floor and candidate != last:
        raise ListRefused(
            Problem.VERSION_REUSED,
            f"version {candidate.version} was taken before with other contents (a changed "
            "list needs a higher version)",
        )
    if candidate.expires <= now:
        raise ListRefused(Problem.EXPIRED, f"expired at {candidate.expires.isoformat()}")
    return candidate.version > floor


def sign(document: bytes, private: str) -> str:
    """``document`` signed as a compact JWS with a private key (PEM or JWK), once it reads as a
    federation list (`ListRefused` otherwise): EdDSA for an Ed25519 key, ES256 for P-256."""
    parse_document(document)
    key, curve = _private_key(private)
    algorithm = SIGNING_ALGORITHM[curve]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        registry = jws.JWSRegistry(algorithms=[algorithm])
        registry.max_payload_length = max(len(document), MAX_BYTES)
        return jws.serialize_compact({"alg": algorithm}, document, key, registry=registry)


def _private_key(text: str) -> tuple[OKPKey | ECKey, Curve]:
    text = text.strip()
    if text.startswith("{"):
        try:
            fields = json.loads(text)
            key = import_key(fields)
        except (JoseError, ValueError, TypeError, RecursionError):
            raise BadKey("is not a valid JWK") from None
        if not isinstance(key, OKPKey | ECKey):
            raise BadKey("is not an Ed25519 or P-256 key (EdDSA or ES256 only)")
        if not key.is_private:
            raise BadKey("is a public key: signing needs the private one")
        pem = key.as_pem(private=True).decode()
    else:
        pem = text
    try:
        loaded = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise BadKey("is not an unencrypted PEM private key or a private JWK") from None
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return OKPKey.import_key(pem), "Ed25519"
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1":
        return ECKey.import_key(pem), "P-256"
    raise BadKey("is not an Ed25519 or P-256 key (EdDSA or ES256 only)")


def generate_key_pair(curve: Curve) -> tuple[str, str]:
    """A new (private, public) key pair as PEM texts."""
    key: OKPKey | ECKey = (
        OKPKey.generate_key("Ed25519") if curve == "Ed25519" else ECKey.generate_key("P-256")
    )
    return key.as_pem(private=True).decode(), key.as_pem(private=False).decode()


def _shown(value: object) -> str:
    """A value from a token, for a message: quoted, ASCII, short."""
    text = json.dumps(value if isinstance(value, str) else repr(value), ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + '…"'
