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
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import Gateway
from bridge.config.load import load_config
from bridge.store import Store
from connectors.matrix.appservice import AppserviceConnector

ROOM = "!wg:bund.example"
GHOST = "@passerelle_=people_jean:bund.example"
CONFIG = """\
database: sqlite:{root}/passerelle.db
networks:
  bund:
    homeserver: http://127.0.0.1:9
    server_name: bund.example
    appservice: {{as_token: as-token, hs_token: hs-token}}
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:9
    server_name: tchap.example
    appservice: {{as_token: as-token-2, hs_token: hs-token-2}}
links:
  - id: wg
    rooms: {{bund: "{room}", tchap: "!wg:tchap.example"}}
"""


class Served:
    def __init__(self, client: TestClient[Any, Any], bund: AppserviceConnector, store: Store):
        self.client, self.bund, self.store = client, bund, store
        self.handled: list[dict[str, Any]] = []
        self.txn = 0

    async def put(self, *events: dict[str, Any]) -> int:
        self.txn += 1
        response = await self.client.put(
            f"/as/bund/_matrix/app/v1/transactions/{self.txn}",
            data=json.dumps({"events": list(events)}).encode(),
            headers={"Authorization": "Bearer hs-token"},
        )
        return response.status


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    (tmp_path / "config.yaml").write_text(CONFIG.format(root=tmp_path, room=ROOM))
    config = load_config(tmp_path / "config.yaml", {})
    store = await Store.open(config.database)
    gateway = Gateway(config, store)
    await gateway._open_states()
    bund = gateway.connectors["bund"]
    assert isinstance(bund, AppserviceConnector)
    await bund.start()
    assert bund._setup_task is not None
    bund._setup_task.cancel()
    bund.rooms_ready.set()
    bund.catch_up.first_pass.set()
    bund.catch_up._wary_until = 0.0
    gateway.directory.bind("wg", "bund", ROOM)
    gateway.directory.bind("wg", "tchap", "!wg:tchap.example")
    bund._members[(ROOM, "@max:bund.example")] = ("Max", None)
    client = TestClient(TestServer(gateway.web))
    await client.start_server()
    served = Served(client, bund, store)
    handle = bund.handle_room_event

    async def recorded(raw: dict[str, Any]) -> None:
        served.handled.append(raw)
        await handle(raw)

    bund.handle_room_event = recorded  # type: ignore[method-assign]
    yield served
    await client.close()
    await bund.stop()
    await store.close()


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
