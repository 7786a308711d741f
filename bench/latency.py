"""Latency at a steady rate: send → seen via ``/sync``, bridged and on each network alone.

A *route* is one measured path: a sender in a room and a watcher that sees the room (or its
bridged counterpart). Baseline routes stay on one network (two clients on ``bund.test``); bridged
routes cross (a client on ``bund.test`` → a client on ``tchap.test``). A bridged message is
persisted on its source homeserver, then sent and persisted on the target one, so it cannot beat
the sum of the two baselines; what the bridge adds is the difference.

Messages are sent open-loop on a fixed schedule (a slow answer does not delay the next send), so
a stall shows up in the latencies instead of silently lowering the rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.clients import Sender, Watcher
from bench.stats import percentile

QUANTILES = (50, 95, 99)
STRAGGLER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Route:
    name: str
    """``bund → tchap`` for a bridged route, ``bund`` for a baseline."""
    source: str
    target: str
    sender: Sender
    room: str
    watcher: Watcher
    spread: tuple[str, ...] = ()
    """The rooms the messages go to in turn, when more than ``room``."""
    stress: bool = False
    """A run under more load than the targets are set for (all of the rate in one room)."""

    @property
    def rooms(self) -> tuple[str, ...]:
        return self.spread or (self.room,)

    @property
    def bridged(self) -> bool:
        return self.source != self.target


@dataclass(frozen=True)
class Stream:
    """One route's run: a latency per delivered message (seconds), and how many never came."""

    route: str
    latencies: list[float]
    sent: int
    lost: int

    def quantiles(self) -> dict[str, float]:
        """``p50``, ``p95``, ``p99`` in seconds."""
        return {f"p{q}": percentile(self.latencies, q) for q in QUANTILES}


async def run_stream(route: Route, rate: float, duration: float, run_id: str) -> Stream:
    """Send ``rate`` messages per second for ``duration`` s on ``route`` (in turn to each of its
    rooms); wait for all of them."""
    count = max(1, round(rate * duration))
    started: dict[str, float] = {}
    rooms = route.rooms

    async def send(marker: str, room: str) -> None:
        started[marker] = await route.sender.send(room, marker)

    tasks = []
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(f"{run_id}-{i}", rooms[i % len(rooms)])))
    await asyncio.gather(*tasks)
    missing = await route.watcher.wait_for(started, STRAGGLER_TIMEOUT)
    arrivals = route.watcher.arrivals
    latencies = [arrivals[m] - t for m, t in started.items() if m in arrivals]
    return Stream(route.name, latencies, count, len(missing))


async def warm_up(route: Route, count: int = 5) -> None:
    """Bridge a few messages first (one in each room at least): ghosts get registered and
    joined outside the measurement."""
    rooms = route.rooms
    markers = [
        f"warm-{route.source}-{route.target}-{i}-{time.monotonic_ns()}"
        for i in range(max(count, len(rooms)))
    ]
    for i, marker in enumerate(markers):
        await route.sender.send(rooms[i % len(rooms)], marker)
    missing = await route.watcher.wait_for(markers, STRAGGLER_TIMEOUT)
    if missing:
        raise RuntimeError(f"{route.name}: warm-up messages never arrived: {missing}")
