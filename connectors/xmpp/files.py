"""Files between XMPP and the other networks: bytes fetched from the out-of-band URLs XMPP
messages carry, and bytes put on the XMPP server's HTTP upload service (XEP-0363) for messages
the bridge sends; the bytes are moved, never just linked.

Two aiohttp sessions: uploads go where the XMPP server's upload slot says; fetches go where a
sender's URL says, so they only reach what `connectors.xmpp.fetch_policy` allows, checked on
every redirect and on the addresses actually connected to, within a size and a time budget.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from bridge.connector import DeliveryError, Refusal, Unavailable
from connectors.xmpp.component import Component, UploadError
from connectors.xmpp.fetch_policy import FilePolicy, address_refusal, url_refusal

CHUNK = 64 * 1024
FETCH_TIMEOUT = 120.0
"""Seconds one file may take to fetch, redirects included."""
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)


class RefusedAddress(OSError):
    """A host name that resolves to no address the file policy allows."""


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the file policy allows. The check is on
    the addresses aiohttp then connects to, so a name cannot pass it with one address and be
    connected to another (DNS rebinding). IP-literal hosts never reach a resolver: `fetch`
    checks them itself (`url_refusal`)."""

    def __init__(self, policy: FilePolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if address_refusal(r["host"], self._policy) is None]
        if not allowed:
            reasons = "; ".join(
                sorted({address_refusal(r["host"], self._policy) or "" for r in found})
            )
            raise RefusedAddress(f"{host} resolves to no allowed address ({reasons})")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(eq=False)
class Files:
    component: Component
    domain: str
    upload_service: str | None
    max_bytes: int
    policy: FilePolicy
    _uploads: aiohttp.ClientSession | None = field(default=None, init=False)
    _fetches: aiohttp.ClientSession | None = field(default=None, init=False)

    async def open(self) -> None:
        self._uploads = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))
        self._fetches = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=_CheckedResolver(self.policy)),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        for session in (self._uploads, self._fetches):
            if session is not None:
                await session.close()

    def refusal(self, url: str) -> str | None:
        """Why a file at ``url`` would not be fetched, as far as the URL itself tells (no
        I/O): checked when a message arrives, so that it is not bridged at all."""
        return url_refusal(url, self.policy)

    async def upload(self, data: bytes, name: str, mimetype: str | None) -> str:
        """Put a file on the server's upload service (the configured one, else the one ``domain``
        announces); its GET URL."""
        assert self._uploads is not None
        if self.upload_service is None:
            self.upload_service = await self.component.find_upload_service(self.domain)
            if self.upload_service is None:
                raise DeliveryError(
                    f"no HTTP upload service (XEP-0363) on {self.domain}", permanent=True
                )
        content_type = mimetype or "application/octet-stream"
        try:
            put, get, headers = await self.component.upload_slot(
                self.upload_service, name, len(data), content_type
            )
        except UploadError as e:
            raise DeliveryError(str(e), permanent=e.permanent) from e
        try:
            async with self._uploads.put(
                put, data=data, headers={**headers, "Content-Type": content_type}
            ) as resp:
                if resp.status >= 500:
                    raise Unavailable(f"the upload service answered HTTP {resp.status}")
                if resp.status >= 400:
                    permanent = resp.status in (400, 403, 413, 415)
                    reason = Refusal.TOO_LARGE if resp.status == 413 else Refusal.REFUSED
                    raise DeliveryError(f"upload refused: HTTP {resp.status}",
                                        permanent=permanent, reason=reason)  # fmt: skip
        except (aiohttp.ClientError, OSError) as e:
            raise Unavailable(f"the upload service is unreachable: {e}") from e
        return get

    async def fetch(self, url: str) -> bytes:
        """The bytes behind an out-of-band URL: only from the allowed hosts and addresses,
        following at most `MAX_REDIRECTS` redirects (each checked again), refused beyond
        ``max_file_bytes`` or `FETCH_TIMEOUT`."""
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                return await self._fetch(url)
        except TimeoutError:
            raise DeliveryError(f"fetching the file took over {FETCH_TIMEOUT:.0f}s",
                                reason=Refusal.FILE_UNAVAILABLE) from None  # fmt: skip
        except DeliveryError as e:
            e.reason = Refusal.FILE_UNAVAILABLE
            raise
        except (aiohttp.ClientError, OSError) as e:
            raise Unavailable(f"the file's server is unreachable: {e}", network_down=False) from e

    async def _fetch(self, url: str) -> bytes:
        assert self._fetches is not None
        refusal = url_refusal(url, self.policy)
        if refusal is not None:
            raise DeliveryError(f"not fetching {url}: {refusal}", permanent=True)
        target = URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._fetches.get(target, allow_redirects=False) as resp:
                    if resp.status not in _REDIRECTS:
                        return await self._read(resp)
                    target = self._redirect(resp)
            except aiohttp.ClientConnectorError as e:
                if isinstance(e.os_error, RefusedAddress):
                    raise DeliveryError(f"not fetching {target}: {e.os_error}",
                                        permanent=True) from e  # fmt: skip
                raise
        raise DeliveryError(f"more than {MAX_REDIRECTS} redirects from {url}", permanent=True)

    def _redirect(self, resp: aiohttp.ClientResponse) -> URL:
        """Where a redirect points, if the policy allows it."""
        location = resp.headers.get("Location", "")
        try:
            target = resp.url.join(URL(location))
        except ValueError as e:
            raise DeliveryError(f"malformed redirect from {resp.url}", permanent=True) from e
        refusal = url_refusal(target, self.policy) if location else "no Location"
        if refusal is not None:
            raise DeliveryError(f"not following a redirect to {target}: {refusal}",
                                permanent=True)  # fmt: skip
        return target

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_bytes
        if resp.status >= 400:
            permanent = resp.status in (403, 404, 410)
            raise DeliveryError(f"cannot fetch the file: HTTP {resp.status}", permanent=permanent)
        if resp.content_length is not None and resp.content_length > limit:
            raise DeliveryError(f"file larger than {limit} bytes", permanent=True)
        data = bytearray()
        async for chunk in resp.content.iter_chunked(CHUNK):
            data.extend(chunk)
            if len(data) > limit:
                raise DeliveryError(f"file larger than {limit} bytes", permanent=True)
        return bytes(data)
