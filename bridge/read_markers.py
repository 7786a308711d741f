"""Read markers: up to which message someone has read a room, shown on the link's other networks.

A marker is a hint, not a message: it is held in memory only, never stored nor retried, and one
lost to a restart or a network that is down is simply not shown (the reader's next marker says
as much, and more). Clients send one for every message they scroll past, so markers are batched:
the first marker of a reader in a room goes out at once and opens a window of `MARKER_INTERVAL`
seconds; whatever that reader marks in that room meanwhile replaces what waits, and only the
latest goes out when the window closes. A reader thus costs each network at most one marker per
room per window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.events import Sender

log = logging.getLogger(__name__)

MARKER_INTERVAL = 5.0
"""Seconds between two markers of one reader in one room passed on (the latest wins)."""


@dataclass(frozen=True)
class Read:
    """``sender`` has read ``room_id`` of ``network`` up to ``remote_id`` (an ID there)."""

    network: str
    room_id: str
    sender: Sender
    remote_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.network, self.room_id, self.sender.user_id


class ReadMarkers:
    """Batches markers per reader and room and hands each batch's latest to ``pass_on``."""

    def __init__(
        self, pass_on: Callable[[Read], Awaitable[None]], interval: float = MARKER_INTERVAL
    ) -> None:
        self._pass_on = pass_on
        self._interval = interval
        self._windows: dict[tuple[str, str, str], asyncio.TimerHandle] = {}
        """Readers and rooms whose last marker went out less than ``interval`` ago."""
        self._waiting: dict[tuple[str, str, str], Read] = {}
        """The latest marker of each open window, to go out when it closes."""
        self._tasks: set[asyncio.Task[None]] = set()

    def take(self, read: Read) -> None:
        """A reader's new marker: passed on now, or when their window in that room closes."""
        if read.key in self._windows:
            self._waiting[read.key] = read
            return
        self._send(read)

    def _send(self, read: Read) -> None:
        loop = asyncio.get_running_loop()
        self._windows[read.key] = loop.call_later(self._interval, self._close, read.key)
        task = loop.create_task(self._pass(read), name=f"read-marker:{read.network}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self, key: tuple[str, str, str]) -> None:
        del self._windows[key]
        read = self._waiting.pop(key, None)
        if read is not None:
            self._send(read)

    async def _pass(self, read: Read) -> None:
        try:
            await self._pass_on(read)
        except Exception:
            log.exception("Could not pass on the read marker of %s in %s",
                          read.sender.user_id, read.room_id)  # fmt: skip

    async def stop(self) -> None:
        """Drop what waits (markers are not kept) and let those on their way finish."""
        for timer in self._windows.values():
            timer.cancel()
        self._windows.clear()
        self._waiting.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
