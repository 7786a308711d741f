"""Whether a join or leave is mirrored, which member events are joins and leaves, and how a
person who joins and leaves over and over is mirrored."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.config.model import Link
from bridge.events import Event, Kind, Sender
from bridge.members import MIRROR_MEMBERS_LIMIT, Damper, mirrors
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


def change(kind: Kind, n: int, who: str = "mallory") -> Event:
    sender = Sender(network="xmpp", user_id=f"{who}@other.test", display_name=who)
    return Event(kind=kind, link_id="wg", network="xmpp", room_id="wg@conference.xmpp.test",
                 remote_id=f"{who}-{n}", sender=sender)  # fmt: skip


async def test_someone_flapping_is_mirrored_a_few_times_then_in_their_last_state() -> None:
    taken: list[str] = []

    async def take(event: Event) -> None:
        taken.append(event.remote_id)

    now = [0.0]
    damper = Damper(take, clock=lambda: now[0], burst=4, window=0.2)
    kinds = [Kind.JOIN, Kind.LEAVE] * 5
    passed = [n for n, kind in enumerate(kinds) if not damper.hold(change(kind, n))]
    assert passed == [0, 1, 2, 3]
    assert not damper.hold(change(Kind.JOIN, 0, who="alice"))  # someone else: not held
    await asyncio.sleep(0.3)
    assert taken == ["mallory-9"]  # the last change (a leave) once the window ended
    now[0] = 10.0
    assert not damper.hold(change(Kind.JOIN, 10))  # a calm minute later: mirrored at once
    await damper.stop()
