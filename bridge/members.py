"""Who is in the room: the people of each room of a link appear as members of its other rooms
(their ghosts join and leave, their puppets take and give up seats), so that every room's member
list shows the whole working group.

A membership change crosses as an event (`bridge.events.MEMBERSHIP`) through the outbox, in the
link's order, so that someone's ghost is in a room before their first message is. Connectors
decide here whether a change is mirrored at all, before they pass it on; the bridge's own ghosts
and puppets are never mirrored (each connector leaves them out), so nothing loops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from bridge.config.model import Link
from bridge.events import Event

log = logging.getLogger(__name__)

MIRROR_MEMBERS_LIMIT = 300
"""A link without ``mirror_members`` mirrors the joins and leaves of a room while that room has
fewer members than this: in a larger one, a ghost for each member would crowd every member
list and cost a request per member on every network."""


async def mirrors(link: Link, direct: bool, count: Callable[[], Awaitable[int]]) -> bool:
    """Whether a join or leave in one of ``link``'s rooms is mirrored in the others: as the
    link's ``mirror_members`` says, else while the room holds fewer than
    `MIRROR_MEMBERS_LIMIT` members (``count`` asks the room's network, only then). A direct
    chat has no one else to show."""
    if direct:
        return False
    if link.mirror_members is not None:
        return link.mirror_members
    return await count() < MIRROR_MEMBERS_LIMIT


MEMBERSHIP_BURST = 4
"""Joins and leaves of one person in one room mirrored at once within `MEMBERSHIP_WINDOW`."""
MEMBERSHIP_WINDOW = 60.0
KEYS_KEPT = 10_000
"""People and rooms remembered before those without a recent change are forgotten."""


class Damper:
    """Someone who joins and leaves a room over and over (a flapping client, or on purpose)
    would make their ghost join and leave every other room of the link as often: past
    `MEMBERSHIP_BURST` changes within `MEMBERSHIP_WINDOW` s, only the last change of the window
    is passed on, when it ends, so the other rooms still end up showing where they are."""

    def __init__(
        self,
        take: Callable[[Event], Awaitable[object]],
        clock: Callable[[], float] = time.monotonic,
        burst: int = MEMBERSHIP_BURST,
        window: float = MEMBERSHIP_WINDOW,
    ) -> None:
        self._take, self._clock = take, clock
        self.burst, self.window = burst, window
        self._recent: dict[tuple[str, str, str], deque[float]] = {}
        self._held: dict[tuple[str, str, str], Event] = {}
        self._flushes: set[asyncio.Task[None]] = set()

    def hold(self, event: Event) -> bool:
        """Whether ``event`` (a join or leave) waits for the end of its window; when it does,
        it replaces what of the same person and room waited already."""
        key = (event.network, event.room_id, event.sender.user_id)
        now = self._clock()
        if len(self._recent) > KEYS_KEPT:
            self._forget_before(now - self.window)
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if key in self._held or len(recent) >= self.burst:
            if key not in self._held:
                log.info("%s joins and leaves %s of %s often: only the last change of the next "
                         "%.0f s is mirrored", event.sender.user_id, event.room_id, event.network,
                         recent[0] + self.window - now)  # fmt: skip
                task = asyncio.create_task(self._flush(key, recent[0] + self.window - now))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)
            self._held[key] = event
            return True
        recent.append(now)
        return False

    def _forget_before(self, moment: float) -> None:
        """Forget whoever changed nothing since ``moment`` (many people, each once)."""
        for key in [k for k, times in self._recent.items() if not times or times[-1] <= moment]:
            del self._recent[key]

    async def _flush(self, key: tuple[str, str, str], delay: float) -> None:
        await asyncio.sleep(max(delay, 0.0))
        event = self._held.pop(key, None)
        if event is not None:
            self._recent.setdefault(key, deque()).append(self._clock())
            try:
                await self._take(event)
            except Exception:
                log.exception("Could not mirror the last membership change of %s", key[2])

    async def stop(self) -> None:
        """Drop what waits (a membership is best effort: the next change mirrors it again)."""
        for task in list(self._flushes):
            task.cancel()
        await asyncio.gather(*self._flushes, return_exceptions=True)
        self._held.clear()
