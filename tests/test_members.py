"""Whether a join or leave is mirrored, and which member events are joins and leaves."""

from __future__ import annotations

from typing import Any

from bridge.config.model import Link
from bridge.events import Kind
from bridge.members import MIRROR_MEMBERS_LIMIT, mirrors
from connectors.matrix.translate import membership_change


def link(mirror: bool | None) -> Link:
    return Link("wg", {}, (), mirror)


async def test_a_link_mirrors_as_configured_else_while_the_room_is_small() -> None:
    asked: list[int] = []

    def room_of(size: int) -> Any:
        async def count() -> int:
            asked.append(size)
            return size

        return count

    assert await mirrors(link(None), False, room_of(MIRROR_MEMBERS_LIMIT - 1))
    assert not await mirrors(link(None), False, room_of(MIRROR_MEMBERS_LIMIT))
    assert await mirrors(link(True), False, room_of(10_000))
    assert not await mirrors(link(False), False, room_of(2))
    assert not await mirrors(link(True), True, room_of(2))  # a direct chat: no one else
    assert asked == [MIRROR_MEMBERS_LIMIT - 1, MIRROR_MEMBERS_LIMIT]  # counted only when needed


def member(membership: str, before: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": "m.room.member",
        "state_key": "@marie:tchap.test",
        "content": {"membership": membership, "displayname": "Marie"},
    }
    if before is not None:
        raw["unsigned"] = {"prev_content": {"membership": before}}
    return raw


def test_joins_and_leaves_are_told_apart_from_invitations_and_profile_changes() -> None:
    assert membership_change(member("join")) is Kind.JOIN
    assert membership_change(member("join", "invite")) is Kind.JOIN
    assert membership_change(member("join", "join")) is None  # a new name or avatar
    assert membership_change(member("leave", "join")) is Kind.LEAVE
    assert membership_change(member("ban", "join")) is Kind.LEAVE
    assert membership_change(member("leave")) is Kind.LEAVE
    assert membership_change(member("leave", "invite")) is None  # an invitation declined
    assert membership_change(member("invite")) is None
    assert membership_change({"type": "m.room.member", "content": "nonsense"}) is None
