"""The router and the outbox between connectors, in memory: the real `Router`, `Outbox` and
`Store` (SQLite), with connectors that only record what they are asked to send and post. What
crosses a link, and what must not once a room was switched off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.config.load import load_config
from bridge.connector import Connector, Outgoing
from bridge.directory import RoomDirectory
from bridge.events import Event, Kind, Sender
from bridge.links import Links
from bridge.router import Router
from bridge.store import Store

CONFIG = """\
networks:
  bund:
    homeserver: http://127.0.0.1:1
    server_name: bund.example
    org_label: BMI
    appservice: {as_token: a, hs_token: b}
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:2
    server_name: tchap.example
    appservice: {as_token: c, hs_token: d}
links:
  - id: wg
    rooms: {bund: "!wg:bund.example", tchap: "!wg:tchap.example"}
"""


class Recording(Connector):
    """A network that records what the core asks of it, and sends nothing anywhere."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Outgoing] = []
        self.notices: list[tuple[str, str]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        self.sent.append(out)
        return f"${self.name}-{len(self.sent)}"

    async def fetch_media(self, ref: str) -> bytes:
        raise AssertionError("no media here")

    async def notify(self, room_id: str, text: str) -> None:
        self.notices.append((room_id, text))


@dataclass
class Bridge:
    router: Router
    directory: RoomDirectory
    bund: Recording
    tchap: Recording


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    config = load_config(tmp_path / "config.yaml", {})
    store = await Store.open(f"sqlite:{tmp_path}/passerelle.db")
    directory = RoomDirectory()
    bund, tchap = Recording("bund"), Recording("tchap")
    router = Router(config, Links(config), store, directory, {"bund": bund, "tchap": tchap})
    directory.bind("wg", "bund", "!wg:bund.example")
    directory.bind("wg", "tchap", "!wg:tchap.example")
    await router.outbox.start()
    try:
        yield Bridge(router, directory, bund, tchap)
    finally:
        await router.outbox.stop()
        await store.close()


def message(remote_id: str, text: str) -> Event:
    sender = Sender(network="bund", user_id="@max:bund.example", display_name="Max")
    return Event(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id="!wg:bund.example",
                 remote_id=remote_id, sender=sender, text=text)  # fmt: skip


async def settled(router: Router) -> None:
    """Until the outbox has nothing left to do."""
    for _ in range(200):
        if await router.store.outbox_size() == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outbox did not empty")


async def test_a_message_crosses_with_its_senders_organisation(bridge: Bridge) -> None:
    assert await bridge.router.ingest(message("$1", "Hallo"))
    await settled(bridge.router)
    [out] = bridge.tchap.sent
    assert (out.room_id, out.event.text, out.event.sender.org) == ("!wg:tchap.example", "Hallo",
                                                                  "BMI")  # fmt: skip
    assert bridge.bund.sent == []


async def test_what_was_queued_is_not_delivered_into_a_room_switched_off_since(
    bridge: Bridge,
) -> None:
    """Queued while the room was fine, delivered after its access rule or encryption changed:
    the room must not receive it, and the sender is told."""
    await bridge.router.outbox.stop()
    assert await bridge.router.ingest(message("$2", "vertraulich"))
    bridge.directory.disable("wg", "tchap", "the room is end-to-end encrypted")
    await bridge.router.outbox.start()
    await settled(bridge.router)
    assert bridge.tchap.sent == []
    [(room, notice)] = bridge.bund.notices
    assert room == "!wg:bund.example"
    assert "vertraulich" in notice and "no longer bridged" in notice
