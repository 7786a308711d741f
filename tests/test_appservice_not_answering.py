"""A pushed message whose sender's profile the homeserver does not answer for is not taken: the
transaction is answered with an error, so that the homeserver sends it again, and nothing is
stored or dropped meanwhile. Served in this process on a real store; bund's homeserver is a
closed port, which is the point here (it cannot answer)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.offline import ROOM, Appservice, serve_appservice

LINA = "@lina:bund.example"
"""A member the bridge knows nothing of yet: her profile is asked of the homeserver."""


@pytest.fixture
async def appservice(tmp_path: Path) -> AsyncIterator[Appservice]:
    served = await serve_appservice(tmp_path, wary=False)
    yield served
    await served.close()


async def test_a_message_is_taken_once_its_senders_profile_can_be_read(
    appservice: Appservice,
) -> None:
    body = json.dumps({"events": [{
        "type": "m.room.message", "event_id": "$lina", "room_id": ROOM, "sender": LINA,
        "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "Guten Morgen"},
    }]}).encode()  # fmt: skip
    before = await appservice.store.outbox_size()

    assert await appservice.put(1, body) == 500
    assert not await appservice.store.is_known("bund", "$lina")
    assert await appservice.store.outbox_size() == before

    appservice.bund._members[(ROOM, LINA)] = ("Lina Berg", None)  # the homeserver answered
    assert await appservice.put(1, body) == 200
    assert await appservice.store.is_known("bund", "$lina")
    assert await appservice.store.outbox_size() == before + 1
