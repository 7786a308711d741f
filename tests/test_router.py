"""The router and the outbox between connectors, in memory: the real `Router`, `Outbox` and
`Store` (SQLite), with connectors that record what they are asked to send and post, and that a
test can make unreachable or refusing. What crosses a link, in which order, what waits for a
network that is down, and what the sender is told when something does not cross."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.claims import LocalClaims
from bridge.config.load import load_config
from bridge.config.model import Link
from bridge.connector import Connector, DeliveryError, Outgoing, ReadMarkers, Unavailable
from bridge.directory import RoomDirectory
from bridge.events import Event, Kind, Sender
from bridge.links import Links
from bridge.notices import Notice
from bridge.read_markers import Read
from bridge.router import Router
from bridge.store import Store

CONFIG = """\
delivery: {{max_attempts: 3, initial_backoff: 0.01, max_backoff: 0.05, give_up_after: {life}}}
networks:
  bund:
    homeserver: http://127.0.0.1:1
    server_name: bund.example
    org_label: BMI
    appservice: {{as_token: a, hs_token: b}}
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:2
    server_name: tchap.example
    name_suffix: " (Tchap)"
    appservice: {{as_token: c, hs_token: d}}
  third:
    homeserver: http://127.0.0.1:3
    server_name: third.example
    appservice: {{as_token: e, hs_token: f}}
links:
  - id: wg
    rooms: {{bund: "!wg:bund.example", tchap: "!wg:tchap.example", third: "!wg:third.example"}}
  - id: other
    rooms: {{bund: "!other:bund.example", tchap: "!other:tchap.example"}}
"""
ANNOUNCE = """\
  - id: announce
    rooms: {{bund: "!announce:bund.example", tchap: "!announce:tchap.example"}}
    policy: {{tchap: {{direction: receive}}}}
people:
  - id: jean
    name: Jean Dupont
    accounts: {{tchap: "@jean:tchap.example"}}
