"""The XMPP connector: linked MUCs on an agency's server, with one puppet per remote person.

Receiving: the bridge's own occupant (the component's bare JID, nickname ``nick``) listens in
every linked MUC; each room's messages go through one queue and one worker, so they are stored in
the order the room sent them and a slow room holds up no other. A message's author is who the
room vouches for (its presences, by XEP-0421 occupant-id or nickname: `Room.author`), never what
the message says; who sends is checked before the message is read any further. Messages of the
bridge's own puppets (and notices) are recognised and not bridged back; the history a room
replays when the bridge joins is bridged only after a message the bridge already knows, i.e.
what was said while it was away (see `connectors.xmpp.rooms.Room.replay_anchored`).

Sending: a remote person's puppet joins the MUC on their first message (nickname from their
name, a suffix if it is taken) and posts there; a send returns only once the room echoed the
message, with the room's stanza-id, so a lost connection means "retry", never "lost".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from slixmpp.plugins.xep_0410 import PingStatus

from bridge.config.model import Link
from bridge.connector import (
    Connector,
    DeliveryError,
    Host,
    Outgoing,
    ReadMarkers,
    Typing,
    Unavailable,
)
from bridge.events import MEMBERSHIP, Event, Kind, Sender
from bridge.members import mirrors
from bridge.naming import address_parts
from bridge.notices import Notice
from bridge.policy import SenderRefusal, ghost_refused, listed_refusal
from connectors.xmpp.addresses import describe_puppet, nick_candidates, nickname, puppet_jid
from connectors.xmpp.component import FATAL, Component, Handlers, Missing, NotConnected, VCard
from connectors.xmpp.config import XmppNetwork
from connectors.xmpp.direct import OneToOne
from connectors.xmpp.fetch_policy import FilePolicy
from connectors.xmpp.files import Files
from connectors.xmpp.rooms import REMEMBERED, Arrival, Journal, Quote, Room, Seat
from connectors.xmpp.state import XmppState
from connectors.xmpp.translate import (
    NS_MARKERS,
    NS_OCCUPANT_ID,
    ORIGIN_PREFIX,
    MalformedStanza,
    Message,
    Oob,
    Presence,
    Reply,
    chat_state_stanza,
    displayed_stanza,
    edit_event,
    fallback_id,
    groupchat_stanza,
    join_presence,
    leave_presence,
    message_body,
    message_event,
    origin_id,
    parse_message,
    parse_presence,
    parse_reaction_ref,
    quote_fallback,
    reaction_changes,
    reaction_ref,
    reactions_stanza,
    retraction_reason,
    retraction_stanza,
    split_direct_key,
    split_jid,
    stanza_id_of,
    thread_fallback,
)
from connectors.xmpp.vcards import VCards

JOIN_TIMEOUT = 20.0
DISCO_TIMEOUT = 10.0
ECHO_TIMEOUT = 20.0
MAINTENANCE_TICK = 5.0
PING_TIMEOUT = 30.0
INGEST_RETRY_MAX = 30.0
JOIN_RETRY_MAX = 300.0
PRUNE_EVERY = 5000
"""Memory entries stored between two prunings of the state table."""
_PERMANENT_JOIN = {"forbidden", "registration-required", "not-allowed", "jid-malformed",
                   "not-authorized"}  # fmt: skip
_PERMANENT_SEND = {"forbidden", "not-allowed", "policy-violation", "bad-request",
                   "not-authorized"}  # fmt: skip


class Refused(Exception):
    """The room answered a join or a message with an error."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


@dataclass(frozen=True)
class _Join:
    """A join the bridge sent (as its listener or a puppet), waiting for the room's answer: its
    self-presence, or an error carrying the join's own id (never an error that answers another
    stanza to the room, such as a leave)."""

    stanza_id: str
    future: asyncio.Future[Presence]
    nick: str


@dataclass(frozen=True)
class _Echo:
    """A message the bridge posted, waiting for the room to echo it from ``room/nick``."""

    future: asyncio.Future[str]
    room: str
    nick: str | None


