"""What end-to-end tests look for in a room, shared by every network's tests: unique texts (so
repeated runs never match an old message), event predicates, how a member is named, and the
steps they take again and again (a message crossing a link, a marker showing that the bridge
handled what came before it, the bridge's notices, receipts and typing)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

from mautrix.types import EventType, RoomID

from tests.harness.clients import User

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
Wait = Callable[[str, Predicate], Awaitable[Event]]
"""How a reader waits for the first event of a room matching a predicate (`User.wait_for`)."""


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


def body_is(text: str) -> Predicate:
    return lambda e: e.get("type") == "m.room.message" and e["content"].get("body") == text


def body_has(text: str) -> Predicate:
    return lambda e: e.get("type") == "m.room.message" and text in e["content"].get("body", "")


def notice_has(text: str) -> Predicate:
    """A notice (what the bridge posts about itself) that says ``text``."""
    return lambda e: (
        e.get("type") == "m.room.message"
        and e["content"].get("msgtype") == "m.notice"
        and text in e["content"].get("body", "")
    )


async def tchap_refused(arrives: Wait, room_id: str, reason: str) -> None:
    """The bridge's notice in the Tchap room ``room_id`` that it does not link the room, because
    of ``reason`` (``arrives``: how the reader there waits for it)."""
    notice = await arrives(room_id, notice_has("pas relié"))
    assert notice["sender"] == "@passerelle:tchap.test"
    assert notice["content"]["body"] == (
        f"Ce salon n’est pas relié : {reason}. Rien n’y entre ni n’en sort tant qu’un "
        "administrateur ne l’a pas changé."
    )


async def passed_through(sender: User, room_id: str, arrives: Wait, linked: str) -> None:
    """A marker ``sender`` sends now in ``room_id`` arrives in the ``linked`` room (``arrives``:
    how its reader waits there). One homeserver's events reach the bridge in order, so it has
    then handled all that ``sender`` did before."""
    marker = unique("marker")
    await sender.send_text(room_id, marker)
    await arrives(linked, body_is(marker))


async def edit_relation(user: User, room_id: str, text: str) -> dict[str, Any]:
    """The ``m.relates_to`` of the edit that makes a message of the room say ``text``, once
    ``user`` sees it."""
    edit = await user.wait_for(
        room_id, lambda e: e["content"].get("m.new_content", {}).get("body") == text
    )
    return dict(edit["content"]["m.relates_to"])


async def _across(
    sender: User, room_id: str, text: str, arrives: Wait, linked: str
) -> tuple[str, Event]:
    text = unique(text)
    sent = await sender.send_text(room_id, text)
    return sent, await arrives(linked, body_is(text))


async def crossed(sender: User, room_id: str, text: str, arrives: Wait, linked: str) -> Event:
    """``text`` (made `unique`), sent now by ``sender`` in ``room_id``, as it arrives in the
    ``linked`` room (``arrives``: how the reader there waits for it)."""
    return (await _across(sender, room_id, text, arrives, linked))[1]


async def sent_and_mirrored(
    sender: User, room_id: str, text: str, arrives: Wait, linked: str
) -> tuple[str, str]:
    """The event ID of `crossed`'s message where it was sent, and where it arrived."""
    sent, seen = await _across(sender, room_id, text, arrives, linked)
    return sent, str(seen["event_id"])


async def bodies(user: User, room_id: str, limit: int = 50) -> list[str | None]:
    """Bodies of the room's ``limit`` latest events as ``user`` sees them, oldest first."""
    return [e["content"].get("body") for e in await user.messages(room_id, limit)]


async def name_of(user: User, room_id: str, user_id: str) -> str:
    """The display name ``user_id`` has in the room, as ``user`` sees it."""
    member = await user.client.get_state_event(RoomID(room_id), EventType.ROOM_MEMBER, user_id)
    return str(member.displayname)


async def next_invite(user: User, since: str, besides: Collection[str] = ()) -> str:
    """The first room ``user`` is invited to after the sync position ``since`` (other than
    the rooms ``besides``)."""
    for _ in range(30):
        sync = await user.client.sync(since=since, timeout=1000)
        invited = [room for room in sync.get("rooms", {}).get("invite", {}) if room not in besides]
        if invited:
            return str(invited[0])
        since = sync["next_batch"]
    raise AssertionError(f"{user.user_id} was invited nowhere")


def _ephemeral_of(sync: dict[str, Any], room_id: str) -> list[Event]:
    room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
    return list(room.get("ephemeral", {}).get("events", []))


async def _ephemeral(user: User, room_id: str, syncs: int) -> AsyncIterator[Event]:
    """The room's ephemeral events (receipts, typing) as ``user``'s client gets them through
    ``/sync``, from now on, over up to ``syncs`` half-second long polls."""
    since = None
    for _ in range(syncs):
        sync = await user.client.sync(since=since, timeout=500)
        since = sync["next_batch"]
        for edu in _ephemeral_of(sync, room_id):
            yield edu


async def joined_invite(user: User, since: str, besides: Collection[str] = ()) -> str:
    """The room of `next_invite`, once ``user`` accepted the invitation."""
    room = await next_invite(user, since, besides)
    await user.join(room)
    return room


async def receipts_since(user: User, room_id: str, reader: str, since: str) -> list[str]:
    """The events ``reader`` set a public read receipt on in the room after the sync
    position ``since``, as ``user``'s client learns them (one ``/sync``, now)."""
    sync = await user.client.sync(since=since, timeout=0)
    return [
        str(event_id)
        for edu in _ephemeral_of(sync, room_id)
        if edu.get("type") == "m.receipt"
        for event_id, receipts in edu["content"].items()
        if reader in receipts.get("m.read", {})
    ]


async def receipt_on(user: User, room_id: str, reader: str, event_id: str) -> None:
    """Wait until ``user`` sees ``reader``'s read receipt on ``event_id``."""
    async for edu in _ephemeral(user, room_id, 60):
        if edu.get("type") == "m.receipt" and reader in edu["content"].get(event_id, {}).get(
            "m.read", {}
        ):
            return
    raise AssertionError(f"{user.user_id} never saw {reader} read {event_id} in {room_id}")


async def typing_in(user: User, room_id: str, predicate: Callable[[list[str]], bool]) -> list[str]:
    """Who is typing in the room, as ``user``'s client learns it through ``/sync``, once
    ``predicate`` holds for that list."""
    async for edu in _ephemeral(user, room_id, 40):
        if edu.get("type") == "m.typing" and predicate(edu["content"]["user_ids"]):
            return list(edu["content"]["user_ids"])
    raise AssertionError(f"{user.user_id} never saw the expected typing in {room_id}")
