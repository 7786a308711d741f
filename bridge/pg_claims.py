"""Several bridge instances on one PostgreSQL database: who works which queue, who leads which
network.

Every instance accepts what the networks send (storing an event is idempotent), but each outbox
queue must be worked by exactly one instance at a time, or order and exactly-once delivery would
be lost; and a network that allows one connection only (an XMPP component, a relay bot's
``/sync``, an encryption device) must be run by one instance. Both are PostgreSQL session-level
advisory locks (``pg_try_advisory_lock``) held on one dedicated connection per instance:

- when an instance dies, its connection closes and the server releases its locks at once; the
  other instances look for unclaimed work every `TAKEOVER_INTERVAL` and take it over;
- when an instance loses that connection (a terminated backend, a restarted server) it has lost
  every lock with it, so it stops working its queues and its exclusive networks immediately
  (`Claims.on_lost`), reconnects, and claims again like any other instance;
- an instance that queued work for a queue another one holds tells it with ``NOTIFY``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from bridge.claims import Claims, Queue
from bridge.database import unreachable

log = logging.getLogger(__name__)

CHANNEL = "passerelle_outbox"
KEEPALIVE_INTERVAL = 1.0
"""Seconds between two checks that the lock connection still stands."""
RECONNECT_MAX = 30.0


def lock_key(*parts: str) -> int:
    """The 64-bit advisory lock key of a queue (link, target) or a network's leadership."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresClaims(Claims):
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        """asyncpg runs one statement at a time per connection."""
        self._held: set[int] = set()
        self._wake: Callable[[str, str], None] = lambda link, target: None
        self._lost: list[Callable[[], None]] = []
        self._keepalive: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # Claims

    async def claim(self, queue: Queue) -> bool:
        return await self.hold(lock_key("queue", *queue))

    async def release(self, queue: Queue) -> None:
        await self.let_go(lock_key("queue", *queue))

    async def announce(self, queue: Queue) -> None:
        await self._run("SELECT pg_notify($1, $2)", CHANNEL, "\x1f".join(queue))

    def on_work(self, wake: Callable[[str, str], None]) -> None:
        self._wake = wake

    def on_lost(self, lost: Callable[[], None]) -> None:
        self._lost.append(lost)

    async def lead(self, network: str) -> bool:
        return await self.hold(lock_key("leader", network))

    def leads(self, network: str) -> bool:
        return self.holds(lock_key("leader", network))

    # Locks in general (queues, and the leadership of exclusive networks)

    async def hold(self, key: int) -> bool:
        """Take the advisory lock ``key`` for this instance (True when it holds it now)."""
        if key in self._held:
            return True
        if await self._run("SELECT pg_try_advisory_lock($1)", key):
            self._held.add(key)
            return True
        return False

    async def let_go(self, key: int) -> None:
        if key in self._held:
            self._held.discard(key)
            await self._run("SELECT pg_advisory_unlock($1)", key)

    def holds(self, key: int) -> bool:
        return key in self._held

    # The connection

    async def start(self) -> None:
        await self._connect()
        self._keepalive = asyncio.create_task(self._watch(), name="claims-keepalive")

    async def stop(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()  # the server releases every lock held on it
        self._held.clear()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._connected.set()

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        link, sep, target = payload.partition("\x1f")
        if sep:
            self._wake(link, target)

    async def _run(self, query: str, *args: Any) -> Any:
        """One statement on the lock connection; a lost connection counts as every lock lost
        (and raises, for the caller to retry once the connection is back)."""
        await self._connected.wait()
        async with self._lock:
            assert self._conn is not None
            try:
                return await self._conn.fetchval(query, *args)
            except Exception as exc:
                if unreachable(exc):
                    self._gone(exc)
                raise

    def _gone(self, why: BaseException) -> None:
        if not self._connected.is_set():
            return
        log.warning("Lost the claims connection to the database (%s): letting go of %d "
                    "claim(s) until it is back", why, len(self._held))  # fmt: skip
        self._connected.clear()
        self._held.clear()
        for lost in self._lost:
            lost()

    async def _watch(self) -> None:
        """Notice a lost connection within `KEEPALIVE_INTERVAL`, and reconnect."""
        delay = 1.0
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            conn = self._conn
            if self._connected.is_set() and conn is not None:
                try:
                    async with self._lock:
                        await conn.fetchval("SELECT 1")
                    continue
                except Exception as exc:
                    self._gone(exc)
            try:
                if self._conn is not None and not self._conn.is_closed():
                    self._conn.terminate()
                await self._connect()
                log.info("Claims connection to the database is back")
                delay = 1.0
            except Exception as exc:
                log.warning("Cannot reconnect the claims connection (%s); retrying in %.0fs",
                            exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
