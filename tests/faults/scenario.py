"""The faults, and a run: writers at work on every network while the faults follow one another,
then a bounded wait for what is still on its way, then the count.

Every fault is what an operator or an outage does to a real deployment: ``kill -9`` of the
bridge, a homeserver stopped for maintenance, Prosody restarted, the mail relay down, the
database dropping the bridge's connections, and the active instance of two dying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults import window
from tests.faults.report import Tally, tally
from tests.faults.traffic import (
    Arrival,
    Route,
    Traffic,
    XmppClock,
    arrivals,
    read_marker,
    writers,
)
from tests.faults.world import FaultWorld
from tests.harness.postgres import terminate_connections

log = logging.getLogger(__name__)

Fault = Callable[["Run"], Awaitable[None]]


@dataclass
class Run:
    """One run's state: the world, its writers, what happened, when."""

    world: FaultWorld
    traffic: Traffic
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)
    """What the faults did, with the second of the run they did it at."""

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.started:7.1f}s  {what}"
        self.events.append(line)
        log.info("%s", line)


def pause(seconds: float) -> Fault:
    async def fault(run: Run) -> None:
        await asyncio.sleep(seconds)

    return fault


def sigkills(count: int, low: float, high: float) -> Fault:
    """``count`` times: wait a random time in [low, high) s, SIGKILL the active bridge
    instance, start it again."""

    async def fault(run: Run) -> None:
        for n in range(count):
            await asyncio.sleep(run.rng.uniform(low, high))
            instance = run.world.active
            instance.bridge.kill()
            run.note(f"SIGKILL {n + 1}/{count} of bridge {instance.name} "
                     f"({run.traffic.total} messages written)")  # fmt: skip
            await instance.bridge.start()
            run.note(f"bridge {instance.name} ready again")

    return fault


def homeserver_down(network: str, seconds: float) -> Fault:
    """Stop ``network``'s homeserver (SIGTERM, as for maintenance) for ``seconds``; nobody
    writes there meanwhile (they cannot)."""

    async def fault(run: Run) -> None:
        hs = run.world.homeserver(network)
        async with run.traffic.hold(network):
            await hs.astop()
            run.note(f"{network} homeserver stopped for {seconds:g}s")
            await asyncio.sleep(seconds)
            await hs.start()
            run.note(f"{network} homeserver back")

    return fault


def prosody_restart() -> Fault:
    async def fault(run: Run) -> None:
        prosody, alice = run.world.prosody, run.world.alice
        assert prosody is not None and alice is not None
        async with run.traffic.hold("xmpp"):
            await prosody.restart()
            run.note("Prosody restarted")
            await alice.reconnect()

    return fault


def relay_down(seconds: float) -> Fault:
    async def fault(run: Run) -> None:
        relay = run.world.relay
        assert relay is not None
        relay.stop()
        run.note(f"SMTP relay stopped for {seconds:g}s")
        await asyncio.sleep(seconds)
        relay.start()
        run.note("SMTP relay back")

    return fault


def database_cuts(count: int, every: float) -> Fault:
    """Terminate every connection to the bridge's database ``count`` times, ``every`` s apart."""

    async def fault(run: Run) -> None:
        for n in range(count):
            await asyncio.sleep(every)
            cut = await terminate_connections(run.world.database)
            run.note(f"pg_terminate_backend {n + 1}/{count}: {cut} connection(s) of the bridge")

    return fault


def failover(before: float, down: float, after: float) -> Fault:
    """Start the second instance (the backup), kill the active one with SIGKILL after
    ``before`` s, leave it dead ``down`` s (the backup alone delivers), start it again and
    leave both running ``after`` s."""

    async def fault(run: Run) -> None:
        first, second = run.world.instances
        served = len(run.world.proxy.served_by)
        await second.bridge.start()
        run.note(f"bridge {second.name} started as a second instance")
        await asyncio.sleep(before)
        first.bridge.kill()
        run.note(f"SIGKILL of the active instance {first.name} "
                 f"({run.traffic.total} messages written)")  # fmt: skip
        await asyncio.sleep(down)
        await first.bridge.start()
        run.note(f"bridge {first.name} started again")
        await asyncio.sleep(after)
        run.note(f"the proxy forwarded to {served_by(run.world, served)}")

    return fault


def lost_pushes(count: int, every: float) -> Fault:
    """``count`` times, ``every`` s apart: the proxy in front of the bridge answers the next
    push of a homeserver (a transaction with events) 200 without passing it on, as a push lost
    on its way; the homeserver never sends it again, so only the bridge's catch-up brings its
    events across (README, "Catch-up")."""

    async def fault(run: Run) -> None:
        for n in range(count):
            await asyncio.sleep(every)
            body = await run.world.proxy.lose_next_push(
                30, lambda body: bool(pushed_messages([body], run.traffic.run))
            )
            lost = pushed_messages([body] if body else [], run.traffic.run)
            shown = ", ".join(f"{source} #{seq}" for source, seq in sorted(lost))
            run.note(f"push {n + 1}/{count} to the bridge lost on its way: {shown or 'no message'}")

    return fault


