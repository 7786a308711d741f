"""What the bridge is doing, for admins: each network's state, each link's rooms and queues,
the last delivery failures.

`snapshot` gathers it from what the running gateway already knows (its connectors, network
health, the room directory, the outbox's failures) and from the queue sizes the caller read from
the store: it does no I/O itself. The admin API answers it as JSON (`Status.to_json`), the
status page and ``passerelle status`` show it, the readiness answer and the metrics are made
from it.

A network's state is, in this order: ``standby`` (another instance runs it), ``refused`` (it
refused the bridge's credentials: an admin must act, `Connector.problem`), ``down`` (the last
delivery found it unreachable, `bridge.health`), ``starting`` (its connection or its rooms are
not set up yet) or ``up``. A network is seen down by the deliveries to it: one that nothing is
sent to shows as down from its next message on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Any

from bridge.config.model import Config, Link
from bridge.connector import Connector
from bridge.directory import RoomDirectory
from bridge.health import NetworkHealth
from bridge.outbox import Failure
from bridge.store import QueueStats

MISSING_LISTED = 50
"""Links whose room is not set up named per network in the readiness answer (the rest are
counted): a bridge starting with ten thousand links would otherwise answer them all."""


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    REFUSED = "refused"
    STARTING = "starting"
    STANDBY = "standby"


@dataclass(frozen=True)
class NetworkStatus:
    name: str
    label: str
    kind: str
    state: State
    since: float | None
    """When it last went up or down (wall clock); None while another instance runs it."""
    reason: str | None
    """Why it is refused or down."""
    ready: bool
    rooms_not_set_up: tuple[str, ...]
    """Links whose room on this network the bridge has not joined or created yet."""


@dataclass(frozen=True)
class RoomStatus:
    network: str
    address: str | None
    """The room as configured (an alias, a room ID, a MUC, an address); None when the bridge
    creates it."""
    room: str | None
    """The room the bridge found or created; None while it is not set up."""
    disabled: str | None
    """Why nothing crosses into or out of it (a policy refused it), if so."""
    backlog: int | None
    """Items waiting to be delivered into it; None when the store could not be read."""
    oldest_age: float | None
    """Seconds the oldest of them has waited."""


@dataclass(frozen=True)
class LinkStatus:
    id: str
    rooms: tuple[RoomStatus, ...]

    @property
    def backlog(self) -> int:
        return sum(room.backlog or 0 for room in self.rooms)

    @property
    def attention(self) -> bool:
        """Something an admin may want to see: a room not set up or disabled, a backlog."""
        return any(r.room is None or r.disabled or r.backlog for r in self.rooms)


@dataclass(frozen=True)
class Status:
    at: float
    """When it was taken (wall clock): ages and "since" are relative to it."""
    ready: bool
    networks: tuple[NetworkStatus, ...]
    links: tuple[LinkStatus, ...]
    failures: tuple[Failure, ...]
    """The last ones first."""
    queues: tuple[QueueStats, ...]
    store_error: str | None = None
    """Why the queues could not be read (their backlog is then unknown)."""

    def network(self, name: str) -> NetworkStatus:
        return next(n for n in self.networks if n.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "ready": self.ready,
            "networks": {n.name: _record_json(n, "name") for n in self.networks},
            "links": {
                link.id: {r.network: _record_json(r, "network") for r in link.rooms}
                for link in self.links
            },
            "failures": [_record_json(f, link_id="link") for f in self.failures],
            "store_error": self.store_error,
        }

    def readiness(self) -> dict[str, Any]:
        """The readiness answer: ready or not, and for each network this instance runs that
        lacks something (it is not ready, down or refused, or some of its rooms are not set
        up), what it lacks. A network that is down leaves the bridge ready: it delays only
        the messages to it."""
        answer: dict[str, Any] = {"ready": self.ready}
        missing = {
            n.name: _missing(n)
            for n in self.networks
            if n.state is not State.STANDBY and (n.state is not State.UP or n.rooms_not_set_up)
        }
        if missing:
            answer["networks"] = missing
        return answer


def snapshot(
    *,
    config: Config,
    links: Iterable[Link],
    connectors: Mapping[str, Connector],
    running: Callable[[str], bool],
    health: NetworkHealth,
    directory: RoomDirectory,
    queues: Sequence[QueueStats] | None,
    failures: Iterable[Failure],
    at: float,
    store_error: str | None = None,
    rooms: bool = True,
) -> Status:
    """The bridge's state at ``at``. ``links``: the configured links and the direct chats
    worth listing; ``running``: whether this instance runs a network; ``queues``: what the
    store holds (None when it could not be read: ``store_error`` says why); ``rooms``: whether
    to list each link's rooms (the readiness answer, asked every second or so by a proxy,
    needs only the networks: one pass over the links)."""
    links = list(links)
    missing: dict[str, list[str]] = {}
    for link in links:
        for network in link.rooms:
            if directory.room_for(link.id, network) is None:
                missing.setdefault(network, []).append(link.id)
    networks = tuple(
        _network(name, config, missing.get(name, []), connectors[name], running(name), health)
        for name in config.networks
    )
    waiting = {(q.link_id, q.target): q for q in queues or ()}
    link_states = tuple(
        LinkStatus(
            link.id,
            tuple(
                _room(link, network, directory, waiting, queues is not None, at)
                for network in link.rooms
            ),
        )
        for link in (links if rooms else ())
    )
    ready = all(n.ready for n in networks if n.state is not State.STANDBY)
    return Status(at, ready, networks, link_states, tuple(reversed(list(failures))),
                  tuple(queues or ()), store_error)  # fmt: skip


def _network(
    name: str,
    config: Config,
    missing: list[str],
    connector: Connector,
    running: bool,
    health: NetworkHealth,
) -> NetworkStatus:
    network = config.networks[name]
    health_state = health.state(name)
    ready = connector.is_ready()
    problem = connector.problem()
    since: float | None = health_state.since
    reason: str | None = None
    if not running:
        state, since = State.STANDBY, None
    elif problem is not None:
        state, reason = State.REFUSED, problem
    elif not health_state.up:
        state, reason = State.DOWN, health_state.reason
    elif not ready:
        state = State.STARTING
    else:
        state = State.UP
    return NetworkStatus(name, network.label, network.kind, state, since, reason, ready,
                         tuple(missing))  # fmt: skip


def _room(
    link: Link,
    network: str,
    directory: RoomDirectory,
    waiting: Mapping[tuple[str, str], QueueStats],
    known: bool,
    at: float,
) -> RoomStatus:
    queue = waiting.get((link.id, network))
    return RoomStatus(
        network=network,
        address=link.rooms[network].room,
        room=directory.room_for(link.id, network),
        disabled=directory.disabled_reason(link.id, network),
        backlog=(queue.size if queue else 0) if known else None,
        oldest_age=max(0.0, at - queue.oldest) if queue else None,
    )


def _record_json(record: Any, key: str = "", **renamed: str) -> dict[str, Any]:
    """Every field of a status record as JSON, in order, but for ``key`` (the record stands
    under it): enums by their value, tuples as lists, ``renamed`` ones under another name."""
    data: dict[str, Any] = {}
    for f in fields(record):
        if f.name != key:
            value = getattr(record, f.name)
            value = value.value if isinstance(value, Enum) else value
            data[renamed.get(f.name, f.name)] = list(value) if isinstance(value, tuple) else value
    return data


def _missing(n: NetworkStatus) -> dict[str, Any]:
    """What a network lacks, for the readiness answer."""
    return {
        "problem": n.reason if n.state is State.REFUSED else None,
        "state": n.state.value,
        "unreachable": n.reason if n.state is State.DOWN else None,
        "rooms_not_set_up": list(n.rooms_not_set_up[:MISSING_LISTED]),
        "rooms_not_set_up_count": len(n.rooms_not_set_up),
    }
