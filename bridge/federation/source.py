"""Reading a signed federation list from where the config says: a file, or an HTTPS URL.

The URL is the admin's, from the config, never a user's; still the read is bounded: HTTPS only,
at most ``max_bytes`` (counted as the body arrives, whatever Content-Length says), at most
``timeout`` seconds in all, and a redirect is followed only to the same host and port over
HTTPS (at most `MAX_REDIRECTS`), so an answer can never send the bridge elsewhere. Anything
that goes wrong is a `ListRefused` (``unreadable`` or ``too_large``) saying what.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from bridge.config.model import FederationListSource
from bridge.federation.document import ListRefused, Problem

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


async def fetch(source: FederationListSource) -> bytes:
    """The signed list as it is now at ``source``."""
    if source.file is not None:
        return await asyncio.to_thread(read_file, source.file, source.max_bytes)
    assert source.url is not None
    try:
        async with asyncio.timeout(source.timeout):
            return await _download(source.url, source.max_bytes, source.ca_file)
    except TimeoutError:
        detail = f"{source.url} did not answer within {source.timeout:g} s"
        raise ListRefused(Problem.UNREADABLE, detail) from None


def read_file(path: Path, max_bytes: int) -> bytes:
    """A regular file of at most ``max_bytes``, opened without blocking (a FIFO in its place
    cannot hang the bridge)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise ListRefused(Problem.UNREADABLE, f"cannot read {path}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ListRefused(Problem.UNREADABLE, f"{path} is not a regular file")
        data = os.read(fd, max_bytes + 1)
    except OSError as e:
        raise ListRefused(Problem.UNREADABLE, f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ListRefused(Problem.TOO_LARGE, f"{path} is larger than {max_bytes} bytes")
    return data


async def _download(url: str, max_bytes: int, ca_file: Path | None) -> bytes:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as e:
        raise ListRefused(Problem.UNREADABLE, f"cannot use ca_file {ca_file}: {e}") from None
    origin = _origin(url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in REDIRECTS:
                        url = _redirect(url, response.headers.get("Location", ""), origin)
                        continue
                    if response.status != 200:
                        raise ListRefused(Problem.UNREADABLE,
                                          f"{url} answered {response.status}")  # fmt: skip
                    return await _body(response, url, max_bytes)
            except aiohttp.ClientError as e:
                raise ListRefused(
                    Problem.UNREADABLE, f"cannot read {url}: {type(e).__name__}: {e}"
                ) from None
    raise ListRefused(Problem.UNREADABLE, f"more than {MAX_REDIRECTS} redirects, up to {url}")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or 443


def _redirect(url: str, location: str, origin: tuple[str, str, int]) -> str:
    """Where a redirect leads, if it stays on the list's own host over HTTPS."""
    target = urljoin(url, location)
    try:
        where = _origin(target)
    except ValueError:
        where = ("", "", 0)
    if not location or where != origin:
        raise ListRefused(Problem.UNREADABLE,
                          f"{url} redirects to another host ({target[:200]})")  # fmt: skip
    return target


async def _body(response: aiohttp.ClientResponse, url: str, max_bytes: int) -> bytes:
    if (response.content_length or 0) > max_bytes:
        raise ListRefused(Problem.TOO_LARGE, f"{url} is larger than {max_bytes} bytes")
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise ListRefused(Problem.TOO_LARGE, f"{url} is larger than {max_bytes} bytes")
    return bytes(data)
