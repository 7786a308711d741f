"""Reverse proxies for the tests. `FailoverProxy` stands in front of several bridge instances,
as an operator would put one: every request goes to the first instance whose
``/_passerelle/ready`` answers 200, the others stand by (active/backup); the homeservers'
appservice registrations point at it. `HomeserverProxy` stands between the bridge and a
homeserver and loses an answer on demand."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

READY_CACHE = 0.5
"""Seconds an instance's readiness is trusted before it is asked again."""
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
HOP_HEADERS = ("host", "content-length", "transfer-encoding", "connection")


class _Proxy:
    """An aiohttp server on loopback that hands every request to ``_forward``."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


def _has_events(body: bytes) -> bool:
    """A transaction that carries events (not only ephemeral data or nothing)."""
    return b'"events": []' not in body and b'"events":[]' not in body


class FailoverProxy(_Proxy):
    def __init__(self, backends: list[str], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.backends = backends
        self._active: tuple[str, float] | None = None
        self.served_by: list[str] = []
        """The backend of every request forwarded so far."""
        self._swallow = 0
        self.swallowed: list[bytes] = []
        """Bodies of the appservice transactions acknowledged without passing them on."""
        self._swallowed_one = asyncio.Event()
        self._swallow_if: Callable[[bytes], bool] = _has_events

    def swallow(self, transactions: int = 1, when: Callable[[bytes], bool] = _has_events) -> None:
        """Acknowledge the next ``transactions`` appservice transactions (200, as a bridge that
        took them) whose body passes ``when`` without passing them on: a push the homeserver
        thinks done and the bridge never saw."""
        self._swallow += transactions
        self._swallow_if = when

    async def lose_next_push(
        self, patience: float, when: Callable[[bytes], bool] = _has_events
    ) -> bytes | None:
        """`swallow` the next transaction whose body passes ``when`` and wait for it: its body,
        or None when none came for ``patience`` s (one is then swallowed later)."""
        self._swallowed_one.clear()
        self.swallow(1, when)
        try:
            await asyncio.wait_for(self._swallowed_one.wait(), patience)
        except TimeoutError:
            return None
        return self.swallowed[-1]

    async def _backend(self) -> str | None:
        if self._active is not None and time.monotonic() - self._active[1] < READY_CACHE:
            return self._active[0]
        assert self._session is not None
        for backend in self.backends:
            ready = f"{backend}/_passerelle/ready"
            try:
                async with self._session.get(ready, timeout=PROBE_TIMEOUT) as resp:
                    if resp.status == 200:
                        self._active = (backend, time.monotonic())
                        return backend
            except (aiohttp.ClientError, TimeoutError):
                continue
        self._active = None
        return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self._swallow and request.method == "PUT" and "/transactions/" in request.path:
            body = await request.read()
            if self._swallow_if(body):
                self._swallow -= 1
                self.swallowed.append(body)
                self._swallowed_one.set()
                return web.json_response({})
        backend = await self._backend()
        if backend is None:
            return web.Response(status=502, text="no bridge instance is ready")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        url, body = backend + request.rel_url.path_qs, await request.read()
        try:
            async with self._session.request(request.method, url, data=body,
                                             headers=headers) as resp:  # fmt: skip
                self.served_by.append(backend)
                body = await resp.read()
                return web.Response(status=resp.status, body=body,
                                    content_type=resp.content_type)  # fmt: skip
        except (aiohttp.ClientError, TimeoutError):
            self._active = None
            return web.Response(status=502, text="the bridge instance did not answer")


class HomeserverProxy(_Proxy):
    """Between the bridge and a homeserver: passes everything on, except that it can lose the
    answer to a message the homeserver stored (the bridge sees the connection drop) and then
    stand for a homeserver that is down (502) until `resume`."""

    def __init__(self, backend: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.backend = backend
        self._lose_next = False
        self._down = False
        self.lost: list[dict[str, object]] = []
        """The answers the bridge never got."""

    def lose_next_send(self) -> None:
        """Pass the next ``PUT …/send/…`` on, drop its answer, then be down."""
        self._lose_next = True

    def resume(self) -> None:
        self._down = False

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self._down:
            return web.Response(status=502, text="the homeserver is down")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        url, body = self.backend + request.rel_url.raw_path_qs, await request.read()
        lose = self._lose_next and request.method == "PUT" and "/send/" in request.path
        async with self._session.request(request.method, url, data=body,
                                         headers=headers) as resp:  # fmt: skip
            answer = await resp.read()
            if lose:
                self._lose_next, self._down = False, True
                self.lost.append(json.loads(answer))
                assert request.transport is not None
                request.transport.close()
            return web.Response(status=resp.status, body=answer,
                                content_type=resp.content_type)  # fmt: skip
