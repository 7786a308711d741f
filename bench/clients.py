"""The two ends of every measured path, as a real Matrix client does them: sending with
``PUT /rooms/…/send`` and seeing with a ``/sync`` long-poll loop (not ``/messages`` polling, so the
time measured is the homeserver's delivery, not a polling interval).

Each benchmark message carries a marker (``bench:<id>``) in its body, which survives bridging
(a ghost posts the body unchanged; a relay bot prefixes the sender's name; a mail carries the
text as its body), so the receiving end finds it whatever network the message crossed. Every
other network's clients (`bench.xmpp`, `bench.mail`) provide the same two things:
`Sender.send(room, marker)` and a watcher whose `arrivals` maps each marker to the moment it
was seen (an `ArrivalLog`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

MARKER_RE = re.compile(r"bench:(\S+)")
SYNC_TIMEOUT_MS = 30_000
SEND_TIMEOUT = aiohttp.ClientTimeout(total=60)
"""A send still unanswered after this is sent again with the same transaction ID (so the
homeserver stores it once), as a real client does: one stalled request on a loaded machine must
not end a half-hour soak."""
SEND_ATTEMPTS = 3


def body(marker: str) -> str:
    return f"Benchmark message bench:{marker}"


class Sender(Protocol):
    async def send(self, room: str, marker: str) -> float:
        """Send the message carrying ``marker``; return the `time.perf_counter` at which the
        request was issued (the start of the measured path)."""
        ...


class Watcher(Protocol):
    arrivals: dict[str, float]
    """Marker → `time.perf_counter` when the receiving client first saw it."""

    async def wait_for(self, markers: Iterable[str], timeout: float) -> list[str]:  # noqa: ASYNC109
        """Wait until every marker arrived or ``timeout`` s passed; return the missing ones."""
        ...


class MatrixSender:
    """A Matrix user sending text messages with its own HTTP session."""

    def __init__(self, base_url: str, access_token: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {access_token}"},
            connector=aiohttp.TCPConnector(limit=64),
        )

    async def send(self, room: str, marker: str) -> float:
        txn = uuid.uuid4().hex
        url = (
            f"{self.base_url}/_matrix/client/v3/rooms/{quote(room, safe='')}"
            f"/send/m.room.message/{txn}"
        )
        content = {"msgtype": "m.text", "body": body(marker)}
        started = time.perf_counter()
        for _ in range(SEND_ATTEMPTS - 1):
            try:
                await self._put(url, content, room)
                return started
            except (TimeoutError, aiohttp.ClientConnectionError):
                continue
        await self._put(url, content, room)
        return started

    async def _put(self, url: str, content: dict[str, Any], room: str) -> None:
        async with self.session.put(url, json=content, timeout=SEND_TIMEOUT) as resp:
            if resp.status != 200:
                raise RuntimeError(f"send to {room} failed: {resp.status} {await resp.text()}")
            await resp.read()

    async def close(self) -> None:
        await self.session.close()


class ArrivalLog:
    """The `Watcher` half every receiving client shares: when each marker was first seen, and
    waiting for markers. A client calls `note` from the event loop with the moment it saw a
    text (taken when its bytes arrived, not when `note` runs)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self._changed = asyncio.Event()

    def note(self, text: object, at: float) -> None:
        """Record the marker in ``text`` (if any) as seen at ``at``, unless it was seen before."""
        match = MARKER_RE.search(text) if isinstance(text, str) else None
        if match and match.group(1) not in self.arrivals:
            self.arrivals[match.group(1)] = at
            self._changed.set()

    def check(self) -> None:
        """Raise what stopped the client from receiving (nothing by default)."""

    async def wait_for(self, markers: Iterable[str], timeout: float) -> list[str]:  # noqa: ASYNC109
        """Wait until every marker arrived or ``timeout`` s passed; return the missing ones."""
        wanted = set(markers)
        deadline = time.monotonic() + timeout
        while True:
            missing = wanted - self.arrivals.keys()
            if not missing:
                return []
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return sorted(missing)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass


class SyncWatcher(ArrivalLog):
    """A Matrix user's ``/sync`` loop recording when each marked message first arrives."""

    def __init__(self, name: str, base_url: str, access_token: str, rooms: Iterable[str]) -> None:
        super().__init__()
        self.name = name
        self.base_url = base_url
        self.rooms = list(rooms)
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {access_token}"})
        self.limited = 0
        """Responses whose timeline was cut short (never expected: the limit is high)."""
        self._task: asyncio.Task[None] | None = None

    def _filter(self) -> str:
        return json.dumps(
            {
                "room": {
                    "rooms": self.rooms,
                    "timeline": {"limit": 10_000, "types": ["m.room.message"]},
                    "state": {"types": []},
                    "ephemeral": {"types": []},
                    "account_data": {"types": []},
                },
                "presence": {"types": []},
                "account_data": {"types": []},
            }
        )

    async def _sync(self, since: str | None, timeout_ms: int) -> dict[str, Any]:
        params = {"filter": self._filter(), "timeout": str(timeout_ms)}
        if since:
            params["since"] = since
        async with self.session.get(
            f"{self.base_url}/_matrix/client/v3/sync",
            params=params,
            timeout=aiohttp.ClientTimeout(total=timeout_ms / 1000 + 30),
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: /sync failed: {resp.status}")
            data: dict[str, Any] = await resp.json()
            return data

    async def start(self) -> None:
        """Catch up once (older messages are not benchmark arrivals), then follow live."""
        first = await self._sync(None, 0)
        self._task = asyncio.create_task(self._loop(first["next_batch"]), name=f"sync:{self.name}")

    async def _loop(self, since: str) -> None:
        while True:
            data = await self._sync(since, SYNC_TIMEOUT_MS)
            now = time.perf_counter()
            since = data["next_batch"]
            for room in data.get("rooms", {}).get("join", {}).values():
                timeline = room.get("timeline", {})
                self.limited += bool(timeline.get("limited"))
                for event in timeline.get("events", []):
                    self.note(event.get("content", {}).get("body"), now)

    def check(self) -> None:
        if self._task is not None and self._task.done():
            self._task.result()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.session.close()