class XmppConnector(Connector, Typing, ReadMarkers):
    def __init__(self, network: XmppNetwork, host: Host) -> None:
        self.name = network.name
        self.network = network
        self.host = host
        self.log = logging.getLogger(f"passerelle.{network.name}")
        self.bot_jid = network.component
        self.journal = Journal()
        self.rooms: dict[str, Room] = {}
        for link in host.config.links:
            spec = link.rooms.get(self.name)
            if spec is not None and spec.room is not None:
                self.rooms[spec.room] = Room(spec.room, link.id, self.journal)
        self.rooms_ready: asyncio.Event = asyncio.Event()
        self.component = Component(
            network.component,
            network.secret,
            network.server_host,
            network.server_port,
            Handlers(
                online=self._online,
                offline=self._offline,
                unreachable=self.rooms_ready.set,
                message=self._on_message,
                presence=self._on_presence,
                vcard=self._vcard,
            ),
            gateway_name=network.nick,
            quiet=self.rooms.keys(),
        )
        self.files = Files(
            self.component,
            network.domain,
            network.upload_service,
            network.max_file_bytes,
            FilePolicy(network.file_hosts, network.file_private_networks),
        )
        self._echoes: dict[str, _Echo] = {}
        self._joins: dict[tuple[str, str], _Join] = {}
        self._seat_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._joining: set[str] = set()
        self.vcards = VCards()
        self.direct = OneToOne(network, host, self.component, self.files, self._ingest)
        self._identities: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        """(room, occupant-id, real JID) learned from presences, for the store."""
        self._tasks: list[asyncio.Task[None]] = []
        self._room_tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._owners: dict[str, tuple[str, str]] = {}
        """Puppet JID → the address parts it was made of (`bridge.naming.address_parts`):
        who it stands for, even when its localpart is hashed."""

    @property
    def exclusive(self) -> bool:
        """An XMPP server accepts one connection per component name."""
        return True

    @property
    def state(self) -> XmppState:
        """This network's rows of the XMPP table (available once the gateway started)."""
        return XmppState(self.host.state(self.network.kind), self.name)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._tasks = []
        self._room_tasks = {}
        await self.files.open()
        for room_jid, occupant_id, real_jid in await self.state.occupant_identities():
            if room_jid in self.rooms:
                self.rooms[room_jid].identities[occupant_id] = real_jid
        await self.state.prune_memories(REMEMBERED)
        for entry in await self.state.memories():
            if entry.room in self.rooms:
                self.rooms[entry.room].restore(entry)
        for room in self.rooms.values():
            self._open(room)
        self._tasks.append(asyncio.create_task(self._maintain(), name=f"xmpp:{self.name}"))
        self._tasks.append(asyncio.create_task(self.direct.work(), name=f"xmpp-chats:{self.name}"))
        self._tasks.append(
            asyncio.create_task(self._store_identities(), name=f"xmpp-occupants:{self.name}")
        )
        self._tasks.append(
            asyncio.create_task(self._store_memories(), name=f"xmpp-memories:{self.name}")
        )
        self.component.start()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._save_memories()
        if self.component.online:
            for room in self.rooms.values():
                for jid, seat in room.seats.items():
                    self._send(leave_presence(f"{room.jid}/{seat.nick}", jid))
                if room.nick is not None:
                    self._send(leave_presence(f"{room.jid}/{room.nick}", self.bot_jid))
        await self.component.stop()
        await self.files.close()

    def _open(self, room: Room) -> None:
        """Bind the room and start passing on what it receives."""
        self.host.directory.bind(room.link_id, self.name, room.jid)
        task = asyncio.create_task(self._work(room), name=f"xmpp:{room.jid}")
        self._room_tasks[room.jid] = task
        self._tasks.append(task)

    async def link_added(self, link: Link) -> None:
        """The new link's MUC is joined now when connected, else by the room maintenance."""
        spec = link.rooms[self.name]
        if spec.room is None or spec.room in self.rooms:
            return
        room = self.rooms[spec.room] = Room(spec.room, link.id, self.journal)
        self._open(room)
        if self.component.online:
            await self._join(room)

    async def link_removed(self, link: Link, room_id: str | None, notice: Notice) -> None:
        """The bridge's notice, then its occupants (its own and the puppets) leave the MUC."""
        room = self.rooms.get(room_id) if room_id is not None else None
        if room is None:
            return
        if room.joined:
            try:
                await self.notify(room.jid, notice.render(self.network.language))
            except (DeliveryError, NotConnected) as e:
                self.log.warning("Could not post the unbridged notice in %s: %s", room.jid, e)
        for jid, seat in room.seats.items():
            self._send(leave_presence(f"{room.jid}/{seat.nick}", jid))
        if room.nick is not None:
            self._send(leave_presence(f"{room.jid}/{room.nick}", self.bot_jid))
        del self.rooms[room.jid]
        task = self._room_tasks.pop(room.jid, None)
        if task is not None:
            task.cancel()
            self._tasks.remove(task)
        self.log.info("Left %s (link %s removed from the config)", room.jid, link.id)

    async def senders_refused(self, networks: Collection[str]) -> None:
        """Each puppet of someone no longer let out of ``networks`` leaves the MUCs of their
        links (it joins again with their next message, should they be let out again)."""
        config = self.host.config
        for room in self.rooms.values():
            link = self.host.links.get(room.link_id)
            if not set(networks) & (link.rooms.keys() - {self.name}):
                continue
            for jid, seat in list(room.seats.items()):
                owner = self._owners.get(jid)
                if owner is None or not ghost_refused(
                    config, self.host.federation, link, *owner, self.name
                ):
                    continue
                self._send(leave_presence(f"{room.jid}/{seat.nick}", jid))
                del room.seats[jid]
                self.log.info("%s left %s (link %s): the federation list of their network no "
                              "longer lets them out", seat.nick, room.jid, link.id)  # fmt: skip

    def _send(self, el: ET.Element) -> None:
        try:
            self.component.send_element(el)
        except NotConnected:
            pass

    async def _online(self) -> None:
        """Connected (again): every linked MUC is joined afresh."""
        for room in self.rooms.values():
            room.left()
        await asyncio.gather(*(self._join(room) for room in self.rooms.values()))
        self.rooms_ready.set()

    def _offline(self) -> None:
        for room in self.rooms.values():
            room.left()
        futures: list[asyncio.Future[Any]] = [echo.future for echo in self._echoes.values()]
        futures += [join.future for join in self._joins.values()]
        for future in futures:
            if not future.done():
                future.set_exception(NotConnected("lost the XMPP server connection"))

    async def _join(self, room: Room) -> None:
        """The bridge's own occupant joins ``room``, asking for its history (to catch up)."""
        if room.jid in self._joining:
            return
        self._joining.add(room.jid)
        try:
            room.replay_anchored = False
            try:
                features = await self.component.features(room.jid, DISCO_TIMEOUT)
            except Missing:
                features = None  # nobody made the room yet: the join creates it
            else:
                # An occupant left over from an earlier run (the server keeps a component's
                # occupants when it disconnects) would make this join a mere presence update,
                # without history; leaving first makes it a fresh join. Only a room that exists
                # can hold one: Prosody answers a leave to any other with item-not-found.
                self._send(leave_presence(f"{room.jid}/{self.network.nick}", self.bot_jid))
            room.occupant_ids = features is not None and NS_OCCUPANT_ID in features
            room.markers = features is not None and NS_MARKERS in features
            for nick in nick_candidates(self.network.nick):
                try:
                    joined = await self._occupy(room.jid, self.bot_jid, nick, history=True)
                except Refused as e:
                    if e.condition == "conflict":
                        continue
                    self._join_failed(room, e.condition)
                    return
                room.nick = joined.nick
                room.joined = True
                room.join_failures = 0
                self.log.info("Joined %s as %s (link %s)", room.jid, room.nick, room.link_id)
                if 201 in joined.statuses:
                    await self._created(room)
                return
            self._join_failed(room, "every nickname is taken")
        except NotConnected:
            return
        finally:
            self._joining.discard(room.jid)

    async def _created(self, room: Room) -> None:
        """The bridge's join created ``room`` (status 201): it accepts the default
        configuration, which unlocks the room for everyone else, and learns its features."""
        self.log.info("Created %s; accepting its default configuration", room.jid)
        if await self.component.accept_default_config(room.jid, self.bot_jid, DISCO_TIMEOUT):
            try:
                features = await self.component.features(room.jid, DISCO_TIMEOUT)
            except Missing:
                features = None
            room.occupant_ids = features is not None and NS_OCCUPANT_ID in features
            room.markers = features is not None and NS_MARKERS in features

    def _join_failed(self, room: Room, why: str) -> None:
        room.join_failures += 1
        delay = min(JOIN_RETRY_MAX, MAINTENANCE_TICK * 2 ** (room.join_failures - 1))
        room.next_join = time.monotonic() + delay
        self.log.error("Cannot join %s: %s (retrying in %.0fs)", room.jid, why, delay)

    async def _occupy(
        self, room_jid: str, jid: str, nick: str, *, history: bool, photo_hash: str | None = None
    ) -> Presence:
        """Join (or change nickname in) a room as ``jid``; the room's self-presence in answer
        (with the nickname it gave)."""
        key = (room_jid, jid)
        join = _Join(f"{ORIGIN_PREFIX}join-{uuid.uuid4().hex}",
                     asyncio.get_running_loop().create_future(), nick)  # fmt: skip
        self._joins[key] = join
        try:
            self.component.send_element(join_presence(
                f"{room_jid}/{nick}", jid, join.stanza_id, history=history, photo_hash=photo_hash
            ))  # fmt: skip
            return await asyncio.wait_for(join.future, JOIN_TIMEOUT)
        except TimeoutError:
            raise Refused("remote-server-timeout") from None
        finally:
            if self._joins.get(key) is join:
                del self._joins[key]

    async def _maintain(self) -> None:
        """Rejoin rooms the bridge is not in, and self-ping (XEP-0410) the ones it is in, to
        notice a presence the room dropped without telling (e.g. after a server-side kick)."""
        last_ping = time.monotonic()
        while True:
            await asyncio.sleep(MAINTENANCE_TICK)
            if not self.component.online:
                continue
            try:
                now = time.monotonic()
                rejoin = [r for r in self.rooms.values() if not r.joined
                          and r.jid not in self._joining and r.next_join <= now]  # fmt: skip
                await asyncio.gather(*(self._join(room) for room in rejoin))
                if now - last_ping < self.network.self_ping_interval:
                    continue
                last_ping = now
                for room in self.rooms.values():
                    if room.joined and room.nick is not None:
                        await self._self_ping(room)
            except Exception:
                self.log.exception("Room maintenance failed; trying again")

    async def _self_ping(self, room: Room) -> None:
        status = await self.component.self_ping(
            f"{room.jid}/{room.nick}", self.bot_jid, PING_TIMEOUT
        )
        if status is PingStatus.DISCONNECTED:
            self.log.warning("No longer in %s (self-ping); rejoining", room.jid)
            room.left()

    # -- receiving ---------------------------------------------------------------------------------

    def _on_presence(self, el: ET.Element) -> None:
        try:
            pres = parse_presence(el)
        except MalformedStanza as e:
            self.log.info("Ignoring a malformed presence: %s", e)
            return
        room = self.rooms.get(pres.room)
        to = split_jid(pres.to)[0]
        if room is None:
            self.log.debug("Ignoring presence from %s to %s", pres.sender, pres.to)
            return
        join = self._joins.get((room.jid, to))
        if pres.type == "error":
            if join is not None and pres.id == join.stanza_id and not join.future.done():
                join.future.set_exception(Refused(pres.error or "undefined-condition"))
            else:
                self.log.warning("%s refused %s: %s", room.jid, to, pres.error)
            return
        if pres.is_self:
            self._own_presence(room, to, pres.nick, pres.type, pres.statuses)
            if pres.type != "unavailable":
                # The room tells each of the bridge's occupants (puppets too) who it is, even
                # where it hides real JIDs: how the bridge knows its own messages in history.
                self._occupant(room, pres.nick, to, pres.occupant_id)
                if join is not None and not join.future.done():
                    join.future.set_result(pres)
        if to != self.bot_jid or pres.is_self:
            return
        if pres.type == "unavailable":
            real = room.occupants.pop(pres.nick, None)
            if 303 in pres.statuses and pres.new_nick:
                self._occupant(room, pres.new_nick, pres.real_jid, pres.occupant_id)
            elif real is not None:
                self._came_or_went(room, pres.nick, real, joined=False)
            room.leaving.discard(pres.nick)
        else:
            new = pres.nick not in room.occupants
            self._occupant(room, pres.nick, pres.real_jid, pres.occupant_id)
            if new:
                self._came_or_went(room, pres.nick, room.occupants[pres.nick], joined=True)

    def _came_or_went(self, room: Room, nick: str, real: str, *, joined: bool) -> None:
        """Someone joined or left while the bridge is in the room: passed on in the room's
        order (`_arrived`) unless it is the bridge's own occupant or one of its puppets (by
        real JID where the room shows it, else by the nicknames they hold, take or give up)."""
        own = (
            real == self.bot_jid
            or real.rpartition("@")[2] == self.bot_jid
            or nick == room.nick
            or nick in room.puppet_nicks()
            or nick in room.leaving
            or any(key[0] == room.jid and join.nick == nick for key, join in self._joins.items())
        )
        if room.joined and not own:
            room.queue.put_nowait(Arrival(nick, real or f"{room.jid}/{nick}", joined))

    def _occupant(
        self, room: Room, nick: str, real_jid: str | None, occupant_id: str | None
    ) -> None:
        """Note who an occupant is, as the room's presence tells; a new occupant-id identity
        is stored (by `_store_identities`, in order)."""
        if room.occupant_seen(nick, real_jid, occupant_id) and occupant_id is not None:
            self._identities.put_nowait((room.jid, occupant_id, room.identities[occupant_id]))

    async def _store_identities(self) -> None:
        while True:
            room, occupant_id, real_jid = await self._identities.get()
            try:
                await self.state.save_occupant_identity(room, occupant_id, real_jid)
            except Exception:
                self.log.exception("Could not store who occupant %s of %s is", occupant_id,
                                   room)  # fmt: skip

    async def _store_memories(self) -> None:
        """Write what the rooms' memories learned, in batches: whatever was noted while the
        previous batch was being written goes in the next one."""
        stored = 0
        while True:
            await self.journal.pending.wait()
            stored += await self._save_memories()
            if stored >= PRUNE_EVERY:
                stored = 0
                try:
                    await self.state.prune_memories(REMEMBERED)
                except Exception:
                    self.log.exception("Could not prune the stored room memories")

    async def _save_memories(self) -> int:
        """Store the journal's entries; how many. Ones that cannot be stored are only lost to
        a restart (replies and reactions to those messages lose their context then)."""
        entries = self.journal.take()
        if entries:
            try:
                await self.state.save_memories(entries)
            except Exception:
                self.log.exception("Could not store %d room memory entries", len(entries))
        return len(entries)

    def _own_presence(
        self, room: Room, jid: str, nick: str, ptype: str, statuses: frozenset[int]
    ) -> None:
        """A presence about one of the bridge's own occupants (status 110)."""
        if ptype != "unavailable" or 303 in statuses or self._stopping:
            return
        if jid == self.bot_jid:
            if room.jid in self._joining:
                return  # the leave `_join` sends first
            self.log.warning("Removed from %s (status %s); rejoining", room.jid, sorted(statuses))
            room.left()
        elif room.seats.pop(jid, None) is not None:
            self.log.info("%s left %s", describe_puppet(jid.partition("@")[0]), room.jid)

    def _on_message(self, el: ET.Element) -> None:
        try:
            msg = parse_message(el)
        except MalformedStanza as e:
            self._malformed(el, e)
            return
        if msg.type == "error":
            echo = self._echoes.get(msg.id or "")
            if echo is not None and msg.room == echo.room and not echo.future.done():
                echo.future.set_exception(Refused(msg.error or "undefined-condition"))
            else:
                self.log.info("Error from %s: %s", msg.sender, msg.error)
            return
        to = split_jid(msg.to)[0]
        if msg.type != "groupchat":
            self._direct(el, msg, to)
            return
        room = self.rooms.get(msg.room)
        if room is None:
            self.log.info("Ignoring a group message from %s, which is not linked", msg.room)
            return
        echo = self._echoes.get(msg.origin_id or msg.id or "")
        if (
            echo is not None
            and (echo.room, echo.nick) == (room.jid, msg.nick)
            and msg.delayed_by is None
            and not echo.future.done()
        ):
            echo.future.set_result(msg.stanza_id(room.jid) or msg.origin_id or msg.id or "")
        if to == self.bot_jid:  # each puppet gets a copy too; only the listener's is bridged
            room.queue.put_nowait(msg)

    def _malformed(self, el: ET.Element, error: MalformedStanza) -> None:
        sender = el.get("from", "?")
        if el.get("type") in ("groupchat", "error"):
            # Every puppet in the room gets a copy; the listener's is the one worth a log line.
            listener = split_jid(el.get("to", ""))[0] == self.bot_jid
            self.log.log(logging.INFO if listener else logging.DEBUG,
                         "Not bridging a malformed message from %s: %s", sender, error)  # fmt: skip
            return
        self.log.info("Refusing a malformed message from %s: %s", sender, error)
        self.component.send_error(el, "bad-request", str(error))

    def _direct(self, el: ET.Element, msg: Message, to: str) -> None:
        """A message to a puppet or to the bridge outside a MUC."""
        sender = split_jid(msg.sender)[0]
        if msg.body is None and msg.oob is None:
            if msg.displayed is not None and self.network.read_markers:
                if self._sender_refusal(sender) is None:
                    self.direct.read(msg)
            return  # chat states, receipts, invitations: nothing to answer
        refusal = self._sender_refusal(sender)
        if refusal is not None:
            self.log.info("Refusing a message from %s to %s: %s", sender, to, refusal)
            self.component.send_error(
                el, "forbidden", f"{sender.rpartition('@')[2]} is not allowed to use this gateway"
            )
            return
        if to == self.bot_jid:
            self.component.send_error(el, "service-unavailable", "Write to a person's address.")
            return
        self.direct.received(el, msg)

    async def _work(self, room: Room) -> None:
        while True:
            item = await room.queue.get()
            try:
                if isinstance(item, Arrival):
                    await self._arrived(room, item)
                else:
                    await self._receive(room, item)
            except FATAL:
                raise
            except BaseException:
                what = item.nick if isinstance(item, Arrival) else item.id
                self.log.exception("Could not bridge %s in %s", what, room.jid)

    async def _arrived(self, room: Room, arrival: Arrival) -> None:
        """A join or leave, mirrored in the link's other rooms where it mirrors members."""
        if self._sender_refusal(arrival.author) is not None or arrival.nick in room.puppet_nicks():
            return

        async def count() -> int:
            return len(room.occupants)

        if not await mirrors(self.host.links.get(room.link_id), False, count):
            return
        kind = Kind.JOIN if arrival.joined else Kind.LEAVE
        sender = Sender(network=self.name, user_id=arrival.author, display_name=arrival.nick)
        await self._ingest(Event(
            kind=kind, link_id=room.link_id, network=self.name, room_id=room.jid,
            remote_id=f"{room.jid}/{arrival.nick}#{kind.value}-{uuid.uuid4().hex}", sender=sender,
        ))  # fmt: skip

    async def _receive(self, room: Room, msg: Message) -> None:
        if not msg.nick or (msg.has_subject and msg.body is None):
            return  # the room speaking for itself: subject, configuration notices
        stanza_id = msg.stanza_id(room.jid)
        remote_id = stanza_id or msg.id or fallback_id(msg)
        if stanza_id or msg.body is not None:  # not typing notifications: nothing refers to them
            room.remember_ids(remote_id, msg.id, msg.origin_id)
        history = msg.delayed_by == room.jid
        author = room.author(msg)
        if self._is_own(room, msg, author):
            room.replay_anchored = room.replay_anchored or history
            return
        refusal = self._refusal(msg, author)
        if refusal is not None or author is None:
            if history and await self.host.store.is_known(self.name, remote_id):
                room.replay_anchored = True
            self.log.log(logging.DEBUG if history else logging.INFO,
                         "Not bridging %s from %s in %s: %s", remote_id, msg.nick, room.jid,
                         refusal)  # fmt: skip
            return
        sender = Sender(network=self.name, user_id=author, display_name=msg.nick)
        if msg.body is None and msg.displayed is not None:
            if room.markers and self.network.read_markers and not history:
                read = room.stanza_ids.get(msg.displayed) or msg.displayed
                self.host.read(self.name, room.jid, sender, read)
            return
        if msg.chat_state is not None and msg.body is None and not history:
            await self.host.typing(self.name, room.jid, sender, msg.chat_state == "composing")
            return
        events = self._events(room, msg, remote_id, sender)
        if history:
            if await self.host.store.is_known(self.name, remote_id):
                room.replay_anchored = True
                return
            if not room.replay_anchored:
                return  # said before the bridge was ever here
        for event in events:
            await self._ingest(event)

    def _refusal(self, msg: Message, author: str | None) -> str | None:
        """Why a message (not the bridge's own) is not bridged, checked before it is read any
        further: an author the room never vouched for, a domain not allowed, a file the bridge
        would not fetch."""
        if author is None:
            return "the room never showed who that is"
        refusal = self._sender_refusal(author)
        if refusal is not None:
            return f"{author}: {refusal}"
        if msg.oob is not None:
            refusal = self.files.refusal(msg.oob.url)
            if refusal is not None:
                return f"its file is refused: {refusal}"
        return None

    async def _ingest(self, event: Event) -> None:
        """Store an event; XMPP cannot redeliver, so a failing store is retried (in order)."""
        delay = 1.0
        while True:
            try:
                await self.host.ingest(event)
                return
            except Exception:
                self.log.exception("Could not store %s; retrying in %.0fs", event.remote_id,
                                   delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, INGEST_RETRY_MAX)

    def _is_own(self, room: Room, msg: Message, author: str | None) -> bool:
        """Whether the bridge's occupant or one of its puppets wrote ``msg``: by the author
        the room vouches for, or the nickname one of them holds there now."""
        return (
            author is not None
            and (author == self.bot_jid or author.rpartition("@")[2] == self.bot_jid)
        ) or (msg.nick == room.nick or msg.nick in room.puppet_nicks())

    def _sender_refusal(self, jid: str) -> str | None:
        """Why people of this JID's domain are not bridged, if they are not: the domain is not
        in ``allowed_domains``, or not on the network's federation list in force (an occupant
        JID counts as the MUC service's domain: the room hides who they are)."""
        domain = split_jid(jid)[0].rpartition("@")[2]
        refusal = (
            listed_refusal(self.host.federation, self.name, domain)
            if domain in self.network.allowed_domains
            else SenderRefusal.DOMAIN_NOT_ALLOWED
        )
        return f"{refusal.explain(domain)} ({refusal.value})" if refusal is not None else None

    def _events(self, room: Room, msg: Message, remote_id: str, sender: Sender) -> list[Event]:
        """The events one MUC message of an allowed author makes, updating what the room
        remembers (quotes, corrections, reactions) whether or not they are bridged: replayed
        history refills it."""
        make = functools.partial(Event, link_id=room.link_id, network=self.name,
                                 room_id=room.jid, sender=sender)  # fmt: skip
        retracted = msg.retract_id or msg.retract_origin_id
        if retracted:
            target = room.stanza_ids.get(retracted) or retracted
            return [make(kind=Kind.REDACTION, remote_id=remote_id, relates_to=target,
                         reason=retraction_reason(msg.body))]  # fmt: skip
        if msg.reactions is not None:
            target = room.stanza_ids.get(msg.reactions.target) or msg.reactions.target
            key = (sender.user_id, target)
            before = room.reactions.get(key) or {}
            added, removed = reaction_changes(before, msg.reactions.keys, remote_id)
            room.reactions[key] = {k: before[k] if k in before else added[k]
                                   for k in msg.reactions.keys}  # fmt: skip
            events = [
                make(kind=Kind.REACTION, remote_id=rid, relates_to=target, reaction=k)
                for k, rid in added.items()
            ]
            events += [
                make(kind=Kind.REDACTION, remote_id=f"{rid}/withdrawn/{remote_id}", relates_to=rid)
                for rid in removed
            ]
            return events
        if msg.replace_id is not None:
            original = room.resolve(msg.replace_id)
            if original is None:
                self.log.info("Correction %s of an unknown message %s in %s", remote_id,
                              msg.replace_id, room.jid)  # fmt: skip
                return []
            room.originals[remote_id] = original
            if msg.body:
                room.quotes[original] = Quote.of(msg.nick, msg.body)
            return [edit_event(msg, remote_id=remote_id, link_id=room.link_id,
                               network=self.name, sender=sender, relates_to=original)]  # fmt: skip
        reply_to = thread = None
        if msg.reply is not None:
            reply_to = room.stanza_ids.get(msg.reply.id) or msg.reply.id
        if msg.thread is not None:
            thread = room.stanza_ids.get(msg.thread) or msg.thread
        event = message_event(msg, remote_id=remote_id, link_id=room.link_id, network=self.name,
                              sender=sender, reply_to=reply_to, thread=thread)  # fmt: skip
        if event is None:
            return []
        shown = event.text or (event.attachment.name if event.attachment else "")
        room.quotes[remote_id] = Quote.of(msg.nick, shown)
        return [event]

    # -- sending -----------------------------------------------------------------------------------

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        room = self.rooms.get(out.room_id)
        if room is None and split_direct_key(out.room_id) is not None:
            return await self.direct.send(out, media)
        if room is None:
            raise DeliveryError(f"{out.room_id} is not a linked MUC", permanent=True)
        if not self.component.online:
            raise Unavailable("not connected to the XMPP server")
        if not room.joined:
            raise Unavailable(f"not in {room.jid} yet", network_down=False)
        event = out.event
        msg_id = origin_id(event.network, event.remote_id)
        try:
            if event.kind in MEMBERSHIP:
                await self._mirror_member(room, out)
                return None
            sender_jid, relay_name = await self._poster(room, out)
            if event.kind is Kind.REACTION:
                return await self._react(room, out, sender_jid, msg_id)
            earlier = room.stanza_ids.get(msg_id)
            if earlier is not None:
                return earlier  # an earlier attempt reached the room after all
            if event.kind is Kind.REDACTION:
                return await self._redact(room, out, sender_jid, msg_id)
            if event.kind is Kind.EDIT:
                assert event.relates_to is not None
                body = message_body(event, relay_name=relay_name)
                replace = origin_id(event.network, event.relates_to)
                el = groupchat_stanza(room.jid, sender_jid, msg_id, body, replace_id=replace)
                return await self._post(room, sender_jid, el, msg_id)
            return await self._message(room, out, media, sender_jid, relay_name, msg_id)
        except NotConnected as e:
            raise Unavailable(str(e)) from e
        except Refused as e:
            raise DeliveryError(
                f"{room.jid} refused it: {e.condition}", permanent=e.condition in _PERMANENT_SEND
            ) from e

    async def _poster(self, room: Room, out: Outgoing) -> tuple[str, str | None]:
        """Who posts: the sender's puppet, or the bridge itself with the sender's name in front
        when the sender has a real account on this network (never ghosted onto it)."""
        sender = out.event.sender
        if out.sender_is_local:
            return self.bot_jid, nickname(sender)
        parts = address_parts(self.host.config, sender)
        jid = puppet_jid(*parts, self.network.component)
        self._owners[jid] = parts
        await self._seat(room, jid, nickname(sender), out)
        return jid, None

    async def _mirror_member(self, room: Room, out: Outgoing) -> None:
        """The sender's puppet takes a seat (named, with their avatar) or gives it up; never
        for someone with an account here."""
        if out.sender_is_local:
            return
        sender = out.event.sender
        parts = address_parts(self.host.config, sender)
        jid = puppet_jid(*parts, self.network.component)
        if out.event.kind is Kind.JOIN:
            self._owners[jid] = parts
            await self._seat(room, jid, nickname(sender), out)
            return
        seat = room.seats.pop(jid, None)
        if seat is not None:
            room.leaving.add(seat.nick)
            self._send(leave_presence(f"{room.jid}/{seat.nick}", jid))

    async def _seat(self, room: Room, jid: str, base: str, out: Outgoing) -> None:
        """Have the puppet ``jid`` in ``room`` under (a free variant of) ``base``."""
        seat = room.seats.get(jid)
        if seat is not None and seat.base == base:
            return
        async with self._seat_locks[(room.jid, jid)]:
            seat = room.seats.get(jid)
            if seat is not None and seat.base == base:
                return
            photo_hash = await self.vcards.prepare(
                jid, base, out.event.sender.avatar, out.fetch_source_media
            )
            for nick in nick_candidates(base):
                try:
                    got = await self._occupy(room.jid, jid, nick, history=False,
                                             photo_hash=photo_hash)  # fmt: skip
                except Refused as e:
                    if e.condition == "conflict":
                        continue
                    raise DeliveryError(
                        f"{base} could not join {room.jid}: {e.condition}",
                        permanent=e.condition in _PERMANENT_JOIN,
                    ) from e
                room.seats[jid] = Seat(got.nick, base)
                return
            raise DeliveryError(f"no free nickname for {base} in {room.jid}")

    def _vcard(self, jid: str) -> VCard | None:
        if jid == self.bot_jid:
            return VCard(self.network.nick, None, None)
        return self.vcards.get(jid)

    async def _post(self, room: Room, sender_jid: str, el: ET.Element, msg_id: str) -> str:
        """Send to the room and wait for its echo: the room's stanza-id (or the message's own
        id in a room that assigns none)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        seat = room.seats.get(sender_jid)
        nick = room.nick if sender_jid == self.bot_jid else seat.nick if seat else None
        self._echoes[msg_id] = _Echo(future, room.jid, nick)
        try:
            self.component.send_element(el)
            return await asyncio.wait_for(future, ECHO_TIMEOUT)
        except TimeoutError:
            # Sent again later with the same id: a room that echoes it late is recognised.
            raise Unavailable(f"{room.jid} did not echo the message", network_down=False) from None
        except Refused as e:
            if e.condition == "not-acceptable":  # the room no longer counts us as an occupant
                room.seats.pop(sender_jid, None)
                if sender_jid == self.bot_jid:
                    room.left()
            raise
        finally:
            echo = self._echoes.get(msg_id)
            if echo is not None and echo.future is future:
                del self._echoes[msg_id]

    async def _message(
        self,
        room: Room,
        out: Outgoing,
        media: bytes | None,
        sender_jid: str,
        relay_name: str | None,
        msg_id: str,
    ) -> str:
        event = out.event
        reply = None
        fallback = ""
        if out.reply_to:
            quote = room.quotes.get(out.reply_to)
            reply = Reply(f"{room.jid}/{quote.nick}" if quote else room.jid, out.reply_to)
            fallback = quote_fallback(quote.nick, quote.text) if quote else ""
        elif out.thread:
            quote = room.quotes.get(out.thread)
            reply = Reply(f"{room.jid}/{quote.nick}" if quote else room.jid, out.thread)
            fallback = thread_fallback(quote.nick, quote.text) if quote else ""
        if event.attachment is not None and media is not None:
            url = await self.files.upload(media, event.attachment.name, event.attachment.mimetype)
            caption = event.text or None
            if relay_name is not None:
                caption = f"{relay_name}: {caption}" if caption else relay_name
            el = groupchat_stanza(room.jid, sender_jid, msg_id, url, oob=Oob(url, caption),
                                  reply=reply, thread=out.thread)  # fmt: skip
            shown = event.text or event.attachment.name
        else:
            body = shown = message_body(event, relay_name=relay_name)
            el = groupchat_stanza(room.jid, sender_jid, msg_id, body, reply=reply,
                                  fallback=fallback, thread=out.thread)  # fmt: skip
        stanza_id = await self._post(room, sender_jid, el, msg_id)
        seat = room.seats.get(sender_jid)
        nick = seat.nick if seat is not None else room.nick
        if nick:  # what a reply to it, or a thread under it, quotes
            room.quotes[stanza_id] = Quote.of(nick, shown)
        return stanza_id

    async def _react(self, room: Room, out: Outgoing, sender_jid: str, msg_id: str) -> str:
        assert out.relates_to is not None and out.event.reaction is not None
        key = (sender_jid, out.relates_to)
        keys = room.sent_reactions.get(key) or []
        if out.event.reaction not in keys:
            keys = [*keys, out.event.reaction]
            room.sent_reactions[key] = keys
        if room.stanza_ids.get(msg_id) is None:
            el = reactions_stanza(room.jid, sender_jid, msg_id, out.relates_to, keys)
            await self._post(room, sender_jid, el, msg_id)
        return reaction_ref(out.relates_to, sender_jid, out.event.reaction)

    async def _redact(self, room: Room, out: Outgoing, sender_jid: str, msg_id: str) -> str:
        assert out.relates_to is not None
        reaction = parse_reaction_ref(out.relates_to)
        if reaction is not None:
            target, puppet, key = reaction
            keys = room.sent_reactions.get((puppet, target)) or []
            if key in keys:
                keys = [k for k in keys if k != key]
                room.sent_reactions[(puppet, target)] = keys
            el = reactions_stanza(room.jid, puppet, msg_id, target, keys)
            return await self._post(room, puppet, el, msg_id)
        el = retraction_stanza(room.jid, sender_jid, msg_id, out.relates_to, out.event.reason)
        return await self._post(room, sender_jid, el, msg_id)

    async def set_typing(self, room_id: str, sender: Sender, typing: bool) -> None:
        """The sender's puppet says it is (no longer) typing, once it sits in the room."""
        room = self.rooms.get(room_id)
        jid = puppet_jid(*address_parts(self.host.config, sender), self.network.component)
        if room is None or not room.joined or jid not in room.seats:
            return
        self._send(chat_state_stanza(room.jid, jid, f"{ORIGIN_PREFIX}{uuid.uuid4().hex}", typing))

    async def show_read(self, room_id: str, sender: Sender, remote_id: str) -> None:
        """The sender's puppet sends an XEP-0333 displayed marker: in its own one-to-one chat,
        or in a MUC that advertises markers and where it sits already."""
        if not self.network.read_markers:
            return
        jid = puppet_jid(*address_parts(self.host.config, sender), self.network.component)
        msg_id = f"{ORIGIN_PREFIX}{uuid.uuid4().hex}"
        pair = split_direct_key(room_id)
        if pair is not None:
            if pair[1] == jid:  # not someone else the peer's room let in
                self._send(displayed_stanza(pair[0], jid, msg_id, stanza_id_of(remote_id), "chat"))
            return
        room = self.rooms.get(room_id)
        if room is None or not room.joined or not room.markers or jid not in room.seats:
            return
        self._send(displayed_stanza(room.jid, jid, msg_id, remote_id, "groupchat"))

    async def fetch_media(self, ref: str) -> bytes:
        return await self.files.fetch(ref)

    async def members(self, room_id: str) -> list[str]:
        """The MUC's occupants by nickname, as its presences showed them to the bridge's
        listener; the listener and the puppets left out (by nickname, and by real JID where
        the room shows it)."""
        room = self.rooms.get(room_id)
        if room is None or not room.joined:
            raise Unavailable(f"not in {room_id}")
        own = {room.nick, *room.puppet_nicks()}
        return [
            nick for nick, real in room.occupants.items()
            if nick not in own and real != self.bot_jid
            and real.rpartition("@")[2] != self.bot_jid
        ]  # fmt: skip

    async def notify(self, room_id: str, text: str) -> None:
        if split_direct_key(room_id) is not None:
            await self.direct.notify(room_id, text)
            return
        room = self.rooms.get(room_id)
        if room is None or not room.joined:
            raise DeliveryError(f"not in {room_id}")
        msg_id = f"{ORIGIN_PREFIX}notice-{uuid.uuid4().hex}"
        el = groupchat_stanza(room.jid, self.bot_jid, msg_id, text)
        await self._post(room, self.bot_jid, el, msg_id)
