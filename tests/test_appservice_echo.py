"""The echo of the bridge's own messages in appservice transactions (one of the two
transactions of every bridged message) is dropped before any event handling looks at it, while
what others post, and the ghosts' memberships, are still taken in. The transaction endpoint is
served in this process on a real store, without a homeserver (the rooms are bound by hand)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.offline import ROOM, Appservice, serve_appservice

GHOST = "@passerelle_=people_jean:bund.example"


class Served:
    """bund's endpoint, and the raw events that reached event handling."""

    def __init__(self, appservice: Appservice) -> None:
        self.bund, self.store = appservice.bund, appservice.store
        self._appservice = appservice
        self.handled: list[dict[str, Any]] = []
        self.txn = 0

    async def put(self, *events: dict[str, Any]) -> int:
        self.txn += 1
        return await self._appservice.put(self.txn, json.dumps({"events": list(events)}).encode())


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    appservice = await serve_appservice(tmp_path, wary=False)
    served = Served(appservice)
    bund = appservice.bund
    handle = bund.handle_room_event

    async def recorded(raw: dict[str, Any]) -> None:
        served.handled.append(raw)
        await handle(raw)

    bund.handle_room_event = recorded  # type: ignore[method-assign]
    yield served
    await appservice.close()


def message(sender: str, event_id: str, body: str) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": event_id, "room_id": ROOM, "sender": sender,
            "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": body}}  # fmt: skip


async def test_an_echo_is_dropped_before_event_handling(served: Served) -> None:
    before = await served.store.outbox_size()
    assert await served.put(message(GHOST, "$echo", "Bonjour")) == 200
    assert await served.put(message("@passerelle:bund.example", "$bot", "notice")) == 200
    assert served.handled == []
    assert await served.store.outbox_size() == before

    assert await served.put(message("@max:bund.example", "$max", "Guten Tag")) == 200
    assert [raw["event_id"] for raw in served.handled] == ["$max"]
    assert await served.store.outbox_size() == before + 1


async def test_a_ghost_membership_is_still_taken_in(served: Served) -> None:
    join = {"type": "m.room.member", "event_id": "$join", "room_id": ROOM, "sender": GHOST,
            "state_key": GHOST, "content": {"membership": "join"}}  # fmt: skip
    assert await served.put(join) == 200
    assert [raw["event_id"] for raw in served.handled] == ["$join"]
    assert await served.bund._state.is_joined(ROOM, GHOST)  # type: ignore[arg-type]