"""
"""A one-way link (its Tchap room only receives) and a person on Tchap, for a test to add."""


class Recording(Connector, ReadMarkers):
    """A network that records what the core asks of it and sends nothing anywhere; ``fail``
    decides what a send raises (nothing: it is delivered)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Outgoing] = []
        self.tries = 0
        self.notices: list[tuple[str, str]] = []
        self.fail: Callable[[Outgoing], Exception | None] = lambda out: None
        self.people: list[str] | Exception = []
        """Who `members` says is in any room (or what it raises)."""
        self.takes_commands = True
        self.reads: list[tuple[str, str, str]] = []
        """(room, reader, message read) of every read marker shown."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        self.tries += 1
        error = self.fail(out)
        if error is not None:
            raise error
        self.sent.append(out)
        return f"${self.name}-{len(self.sent)}"

    async def fetch_media(self, ref: str) -> bytes:
        raise AssertionError("no media here")

    async def notify(self, room_id: str, text: str) -> None:
        self.notices.append((room_id, text))

    async def link_added(self, link: Link) -> None:
        return None

    async def link_removed(self, link: Link, room_id: str | None, notice: Notice) -> None:
        return None

    @property
    def room_commands(self) -> bool:
        return self.takes_commands

    async def members(self, room_id: str) -> list[str]:
        if isinstance(self.people, Exception):
            raise self.people
        return self.people

    async def show_read(self, room_id: str, sender: Sender, remote_id: str) -> None:
        self.reads.append((room_id, sender.user_id, remote_id))

    def texts(self) -> list[str]:
        return [out.event.text for out in self.sent]


@dataclass
class Bridge:
    router: Router
    directory: RoomDirectory
    bund: Recording
    tchap: Recording
    third: Recording


async def open_bridge(root: Path, life: str = "5d", more: str = "") -> Bridge:
    (root / "config.yaml").write_text((CONFIG + more).format(life=life))
    config = load_config(root / "config.yaml", {})
    store = await Store.open(f"sqlite:{root}/passerelle.db")
    directory = RoomDirectory()
    bund, tchap, third = Recording("bund"), Recording("tchap"), Recording("third")
    connectors = {"bund": bund, "tchap": tchap, "third": third}
    router = Router(config, Links(config), store, directory, connectors, LocalClaims())
    for link in ("wg", "other"):
        directory.bind(link, "bund", f"!{link}:bund.example")
        directory.bind(link, "tchap", f"!{link}:tchap.example")
    directory.bind("wg", "third", "!wg:third.example")
    await router.outbox.start()
    return Bridge(router, directory, bund, tchap, third)


async def close(bridge: Bridge) -> None:
    await bridge.router.outbox.stop()
    await bridge.router.store.close()


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    opened = await open_bridge(tmp_path)
    yield opened
    await close(opened)


def message(
    remote_id: str, text: str = "", link: str = "wg", network: str = "bund", **more: Any
) -> Event:
    sender = Sender(network=network, user_id=f"@max:{network}.example", display_name="Max")
    return Event(kind=more.pop("kind", Kind.MESSAGE), link_id=link, network=network,
                 room_id=f"!{link}:{network}.example", remote_id=remote_id, sender=sender,
                 text=text, **more)  # fmt: skip


async def settled(router: Router, timeout: float = 10) -> None:  # noqa: ASYNC109
    """Until the outbox has nothing left to do."""
    for _ in range(int(timeout * 100)):
        if await router.store.outbox_size() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outbox did not empty")


async def test_a_message_fans_out_to_every_other_room_and_never_back(bridge: Bridge) -> None:
    assert await bridge.router.ingest(message("$1", "Hallo"))
    await settled(bridge.router)
    [to_tchap], [to_third] = bridge.tchap.sent, bridge.third.sent
    assert (to_tchap.room_id, to_tchap.event.text, to_tchap.event.sender.org) == (
        "!wg:tchap.example", "Hallo", "BMI")  # fmt: skip
    assert to_third.room_id == "!wg:third.example"
    assert to_tchap.delivery_id != to_third.delivery_id
    assert bridge.bund.sent == []


async def test_an_event_seen_twice_is_bridged_once(bridge: Bridge) -> None:
    assert await bridge.router.ingest(message("$twice", "einmal"))
    assert not await bridge.router.ingest(message("$twice", "einmal"))
    await settled(bridge.router)
    assert bridge.tchap.texts() == ["einmal"]


async def test_order_is_kept_per_link_and_target(bridge: Bridge) -> None:
    texts = [f"Nummer {i}" for i in range(40)]
    for i, text in enumerate(texts):
        await bridge.router.ingest(message(f"$o{i}", text))
        await bridge.router.ingest(message(f"$x{i}", f"anders {i}", link="other"))
    await settled(bridge.router)
    assert [t for t in bridge.tchap.texts() if t in texts] == texts
    assert bridge.third.texts() == texts


async def test_replies_edits_and_reactions_point_at_the_copy_on_each_target(
    bridge: Bridge,
) -> None:
    await bridge.router.ingest(message("$orig", "Original"))
    await settled(bridge.router)
    copy = {"!wg:tchap.example": "$tchap-1", "!wg:third.example": "$third-1"}
    await bridge.router.ingest(message("$reply", "Antwort", reply_to="$orig"))
    await bridge.router.ingest(message("$edit", "Geändert", kind=Kind.EDIT, relates_to="$orig"))
    await bridge.router.ingest(message("$like", kind=Kind.REACTION, relates_to="$orig",
                                       reaction="👍"))  # fmt: skip
    await settled(bridge.router)
    for connector in (bridge.tchap, bridge.third):
        reply, edit, like = connector.sent[1:]
        assert reply.reply_to == copy[reply.room_id]
        assert edit.relates_to == like.relates_to == copy[edit.room_id]


async def test_a_follow_up_whose_original_never_arrived_is_dropped(bridge: Bridge) -> None:
    bridge.third.fail = lambda out: DeliveryError("refused", permanent=True)
    await bridge.router.ingest(message("$lost", "nie angekommen"))
    await settled(bridge.router)
    bridge.third.fail = lambda out: None
    await bridge.router.ingest(message("$fix", "korrigiert", kind=Kind.EDIT, relates_to="$lost"))
    await settled(bridge.router)
    assert [out.event.kind for out in bridge.tchap.sent] == [Kind.MESSAGE, Kind.EDIT]
    assert bridge.third.sent == []


async def test_what_was_queued_is_not_delivered_into_a_room_switched_off_since(
    bridge: Bridge,
) -> None:
    """Queued while the room was fine, delivered after its access rule or encryption changed:
    the room must not receive it, and the sender is told, in German on the German network."""
    await bridge.router.outbox.stop()
    assert await bridge.router.ingest(message("$2", "vertraulich"))
    bridge.directory.disable("wg", "tchap", "the room is end-to-end encrypted")
    await bridge.router.outbox.start()
    await settled(bridge.router)
    assert bridge.tchap.sent == []
    assert bridge.bund.notices == [("!wg:bund.example", "⚠️ Nachricht „vertraulich“ von Max "
                                    "konnte nicht an Tchap zugestellt werden (der Raum dort ist "
                                    "nicht mehr verbunden).")]  # fmt: skip


async def test_a_network_that_is_down_delays_without_using_up_attempts(bridge: Bridge) -> None:
    """Far more failed tries than max_attempts while Tchap is unreachable: nothing is given
    up, order holds, and both links resume as soon as it answers."""
    down = True
    bridge.tchap.fail = lambda out: Unavailable("connection refused") if down else None
    texts = [f"Nachricht {i}" for i in range(4)]
    for i, text in enumerate(texts):
        await bridge.router.ingest(message(f"$d{i}", text))
    await bridge.router.ingest(message("$o1", "anderer Raum", link="other"))
    for _ in range(1000):
        if bridge.tchap.tries >= 12:
            break
        await asyncio.sleep(0.01)
    assert not bridge.router.health.is_up("tchap")
    assert bridge.tchap.sent == [] and bridge.bund.notices == []
    down = False
    await settled(bridge.router)
    assert [t for t in bridge.tchap.texts() if t in texts] == texts
    assert "anderer Raum" in bridge.tchap.texts()
    assert bridge.router.health.is_up("tchap")
    assert bridge.bund.notices == []


async def test_a_message_the_network_refuses_is_given_up_after_its_attempts(
    bridge: Bridge,
) -> None:
    bridge.tchap.fail = lambda out: (
        DeliveryError("403 M_FORBIDDEN") if out.event.text == "abgelehnt" else None
    )
    await bridge.router.ingest(message("$r1", "abgelehnt"))
    await bridge.router.ingest(message("$r2", "danach"))
    await settled(bridge.router)
    assert bridge.tchap.texts() == ["danach"]
    assert bridge.tchap.tries == 3 + 1
    [(_, notice)] = bridge.bund.notices
    assert notice == "⚠️ Nachricht „abgelehnt“ von Max konnte nicht an Tchap zugestellt werden " \
                     "(Tchap hat sie abgelehnt)."  # fmt: skip


async def test_messages_expire_by_age_and_the_sender_is_told(tmp_path: Path) -> None:
    bridge = await open_bridge(tmp_path, life="1s")
    try:
        bridge.tchap.fail = lambda out: Unavailable("503 Service Unavailable")
        await bridge.router.ingest(message("$e1", "zu spät"))
        await settled(bridge.router)
        assert bridge.tchap.sent == []
        assert bridge.bund.notices == [("!wg:bund.example", "⚠️ Nachricht „zu spät“ von Max "
                                        "konnte nicht an Tchap zugestellt werden (seit 1 min nicht "
                                        "erreichbar).")]  # fmt: skip
    finally:
        await close(bridge)


async def test_queues_left_by_a_crash_are_resumed_in_order(tmp_path: Path) -> None:
    first = await open_bridge(tmp_path)
    first.tchap.fail = lambda out: Unavailable("connection refused")
    texts = [f"vor dem Absturz {i}" for i in range(3)]
    for i, text in enumerate(texts):
        await first.router.ingest(message(f"$c{i}", text))
    await close(first)
    second = await open_bridge(tmp_path)
    try:
        await settled(second.router)
        assert second.tchap.texts() == texts
        assert len({out.delivery_id for out in second.tchap.sent}) == 3
    finally:
        await close(second)


async def test_what_was_queued_is_not_delivered_once_the_senders_domain_left_the_list(
    bridge: Bridge,
) -> None:
    """Queued while bund.example was on bund's federation list, delivered after a newer list
    dropped it: it crosses nowhere, and the sender is told why, in German."""
    listed = {"bund": frozenset({"bund.example"})}
    bridge.router.listed = listed
    await bridge.router.outbox.stop()
    assert await bridge.router.ingest(message("$3", "noch gelistet"))
    listed["bund"] = frozenset({"land.example"})
    await bridge.router.outbox.start()
    await settled(bridge.router)
    assert bridge.tchap.sent == [] and bridge.third.sent == []
    assert sorted(bridge.bund.notices) == [
        ("!wg:bund.example", f"⚠️ Nachricht „noch gelistet“ von Max konnte nicht an {network} "
         "zugestellt werden (bund.example steht nicht auf der Föderationsliste seines Netzes "
         "und wird nicht mehr gebrückt).")
        for network in ("Tchap", "third")
    ]  # fmt: skip


async def test_a_room_that_only_receives_lets_no_read_marker_out(tmp_path: Path) -> None:
    """``direction: receive`` on the announce link's Tchap room: nothing of that room goes out,
    its readers' markers included; the same marker in a two-way link crosses."""
    bridge = await open_bridge(tmp_path, more=ANNOUNCE)
    for network in ("bund", "tchap"):
        bridge.directory.bind("announce", network, f"!announce:{network}.example")
    jean = Sender(network="tchap", user_id="@jean:tchap.example", display_name="Jean Dupont")
    try:
        for link in ("announce", "other"):
            assert await bridge.router.ingest(message(f"$to-{link}", "Bekanntmachung", link=link))
        await settled(bridge.router)
        for out, remote_id in zip(bridge.tchap.sent, ("$tchap-1", "$tchap-2"), strict=True):
            await bridge.router._pass_read(Read("tchap", out.room_id, jean, remote_id))
        assert bridge.bund.reads == [("!other:bund.example", "@jean:tchap.example", "$to-other")]
    finally:
        await close(bridge)
