"""The benchmark run against real servers: latency, throughput and in-bridge cost phases on the
benchmark world, repeated, with every bridged figure measured next to its baseline in the same
run. Returns plain data (`dict`) for `bench.report`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp

from bench.clients import MatrixSender, SyncWatcher
from bench.cost import QUIET_SECONDS, CostMeter, PhaseCost
from bench.latency import Route, Stream, run_stream, warm_up
from bench.throughput import Burst, run_burst
from bench.world import THROUGHPUT_LINKS, BenchWorld

log = logging.getLogger("bench")
HOMESERVERS = ("bund", "tchap")
DISTURBED = 0.10
"""Share of the machine's CPU taken by other processes above which a phase is measured again."""
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    rate: float
    duration: float
    repeats: int
    burst_one_link: int
    burst_many_links: int
    concurrency: int
    quiet_wait: float
    """Longest wait before a phase for other processes on the machine to calm down."""
    retries: int
    """How often a phase that other processes disturbed is measured again."""


def cost_summary(cost: PhaseCost) -> dict[str, Any]:
    delivered = cost.metrics.delivered
    return {
        "received": cost.metrics.received,
        "delivered": delivered,
        "cpu_s": cost.cpu,
        "bridge_cpu_ms_per_message": cost.bridge_ms_per_message,
        "bridge_cpu_ms_per_target": cost.bridge_ms_per_target,
        "homeserver_cpu_ms_per_message": {
            name: cost.cpu_ms_per(name, delivered) for name in cost.cpu if name in HOMESERVERS
        },
        "other_processes_cpu_share": cost.other_share,
        "arrival_to_send_p50_s": cost.metrics.quantile(0.50),
        "arrival_to_send_p99_s": cost.metrics.quantile(0.99),
    }


