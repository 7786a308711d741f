"""DKIM signatures by dkimpy with the RSA computation done by OpenSSL (`cryptography`).

dkimpy canonicalises the mail, hashes it and writes the ``DKIM-Signature`` header, but computes
the RSA signature itself in pure Python, and parses the PEM key again for every mail: with a
2048-bit key that is 90 % of a signature's CPU, some 6 ms per mail. It offers no faster primitive
and no way to pass a signer, so `OpenSslDkim` runs dkimpy's own ``sign`` and ``gen_header``
with the two names they call for the key replaced: ``parse_pem_private_key`` takes the key
`private_key` loaded once, and ``RSASSA_PKCS1_v1_5_sign`` has OpenSSL sign the digest. dkimpy
itself is left as it is for everyone else. RSASSA-PKCS1-v1_5 is deterministic: the header is
byte for byte the one `dkim.sign` writes for the same mail and time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from types import FunctionType
from typing import Any, Protocol

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed


class _Digest(Protocol):
    def digest(self) -> bytes: ...


@cache
def private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The RSA key of ``pem`` (PKCS#1, as the config checked it), loaded once per key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def _openssl_sign(digest: _Digest, key: rsa.RSAPrivateKey) -> bytes:
    # `sign` signs rsa-sha256 (dkimpy's default), so the digest is SHA-256.
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def _loaded(key: rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return key


_NAMES = {**vars(dkim), "parse_pem_private_key": _loaded, "RSASSA_PKCS1_v1_5_sign": _openssl_sign}


def _rebound(method: Callable[..., Any]) -> Any:
    """dkimpy's ``method`` as it is, looking its global names up in `_NAMES`."""
    code = method.__code__
    return FunctionType(code, _NAMES, method.__name__, method.__defaults__, method.__closure__)


class OpenSslDkim(dkim.DKIM):  # type: ignore[misc]
    """`dkim.DKIM` whose ``sign`` takes a `private_key` and signs with OpenSSL."""

    sign = _rebound(dkim.DKIM.sign)
    gen_header = _rebound(dkim.DKIM.gen_header)


def sign(
    message: bytes, selector: bytes, domain: bytes, pem: bytes, include_headers: Sequence[bytes]
) -> bytes:
    """The ``DKIM-Signature`` header line (CRLF-terminated) that `dkim.sign` would return for
    these arguments, rsa-sha256, relaxed/simple."""
    signer = OpenSslDkim(message)
    return bytes(signer.sign(selector, domain, private_key(pem), include_headers=include_headers))
