"""What the connector remembers about each linked MUC.

Occupants and seats come back from the room when the bridge joins. The core's store keeps only
one ID per message (see `connectors.xmpp.translate`), so what corrections, replies and reactions
need besides lives in the room's memories: the message ``id``/origin-id → stanza-id map, which
correction corrects what, quotes for reply fallbacks, each person's reactions and the reactions
the bridge's puppets show. Each write to a memory is also noted in a `Journal`, which the
connector writes to its state table in batches (`connectors.xmpp.state`) and reads back at
start: a restart keeps them, however little history the room replays. The occupant identities
(XEP-0421 occupant-id → real JID) are stored too, so that history replayed after a restart keeps
its authors (see `Room.author`).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from connectors.xmpp.translate import Message

K = TypeVar("K")
V = TypeVar("V")

REMEMBERED = 2000
"""Entries each memory keeps per room (the oldest are forgotten first), in memory and stored."""
QUOTED = 1000
"""Characters of a message a reply's quoted fallback keeps."""


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


@dataclass(frozen=True)
class Remembered:
    """One write to a room's memory, as the state table keeps it: key and value as JSON."""

    room: str
    memory: str
    key: str
    value: str


class Journal:
    """The writes to every room's memories not yet stored, in order."""

    def __init__(self) -> None:
        self.entries: list[Remembered] = []
        self.pending = asyncio.Event()
        """Set while there are entries to store."""

    def note(self, entry: Remembered) -> None:
        self.entries.append(entry)
        self.pending.set()

    def take(self) -> list[Remembered]:
        entries, self.entries = self.entries, []
        self.pending.clear()
        return entries


def _json_key(key: object) -> str:
    return json.dumps(list(key) if isinstance(key, tuple) else key, ensure_ascii=False)


def _key_from_json(text: str) -> Any:
    key = json.loads(text)
    return tuple(key) if isinstance(key, list) else key


class Memory(Recent[K, V]):
    """A room's bounded memory of one kind whose writes are also noted in a journal, so that
    they can be stored and `restore`d after a restart."""

    def __init__(
        self,
        room: str,
        name: str,
        journal: Journal,
        dump: Callable[[V], Any] = lambda value: value,
        load: Callable[[Any], V] = lambda value: value,
    ) -> None:
        super().__init__()
        self.room = room
        self.name = name
        self._journal = journal
        self._dump = dump
        self._load = load

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        value_json = json.dumps(self._dump(value), ensure_ascii=False)
        self._journal.note(Remembered(self.room, self.name, _json_key(key), value_json))

    def restore(self, key: str, value: str) -> None:
        """Take back a stored entry (without noting it again)."""
        super().__setitem__(_key_from_json(key), self._load(json.loads(value)))


@dataclass
class Seat:
    """A puppet's place in a room: the nickname it got, and the one it asked for."""

    nick: str
    base: str


@dataclass(frozen=True)
class Quote:
    """Who wrote a message and what it said (its first `QUOTED` characters), for the quoted
    fallback of a reply to it."""

    nick: str
    text: str

    @classmethod
    def of(cls, nick: str, text: str) -> Quote:
        return cls(nick, text if len(text) <= QUOTED else text[: QUOTED - 1] + "…")


@dataclass(frozen=True)
class Arrival:
    """Someone (not the bridge's own) joined the room (``joined``) or left it, as its
    presences told the bridge's listener while it was in the room."""

    nick: str
    author: str
    """Who they are, as `Room.author` says it: the real bare JID, or ``room/nick``."""
    joined: bool


@dataclass
class Room:
    jid: str
    link_id: str
    journal: Journal
    """Where writes to the memories below are noted for the state table."""
    queue: asyncio.Queue[Message | Arrival] = field(default_factory=asyncio.Queue)
    """The room's messages to the bridge's listener, and who came and went, in arrival
    order."""
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
    markers: bool = False
    """The room advertises XEP-0333 chat markers (its disco#info says so): read markers
    cross there."""
    occupants: dict[str, str] = field(default_factory=dict)
    """Nickname → real bare JID ("" where the room hides it), from the room's presences."""
    identities: dict[str, str] = field(default_factory=dict)
    """Occupant-id → real bare JID ("" where the room hides it), from the room's presences,
    kept (and stored) after the occupant left: the authors of the history the room replays."""
    seats: dict[str, Seat] = field(default_factory=dict)
    """Puppet JID → its seat, for the puppets currently in the room."""
    leaving: set[str] = field(default_factory=set)
    """Nicknames of puppets the bridge took out of the room, until the room says they left."""
    replay_anchored: bool = False
    """While history replays after a join: a message already bridged was seen, so the unknown
    ones after it were missed while the bridge was away and are bridged now."""
    stanza_ids: Memory[str, str] = field(init=False)
    """Message id / origin-id → the room's stanza-id (what corrections need translated)."""
    originals: Memory[str, str] = field(init=False)
    """Stanza-id of a correction → stanza-id of the message it corrects."""
    quotes: Memory[str, Quote] = field(init=False)
    """Stanza-id → who wrote the message and what it says, for replies to it."""
    reactions: Memory[tuple[str, str], dict[str, str]] = field(init=False)
    """(reacting person, target) → their reactions (key → reaction ID), as last seen."""
    sent_reactions: Memory[tuple[str, str], list[str]] = field(init=False)
    """(puppet JID, target) → the reactions the bridge has that puppet showing."""

    def __post_init__(self) -> None:
        self.stanza_ids = Memory(self.jid, "id", self.journal)
        self.originals = Memory(self.jid, "original", self.journal)
        self.quotes = Memory(self.jid, "quote", self.journal,
                             lambda q: [q.nick, q.text], lambda v: Quote(*v))  # fmt: skip
        self.reactions = Memory(self.jid, "reaction", self.journal)
        self.sent_reactions = Memory(self.jid, "sent_reaction", self.journal)

    def restore(self, entry: Remembered) -> None:
        """Take back what a memory of this room stored before a restart."""
        memories: tuple[Memory[Any, Any], ...] = (
            self.stanza_ids, self.originals, self.quotes, self.reactions, self.sent_reactions
        )  # fmt: skip
        memory = next((m for m in memories if m.name == entry.memory), None)
        if memory is not None:
            memory.restore(entry.key, entry.value)

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
        self.leaving.clear()
