"""Sends that got no answer, and how a resend finds out whether the first one landed.

A homeserver takes a resend with the same transaction ID as the same event, but Synapse keeps
an appservice's transaction IDs (which have no device) only in memory: a homeserver that
stored the event, then went down before answering (or restarted before the resend), makes a
second event of the resend. So when a send got no answer, the next attempt with the same
transaction ID first looks at the poster's latest events in the room: Synapse shows a sender
the ``unsigned.transaction_id`` of its own events (an appservice's included), which survives
restarts with the event. Only sends that got no answer pay for that look.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from mautrix.api import Method, Path
from mautrix.client import ClientAPI
from mautrix.types import RoomID

KEPT = 10_000
"""Transaction IDs remembered at most (the oldest are forgotten first)."""
LOOKBACK = 50
"""How many of the poster's latest events in the room a resend looks through."""


class Unanswered:
    """The transaction IDs whose last send got no answer (connection lost, timeout, 5xx)."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, txn_id: str) -> None:
        self._ids[txn_id] = None
        self._ids.move_to_end(txn_id)
        while len(self._ids) > KEPT:
            self._ids.popitem(last=False)

    def discard(self, txn_id: str) -> None:
        self._ids.pop(txn_id, None)

    def __contains__(self, txn_id: object) -> bool:
        return txn_id in self._ids


async def landed(api: ClientAPI, room_id: str, txn_id: str) -> str | None:
    """The ID of the event ``api``'s user sent into ``room_id`` with ``txn_id``, if it is among
    their latest events there."""
    query = {
        "dir": "b",
        "limit": str(LOOKBACK),
        "filter": json.dumps({"senders": [str(api.mxid)]}),
    }
    answer: dict[str, Any] = await api.api.request(
        Method.GET, Path.v3.rooms[RoomID(room_id)].messages, query_params=query
    )
    for event in answer.get("chunk") or ():
        unsigned = event.get("unsigned") if isinstance(event, dict) else None
        if isinstance(unsigned, dict) and unsigned.get("transaction_id") == txn_id:
            event_id = event.get("event_id")
            return event_id if isinstance(event_id, str) else None
    return None
