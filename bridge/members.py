"""Who is in the room: the people of each room of a link appear as members of its other rooms
(their ghosts join and leave, their puppets take and give up seats), so that every room's member
list shows the whole working group.

A membership change crosses as an event (`bridge.events.MEMBERSHIP`) through the outbox, in the
link's order, so that someone's ghost is in a room before their first message is. Connectors
decide here whether a change is mirrored at all, before they pass it on; the bridge's own ghosts
and puppets are never mirrored (each connector leaves them out), so nothing loops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.config.model import Link

MIRROR_MEMBERS_LIMIT = 300
"""A link without ``mirror_members`` mirrors the joins and leaves of a room while that room has
fewer members than this: in a larger one, a ghost for each member would crowd every member
list and cost a request per member on every network."""


async def mirrors(link: Link, direct: bool, count: Callable[[], Awaitable[int]]) -> bool:
    """Whether a join or leave in one of ``link``'s rooms is mirrored in the others: as the
    link's ``mirror_members`` says, else while the room holds fewer than
    `MIRROR_MEMBERS_LIMIT` members (``count`` asks the room's network, only then). A direct
    chat has no one else to show."""
    if direct:
        return False
    if link.mirror_members is not None:
        return link.mirror_members
    return await count() < MIRROR_MEMBERS_LIMIT