def pushed_messages(bodies: list[bytes], run: str) -> set[tuple[str, int]]:
    """This run's messages, as (source, number), that people wrote (not the bridge's ghosts'
    copies) in the pushed transactions ``bodies``."""
    found = set()
    for body in bodies:
        for event in json.loads(body).get("events", []):
            if str(event.get("sender", "")).startswith("@passerelle"):
                continue
            content = event.get("content")
            mark = read_marker(content.get("body") if isinstance(content, dict) else None, run)
            if mark is not None:
                found.add(mark)
    return found


def served_by(world: FaultWorld, since: int = 0) -> str:
    """Which instances the proxy forwarded to, in turn, from its ``since``-th request on
    (``a ×120, b ×31, a ×12``)."""
    names = {i.url: i.name for i in world.instances}
    turns: list[list[Any]] = []
    for backend in world.proxy.served_by[since:]:
        name = names.get(backend, backend)
        if turns and turns[-1][0] == name:
            turns[-1][1] += 1
        else:
            turns.append([name, 1])
    return ", ".join(f"{name} ×{count}" for name, count in turns) or "no instance"


@dataclass
class Result:
    run: str
    tallies: list[Tally]
    notes: list[str]
    events: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tallies)


async def run_faults(
    world: FaultWorld,
    faults: list[Fault],
    *,
    interval: float,
    drain: float,
    seed: int | None = None,
) -> Result:
    """Write on every network every ``interval`` s while ``faults`` run one after the other,
    stop writing, wait up to ``drain`` s for every message to arrive (and a little more for
    doubles), and count."""
    seed = seed if seed is not None else secrets.randbits(32)
    run_id = secrets.token_hex(4)
    traffic = Traffic(run_id, writers(world), interval)
    run = Run(world, traffic, random.Random(seed))
    run.note(f"run {run_id}, seed {seed}, networks {', '.join(world.networks)}")
    swallowed = len(world.proxy.swallowed)
    await window.install(world.database)
    clock = XmppClock(world.alice, run_id) if world.alice is not None else None
    traffic.start()
    try:
        for fault in faults:
            await fault(run)
    finally:
        await traffic.stop()
    run.note(f"writers stopped: {traffic.total} messages written")
    arrived = await _drain(run, clock, drain)
    routes = [(s, t) for s in traffic.sent for t in world.networks if t != s]
    lost = pushed_messages(world.proxy.swallowed[swallowed:], run_id)
    tallies = [
        tally(r, [a.seq for a in traffic.sent[r[0]]], arrived.get(r, []),
              {seq for source, seq in lost if source == r[0]})
        for r in routes
    ]  # fmt: skip
    found = await window.windows(world.database, run_id, arrived)
    notes = [
        f"Run {run_id} (seed {seed}): {traffic.total} messages written on "
        f"{len(traffic.sent)} networks, one every {interval:g} s on each, "
        f"{time.monotonic() - run.started:.0f} s in all.",
        *window.notes(found, world.networks),
    ]
    return Result(run_id, tallies, notes, run.events, time.monotonic() - run.started)


async def _drain(run: Run, clock: XmppClock | None, seconds: float) -> dict[Route, list[Arrival]]:
    """Until every written message arrived on every other network, or ``seconds``; then a last
    look a few seconds later, for copies still on their way."""
    world, traffic = run.world, run.traffic
    deadline = time.monotonic() + seconds
    while True:
        arrived = await arrivals(world, traffic.run, clock)
        missing = sum(
            len({a.seq for a in sent} - {a.seq for a in arrived.get((source, target), [])})
            for source, sent in traffic.sent.items()
            for target in world.networks
            if target != source
        )
        if missing == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(5)
    run.note(f"{missing} deliveries missing after the wait")
    await asyncio.sleep(5)
    return await arrivals(world, traffic.run, clock)


def full_plan(kills: int = 10, long_outage: float = 600.0) -> list[Fault]:
    """Issue 11's run: ten SIGKILLs, a homeserver down for 30 s and for 10 minutes, Prosody
    restarted, the relay down a minute, the database connections cut three times, three
    homeserver pushes lost on their way (issue 17), and the active instance of two killed."""
    return [
        pause(10),
        sigkills(kills, 3, 15),
        pause(10),
        homeserver_down("bund", 30),
        pause(10),
        homeserver_down("tchap", long_outage),
        pause(10),
        prosody_restart(),
        pause(10),
        relay_down(60),
        pause(10),
        database_cuts(3, 10),
        pause(10),
        lost_pushes(3, 5),
        pause(10),
        failover(10, 30, 10),
        pause(10),
    ]
