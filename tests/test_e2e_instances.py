"""Two bridge instances on one PostgreSQL database, behind one registration URL: either may
die, the other carries on within seconds, and nothing is lost or doubled; and what the
homeserver never pushes is caught up from the rooms' timelines.

Real Synapse homeservers (``bund.test``, ``tchap.test``) whose registrations point at a
failover proxy (`tests.harness.proxy`) in front of the two bridge processes; the store is a
fresh PostgreSQL database. The links: ``main`` between two appservice rooms, which both
instances serve, and ``relay`` into Tchap through a relay bot, which only the instance leading
that network runs.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mautrix.types import RoomID

from tests.harness import (
    BridgeError,
    BridgeProcess,
    Homeserver,
    HomeserverError,
    User,
    free_port,
    require_server,
    synapse_available,
)
from tests.harness import world as build
from tests.harness.expect import bodies, body_has, body_is, joined_invite, unique
from tests.harness.postgres import fresh_database, terminate_connections
from tests.harness.proxy import FailoverProxy
from tests.world import RELAY_PASSWORD

pytestmark = pytest.mark.e2e

APPSERVICE = 'url: "http://127.0.0.1:{proxy_port}/as/{name}"\ncatch_up_interval: 2\n'
RELAY = """\
mode: relay
relay: {user_id: "@relaybot:tchap.test", password: {file: relay-password}}
"""
LINKS = """\
links:
  - id: main
    rooms: {bund: "#main:bund.test", tchap: "#main:tchap.test"}
  - id: relay
    rooms: {bund: "#relay:bund.test", tchap-relay: "#relay:tchap.test"}
"""

LATE_LINK = """\
  - id: late
    rooms: {bund: "#late:bund.test", tchap: "#late:tchap.test"}
"""


def config(database: str, bridge_port: int, bund_port: int, tchap_port: int, proxy: int) -> str:
    """The first instance's config: the homeservers reach the instances through the proxy."""
    return (
        build.head("two-instance world", database, bridge_port)
        + "networks:\n"
        + build.bund(bund_port, appservice=APPSERVICE.format(proxy_port=proxy, name="bund"))
        + build.tchap(tchap_port, appservice=APPSERVICE.format(proxy_port=proxy, name="tchap"))
        + build.tchap(tchap_port, RELAY, name="tchap-relay")
        + LINKS
    )


@dataclass
class Pair:
    database: str
    bund: Homeserver
    tchap: Homeserver
    proxy: FailoverProxy
    bridges: list[BridgeProcess]
    users: dict[str, User] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)

    async def stop(self) -> None:
        for bridge in self.bridges:
            await bridge.astop()
        await self.proxy.stop()
        for user in self.users.values():
            await user.close()
        await asyncio.gather(self.bund.astop(), self.tchap.astop())


async def start_pair(root: Path, database: str) -> Pair:
    bund_port, tchap_port, proxy_port = free_port(), free_port(), free_port()
    ports = [free_port(), free_port()]
    (root / "relay-password").write_text(RELAY_PASSWORD + "\n")
    first = root / "config.yaml"
    first.write_text(config(database, ports[0], bund_port, tchap_port, proxy_port))
    build.generate_registration(
        first
    )  # the tokens are written into this config: the other copies it
    second_root = root / "second"
    second_root.mkdir()
    shutil.copy(root / "relay-password", second_root / "relay-password")
    (second_root / "config.yaml").write_text(
        first.read_text().replace(f"port: {ports[0]}", f"port: {ports[1]}")
    )
    bund, tchap = build.homeservers(root, bund_port, tchap_port)
    bridges = [BridgeProcess(first, root, port=ports[0]),
               BridgeProcess(second_root / "config.yaml", second_root, port=ports[1])]  # fmt: skip
    proxy = FailoverProxy([f"http://127.0.0.1:{p}" for p in ports], port=proxy_port)
    pair = Pair(database, bund, tchap, proxy, bridges)
    await asyncio.gather(bund.start(), tchap.start(), proxy.start())
    u = pair.users
    u["max"] = await User.register(bund, "max", displayname="Max Mustermann")
    u["jean"] = await User.register(tchap, "jean.dupont-interieur.gouv.fr",
                                    displayname="Jean Dupont [Intérieur]")  # fmt: skip
    await tchap.register("relaybot", displayname="Passerelle", password=RELAY_PASSWORD)
    for link in ("main", "relay"):
        pair.rooms[f"bund:{link}"] = await u["max"].create_room(alias=link, public=True)
        pair.rooms[f"tchap:{link}"] = await u["jean"].create_room(
            alias=link, public=True, initial_state=[build.UNRESTRICTED]
        )
    for bridge in bridges:
        await bridge.start()
    return pair


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    reason = synapse_available()
    if reason:
        require_server("synapse", reason)
    async with fresh_database() as database:
        try:
            started = await start_pair(tmp_path_factory.mktemp("instances"), database)
        except (HomeserverError, BridgeError) as e:
            require_server("synapse and the bridge", str(e))
        yield started
        await started.stop()


