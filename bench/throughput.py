"""Throughput: messages sent as fast as the source homeserver accepts them, until every one has
arrived on the other side.

A few concurrent senders each send their next message as soon as the previous one was accepted,
spread round-robin over the rooms of the links under test. The source homeserver's own rate is
what it accepted (first send → last accepted); the bridged rate runs to the last arrival on the
target, so a bridge that falls behind shows as a lower bridged rate, and a lost message as
``lost``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.clients import Sender, Watcher

ARRIVAL_TIMEOUT = 180.0


@dataclass(frozen=True)
class Burst:
    links: int
    sent: int
    lost: int
    accepted_per_s: float
    """The source homeserver's own rate: messages it accepted per second."""
    bridged_per_s: float | None
    """Messages per second, first send → last arrival on the target (None if any was lost)."""

    @property
    def ratio(self) -> float | None:
        return self.bridged_per_s / self.accepted_per_s if self.bridged_per_s else None


async def run_burst(
    sender: Sender,
    rooms: list[str],
    watcher: Watcher,
    count: int,
    concurrency: int,
    run_id: str,
) -> Burst:
    markers = [f"{run_id}-{i}" for i in range(count)]
    queue = iter(enumerate(markers))
    first_send = float("inf")
    last_ack = 0.0

    async def worker() -> None:
        nonlocal first_send, last_ack
        for i, marker in queue:
            started = await sender.send(rooms[i % len(rooms)], marker)
            first_send = min(first_send, started)
            last_ack = max(last_ack, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    missing = await watcher.wait_for(markers, ARRIVAL_TIMEOUT)
    last_arrival = max((watcher.arrivals[m] for m in markers if m in watcher.arrivals), default=0)
    return Burst(
        links=len(rooms),
        sent=count,
        lost=len(missing),
        accepted_per_s=count / (last_ack - first_send),
        bridged_per_s=None if missing else count / (last_arrival - first_send),
    )