class MatrixBench:
    """The phases on the Matrix ↔ Tchap world. Other networks add their routes to `routes`
    and `baselines` (keyed by network name) and are measured the same way."""

    def __init__(self, world: BenchWorld, settings: Settings) -> None:
        self.world = world
        self.settings = settings
        self.session = aiohttp.ClientSession()
        u, r = world.users, world.rooms
        self.senders = {
            "bund": MatrixSender(world.bund.url, u["max"].access_token),
            "tchap": MatrixSender(world.tchap.url, u["jean"].access_token),
        }
        tp_rooms = [f"tp{i}" for i in range(THROUGHPUT_LINKS)]
        self.watchers = {
            "bund": SyncWatcher(
                "erika", world.bund.url, u["erika"].access_token, [r["bund:local"], r["bund:main"]]
            ),  # fmt: skip
            "tchap": SyncWatcher(
                "marie",
                world.tchap.url,
                u["marie"].access_token,
                [r["tchap:local"], r["tchap:main"], *(r[f"tchap:{n}"] for n in tp_rooms)],
            ),
        }
        self.baselines = {
            net: Route(net, net, net, self.senders[net], r[f"{net}:local"], self.watchers[net])
            for net in ("bund", "tchap")
        }
        self.routes = [
            Route(
                "bund → tchap",
                "bund",
                "tchap",
                self.senders["bund"],
                r["bund:main"],
                self.watchers["tchap"],
            ),  # fmt: skip
            Route(
                "tchap → bund",
                "tchap",
                "bund",
                self.senders["tchap"],
                r["tchap:main"],
                self.watchers["bund"],
            ),  # fmt: skip
        ]
        self.burst_rooms = [r[f"bund:{n}"] for n in tp_rooms]
        self.disturbed: list[dict[str, Any]] = []
        """Phases measured again because other processes took the CPU meanwhile."""
        self.meter = CostMeter(
            self.session,
            world.bridge_url,
            {
                "bridge": self._pid(world.bridge.proc),
                "bund": self._pid(world.bund.proc),
                "tchap": self._pid(world.tchap.proc),
            },
        )

    @staticmethod
    def _pid(proc: Any) -> int:
        if proc is None:
            raise RuntimeError("a benchmark process is not running")
        return int(proc.pid)

    async def start(self) -> None:
        for watcher in self.watchers.values():
            await watcher.start()
        for route in [*self.baselines.values(), *self.routes]:
            await warm_up(route)

    async def close(self) -> None:
        for sender in self.senders.values():
            await sender.close()
        for watcher in self.watchers.values():
            await watcher.close()
        await self.session.close()

    async def _measured(
        self, label: str, run_id: str, phase: Callable[[str], Awaitable[T]]
    ) -> tuple[T, PhaseCost]:
        """Run ``phase(run_id)`` between two cost readings, once the machine is quiet. A phase
        during which processes outside the benchmark took more than `DISTURBED` of the CPU
        is measured again (up to ``retries`` times); the discarded attempts are listed."""
        s = self.settings
        for attempt in range(s.retries + 1):
            waited = await self.meter.wait_for_quiet(s.quiet_wait)
            if waited > QUIET_SECONDS + 1:
                log.info("%s: waited %.0f s for other processes to calm down", label, waited)
            await self.meter.start()
            result = await phase(f"{run_id}-{attempt}")
            cost = await self.meter.stop()
            if cost.other_share <= DISTURBED or attempt == s.retries:
                return result, cost
            log.info("%s: other processes took %.0f%% of the CPU, measuring again", label,
                     100 * cost.other_share)  # fmt: skip
            self.disturbed.append({"phase": label, "other_processes_cpu_share": cost.other_share})
        raise AssertionError("unreachable")

    async def latency(self) -> list[dict[str, Any]]:
        """Each repeat: every baseline at once (each homeserver busy as in a bridged run), then
        each bridged route alone with the bridge's cost measured around it."""
        s = self.settings
        runs = []
        for n in range(s.repeats):

            async def baselines(run_id: str) -> list[Stream]:
                return list(
                    await asyncio.gather(
                        *(
                            run_stream(route, s.rate, s.duration, f"{run_id}-{net}")
                            for net, route in self.baselines.items()
                        )
                    )
                )

            label = f"latency run {n + 1}/{s.repeats}"
            log.info("%s: baselines", label)
            streams, base_cost = await self._measured(f"{label}, baselines", f"l{n}", baselines)
            run: dict[str, Any] = {
                "baselines": {b.route: stream_summary(b) for b in streams},
                "baselines_other_processes_cpu_share": base_cost.other_share,
                "bridged": {},
            }
            for i, route in enumerate(self.routes):
                log.info("%s: %s", label, route.name)
                stream, cost = await self._measured(
                    f"{label}, {route.name}",
                    f"l{n}-r{i}",
                    partial(run_stream, route, s.rate, s.duration),
                )
                run["bridged"][route.name] = {
                    "source": route.source,
                    "target": route.target,
                    **stream_summary(stream),
                    "cost": cost_summary(cost),
                }
            runs.append(run)
        return runs

    async def throughput(self) -> list[dict[str, Any]]:
        s = self.settings
        await self._warm_burst_rooms()
        runs = []
        for n in range(s.repeats):
            run = {}
            for label, rooms, count in (
                ("1 link", self.burst_rooms[:1], s.burst_one_link),
                (f"{len(self.burst_rooms)} links", self.burst_rooms, s.burst_many_links),
            ):
                name = f"throughput run {n + 1}/{s.repeats}, {label}"
                log.info("%s: %d messages", name, count)
                burst, cost = await self._measured(
                    name,
                    f"t{n}-{len(rooms)}",
                    partial(
                        run_burst,
                        self.senders["bund"],
                        rooms,
                        self.watchers["tchap"],
                        count,
                        s.concurrency,
                    ),  # fmt: skip
                )
                run[label] = {**burst_summary(burst), "cost": cost_summary(cost)}
            runs.append(run)
        return runs

    async def _warm_burst_rooms(self) -> None:
        """One message per throughput link first, so ghosts are joined before the clock runs."""
        markers = [f"warm-tp-{i}" for i in range(len(self.burst_rooms))]
        for room, marker in zip(self.burst_rooms, markers, strict=True):
            await self.senders["bund"].send(room, marker)
        missing = await self.watchers["tchap"].wait_for(markers, 120)
        if missing:
            raise RuntimeError(f"throughput warm-up messages never arrived: {missing}")


def stream_summary(stream: Stream) -> dict[str, Any]:
    return {
        "sent": stream.sent,
        "lost": stream.lost,
        "quantiles_s": stream.quantiles() if stream.latencies else {},
        "latencies_s": stream.latencies,
    }


def burst_summary(burst: Burst) -> dict[str, Any]:
    return {**asdict(burst), "ratio": burst.ratio}