async def crossing(pair: Pair, texts: dict[str, list[str]]) -> None:
    """Until each room shows its expected texts; then each exactly once and in order."""
    who = {"tchap:main": "jean", "bund:main": "max", "tchap:relay": "jean", "bund:relay": "max"}
    for room, expected in texts.items():
        user = pair.users[who[room]]
        await user.wait_for(pair.rooms[room],
                            lambda e, last=expected[-1]: last in e["content"].get("body", ""),
                            timeout=90)  # fmt: skip
    await asyncio.sleep(1)
    for room, expected in texts.items():
        seen = await bodies(pair.users[who[room]], pair.rooms[room], limit=200)
        arrived = [t for b in seen for t in expected if b and t in b]
        assert arrived == expected, room


async def test_start_up_does_not_depend_on_the_appservice_ping(pair: Pair) -> None:
    """Behind a proxy that waits for readiness, the homeserver cannot reach the first instance
    while it starts to answer its ping: it still became ready (the fixture waited for that)."""
    assert "The appservice ping through" in pair.bridges[0].log_text()


async def test_both_instances_serve_and_one_leads_the_relay(pair: Pair) -> None:
    max_, jean = pair.users["max"], pair.users["jean"]
    text = unique("Hallo über zwei Instanzen")
    await max_.send_text(pair.rooms["bund:main"], text)
    await jean.wait_for(pair.rooms["tchap:main"], body_is(text))
    relayed = unique("Hallo an das Relay")
    await max_.send_text(pair.rooms["bund:relay"], relayed)
    await jean.wait_for(pair.rooms["tchap:relay"],
                        lambda e: e["content"].get("body", "").endswith(relayed))  # fmt: skip
    logs = [bridge.log_text() for bridge in pair.bridges]
    assert sum("standing by for tchap-relay" in log for log in logs) == 1


async def test_the_other_instance_carries_on_when_the_active_one_dies(pair: Pair) -> None:
    max_, jean = pair.users["max"], pair.users["jean"]
    before = [unique(f"vor dem Ausfall {i}") for i in range(3)]
    for text in before:
        await max_.send_text(pair.rooms["bund:main"], text)
    pair.bridges[0].kill()  # the active one: the proxy sends everything to it while it answers
    texts: dict[str, list[str]] = {
        "tchap:main": before + [unique(f"nach dem Ausfall {i}") for i in range(3)],
        "bund:main": [unique(f"après la panne {i}") for i in range(3)],
        "tchap:relay": [unique(f"Relay nach dem Ausfall {i}") for i in range(2)],
        "bund:relay": [unique(f"relais après la panne {i}") for i in range(2)],
    }
    for text in texts["tchap:main"][3:]:
        await max_.send_text(pair.rooms["bund:main"], text)
    for text in texts["bund:main"]:
        await jean.send_text(pair.rooms["tchap:main"], text)
    for text in texts["tchap:relay"]:
        await max_.send_text(pair.rooms["bund:relay"], text)
    for text in texts["bund:relay"]:
        await jean.send_text(pair.rooms["tchap:relay"], text)
    await crossing(pair, texts)
    assert "now leads tchap-relay" in pair.bridges[1].log_text()
    await pair.bridges[0].start()  # back, as a standby now


async def test_a_transaction_the_bridge_never_saw_is_caught_up(pair: Pair) -> None:
    """The homeserver thinks it pushed these (the proxy acknowledged them), the bridge never
    saw them: they still arrive, once each, in their order."""
    max_ = pair.users["max"]
    pair.proxy.swallow(1)
    lost = [unique(f"nie gepusht {i}") for i in range(3)]
    await asyncio.gather(*(max_.send_text(pair.rooms["bund:main"], text) for text in lost))
    for _ in range(300):
        if pair.proxy.swallowed:
            break
        await asyncio.sleep(0.1)
    swallowed = [t for t in lost if t.encode() in pair.proxy.swallowed[0]]
    assert swallowed
    await crossing(pair, {"tchap:main": swallowed})


