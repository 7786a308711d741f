"""Catch-up: what a homeserver never pushed is still bridged.

A homeserver pushes each room event to the appservice once it is acknowledged or retried, but
it sometimes does not: a transaction it dropped after the bridge answered an error, one lost with
a homeserver killed mid-push, one it sends late. So the bridge also reads each linked room's
timeline (``GET /rooms/{room}/messages``, ``dir=f``, as the bot) from where it last read it, and
ingests what it does not know yet; events it knows (pushed, or posted by its own ghosts) are
skipped with one store query per page, and storing is idempotent anyway.

Where it last read is a pagination token per room (`MatrixState`). A room is read:

- once after start, for every room with a token (what was said while the bridge was down and
  its transactions were lost). A room gets its first token when the bot joins or creates it
  (`CatchUp.from_now`), so what is said from then on is caught up even if its push never
  comes; a room joined at an earlier run without a token (a new store) gets the token of its
  present end at its first read. History from before the bridge joined is not bridged;
- every ``catch_up_interval`` for rooms with pushed events since the last read ("recently
  active"); a room nothing happened in costs nothing;
- soon after the bridge failed to take a transaction, or after its homeserver came back from
  being unreachable (`CatchUp.everything`).

A room the bot may not read (a direct chat that someone opened by inviting a ghost, which the
bot is not in) is left to its pushes; it does not stop the pass for the rooms after it.

Cost: one request per room read, plus one per further 100 events; at most 3600 /
``catch_up_interval`` requests per hour for a room that is active the whole hour, none for an
idle one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mautrix.api import Method, Path
from mautrix.client import ClientAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import RoomID

from bridge.store import Store
from connectors.matrix.state import MatrixState

JSON = dict[str, Any]
PAGE = 100
"""Events asked for per request."""
SOON = 1.0
"""Seconds to wait after a trigger before reading (several triggers make one pass)."""
WARY = 60.0
"""Seconds after a start or a failed transaction during which every pushed event waits until
its room was read up to it (`CatchUp.wary`)."""


@dataclass(eq=False)
class CatchUp:
    state: Callable[[], MatrixState]
    store: Store
    bot: Callable[[], ClientAPI]
    handle: Callable[[JSON], Awaitable[None]]
    rooms: Callable[[], list[str]]
    interval: float
    log: logging.Logger
    _positions: dict[str, str] = field(default_factory=dict, init=False)
    _active: set[str] = field(default_factory=set, init=False)
    _everything: bool = field(default=True, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False)
    _unreadable: set[str] = field(default_factory=set, init=False)
    """Rooms the bot was refused reading (logged once each)."""
    _wary_until: float = field(default_factory=lambda: time.monotonic() + WARY, init=False)
    first_pass: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    """Set once every room was read after start (or tried): pushed events wait for it, so
    what was said while the bridge was down goes out before what is said now, in the
    rooms' order (Synapse may push a newer event before retrying an older one)."""

    def active(self, room_id: str) -> None:
        """An event of ``room_id`` was pushed: read the room at the next regular pass."""
        self._active.add(room_id)

    def everything(self) -> None:
        """Read every room soon (a transaction went wrong, the homeserver is back)."""
        self._everything = True
        self._wake.set()
        self._wary_until = time.monotonic() + WARY

    @property
    def wary(self) -> bool:
        """Whether pushed events should wait until their room was read up to them: for a while
        after a start or a failed transaction. Synapse retries a failed push later but may push
        newer events of the same room before it (its recoverer runs beside the queue), and
        reading the room first ingests what came before them, in the room's order."""
        return time.monotonic() < self._wary_until

    async def run(self) -> None:
        """Read rooms for ever: every room first, then the active ones each interval."""
        self._positions = await self.state().room_positions()
        while True:
            if self._everything:
                self._everything = False
                rooms = self.rooms()
            else:
                rooms = [room for room in self.rooms() if room in self._active]
            self._active.difference_update(rooms)
            for room in rooms:
                try:
                    await self.read(room)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    if isinstance(e, MatrixRequestError) and _refused(e):
                        if room not in self._unreadable:
                            self._unreadable.add(room)
                            self.log.info("Cannot read %s as the bot (%s): only its pushes "
                                          "bring its events", room, e)  # fmt: skip
                        continue
                    # The homeserver may be down: once it answers, every room is read again.
                    self.log.warning("Could not catch up with %s: %s", room, e)
                    self._everything = True
                    break
            self.first_pass.set()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
                await asyncio.sleep(SOON)
            except TimeoutError:
                pass

    async def from_now(self, room_id: str) -> None:
        """The bot just joined or created ``room_id``: read it from here on. Taken now rather
        than at the room's first read, which may come after its first messages (a pass runs
        once the rooms are set up; a room a reload added waits for a push): one of them whose
        push never came would be lost."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if room_id not in self._positions:
                await self._save(room_id, await self._present_end(room_id))

    def knows(self, room_id: str) -> bool:
        """Whether the room was read before (a room never read has nothing to catch up yet)."""
        return room_id in self._positions

    async def read(self, room_id: str) -> None:
        """Ingest what ``room_id``'s timeline holds after the stored token, in order (one
        reader per room at a time)."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            await self._read(room_id)

    async def _read(self, room_id: str) -> None:
        token = self._positions.get(room_id)
        if token is None:
            await self._save(room_id, await self._present_end(room_id))
            return
        caught_up = 0
        while True:
            page = await self._page(room_id, token)
            chunk = [e for e in page.get("chunk", []) if isinstance(e, dict)]
            ids = [e["event_id"] for e in chunk if isinstance(e.get("event_id"), str)]
            known = await self.store.known_among(self.state().network, ids)
            for raw in chunk:
                if raw.get("event_id") in known:
                    continue
                raw.setdefault("room_id", room_id)
                await self.handle(raw)
                caught_up += 1
            end = page.get("end")
            if not isinstance(end, str) or not chunk:
                break
            token = end
            await self._save(room_id, token)
        if caught_up:
            self.log.info("Caught up %d event(s) the homeserver had not pushed in %s", caught_up,
                          room_id)  # fmt: skip

    async def _page(self, room_id: str, token: str) -> JSON:
        page: JSON = await self.bot().api.request(
            Method.GET,
            Path.v3.rooms[RoomID(room_id)].messages,
            query_params={"from": token, "dir": "f", "limit": str(PAGE)},
            metrics_method="getMessages",
        )
        return page

    async def _present_end(self, room_id: str) -> str:
        """A token for the present end of the room's timeline."""
        page: JSON = await self.bot().api.request(
            Method.GET,
            Path.v3.rooms[RoomID(room_id)].messages,
            query_params={"dir": "b", "limit": "1"},
            metrics_method="getMessages",
        )
        return str(page["start"])

    async def _save(self, room_id: str, token: str) -> None:
        if self._positions.get(room_id) != token:
            self._positions[room_id] = token
            await self.state().save_room_position(room_id, token)


def _refused(error: MatrixRequestError) -> bool:
    """Whether the homeserver refused the bot this room (not a member, no such room), as
    opposed to being unable to answer now."""
    return error.http_status in (403, 404)
