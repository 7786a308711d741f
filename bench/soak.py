"""Soak: a steady, realistic load for half an hour (5 messages per second over ten links), to
show that the bridge neither grows nor slows as its store fills: its resident memory and its
CPU per message at the end are compared with their values after the first sixth of the run
(5 minutes of 30).

The bridge is sampled every `SAMPLES_PER_SIXTH`-th of that sixth: RSS from ``/proc``, CPU time
from ``/proc``, messages delivered from its metrics. Not part of the default ``make bench``
(it takes half an hour): ``make bench BENCH_ARGS=--soak``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from bench.cost import cpu_seconds, scrape, status_mb
from bench.latency import Route, run_stream

SAMPLES_PER_SIXTH = 5


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_mb: float
    cpu_s: float
    delivered: float


def rss_mb(pid: int) -> float:
    """The process's resident memory now (not its peak)."""
    return status_mb(pid, "VmRSS")


async def _sample(session: aiohttp.ClientSession, url: str, pid: int, t0: float) -> Sample:
    metrics = await scrape(session, url)
    return Sample(time.monotonic() - t0, rss_mb(pid), cpu_seconds(pid), metrics.delivered)


def _nearest(samples: list[Sample], at_s: float) -> Sample:
    return min(samples, key=lambda s: abs(s.at_s - at_s))


def _cpu_ms_per_message(first: Sample, last: Sample) -> float | None:
    delivered = last.delivered - first.delivered
    return (last.cpu_s - first.cpu_s) * 1000 / delivered if delivered else None


async def run_soak(
    route: Route,
    rate: float,
    duration: float,
    session: aiohttp.ClientSession,
    bridge_url: str,
    bridge_pid: int,
    run_id: str,
) -> dict[str, Any]:
    """Send on ``route`` at ``rate`` for ``duration`` s, sampling the bridge meanwhile."""
    sixth = duration / 6
    samples: list[Sample] = []
    t0 = time.monotonic()

    async def sampling() -> None:
        while True:
            samples.append(await _sample(session, bridge_url, bridge_pid, t0))
            await asyncio.sleep(sixth / SAMPLES_PER_SIXTH)

    sampler = asyncio.create_task(sampling())
    try:
        stream = await run_stream(route, rate, duration, run_id)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    samples.append(await _sample(session, bridge_url, bridge_pid, t0))
    start, early = samples[0], _nearest(samples, sixth)
    late, end = _nearest(samples, duration - sixth), samples[-1]
    return {
        "route": route.name,
        "links": len(route.rooms),
        "rate": rate,
        "duration_s": duration,
        "sixth_s": sixth,
        "sent": stream.sent,
        "lost": stream.lost,
        "rss_mb_early": early.rss_mb,
        "rss_mb_end": end.rss_mb,
        "cpu_ms_per_message_early": _cpu_ms_per_message(start, early),
        "cpu_ms_per_message_end": _cpu_ms_per_message(late, end),
        "samples": [asdict(s) for s in samples],
    }