async def test_a_room_a_reload_added_is_caught_up_from_the_bots_join(pair: Pair) -> None:
    """The first message in a room that a reload brought in is never pushed: the bridge reads
    the room from where the bot joined it, so the next message's push brings both (before,
    it read the room from wherever it stood then, after the lost message)."""
    max_, jean = pair.users["max"], pair.users["jean"]
    bund_room = await max_.create_room(alias="late", public=True)
    tchap_room = await jean.create_room(alias="late", public=True,
                                        initial_state=[build.UNRESTRICTED])  # fmt: skip
    configs = {bridge: bridge.config_path.read_text() for bridge in pair.bridges}
    try:
        for bridge, text in configs.items():
            bridge.config_path.write_text(text + LATE_LINK)
            assert "Config reloaded: 2 room(s) set up" in await bridge.reload()
        lost, pushed = unique("gleich nach dem Beitritt"), unique("danach")
        pair.proxy.swallow(1, when=lambda body: lost.encode() in body)
        await max_.send_text(bund_room, lost)
        for _ in range(300):
            if pair.proxy.swallowed and lost.encode() in pair.proxy.swallowed[-1]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the homeserver never pushed the first message")
        await max_.send_text(bund_room, pushed)
        for text in (lost, pushed):
            await jean.wait_for(tchap_room, body_has(text), timeout=60)
        await asyncio.sleep(1)
        seen = [b or "" for b in await bodies(jean, tchap_room, limit=50)]
        assert [sum(text in b for b in seen) for text in (lost, pushed)] == [1, 1], seen
    finally:
        for bridge, text in configs.items():
            bridge.config_path.write_text(text)
            await bridge.reload()


async def test_what_was_said_while_every_instance_was_down_and_never_pushed_arrives(
    pair: Pair,
) -> None:
    """The homeservers lost their pending transactions (they were removed while they were
    stopped): once the bridge is back, it reads the rooms from where it was. Jean has a direct
    chat with Max's ghost, which the bot is not in (nor may read): the catch-up reads past it."""
    max_, jean = pair.users["max"], pair.users["jean"]
    members = await jean.client.get_joined_members(RoomID(pair.rooms["tchap:main"]))
    ghost_of_max = next(u for u in members if u.startswith("@passerelle_") and "max" in u)
    since = (await max_.client.sync(timeout=0))["next_batch"]
    dm = await jean.create_room(invitees=[ghost_of_max], is_direct=True)
    private = await joined_invite(max_, since)
    hello = unique("Une question privée")
    await jean.send_text(dm, hello)
    await max_.wait_for(private, body_has(hello))  # the chat is open (and stored)
    assert "@passerelle:tchap.test" not in await jean.client.get_joined_members(RoomID(dm))
    for bridge in pair.bridges:
        await bridge.astop()
    texts = {
        "tchap:main": [unique(f"während alle weg waren {i}") for i in range(3)],
        "bund:main": [unique(f"pendant que tout était arrêté {i}") for i in range(3)],
    }
    for i in range(3):
        await max_.send_text(pair.rooms["bund:main"], texts["tchap:main"][i])
        await jean.send_text(pair.rooms["tchap:main"], texts["bund:main"][i])
    await asyncio.gather(pair.bund.astop(), pair.tchap.astop())
    for hs in (pair.bund, pair.tchap):
        db = sqlite3.connect(hs.workdir / "homeserver.db")
        with db:
            db.execute("DELETE FROM application_services_txns")
        db.close()
    await asyncio.gather(pair.bund.start(), pair.tchap.start())
    for bridge in pair.bridges:
        await bridge.start()
    await crossing(pair, texts)


async def test_terminated_database_connections_lose_and_double_nothing(pair: Pair) -> None:
    max_, jean = pair.users["max"], pair.users["jean"]
    texts: dict[str, list[str]] = {"tchap:main": [], "bund:main": []}
    for i in range(6):
        texts["tchap:main"].append(unique(f"trotz Datenbank {i}"))
        texts["bund:main"].append(unique(f"malgré la base {i}"))
        await max_.send_text(pair.rooms["bund:main"], texts["tchap:main"][-1])
        await jean.send_text(pair.rooms["tchap:main"], texts["bund:main"][-1])
        if i in (1, 4):
            assert await terminate_connections(pair.database) > 0
    await crossing(pair, texts)
    assert all(bridge.running for bridge in pair.bridges)
