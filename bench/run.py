"""The benchmark run against real servers: latency, throughput and in-bridge cost phases on the
benchmark world, repeated, with every bridged figure measured next to its baseline in the same
run. Returns plain data (`dict`) for `bench.report`.

The networks and who stands at each end:

- ``bund``: Max sends (``PUT /send``), Erika watches (``/sync``);
- ``tchap``: Jean sends, Marie watches;
- ``xmpp``: Alice sends in a MUC, Bob (in the same MUCs) watches;
- ``mail``: a mail client submits to the relay, the relay's mailbox watches (it is also where
  the bridge delivers the ``mail`` link's mail).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp

from bench.clients import MatrixSender, Sender, SyncWatcher, Watcher
from bench.cost import QUIET_SECONDS, CostMeter, PhaseCost
from bench.latency import Route, Stream, run_stream, warm_up
from bench.mail import SmtpSender
from bench.soak import run_soak
from bench.throughput import Burst, run_burst
from bench.world import (
    LOCAL_MUC,
    MAIL_LINKS,
    MUC_LINKS,
    SPREAD_LINKS,
    THROUGHPUT_LINKS,
    WRITER,
    BenchWorld,
    muc_jid,
)
from bench.xmpp import MucSender, MucWatcher

log = logging.getLogger("bench")
SOAK_RATE = 5.0
"""Messages per second in the soak phase, over all its links."""
SERVERS = {"bund": "bund", "tchap": "tchap", "xmpp": "prosody"}
"""Network → the server process whose CPU the cost meter reads (the mail relay runs inside the
benchmark's own process, so it has none of its own)."""
BASELINE_GROUPS = (("bund", "tchap"), ("xmpp", "mail"))
"""Baselines measured at the same time. The two homeservers are busy together, as in a bridged
run between them; XMPP and mail come in a phase of their own, so that the Matrix baselines are
measured exactly as without them."""
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


def cost_summary(cost: PhaseCost, networks: tuple[str, ...]) -> dict[str, Any]:
    """The phase's cost, with the CPU per message of the servers of ``networks`` (the two ends
    of the path measured)."""
    delivered = cost.metrics.delivered
    return {
        "received": cost.metrics.received,
        "delivered": delivered,
        "cpu_s": cost.cpu,
        "bridge_cpu_ms_per_message": cost.bridge_ms_per_message,
        "bridge_cpu_ms_per_target": cost.bridge_ms_per_target,
        "server_cpu_ms_per_message": {
            SERVERS[net]: cost.cpu_ms_per(SERVERS[net], delivered)
            for net in networks
            if net in SERVERS
        },
        "other_processes_cpu_share": cost.other_share,
        "arrival_to_send_p50_s": cost.metrics.quantile(0.50),
        "arrival_to_send_p99_s": cost.metrics.quantile(0.99),
    }


class Bench:
    """The phases on the benchmark world. A network takes part with a sender and a watcher
    (keyed by its name), a baseline in its unbridged ``local`` room, and the bridged routes
    through its links."""

    def __init__(self, world: BenchWorld, settings: Settings) -> None:
        self.world = world
        self.settings = settings
        self.session = aiohttp.ClientSession()
        u, r = world.users, world.rooms
        bund = MatrixSender(world.bund.url, u["max"].access_token)
        tchap = MatrixSender(world.tchap.url, u["jean"].access_token)
        tp_rooms = [f"tp{i}" for i in range(THROUGHPUT_LINKS)]
        spread = tp_rooms[:SPREAD_LINKS]
        erika = SyncWatcher(
            "erika",
            world.bund.url,
            u["erika"].access_token,
            [
                r["bund:local"],
                r["bund:main"],
                *(r[f"bund:{n}"] for n in spread),
                *(r[f"bund:{n}"] for n in (*MUC_LINKS, *MAIL_LINKS)),
            ],  # fmt: skip
        )
        marie = SyncWatcher(
            "marie",
            world.tchap.url,
            u["marie"].access_token,
            [r["tchap:local"], r["tchap:main"], *(r[f"tchap:{n}"] for n in tp_rooms)],
        )
        self._sync_watchers = [erika, marie]
        self._matrix_clients: list[MatrixSender | SyncWatcher] = [bund, tchap, erika, marie]
        self.senders: dict[str, Sender] = {
            "bund": bund,
            "tchap": tchap,
            "xmpp": MucSender(world.occupants["alice"]),
            "mail": SmtpSender(world.mailbox.port, WRITER),
        }
        self.watchers: dict[str, Watcher] = {
            "bund": erika,
            "tchap": marie,
            "xmpp": MucWatcher(
                world.occupants["bob"], [*(muc_jid(n) for n in MUC_LINKS), LOCAL_MUC]
            ),  # fmt: skip
            "mail": world.mailbox,
        }
        self.baselines = {
            net: Route(net, net, net, self.senders[net], r[f"{net}:local"], self.watchers[net])
            for group in BASELINE_GROUPS
            for net in group
        }
        self.routes = [
            self._route("bund", "tchap", [r[f"bund:{n}"] for n in spread]),
            self._route("tchap", "bund", [r[f"tchap:{n}"] for n in spread]),
            self._route("bund", "xmpp", [r[f"bund:{n}"] for n in MUC_LINKS]),
            self._route("xmpp", "bund", [r[f"xmpp:{n}"] for n in MUC_LINKS]),
            self._route("bund", "mail", [r[f"bund:{n}"] for n in MAIL_LINKS]),
            Route(
                "bund → tchap, one room",
                "bund",
                "tchap",
                self.senders["bund"],
                r["bund:main"],
                self.watchers["tchap"],
                stress=True,
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
                "prosody": self._pid(world.prosody.proc),
            },
        )

    def _route(self, source: str, target: str, rooms: list[str]) -> Route:
        """Sent by ``source``'s sender in ``rooms`` in turn, seen by ``target``'s watcher."""
        return Route(f"{source} → {target}", source, target, self.senders[source], rooms[0],
                     self.watchers[target], spread=tuple(rooms))  # fmt: skip

    @staticmethod
    def _pid(proc: Any) -> int:
        if proc is None:
            raise RuntimeError("a benchmark process is not running")
        return int(proc.pid)

    async def start(self) -> None:
        for watcher in self._sync_watchers:
            await watcher.start()
        for route in [*self.baselines.values(), *self.routes]:
            await warm_up(route)

    async def close(self) -> None:
        """Close the Matrix clients and the mail client's connections (the world closes the
        XMPP occupants and the relay)."""
        for client in self._matrix_clients:
            await client.close()
        mail = self.senders["mail"]
        assert isinstance(mail, SmtpSender)
        await mail.close()
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

    async def _baselines(self, group: tuple[str, ...], run_id: str) -> list[Stream]:
        s = self.settings
        return list(
            await asyncio.gather(
                *(
                    run_stream(self.baselines[net], s.rate, s.duration, f"{run_id}-{net}")
                    for net in group
                )
            )
        )

    async def latency(self) -> list[dict[str, Any]]:
        """Each repeat: the baselines of each `BASELINE_GROUPS` group at once (the homeservers
        busy together as in a bridged run between them), then each bridged route alone with the
        bridge's cost measured around it."""
        s = self.settings
        runs = []
        for n in range(s.repeats):
            label = f"latency run {n + 1}/{s.repeats}"
            run: dict[str, Any] = {
                "baselines": {},
                "baselines_other_processes_cpu_share": {},
                "bridged": {},
            }
            for g, group in enumerate(BASELINE_GROUPS):
                name = " + ".join(group)
                log.info("%s: baselines %s", label, name)
                streams, base_cost = await self._measured(
                    f"{label}, baselines {name}", f"l{n}-b{g}", partial(self._baselines, group)
                )
                run["baselines"].update({b.route: stream_summary(b) for b in streams})
                run["baselines_other_processes_cpu_share"][name] = base_cost.other_share
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
                    "links": len(route.rooms),
                    "stress": route.stress,
                    **stream_summary(stream),
                    "cost": cost_summary(cost, (route.source, route.target)),
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
                serial = serial_cost = None
                if len(rooms) == 1:
                    log.info("%s: %d messages from a serial client on tchap", name, count)
                    serial, serial_cost = await self._measured(
                        f"{name}, serial client on tchap",
                        f"t{n}-serial",
                        partial(self._serial_burst, count),
                    )
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
                run[label] = {**burst_summary(burst), "cost": cost_summary(cost, ("bund", "tchap"))}
                if serial is not None and serial_cost is not None:
                    # What tchap.test spends per message taken from a client, beside what it
                    # spends per message from the bridge's ghost (it also pushes the ghost's
                    # message back to the appservice).
                    run[label]["serial_baseline"] = {
                        **burst_summary(serial),
                        "tchap_cpu_ms_per_message": serial_cost.cpu_ms_per("tchap", count),
                    }
            runs.append(run)
        return runs

    async def _serial_burst(self, count: int, run_id: str) -> Burst:
        """The order-keeping limit on the target: a client on ``tchap.test`` sending as many
        messages into one room, each once the previous one was accepted (what the bridge does
        per link), as fast as the homeserver accepts them."""
        local = self.baselines["tchap"]
        return await run_burst(local.sender, [local.room], local.watcher, count, 1, run_id)

    async def soak(self, duration: float) -> dict[str, Any]:
        """The first route (bund → tchap over `SPREAD_LINKS` links) at `SOAK_RATE` for
        ``duration`` s (`bench.soak`)."""
        route = self.routes[0]
        log.info("soak: %s at %g msg/s for %.0f min", route.name, SOAK_RATE, duration / 60)
        pid = self._pid(self.world.bridge.proc)
        return await run_soak(route, SOAK_RATE, duration, self.session, self.world.bridge_url,
                              pid, "soak")  # fmt: skip

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
