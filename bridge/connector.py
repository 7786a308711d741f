"""The interface every network connector implements, and what the core offers them.

In the spirit of mautrix-go's ``bridgev2.NetworkConnector``: a small required core. The core
calls a connector only through these methods, and a connector reaches the core only through
`Host`; connectors never call each other.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from bridge.config.model import Config, Link, Person
from bridge.events import Event, Sender
from bridge.notices import Notice

if TYPE_CHECKING:
    from mautrix.util.async_db import Database

    from bridge.directory import RoomDirectory
    from bridge.links import Links
    from bridge.policy import Listed
    from bridge.store import Store


class DirectChatRefused(Exception):
    """A direct chat that cannot be opened; ``reason`` says why, for the person who asked (in
    their language; ``str()`` is the English text, for logs)."""

    def __init__(self, reason: Notice) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Refusal(StrEnum):
    """Why a message could not be delivered, as the sender's notice says it (the details of a
    `DeliveryError` go to the log, never to people)."""

    REFUSED = "refused"
    """The target network refused this message."""
    TOO_LARGE = "too_large"
    NOT_ALLOWED = "not_allowed"
    """The sender may not appear in that room (a restricted Tchap room, say)."""
    NOT_LISTED = "not_listed"
    """The sender's domain left their network's federation list while the message waited."""
    ROOM_OFF = "room_off"
    """The room is no longer bridged (its access rule or encryption changed)."""
    CLASSIFIED = "classified"
    """The message is marked above the classification level the target may carry."""
    CANNOT_ENCRYPT = "cannot_encrypt"
    FILE_UNAVAILABLE = "file_unavailable"
    """The attachment could not be fetched from where it was sent."""
    EXPIRED = "expired"
    """The network could not be reached for as long as messages are kept."""


class DeliveryError(Exception):
    """A send that failed because of this message or its room: it counts as an attempt.
    ``permanent`` ones are not retried (the target will never take it); ``reason`` is what the
    sender is told when it is given up."""

    def __init__(
        self, message: str, *, permanent: bool = False, reason: Refusal = Refusal.REFUSED
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.reason = reason


class Unavailable(Exception):
    """The target cannot take anything right now: not this message's fault, so it waits and
    no attempt is counted. ``network_down`` when the whole network is unreachable (connection
    refused, time-outs, 5xx answers, rate limits), as opposed to one room that is not ready yet;
    every queue to a network that is down resumes as soon as it answers again."""

    def __init__(self, message: str, *, network_down: bool = True) -> None:
        super().__init__(message)
        self.network_down = network_down


@dataclass(frozen=True)
class Outgoing:
    """One event to render on one target network, with its references already translated."""

    event: Event
    room_id: str
    """The target room."""
    reply_to: str | None
    """Target-network ID of the message replied to (None if unknown or not a reply)."""
    relates_to: str | None
    """Target-network ID of the message an edit, redaction or reaction applies to."""
    sender_is_local: bool
    """The sender has a real account on the target network: never ghost them there."""
    fetch_source_media: Callable[[str], Awaitable[bytes]]
    """Fetches bytes the source connector knows by reference (the sender's avatar): the
    target calls it only when it needs them, without ever talking to the source itself."""
    delivery_id: str = ""
    """Stable for this delivery across retries and restarts: a Matrix transaction ID, an XMPP
    origin-id or a mail's Message-ID made from it lets the target recognise a resend."""
    thread: str | None = None
    """Target-network ID of the root of the thread the message is posted in (None if unknown or
    not in a thread)."""


class Host(Protocol):
    """What the core offers a connector."""

    config: Config
    store: Store
    directory: RoomDirectory
    links: Links

    @property
    def federation(self) -> Listed:
        """The domains each network's federation list in force names, as `bridge.policy`
        reads them (``sender_refusal(host.config, host.federation, …)``): it changes while
        the bridge runs, so it is read for every decision, never kept."""
        ...

    async def ingest(self, event: Event) -> bool:
        """Store an event for delivery; returns False if it was already known.

        A connector acknowledges its source only after this returned.
        """
        ...

    async def typing(self, network: str, room: str, sender: Sender, typing: bool) -> None:
        """Someone started (or stopped) typing in a bridged room: shown on the other networks
        that can show it, right away. Typing is fleeting, so it is neither stored nor retried."""
        ...

    def read(self, network: str, room: str, sender: Sender, remote_id: str) -> None:
        """``sender`` has read ``room`` of ``network`` up to the message ``remote_id`` (its ID
        there): shown, batched (`bridge.read_markers`), on the link's other networks that can
        show it. A marker is a hint, neither stored nor retried, and taking it never waits; a
        connector calls this only for networks whose admins let read markers out."""
        ...

    def state(self, kind: str) -> Database:
        """The kind's own tables (`bridge.kinds.Kind.state`) in the bridge's database, opened
        and migrated before any connector starts. A connector keeps what only its kind needs
        there; what every kind shares (the event-ID map, created rooms) it reads through
        ``store``."""
        ...

    async def idle(self) -> bool:
        """Whether nothing at all waits in the outbox (a connector may then let go of what it
        kept for deliveries, such as received files)."""
        ...

    def leads(self, network: str) -> bool:
        """Whether this instance leads ``network`` (always, with one instance): what only one
        instance may do, such as creating a link's room, is done by the leader."""
        ...

    async def direct_chat(
        self, network: str, room: str, sender: Sender, peer_network: str, peer_user: str
    ) -> str:
        """The link of the one-to-one chat between ``sender`` (in ``room`` of ``network``) and
        ``peer_user`` of ``peer_network``, opening the peer's room the first time.

        Raises `DirectChatRefused` when the peer's network cannot or may not open it.
        """
        ...


class Connector(ABC):
    """One configured network."""

    name: str

    @property
    def exclusive(self) -> bool:
        """Whether only one instance of a deployment may run this network at a time (a
        connection its server allows once, state only one process may hold). With several
        instances, it runs only on the one leading it, and starts on another when that one is
        gone: `start` may then be called again after `stop`."""
        return False

    @abstractmethod
    async def start(self) -> None:
        """Connect, join or create the link rooms and bind them in the directory, then start
        receiving. Called before the outbox starts delivering to this connector. Must not raise
        because the network is down: it retries in the background instead."""

    rooms_ready: asyncio.Event | None = None
    """Set by a connector that sets its rooms up at start once every room that can be is
    (its own Event, made in its constructor); None: ready as soon as started."""

    def is_ready(self) -> bool:
        """Whether this network passes messages: every room of it that can be set up is (its
        connection stands, its rooms are joined). The gateway is ready when every network it
        runs is; a network still retrying some rooms in the background counts as ready."""
        return self.rooms_ready is None or self.rooms_ready.is_set()

    def problem(self) -> str | None:
        """Why this network passes nothing until an admin acts (its credentials were
        refused…), for the readiness answer; None while it is only starting or retrying."""
        return None

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and close connections. Undelivered work stays in the outbox."""

    @abstractmethod
    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        """Render and send one event; return its ID on this network (None if it has none).

        Called by the outbox, one event at a time per link, in order, possibly again after a
        crash (``out.delivery_id`` is the same every time: pass it on where the network
        recognises a resend). Raise `Unavailable` when the network (or the room) cannot take
        anything right now, `DeliveryError` when it will not take this message (``permanent``
        when it never will); any other exception counts as a failed attempt. Must not call
        other connectors or the store's outbox. A membership event (`bridge.events.MEMBERSHIP`)
        has the sender's ghost or puppet join or leave the room, or does nothing (returning
        None) where this kind shows no remote members.
        """

    @abstractmethod
    async def fetch_media(self, ref: str) -> bytes:
        """The bytes of an attachment this connector received (``Attachment.ref``)."""

    @abstractmethod
    async def notify(self, room_id: str, text: str) -> None:
        """Post a notice from the bridge itself into a room of this network (delivery
        failures, refused links, answers to in-room commands)."""

    @property
    def room_commands(self) -> bool:
        """Whether people here can give the bridge in-room commands (`bridge.room_commands`):
        a message of theirs that starts with ``!passerelle`` is then answered with `notify`
        in their room and never passed on. Only where `notify` reaches the room's people and
        no one else, as the room saw the command."""
        return True

    async def members(self, room_id: str) -> list[str]:
        """Who is in ``room_id`` of this network, by the names it shows them under, the
        bridge's own users (bot, ghosts, puppets) left out: what ``!passerelle who`` in a
        linked room on another network lists. Called only when someone asks; may ask the
        network (the core bounds the time) and raise when it cannot (the answer says so)."""
        return []

    # Live reload: the core has already swapped the config (``host.config`` is the new one).

    @abstractmethod
    async def link_added(self, link: Link) -> None:
        """The link now has a room on this running network: set it up as `start` does (in the
        background when the network cannot do it now) and bind it in the directory."""

    @abstractmethod
    async def link_removed(self, link: Link, room_id: str | None, notice: Notice) -> None:
        """The link no longer has this room (``link`` as it was; ``room_id`` None when it was
        never set up; the core has unbound it and dropped what was queued for it): where this
        instance leads the network, post ``notice`` there in the network's language and take
        the bridge's own users out of it (a room the bridge created stays, with its people);
        then forget the room."""

    async def senders_refused(self, networks: Collection[str]) -> None:
        """Some people of these networks are no longer bridged out of them: their domain left
        the network's federation list, the list expired, or the network newly takes its
        domains from a list. Called at once (and after every start, once this network is
        ready); where this instance leads this network, take every ghost or puppet that
        `bridge.policy.ghost_refused` refuses out of its rooms (the rooms of links with one of
        ``networks``). By default nothing: a kind whose remote people sit in no room (mail)."""
        return None

    async def people_changed(self, people: Sequence[Person]) -> None:
        """These people's names or organisations changed: show them as they are now where
        they already appear on this network. By default nothing: the new name shows with
        their next message."""
        return None


class ServesHttp(ABC):
    """Optional capability: the network's server calls the bridge over HTTP (a homeserver's
    appservice transactions). The gateway serves ``routes`` under ``/as/<network>`` on its
    listen address, before any connector starts, and hands each request to the network's
    connector of the moment (a reload may replace it), so every connector of one kind has the
    same routes; the handlers must check who calls."""

    @property
    @abstractmethod
    def routes(self) -> Sequence[web.RouteDef]: ...


class DirectChats(ABC):
    """Optional capability: the bridge can open a one-to-one room with a user of this network."""

    @abstractmethod
    async def open_direct(self, link_id: str, user_id: str, sender: Sender) -> str:
        """Open a room where ``sender`` (shown as this network shows remote people) talks with
        ``user_id`` alone, and return its ID. Called once per direct chat, before its first
        message is delivered; raise `DirectChatRefused` when policy forbids it."""


class Typing(ABC):
    """Optional capability: the network can show that a remote person is typing."""

    @abstractmethod
    async def set_typing(self, room_id: str, sender: Sender, typing: bool) -> None:
        """Show (or stop showing) ``sender`` typing in ``room_id``. Best effort: called outside
        the outbox, may do nothing when the sender has not appeared in the room yet."""


class ReadMarkers(ABC):
    """Optional capability: the network can show up to where a remote person has read."""

    @abstractmethod
    async def show_read(self, room_id: str, sender: Sender, remote_id: str) -> None:
        """Show ``sender`` having read ``room_id`` up to the message ``remote_id`` (its ID on
        this network). Best effort, called outside the outbox: does nothing where this network
        shows no read markers (its admins turned them off) or the sender's ghost or puppet is
        not in the room (a marker never brings anyone in)."""
