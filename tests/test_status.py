"""What an admin is shown of the core, in memory: the real `Router`, `Outbox` and `Store`
(SQLite) between connectors that record what they are asked and that a test can make
unreachable or refusing (`tests.test_router`). Each network's state, each queue's backlog, the
last failures (never what people wrote), the readiness answer and the metrics made of it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge import metrics
from bridge.connector import Connector, DeliveryError, Unavailable
from bridge.directory import RoomDirectory
from bridge.outbox import FAILURES_KEPT
from bridge.status import State, Status, snapshot
from tests.test_router import Bridge, Recording, close, message, open_bridge, settled


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    opened = await open_bridge(tmp_path)
    yield opened
    await close(opened)


class Refused(Recording):
    """A network that refused the bridge's credentials: it passes nothing until an admin acts."""

    def is_ready(self) -> bool:
        return False

    def problem(self) -> str | None:
        return "the homeserver refused the appservice token"


async def take(
    bridge: Bridge,
    running: Callable[[str], bool] = lambda network: True,
    connectors: Mapping[str, Connector] | None = None,
    directory: RoomDirectory | None = None,
) -> Status:
    router = bridge.router
    return snapshot(
        config=router.config,
        links=router.config.links,
        connectors=connectors or router.connectors,
        running=running,
        health=router.health,
        directory=directory or bridge.directory,
        queues=await router.store.queue_stats(),
        failures=router.outbox.failures,
        at=time.time(),
    )


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:  # noqa: ASYNC109
    for _ in range(int(timeout * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it did not happen")


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_a_network_that_is_down_shows_down_with_what_waits_for_it(bridge: Bridge) -> None:
    bridge.tchap.fail = lambda out: Unavailable("tchap is unreachable: connection refused")
    await bridge.router.ingest(message("$1", "Hallo"))
    await bridge.router.ingest(message("$2", "Noch da?"))
    await eventually(lambda: bridge.tchap.tries > 0 and len(bridge.third.sent) == 2)
    down = await take(bridge)
    tchap = down.network("tchap")
    assert (tchap.state, tchap.reason) == (State.DOWN, "tchap is unreachable: connection refused")
    assert down.network("bund").state is State.UP
    wg = {room.network: room for room in next(k for k in down.links if k.id == "wg").rooms}
    assert (wg["tchap"].backlog, wg["third"].backlog, wg["bund"].backlog) == (2, 0, 0)
    assert wg["tchap"].oldest_age is not None and wg["tchap"].oldest_age >= 0
    assert wg["tchap"].room == "!wg:tchap.example"
    assert down.ready, "a network that is down delays its messages: the bridge is ready"
    assert down.to_json()["links"]["wg"]["tchap"]["backlog"] == 2

    metrics.observe(down)
    assert gauge("passerelle_network_up", network="tchap") == 0
    assert gauge("passerelle_network_state", network="tchap", state="down") == 1
    assert gauge("passerelle_network_state", network="tchap", state="up") == 0
    assert gauge("passerelle_queue_backlog", link="wg", target="tchap") == 2
    assert gauge("passerelle_queue_backlog", link="wg", target="third") is None

    bridge.tchap.fail = lambda out: None
    await settled(bridge.router)
    up = await take(bridge)
    assert (up.network("tchap").state, up.network("tchap").reason) == (State.UP, None)
    assert up.to_json()["links"]["wg"]["tchap"]["backlog"] == 0
    metrics.observe(up)
    assert gauge("passerelle_network_up", network="tchap") == 1
    assert gauge("passerelle_queue_backlog", link="wg", target="tchap") is None
    assert gauge("passerelle_queue_oldest_seconds", link="wg", target="tchap") is None


async def test_failures_name_link_networks_and_reason_never_the_text(bridge: Bridge) -> None:
    bridge.third.fail = lambda out: DeliveryError("third refused it: M_FORBIDDEN")
    await bridge.router.ingest(message("$secret", "Streng vertraulicher Inhalt"))
    await settled(bridge.router)
    status = await take(bridge)
    assert [(f.given_up, f.detail) for f in status.failures] == [
        (True, "third refused it: M_FORBIDDEN (attempt 3)"),
        (False, "third refused it: M_FORBIDDEN (attempt 2)"),
        (False, "third refused it: M_FORBIDDEN (attempt 1)"),
    ]
    [last, *_] = status.to_json()["failures"]
    assert {k: v for k, v in last.items() if k != "at"} == {
        "link": "wg", "source": "bund", "target": "third", "kind": "message",
        "reason": "refused", "detail": "third refused it: M_FORBIDDEN (attempt 3)",
        "given_up": True,
    }  # fmt: skip
    assert "vertraulich" not in json.dumps(status.to_json())


async def test_only_the_last_failures_are_kept(bridge: Bridge) -> None:
    bridge.third.fail = lambda out: DeliveryError(f"no {out.event.remote_id}", permanent=True)
    for i in range(FAILURES_KEPT + 5):
        await bridge.router.ingest(message(f"$m{i}", f"Nummer {i}"))
    await settled(bridge.router)
    failures = (await take(bridge)).failures
    assert len(failures) == FAILURES_KEPT
    assert failures[0].detail == f"no $m{FAILURES_KEPT + 4} (attempt 1)"
    assert failures[-1].detail == "no $m5 (attempt 1)"


async def test_readiness_says_what_each_network_lacks(bridge: Bridge) -> None:
    """Only the third network's room of link wg is not set up; tchap refused the bridge's
    token; bund is run by another instance."""
    directory = RoomDirectory()
    for link, network in (("wg", "bund"), ("wg", "tchap"), ("other", "bund"), ("other", "tchap")):
        directory.bind(link, network, f"!{link}:{network}.example")
    status = await take(bridge, running=lambda network: network != "bund",
                        connectors={**bridge.router.connectors, "tchap": Refused("tchap")},
                        directory=directory)  # fmt: skip
    assert status.readiness() == {"ready": False, "networks": {
        "tchap": {"problem": "the homeserver refused the appservice token",
                  "state": "refused", "unreachable": None, "rooms_not_set_up": [],
                  "rooms_not_set_up_count": 0},
        "third": {"problem": None, "state": "up", "unreachable": None,
                  "rooms_not_set_up": ["wg"], "rooms_not_set_up_count": 1},
    }}  # fmt: skip
    assert status.network("bund").state is State.STANDBY
    assert status.to_json()["links"]["wg"]["third"]["room"] is None
    metrics.observe(status)
    assert gauge("passerelle_network_up", network="bund") is None
    assert gauge("passerelle_network_state", network="bund", state="standby") == 1
    assert gauge("passerelle_network_up", network="tchap") == 0
