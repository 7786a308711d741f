"""Files between XMPP and the other networks: bytes fetched from the out-of-band URLs XMPP
messages carry, and bytes put on the XMPP server's HTTP upload service (XEP-0363) for messages
the bridge sends. Both over one aiohttp session; the bytes are moved, never just linked."""

from __future__ import annotations

import aiohttp

from bridge.connector import DeliveryError
from connectors.xmpp.component import Component, UploadError

CHUNK = 64 * 1024


class Files:
    def __init__(
        self, component: Component, domain: str, upload_service: str | None, max_bytes: int
    ) -> None:
        self._component = component
        self._domain = domain
        self._upload_service = upload_service
        self._max_bytes = max_bytes
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def upload(self, data: bytes, name: str, mimetype: str | None) -> str:
        """Put a file on the server's upload service (the configured one, else the one ``domain``
        announces); its GET URL."""
        assert self._http is not None
        if self._upload_service is None:
            self._upload_service = await self._component.find_upload_service(self._domain)
            if self._upload_service is None:
                raise DeliveryError(
                    f"no HTTP upload service (XEP-0363) on {self._domain}", permanent=True
                )
        content_type = mimetype or "application/octet-stream"
        try:
            put, get, headers = await self._component.upload_slot(
                self._upload_service, name, len(data), content_type
            )
        except UploadError as e:
            raise DeliveryError(str(e), permanent=e.permanent) from e
        async with self._http.put(
            put, data=data, headers={**headers, "Content-Type": content_type}
        ) as resp:
            if resp.status >= 400:
                permanent = resp.status in (400, 403, 413, 415)
                raise DeliveryError(f"upload refused: HTTP {resp.status}", permanent=permanent)
        return get

    async def fetch(self, url: str) -> bytes:
        """The bytes behind an out-of-band URL, refused beyond ``max_file_bytes``."""
        assert self._http is not None
        limit = self._max_bytes
        async with self._http.get(url) as resp:
            if resp.status >= 400:
                permanent = resp.status in (403, 404, 410)
                raise DeliveryError(
                    f"cannot fetch the file: HTTP {resp.status}", permanent=permanent
                )
            if resp.content_length is not None and resp.content_length > limit:
                raise DeliveryError(f"file larger than {limit} bytes", permanent=True)
            data = bytearray()
            async for chunk in resp.content.iter_chunked(CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise DeliveryError(f"file larger than {limit} bytes", permanent=True)
        return bytes(data)
