"""What the connector remembers about each linked MUC while it runs.

Occupants and seats come back from the room when the bridge joins, and the ID and quote memories
are refilled from the history the room replays on every join. The store keeps only one ID per
message (see `connectors.xmpp.translate`), so the message ``id`` → ``stanza-id`` map that
corrections need lives here. Only the occupant identities (XEP-0421 occupant-id → real JID) are
also stored, so that history replayed after a restart keeps its authors (see `Room.author`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connectors.xmpp.translate import Message

K = TypeVar("K")
V = TypeVar("V")

REMEMBERED = 2000
"""Entries each memory keeps per room (the oldest are forgotten first)."""


class Recent(Generic[K, V]):
    """A bounded mapping that forgets its least recently written entries."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Seat:
    """A puppet's place in a room: the nickname it got, and the one it asked for."""

    nick: str
    base: str


@dataclass(frozen=True)
class Quote:
    """Who wrote a message and what it said, for the quoted fallback of a reply to it."""

    nick: str
    text: str


@dataclass
class Room:
    jid: str
    link_id: str
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    """The room's messages to the bridge's listener, in arrival order."""
    joined: bool = False
    """The bridge's own occupant is in the room (its listener)."""
    nick: str | None = None
    """The bridge's own nickname here, once joined."""
    join_failures: int = 0
    next_join: float = 0.0
    """When (monotonic clock) to try joining again after ``join_failures`` refusals."""
    occupant_ids: bool = False
    """The room stamps XEP-0421 occupant-ids (its disco#info says so): then a message's author
    is known by its occupant-id, else by its nickname."""
    occupants: dict[str, str] = field(default_factory=dict)
    """Nickname → real bare JID ("" where the room hides it), from the room's presences."""
    identities: dict[str, str] = field(default_factory=dict)
    """Occupant-id → real bare JID ("" where the room hides it), from the room's presences,
    kept (and stored) after the occupant left: the authors of the history the room replays."""
    seats: dict[str, Seat] = field(default_factory=dict)
    """Puppet JID → its seat, for the puppets currently in the room."""
    stanza_ids: Recent[str, str] = field(default_factory=Recent)
    """Message id / origin-id → the room's stanza-id (what corrections need translated)."""
    originals: Recent[str, str] = field(default_factory=Recent)
    """Stanza-id of a correction → stanza-id of the message it corrects."""
    quotes: Recent[str, Quote] = field(default_factory=Recent)
    reactions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    """(reacting person, target) → their reactions (key → reaction ID), as last seen."""
    sent_reactions: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(puppet JID, target) → the reactions the bridge has that puppet showing."""
    replay_anchored: bool = False
    """While history replays after a join: a message already bridged was seen, so the unknown
    ones after it were missed while the bridge was away and are bridged now."""

    def puppet_nicks(self) -> set[str]:
        return {seat.nick for seat in self.seats.values()}

    def remember_ids(self, stanza_id: str, *ids: str | None) -> None:
        for other in ids:
            if other:
                self.stanza_ids[other] = stanza_id

    def resolve(self, message_id: str) -> str | None:
        """The stanza-id of the original message that ``message_id`` (an id, origin-id or
        stanza-id) names, following corrections back to what they corrected."""
        stanza_id = self.stanza_ids.get(message_id) or (
            message_id if message_id in self.quotes or message_id in self.originals else None
        )
        if stanza_id is None:
            return None
        return self.originals.get(stanza_id) or stanza_id

    def occupant_seen(self, nick: str, real_jid: str | None, occupant_id: str | None) -> bool:
        """Note an occupant from the room's (available) presence; True when it taught a new
        occupant-id identity, worth storing."""
        self.occupants[nick] = real_jid or ""
        if not self.occupant_ids or not occupant_id:
            return False
        known = self.identities.get(occupant_id)
        if known == (real_jid or "") or (known and not real_jid):
            return False
        self.identities[occupant_id] = real_jid or ""
        return True

    def author(self, message: Message) -> str | None:
        """Who wrote ``message``, as only the room vouches for it: the real bare JID its
        presence showed for the message's occupant-id (in a room that stamps them) or, in a room
        that does not, for the nickname it came from; the occupant JID (``room/nick``) where the
        room hides real JIDs; None when the room never showed who that is."""
        if self.occupant_ids:
            real = self.identities.get(message.occupant_id) if message.occupant_id else None
        else:
            real = self.occupants.get(message.nick)
        if real is None:
            return None
        return real or f"{self.jid}/{message.nick}"

    def left(self) -> None:
        """The room no longer has us (the connection dropped, or we were removed)."""
        self.joined = False
        self.nick = None
        self.occupants.clear()
        self.seats.clear()
