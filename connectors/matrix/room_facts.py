"""What a Matrix connector knows of its rooms' encryption and members, in memory.

The facts come from the homeserver (fetched when a room is set up or first used) and are kept
current from the state events the connector receives, so they need no table: a restart fetches
them again. They serve two readers: the room policy (is this room encrypted, and how) and
mautrix's `OlmMachine`, which asks the `StateStore` questions below.
"""

from __future__ import annotations

from typing import Any

from mautrix.crypto import StateStore
from mautrix.types import JSON as MautrixJSON
from mautrix.types import RoomEncryptionStateEventContent, RoomID, UserID

JSON = dict[str, Any]

SHARING = ("join", "invite")
"""Memberships whose devices receive a room's keys (as Element shares them)."""


class RoomFacts(StateStore):
    def __init__(self) -> None:
        self._encryption: dict[str, JSON | None] = {}
        self._members: dict[str, set[str]] = {}

    # Encryption

    def knows_encryption(self, room_id: str) -> bool:
        return room_id in self._encryption

    def encryption(self, room_id: str) -> JSON | None:
        """The room's ``m.room.encryption`` content, None when the room is not encrypted."""
        return self._encryption.get(room_id)

    def set_encryption(self, room_id: str, content: JSON | None) -> None:
        """Record the room's encryption state; an event without an algorithm (a redacted one)
        leaves an encrypted room encrypted, as clients treat it."""
        if content is None or not content.get("algorithm"):
            self._encryption.setdefault(room_id, None)
            return
        self._encryption[room_id] = content

    async def is_encrypted(self, room_id: RoomID) -> bool:
        return self._encryption.get(room_id) is not None

    async def get_encryption_info(self, room_id: RoomID) -> RoomEncryptionStateEventContent | None:
        content = self._encryption.get(room_id)
        if content is None:
            return None
        return RoomEncryptionStateEventContent.deserialize(MautrixJSON(dict(content)))

    # Members

    def knows_members(self, room_id: str) -> bool:
        return room_id in self._members

    def members(self, room_id: str) -> set[str]:
        return set(self._members.get(room_id, ()))

    def set_members(self, room_id: str, user_ids: set[str]) -> None:
        self._members[room_id] = set(user_ids)

    def set_membership(self, room_id: str, user_id: str, membership: str) -> bool:
        """Apply a member event to a room whose members are known; True when it changed who
        receives the room's keys."""
        members = self._members.get(room_id)
        if members is None:
            return False
        if membership in SHARING:
            if user_id in members:
                return False
            members.add(user_id)
            return True
        if user_id not in members:
            return False
        members.discard(user_id)
        return True

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [
            RoomID(room_id)
            for room_id, members in self._members.items()
            if user_id in members and self._encryption.get(room_id) is not None
        ]
