"""What bridging costs inside a process: CPU time read from ``/proc/<pid>/stat`` and the bridge's
own Prometheus metrics (``GET /metrics``), each taken before and after a phase so that only the
phase's messages count.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
QUIET_SHARE = 0.10
QUIET_SECONDS = 3
HISTOGRAM = "passerelle_arrival_to_send_seconds"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all processes spent on the machine so far (every core, from ``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def status_mb(pid: int, key: str) -> float:
    """A memory figure of the process's ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``…) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB."""
    return status_mb(pid, "VmHWM")


@dataclass(frozen=True)
class Metrics:
    """One scrape of the bridge's counters and arrival→send histogram (summed over networks)."""

    received: float
    delivered: float
    buckets: dict[float, float]
    """Histogram upper bound (seconds) → cumulative count."""

    def __sub__(self, before: Metrics) -> Metrics:
        return Metrics(
            self.received - before.received,
            self.delivered - before.delivered,
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )

    def quantile(self, q: float) -> float | None:
        """Like PromQL's ``histogram_quantile``: linear within the bucket holding rank q."""
        bounds = sorted(self.buckets)
        if not bounds or self.buckets[bounds[-1]] <= 0:
            return None
        rank = q * self.buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for le in bounds:
            count = self.buckets[le]
            if count >= rank:
                if math.isinf(le):
                    return lower
                inside = count - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, count
        return None


async def scrape(session: aiohttp.ClientSession, bridge_url: str) -> Metrics:
    async with session.get(f"{bridge_url}/metrics") as resp:
        resp.raise_for_status()
        text = await resp.text()
    totals: dict[str, float] = defaultdict(float)
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_bucket":
                buckets[float(sample.labels["le"])] += sample.value
            elif sample.name in (
                "passerelle_events_received_total",
                "passerelle_events_delivered_total",
            ):
                totals[sample.name] += sample.value
    return Metrics(
        totals["passerelle_events_received_total"],
        totals["passerelle_events_delivered_total"],
        dict(buckets),
    )


class CostMeter:
    """CPU of the bridge and of each homeserver, and the bridge's metrics, over one phase; also
    the CPU that processes outside the benchmark took meanwhile (on a shared machine they
    slow the homeservers and the bridge alike, so a disturbed phase shows here)."""

    def __init__(self, session: aiohttp.ClientSession, bridge_url: str,
                 pids: dict[str, int]) -> None:  # fmt: skip
        self.session = session
        self.bridge_url = bridge_url
        self.pids = pids
        """Process name (``bridge``, ``bund``, ``tchap``) → pid."""
        self._cpu: dict[str, float] = {}
        self._metrics: Metrics | None = None
        self._busy = self._wall = 0.0

    def _own_cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in {**self.pids, "bench": os.getpid()}.items()}

    async def other_share_now(self, window: float = 1.0) -> float:
        """Share of the machine's CPU that processes outside the benchmark use right now."""
        own, busy, wall = self._own_cpu(), machine_busy_seconds(), time.monotonic()
        await asyncio.sleep(window)
        own_used = sum(self._own_cpu().values()) - sum(own.values())
        used = machine_busy_seconds() - busy
        return max(0.0, used - own_used) / ((time.monotonic() - wall) * CORES)

    async def wait_for_quiet(self, limit: float, share: float = QUIET_SHARE) -> float:
        """Wait (at most ``limit`` s) until other processes have left the machine alone for
        `QUIET_SECONDS`, so a phase does not start in the middle of someone's test run; returns
        the seconds waited."""
        started = time.monotonic()
        calm = 0
        while calm < QUIET_SECONDS and time.monotonic() - started < limit:
            calm = calm + 1 if await self.other_share_now() < share else 0
        return time.monotonic() - started

    async def start(self) -> None:
        self._metrics = await scrape(self.session, self.bridge_url)
        self._cpu = self._own_cpu()
        self._busy, self._wall = machine_busy_seconds(), time.monotonic()

    async def stop(self) -> PhaseCost:
        now = self._own_cpu()
        busy, wall = machine_busy_seconds() - self._busy, time.monotonic() - self._wall
        cpu = {name: now[name] - self._cpu[name] for name in now}
        assert self._metrics is not None
        delta = await scrape(self.session, self.bridge_url) - self._metrics
        other = max(0.0, busy - sum(cpu.values())) / (wall * CORES)
        return PhaseCost(cpu, delta, other)


@dataclass(frozen=True)
class PhaseCost:
    cpu: dict[str, float]
    """Process name → CPU seconds spent during the phase."""
    metrics: Metrics
    other_share: float
    """Share of the machine's CPU (0–1, all cores) used by processes outside the benchmark."""

    def cpu_ms_per(self, process: str, count: float) -> float | None:
        return 1000 * self.cpu[process] / count if count else None

    @property
    def bridge_ms_per_message(self) -> float | None:
        return self.cpu_ms_per("bridge", self.metrics.received)

    @property
    def bridge_ms_per_target(self) -> float | None:
        """CPU per delivery: a message fanned out to n networks counts n times."""
        return self.cpu_ms_per("bridge", self.metrics.delivered)
