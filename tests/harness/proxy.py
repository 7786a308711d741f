"""A reverse proxy in front of several bridge instances, as an admin puts one behind the
registration URL of a high-availability deployment: every request goes to the first instance
whose ``/_passerelle/ready`` says it is ready, the others are backups. While none is ready, it
goes to the first that answers at all: an instance that is starting asks its homeserver to ping
it (``/_matrix/client/v1/appservice/{id}/ping``) before it calls itself ready.

The homeservers push their appservice transactions here. While no instance is ready, it answers
503, which a homeserver treats as the appservice being down (it keeps the transaction and
retries it later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import web

from tests.harness.synapse import free_port

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
"""Seconds between two readiness checks of every backend."""
HOP_HEADERS = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length", "content-encoding")
)  # fmt: skip


class FailoverProxy:
    """Listens on ``port`` (127.0.0.1) and forwards to ``backends`` (base URLs) in order of
    preference. Create and use it inside the event loop that serves it."""

    def __init__(self, backends: list[str], port: int | None = None) -> None:
        self.backends = backends
        self.port = port or free_port()
        self.active: str | None = None
        """The backend requests go to now (None while none is ready)."""
        self.switches: list[tuple[str | None, str | None]] = []
        """Every change of the active backend, (from, to), for the report."""
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._checker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._checker = asyncio.create_task(self._check_forever(), name="proxy readiness")

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _readiness(self, backend: str) -> bool | None:
        """True when ``backend`` is ready, False when it answers but is not, None when it does
        not answer."""
        assert self._session is not None
        try:
            async with self._session.get(
                f"{backend}/_passerelle/ready", timeout=aiohttp.ClientTimeout(total=1)
            ) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def check(self) -> str | None:
        """Look again which backend is the first ready one (else the first that answers),
        and make it the active one."""
        states = [(backend, await self._readiness(backend)) for backend in self.backends]
        ready = [b for b, state in states if state]
        answering = [b for b, state in states if state is not None]
        chosen = (ready or answering or [None])[0]
        if chosen != self.active:
            log.info("proxy: %s → %s", self.active, chosen)
            self.switches.append((self.active, chosen))
            self.active = chosen
        return chosen

    async def _check_forever(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_INTERVAL)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        backend = self.active or await self.check()
        if backend is None:
            return web.Response(status=503, text="no bridge instance is ready")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            async with self._session.request(
                request.method, backend + request.rel_url.raw_path_qs, headers=headers,
                data=await request.read(),
            ) as resp:  # fmt: skip
                body = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=resp.status, body=body, headers=out)
        except (TimeoutError, aiohttp.ClientError) as e:
            # The instance died under this request: the homeserver sends it again later.
            self.active = None
            return web.Response(status=502, text=f"bridge instance failed: {e}")
