"""What the appservice and relay modes of a Matrix network share: room set-up, the Tchap access
rule check, receiving a room event, sending one, media and notices.

The two modes differ only in how they receive (appservice transactions or ``/sync``), in who
posts (a ghost per person, or the bot with the sender's name in front) and in how the bridge's
encryption device comes to be: `MatrixConnector` leaves exactly those to its subclasses.

End-to-end encrypted rooms (see `connectors.matrix.crypto`): what arrives encrypted is decrypted
and then bridged like any other event; what is sent into an encrypted room (attachments
included) is encrypted, never sent in the clear. A room this network cannot or may not bridge,
by its Tchap access rule or by its encryption, is refused with a log line and a notice.

Those two facts of each room are kept in the connector's tables (`MatrixState.room_facts`): a
restart reads them with one query instead of a request per room, and a room whose facts are not
known yet is checked on its first event, in or out (`MatrixConnector._ensure_checked`).
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import aiohttp
from mautrix.api import Method, Path
from mautrix.client import Client, ClientAPI
from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.errors import DecryptionError, MatrixConnectionError, MatrixRequestError, MNotFound
from mautrix.types import ContentURI, EventID, EventType, RoomAlias, RoomID, UserID

from bridge.config.model import Link
from bridge.connector import Connector, DeliveryError, Host, Outgoing, Refusal, Unavailable
from bridge.events import MEMBERSHIP, Event, Kind, Sender
from bridge.media import described
from bridge.members import mirrors
from bridge.naming import MAX_NAME, clean, shown_name
from bridge.notices import Notice, notice
from bridge.policy import account_domain, foreign_domains, sender_refusal
from bridge.tasks import supervise
from connectors.matrix import relayed_reactions, tchap
from connectors.matrix.config import Encryption, Flavour, MatrixNetwork, RoomCreate
from connectors.matrix.crypto import E2EE, MEGOLM, DeviceFor, KeyNotYet, Undecryptable
from connectors.matrix.relayed_reactions import parse_reaction_ref
from connectors.matrix.room_facts import RoomFacts
from connectors.matrix.state import MatrixState
from connectors.matrix.translate import (
    MalformedEvent,
    event_from_matrix,
    matrix_content,
    membership_change,
    parse_media_ref,
)
from connectors.matrix.unanswered import Unanswered, landed

JSON = dict[str, Any]

ACCESS_RULES = EventType.find(tchap.ACCESS_RULES_EVENT, t_class=EventType.Class.STATE)
SETUP_RETRY_SECONDS = 5.0
SETUP_CONCURRENCY = 8
_PERMANENT_ERRCODES = {"M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"}
ENCRYPTION_EVENT = "m.room.encryption"
ENCRYPTION_STATE = {"algorithm": MEGOLM}
"""The ``m.room.encryption`` content of rooms the bridge creates encrypted."""
DECRYPTED_TYPES = {"m.room.message", "m.sticker", "m.reaction", "m.room.redaction"}
"""What an encrypted event may carry to be bridged (state changes are never encrypted)."""


REFUSED_RETRY_SECONDS = 10.0
"""How often a homeserver that refused the bridge's credentials is asked again (an admin may
fix the homeserver's side without restarting the bridge)."""


def token_refused(error: Exception) -> bool:
    """The homeserver does not know the bridge's access token (the appservice's, or the relay
    account's): nothing passes until an admin fixes it."""
    return isinstance(error, MatrixRequestError) and error.errcode in (
        "M_UNKNOWN_TOKEN",
        "M_MISSING_TOKEN",
    )


def delivery_failure(network: str, error: Exception) -> Exception:
    """What a failed request to the homeserver means for the outbox: the network is unavailable
    (no answer, 5xx, rate limited: the message waits, no attempt counted), or it refused this
    request (an attempt; permanent where no retry can help)."""
    if not isinstance(error, MatrixRequestError):
        return Unavailable(f"{network} is unreachable: {type(error).__name__}: {error}")
    if token_refused(error):
        return Unavailable(f"{network} refused the bridge's access token: {error}")
    if error.http_status >= 500 or error.http_status == 429 or error.errcode == "M_LIMIT_EXCEEDED":
        return Unavailable(f"{network} answered {error.http_status} {error.errcode}: {error}")
    if error.errcode == "M_TOO_LARGE" or error.http_status == 413:
        return DeliveryError(f"{network} refused it as too large: {error}", permanent=True,
                             reason=Refusal.TOO_LARGE)  # fmt: skip
    return DeliveryError(f"{network} refused it: {error}",
                         permanent=error.errcode in _PERMANENT_ERRCODES)  # fmt: skip


class NotAnswering(Exception):
    """This network's homeserver did not answer a request made for one of its own events (the
    sender's profile): the event is not taken, so that it comes again (a push is answered with
    an error and sent again; the catch-up reads the room again), instead of being dropped as if
    the event itself were at fault."""


def _profile(member: JSON, user_id: str) -> tuple[str, str | None]:
    """Display name (the user ID when unset; cut to a name's length, since a member event from
    another server may carry any amount) and avatar of an ``m.room.member`` content."""
    name, avatar = member.get("displayname"), member.get("avatar_url")
    return (
        name[: MAX_NAME * 4] if isinstance(name, str) and name.strip() else user_id,
        avatar if isinstance(avatar, str) and avatar.startswith("mxc://") else None,
    )


class MatrixConnector(Connector):
    bot: ClientAPI

    def __init__(self, network: MatrixNetwork, host: Host) -> None:
        self.name = network.name
        self.network = network
        self.host = host
        self.log = logging.getLogger(f"passerelle.{network.name}")
        self._members: dict[tuple[str, str], tuple[str, str | None]] = {}
        """(room, user) → (display name, avatar mxc), from member events as they pass."""
        self._pending_rooms: set[str] = set()
        self._created: dict[str, str] = {}
        """Link → the room the bridge created for it on this network (from the store)."""
        self._joined: set[str] = set()
        """Rooms the bot was in when the set-up began."""
        self._setup_task: asyncio.Task[None] | None = None
        self.rooms_ready: asyncio.Event = asyncio.Event()
        self.facts = RoomFacts()
        self._access_rules: dict[str, JSON | None] = {}
        """room → its Tchap access rules content (None when the room has none)."""
        self._unchecked: set[str] = set()
        """Rooms bound at start without their facts: checked before their first event."""
        self._unconfirmed: set[str] = set()
        """Rooms stored as not encrypted at an earlier run: one may have become encrypted while
        the bridge was down, so it is read again before anything is sent into it."""
        self.e2ee: E2EE | None = None
        """The bridge's encryption device on this network, once started (never when off)."""
        self.e2ee_unavailable: str | None = None
        """Why encryption could not start, when the homeserver refused it."""
        self.refused: str | None = None
        """What the homeserver refused that an admin must fix (the bridge's token)."""
        self._later: set[asyncio.Task[None]] = set()
        """Set-ups of rooms a reload added that are retried in the background."""
        self._unanswered = Unanswered()

    def problem(self) -> str | None:
        return self.refused

    def set_refused(self, problem: str | None) -> None:
        """Note (and log once) that the homeserver refuses the bridge's credentials, or, with
        None, that it accepts them again."""
        if problem is not None and problem != self.refused:
            self.log.error("%s: %s", self.name, problem)
        elif problem is None and self.refused is not None:
            self.log.info("%s: the homeserver accepts the bridge's token now", self.name)
        self.refused = problem

    @property
    def state(self) -> MatrixState:
        """This network's rows of the Matrix tables (available once the gateway started)."""
        return MatrixState(self.host.state(self.network.kind), self.name)

    @property
    def links(self) -> list[Link]:
        return [link for link in self.host.config.links if self.name in link.rooms]

    @abstractmethod
    def is_own(self, user_id: str) -> bool:
        """Users whose events the bridge itself caused (bot, ghosts): never bridged again."""

    @abstractmethod
    async def poster(self, out: Outgoing) -> tuple[ClientAPI, str | None]:
        """Who posts ``out`` into its room, and the relay template when that is the bot."""

    def is_ghost(self, user_id: str) -> bool:
        """Users the bridge posts as that have no devices of their own (appservice ghosts)."""
        return False

    # Encryption

    async def start_e2ee(self, client: Client, device_for: DeviceFor) -> None:
        """Start the encryption device when the network allows encryption. Retries while the
        homeserver is unreachable; when it refuses (no MSC4190, a bad token…) encryption stays
        unavailable and encrypted rooms are refused with that reason."""
        if self.network.encryption is Encryption.OFF:
            return
        e2ee = E2EE(
            network=self.name,
            client=client,
            facts=self.facts,
            db=self.state.db,
            log=self.log.getChild("e2ee"),
            room_key_wait=self.network.room_key_wait,
            is_ghost=self.is_ghost,
            is_bridged=lambda room_id: self.host.directory.link_for(self.name, room_id) is not None,
        )
        while True:
            try:
                await e2ee.start(device_for, self._on_decrypted, self._report_undecryptable)
                self.e2ee = e2ee
                return
            except MatrixRequestError as e:
                if 400 <= e.http_status < 500 and e.http_status != 429:
                    self.e2ee_unavailable = f"{e.errcode or e.http_status}: {e.message}"
                    self.log.error("End-to-bridge encryption is not available on %s: %s "
                                   "(see the README on the homeserver options it needs)",
                                   self.name, self.e2ee_unavailable)  # fmt: skip
                    return
                self.log.warning("Encryption not ready yet on %s: %s", self.name, e)
            except Exception as e:
                self.log.warning("Encryption not ready yet on %s: %s", self.name, e)
            await asyncio.sleep(SETUP_RETRY_SECONDS)

    async def stop_e2ee(self) -> None:
        if self.e2ee is not None:
            await self.e2ee.stop()
            self.e2ee = None

    async def room_encryption(self, room_id: str, api: ClientAPI | None = None) -> JSON | None:
        """The room's ``m.room.encryption`` content (None: not encrypted), read as ``api`` (a
        member; default the bot) once (a room encrypted at an earlier run stays so) and then
        kept current from the room's state events."""
        if not self.facts.knows_encryption(room_id) or room_id in self._unconfirmed:
            try:
                state = await (api or self.bot).get_state_event(
                    RoomID(room_id), EventType.ROOM_ENCRYPTION
                )
                content: JSON | None = state.serialize()
            except MNotFound:
                content = None
            self._unconfirmed.discard(room_id)
            self.facts.set_encryption(room_id, content)
            await self.state.save_room_fact(
                room_id, ENCRYPTION_EVENT, self.facts.encryption(room_id)
            )
        return self.facts.encryption(room_id)

    async def encryption_refusal(
        self, room_id: str, api: ClientAPI | None = None, read: bool = True
    ) -> Notice | None:
        """Why this network may not bridge the room as it is encrypted (or not), if it may not;
        ``read`` False judges by the facts known, stored ones included, without a request."""
        mode = self.network.encryption
        if read:
            encryption = await self.room_encryption(room_id, api)
        else:
            encryption = self.facts.encryption(room_id)
        if encryption is None:
            return notice("room_off.not_encrypted") if mode is Encryption.REQUIRE else None
        if mode is Encryption.OFF:
            return notice("room_off.encrypted")
        if encryption.get("algorithm") != MEGOLM:
            return notice("room_off.algorithm", algorithm=str(encryption.get("algorithm"))[:60])
        if self.e2ee is None:
            self.log.warning("Encryption is unavailable on %s: %s", self.name,
                             self.e2ee_unavailable or "it has not started")  # fmt: skip
            return notice("room_off.no_e2ee")
        return None

    async def _encrypted(self, room_id: str, api: ClientAPI) -> bool:
        """Whether what ``api`` posts into the room must be encrypted; `DeliveryError` when it
        must but cannot be (never plaintext into an encrypted room)."""
        if await self.room_encryption(room_id, api) is None:
            return False
        if self.e2ee is None:
            raise DeliveryError(
                f"{self.name} room {room_id} is encrypted and the bridge cannot encrypt there",
                permanent=True,
                reason=Refusal.CANNOT_ENCRYPT,
            )
        return True

    async def _decrypted(self, raw: JSON) -> JSON | None:
        """The decrypted form of an encrypted room event, or None when it is not bridged (not a
        bridged room, our own, parked until its key arrives, or undecryptable and reported).
        Raises only when parking it failed to be stored."""
        room_id, sender = raw.get("room_id"), raw.get("sender")
        if not isinstance(room_id, str) or not isinstance(sender, str) or self.is_own(sender):
            return None
        if self.host.directory.link_for(self.name, room_id) is None:
            return None
        if self.e2ee is None:
            self.log.warning("Encrypted event %s in %s cannot be read: no encryption here",
                             raw.get("event_id"), room_id)  # fmt: skip
            return None
        try:
            decrypted = await self.e2ee.decrypt(raw)
        except KeyNotYet:
            self.log.info("Key of %s in %s not here yet: waiting for it", raw.get("event_id"),
                          room_id)  # fmt: skip
            await self.e2ee.park(raw)
            return None
        except Undecryptable as e:
            await self._report_undecryptable(raw, e)
            return None
        except Exception as e:
            self.log.exception("Decrypting %s failed", raw.get("event_id"))
            await self._report_undecryptable(raw, Undecryptable(f"{type(e).__name__}: {e}"))
            return None
        if decrypted["type"] not in DECRYPTED_TYPES:
            self.log.info("Not bridging encrypted %s %s", decrypted["type"], raw.get("event_id"))
            return None
        return decrypted

    async def _on_decrypted(self, decrypted: JSON) -> None:
        """A parked event whose key arrived: bridged as if it had just come in (once the rooms
        are bound again, for events parked before a restart)."""
        await self.rooms_ready.wait()
        if decrypted["type"] in DECRYPTED_TYPES:
            await self.handle_room_event(decrypted)

    async def _report_undecryptable(self, raw: JSON, problem: Undecryptable) -> None:
        room_id, sender = str(raw.get("room_id")), str(raw.get("sender"))
        self.log.warning("Cannot decrypt %s from %s in %s: %s", raw.get("event_id"), sender,
                         room_id, problem)  # fmt: skip
        name, _ = await self._member(room_id, sender)
        text = notice(
            "undecryptable", sender=clean(name), reason=notice(f"undecryptable.{problem.kind}")
        ).render(self.network.language)
        try:
            await self.notify(room_id, text)
        except Exception as e:
            self.log.warning("Could not post the decryption notice in %s: %s", room_id, e)

    # Rooms

    async def setup_rooms(self) -> None:
        """Join or create every link's room, a few at a time, retrying the ones that fail in
        the background. Rooms created earlier and rooms already joined cost no request."""
        links = self.links
        self._pending_rooms = {link.id for link in links}
        self._created = await self.host.store.created_rooms(self.name)
        self._joined = {str(room) for room in await self.bot.get_joined_rooms()}
        await self._load_facts()

        async def set_up(todo: Iterator[Link]) -> None:
            """One of `SETUP_CONCURRENCY` workers sharing ``todo`` (a task per worker, not per
            link: with ten thousand links, a task each cost more than setting the rooms up)."""
            for link in todo:
                try:
                    await self._setup_room(link, at_start=True)
                    self._pending_rooms.discard(link.id)
                except Exception as e:
                    self.log.warning("Room of link %s not ready yet: %s", link.id, e)

        while self._pending_rooms:
            todo = iter([k for k in links if k.id in self._pending_rooms])
            await asyncio.gather(*(set_up(todo) for _ in range(SETUP_CONCURRENCY)))
            if self._pending_rooms:
                self.rooms_ready.set()  # the ones that work already flow
                await asyncio.sleep(SETUP_RETRY_SECONDS)
        self.rooms_ready.set()

    async def _load_facts(self) -> None:
        """The rooms' facts stored at earlier runs (one query): what start checks rooms by."""
        for room_id, event_type, content in await self.state.room_facts():
            if event_type == tchap.ACCESS_RULES_EVENT:
                self._access_rules.setdefault(room_id, content)
            elif event_type == ENCRYPTION_EVENT and not self.facts.knows_encryption(room_id):
                self.facts.set_encryption(room_id, content)
                if content is None:
                    self._unconfirmed.add(room_id)

    def _checkable(self, link_id: str, room_id: str) -> bool:
        """Whether the room can be checked without a request: its facts are known, or its
        access rule alone refuses it."""
        if self.network.flavour is Flavour.TCHAP:
            if room_id not in self._access_rules:
                return False
            rule = tchap.parse_access_rule(self._access_rules[room_id])
            if self._rule_refusal(link_id, rule) is not None:
                return True
        return self.facts.knows_encryption(room_id)

    async def _ensure_checked(self, room_id: str) -> None:
        """Check a room bound at start without its facts (read now, as the bot), before its
        first event goes in or out; it may turn out refused (and disabled) here."""
        if room_id not in self._unchecked:
            return
        link_id = self.host.directory.bound_link(self.name, room_id)
        if link_id is not None:
            await self._check_room(link_id, room_id)
        self._unchecked.discard(room_id)

    async def link_added(self, link: Link) -> None:
        """Set the new link's room up now, or keep trying in the background."""
        self._created = await self.host.store.created_rooms(self.name)
        try:
            await self._setup_room(link)
        except Exception as e:
            self.log.warning("Room of link %s not ready yet: %s", link.id, e)
            self._pending_rooms.add(link.id)
            task = supervise(f"setup:{self.name}:{link.id}", lambda: self._set_up_later(link),
                             self.log)  # fmt: skip
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    async def _set_up_later(self, link: Link) -> None:
        """Retry a room a reload added until it is set up, or the link is gone again."""
        while link.id in self._pending_rooms:
            await asyncio.sleep(SETUP_RETRY_SECONDS)
            if link.id not in self._pending_rooms:
                return
            try:
                await self._setup_room(link)
                self._pending_rooms.discard(link.id)
            except Exception as e:
                self.log.warning("Room of link %s still not ready: %s", link.id, e)

    async def link_removed(self, link: Link, room_id: str | None, notice: Notice) -> None:
        """The notice, then the bridge's ghosts leave; so does the bot, unless the bridge
        created the room (it stays, for the people in it)."""
        self._pending_rooms.discard(link.id)
        if room_id is None or not self.host.leads(self.name):
            return
        try:
            await self.notify(room_id, notice.render(self.network.language))
        except Exception as e:
            self.log.warning("Could not post the unbridged notice in %s: %s", room_id, e)
        await self.leave_ghosts(room_id)
        if link.id not in self._created:
            await self.bot.leave_room(RoomID(room_id))
        self.log.info("Unbridged %s (link %s removed from the config)", room_id, link.id)

    async def close(self, session: aiohttp.ClientSession | None) -> None:
        """What every mode does last when it stops: the background room set-ups, the
        encryption device and the HTTP session."""
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)
        await self.stop_e2ee()
        if session is not None:
            await session.close()

    async def leave_ghosts(self, room_id: str) -> None:
        """Take the bridge's ghosts out of a room it no longer bridges (where it has any)."""

    async def _setup_room(self, link: Link, at_start: bool = False) -> None:
        """Find, join or create the link's room, check it and bind it. ``at_start``, a room
        joined or created at an earlier run costs no request: it is checked by its stored facts,
        or, without them, on its first event (`_ensure_checked`)."""
        spec = link.rooms[self.name]
        earlier = True
        if spec.create is not None:
            room_id = self._created.get(link.id)
            if room_id is None and not self.host.leads(self.name):
                # Only the instance leading this network creates rooms (several instances).
                self._created = await self.host.store.created_rooms(self.name)
                room_id = self._created.get(link.id)
                if room_id is None:
                    raise RuntimeError("the instance leading this network creates it")
            if room_id is None:
                room_id = await self._create_room(link)
                earlier = False
                await self.host.store.save_created_room(link.id, self.name, room_id)
                self._created[link.id] = room_id
                await self.joined(room_id)
                self.log.info("Created room %s for link %s", room_id, link.id)
        else:
            assert spec.room is not None
            room_id = spec.room
            if room_id.startswith("#"):
                room_id = (await self.bot.resolve_room_alias(RoomAlias(room_id))).room_id
            if room_id not in self._joined:
                await self.bot.join_room(RoomID(room_id), max_retries=2)
                earlier = False
                await self.joined(room_id)
        # Checked before it is bound: nothing may be delivered into a room not checked yet.
        if at_start and earlier and not self._checkable(link.id, room_id):
            self._unchecked.add(room_id)
        else:
            await self._check_room(link.id, room_id, read=not (at_start and earlier))
        self.host.directory.bind(link.id, self.name, room_id)

    async def joined(self, room_id: str) -> None:
        """The bot has just joined or created ``room_id``: where the connector reads rooms'
        timelines itself, it reads this one from here on (the appservice's catch-up)."""

    async def _create_room(self, link: Link) -> str:
        create = link.rooms[self.name].create
        assert isinstance(create, RoomCreate)
        invitees = []
        for person_id in link.people:
            person = self.host.config.person(person_id)
            if person and self.name in person.accounts:
                invitees.append(UserID(person.accounts[self.name]))
        initial_state: list[JSON] = []
        if self.network.flavour is Flavour.TCHAP:
            # A bridged room has people from outside by definition: Tchap calls that
            # an "external access" room.
            initial_state.append(tchap.access_rules_state(tchap.AccessRule.UNRESTRICTED))
        encrypted = create.encrypted
        if encrypted or (encrypted is None and self.network.encryption is Encryption.REQUIRE):
            initial_state.append(self.encryption_state())
        room_id = str(
            await self.bot.create_room(
                name=create.name,
                topic=create.topic,
                invitees=invitees,
                initial_state=initial_state,  # type: ignore[arg-type]
                room_version=create.room_version,  # type: ignore[arg-type]  # None: the default
            )
        )
        # The room is as it was made: its facts need no request.
        states = {state["type"]: state["content"] for state in initial_state}
        await self._learn(room_id, ENCRYPTION_EVENT, states.get(ENCRYPTION_EVENT))
        if self.network.flavour is Flavour.TCHAP:
            await self._learn(room_id, tchap.ACCESS_RULES_EVENT, states[tchap.ACCESS_RULES_EVENT])
        return room_id

    async def _learn(self, room_id: str, event_type: str, content: JSON | None) -> bool:
        """A room's encryption or access rule, from its state event (pushed, read by the
        catch-up, or the room's creation): kept in memory and stored. True when it differs from
        what was known (the catch-up reads again events that were pushed already: those need
        no new check of the room)."""
        if event_type == ENCRYPTION_EVENT:
            known = self.facts.knows_encryption(room_id) and room_id not in self._unconfirmed
            before = self.facts.encryption(room_id)
            self._unconfirmed.discard(room_id)
            self.facts.set_encryption(room_id, content)
            content = self.facts.encryption(room_id)
        else:
            known, before = room_id in self._access_rules, self._access_rules.get(room_id)
            self._access_rules[room_id] = content
        if known and before == content:
            return False
        await self.state.save_room_fact(room_id, event_type, content)
        return True

    @staticmethod
    def encryption_state() -> JSON:
        """The initial state event that makes a new room encrypted."""
        return {"type": "m.room.encryption", "state_key": "", "content": dict(ENCRYPTION_STATE)}

    async def _check_room(self, link_id: str, room_id: str, read: bool = True) -> None:
        """Refuse a room this link may not be bridged into: a Tchap room whose access rule keeps
        out the people the link brings in, or a room whose encryption this network cannot or may
        not bridge. Checked again whenever either changes. ``read`` False: by the facts known
        (stored ones included), without a request."""
        refusal = await self._access_refusal(link_id, room_id) or await self.encryption_refusal(
            room_id, read=read
        )
        reason = str(refusal) if refusal is not None else None
        already = self.host.directory.disabled_reason(link_id, self.name)
        if refusal is not None and reason != already:
            self.host.directory.disable(link_id, self.name, str(refusal))
            self.log.error("Refusing to bridge link %s into %s: %s", link_id, room_id, refusal)
            await self.notify(
                room_id, notice("room_off", reason=refusal).render(self.network.language)
            )
        elif refusal is None and already:
            self.host.directory.enable(link_id, self.name)
            self.log.info("Link %s into %s enabled: %s no longer holds", link_id, room_id, already)

    async def _access_rule(self, room_id: str) -> tchap.AccessRule:
        """A Tchap room's access rule (its ``im.vector.room.access_rules`` with the empty state
        key), read once and then kept current from the room's state events."""
        if room_id not in self._access_rules:
            try:
                state = await self.bot.get_state_event(RoomID(room_id), ACCESS_RULES)
                content: JSON | None = state.serialize()
            except MNotFound:
                content = None
            await self._learn(room_id, tchap.ACCESS_RULES_EVENT, content)
        return tchap.parse_access_rule(self._access_rules[room_id])

    async def _access_refusal(self, link_id: str, room_id: str) -> Notice | None:
        if self.network.flavour is not Flavour.TCHAP:
            return None
        return self._rule_refusal(link_id, await self._access_rule(room_id))

    def _rule_refusal(self, link_id: str, rule: tchap.AccessRule) -> Notice | None:
        """Why a Tchap room with this access rule may not take the link's people, if it may not."""
        domains = foreign_domains(self.host.config, self.host.links.get(link_id), self.name)
        return tchap.restricted_room_refusal(rule, domains, self.network.restricted_rooms_allow)

    async def sender_refusal(self, room_id: str, sender: Sender) -> Notice | None:
        """Why ``sender`` may not appear in this room, if they may not: a Tchap room that is not
        open to externals takes people only from the domains in ``restricted_rooms_allow``.
        Checked for every message and every ghost, since a network brings more than its own
        server's users (a federated user of the German homeserver, say)."""
        if self.network.flavour is not Flavour.TCHAP or self._invited_here(room_id, sender):
            return None
        rule = await self._access_rule(room_id)
        return tchap.restricted_room_refusal(
            rule,
            [account_domain(self.host.config, sender.network, sender.user_id)],
            self.network.restricted_rooms_allow,
        )

    def _invited_here(self, room_id: str, sender: Sender) -> bool:
        """Whether ``sender`` is the person whose ghost someone here invited into this room to
        chat with them: the room's own member let them in (and the homeserver, which enforces
        its rules on invites, allowed it)."""
        link_id = self.host.directory.link_for(self.name, room_id)
        chat = self.host.links.direct_chat(link_id) if link_id is not None else None
        return (
            chat is not None
            and chat.origin_network == self.name
            and (sender.network, sender.user_id) == (chat.peer_network, chat.peer_user)
        )

    # Receiving

    async def handle_room_event(self, raw: JSON) -> None:
        """One room event from the homeserver. Returns once the event is stored (or ignored).

        Raises only when storing failed, or when the facts of a room checked on its first event
        or its sender's profile could not be read (`NotAnswering`), so that the source is not
        acknowledged and sends it again; any other failure is this event's alone: it is logged
        and the stream goes on.
        """
        room_id = raw.get("room_id")
        if isinstance(room_id, str) and room_id in self._unchecked:
            await self._ensure_checked(room_id)
        if raw.get("type") == "m.room.encrypted":
            decrypted = await self._decrypted(raw)
            if decrypted is None:
                return
            raw = decrypted
        try:
            event = await self._to_event(raw)
        except NotAnswering:
            raise
        except Exception:
            self.log.exception("Could not handle event %s", raw.get("event_id"))
            return
        if event is not None:
            await self.host.ingest(event)

    async def _to_event(self, raw: JSON) -> Event | None:
        """The bridge event for a room event, after acting on the room events that concern
        the bridge itself (memberships, access rules); None for what is not bridged."""
        room_id, sender_id, etype = raw.get("room_id"), raw.get("sender"), raw.get("type")
        if not isinstance(room_id, str) or not isinstance(sender_id, str):
            self.log.warning("Ignoring an event without room_id or sender: %.200s", raw)
            return None
        if etype == "m.room.member":
            await self._on_member(raw, room_id)
            return await self._member_event(raw, room_id)
        bound = self.host.directory.bound_link(self.name, room_id)
        if raw.get("state_key") == "" and etype in (tchap.ACCESS_RULES_EVENT, ENCRYPTION_EVENT):
            content = raw.get("content")
            content = content if isinstance(content, dict) else {}
            if await self._learn(room_id, etype, content) and bound:
                await self._check_room(bound, room_id)
            return None
        if self.is_own(sender_id):
            return None
        link_id = self.host.directory.link_for(self.name, room_id)
        if link_id is None:
            return None
        refusal = sender_refusal(self.host.config, self.host.federation, self.name, sender_id)
        if refusal is not None:
            domain = account_domain(self.host.config, self.name, sender_id)
            self.log.info("Not bridging %s from %s: %s (%s)", raw.get("event_id"), sender_id,
                          refusal.explain(domain), refusal.value)  # fmt: skip
            return None
        sender = await self.sender(room_id, sender_id)
        try:
            return event_from_matrix(raw, link_id=link_id, network=self.name, sender=sender)
        except MalformedEvent as e:
            self.log.warning("Not bridging malformed event %s: %s", raw.get("event_id"), e)
            return None

    async def _on_member(self, raw: JSON, room_id: str) -> None:
        content = raw.get("content")
        if not isinstance(content, dict):
            return
        user_id = raw.get("state_key")
        if not isinstance(user_id, str):
            return
        self._members[(room_id, user_id)] = _profile(content, user_id)
        membership = content.get("membership")
        if self.e2ee is not None and isinstance(membership, str):
            await self.e2ee.on_membership(room_id, user_id, membership)
        if membership != "invite":
            return
        if user_id == str(self.bot.mxid):
            await self._on_bot_invited(room_id)
        elif self.is_own(user_id) and isinstance(raw.get("sender"), str):
            await self.on_ghost_invited(room_id, user_id, raw["sender"])

    async def _member_event(self, raw: JSON, room_id: str) -> Event | None:
        """Someone (not the bridge's own) joined or left a linked room: mirrored in the
        link's other rooms when it mirrors members (`bridge.members`) and they are bridged."""
        user_id, event_id = raw.get("state_key"), raw.get("event_id")
        kind = membership_change(raw)
        link_id = self.host.directory.link_for(self.name, room_id)
        if (
            kind is None
            or link_id is None
            or not isinstance(user_id, str)
            or not isinstance(event_id, str)
            or self.is_own(user_id)
            or sender_refusal(self.host.config, self.host.federation, self.name, user_id)
        ):
            return None

        async def count() -> int:
            return len(await self.bot.get_joined_members(RoomID(room_id)))

        links = self.host.links
        if not await mirrors(links.get(link_id), links.is_direct(link_id), count):
            return None
        sender = await self.sender(room_id, user_id)
        return Event(kind=kind, link_id=link_id, network=self.name, room_id=room_id,
                     remote_id=event_id, sender=sender)  # fmt: skip

    async def mirror_member(self, out: Outgoing) -> None:
        """Show a remote person joining or leaving (`bridge.members`): only where the bridge
        has ghosts; a relay bot has no one to show."""

    async def on_ghost_invited(self, room_id: str, ghost: str, inviter: str) -> None:
        """Someone invited a ghost: only meaningful where the bridge has ghosts."""

    async def _on_bot_invited(self, room_id: str) -> None:
        """An admin invited the bot: retry the rooms it could not join yet (one may be this)."""
        self.log.info("Invited to %s", room_id)
        for link in self.links:
            if link.id in self._pending_rooms:
                try:
                    await self._setup_room(link)
                    self._pending_rooms.discard(link.id)
                except Exception as e:
                    self.log.warning("Room of link %s still not ready: %s", link.id, e)

    async def sender(self, room_id: str, user_id: str, api: ClientAPI | None = None) -> Sender:
        """A member of a room as the sender of what they post there. On Tchap the homeserver
        writes the agent's organisation into their name, and it is taken as their
        organisation (`bridge.naming` shows it in brackets everywhere else)."""
        name, avatar = await self._member(room_id, user_id, api)
        org = None
        if self.network.flavour is Flavour.TCHAP:
            name, org = tchap.split_display_name(name)
        return Sender(network=self.name, user_id=user_id, display_name=name, org=org,
                      avatar=avatar)  # fmt: skip

    async def _member(
        self, room_id: str, user_id: str, api: ClientAPI | None = None
    ) -> tuple[str, str | None]:
        """A member's display name and avatar, read as ``api`` (default: the bot) on a miss."""
        key = (room_id, user_id)
        if key not in self._members:
            try:
                member = await (api or self.bot).get_state_event(
                    RoomID(room_id), EventType.ROOM_MEMBER, user_id
                )
                self._members[key] = _profile(member.serialize(), user_id)
            except MatrixRequestError as e:
                if e.http_status >= 500 or e.http_status == 429:
                    raise NotAnswering(f"{self.name} answered {e.http_status}: {e}") from e
                self._members[key] = (user_id, None)  # not a member, no profile: the ID shows
            except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as e:
                raise NotAnswering(f"{self.name} did not answer: {e}") from e
        return self._members[key]

    async def members(self, room_id: str) -> list[str]:
        """The room's joined members by display name (their user ID where they set none),
        the bot and the ghosts left out: one ``/joined_members`` request, as the bot."""
        joined = await self.bot.get_joined_members(RoomID(room_id))
        return [
            member.displayname if isinstance(member.displayname, str)
            and member.displayname.strip() else str(user_id)
            for user_id, member in joined.items()
            if not self.is_own(str(user_id))
        ]  # fmt: skip

    # Sending

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        event = out.event
        try:
            if out.room_id in self._unchecked:
                await self._first_delivery(out.room_id)
            if not out.sender_is_local and event.kind not in MEMBERSHIP:
                refusal = await self.sender_refusal(out.room_id, event.sender)
                if refusal is not None:
                    raise DeliveryError(str(refusal), permanent=True, reason=Refusal.NOT_ALLOWED)
            if event.kind in MEMBERSHIP:
                await self.mirror_member(out)
                return None
            return await self._send(out, media)
        except MatrixRequestError as e:
            if e.errcode == "M_DUPLICATE_ANNOTATION":
                return None  # the same reaction is already there (relay bot reacting twice)
            if e.http_status >= 500 and out.delivery_id:
                self._unanswered.add(out.delivery_id)
            raise delivery_failure(self.name, e) from e
        except (MatrixConnectionError, aiohttp.ClientError, TimeoutError, OSError) as e:
            if out.delivery_id:
                self._unanswered.add(out.delivery_id)
            raise delivery_failure(self.name, e) from e

    async def _first_delivery(self, room_id: str) -> None:
        """Check a room bound without its facts before the first delivery into it; what it
        refuses is not delivered."""
        await self._ensure_checked(room_id)
        link_id = self.host.directory.bound_link(self.name, room_id)
        refused = self.host.directory.disabled_reason(link_id, self.name) if link_id else None
        if refused is not None:
            raise DeliveryError(f"the {self.name} room is no longer bridged: {refused}",
                                permanent=True, reason=Refusal.ROOM_OFF)  # fmt: skip

    async def _send(self, out: Outgoing, media: bytes | None) -> str | None:
        """The requests of one delivery, each with a transaction ID made from
        ``out.delivery_id``: the homeserver takes a resend (after a crash, a lost answer) as
        the same event instead of a new one."""
        event = out.event
        api, template = await self.poster(out)
        if event.kind is Kind.REDACTION:
            assert out.relates_to is not None
            relayed = parse_reaction_ref(out.relates_to)
            if relayed is not None:
                return await self._withdraw_reaction(api, out, *relayed)
            path = Path.v3.rooms[RoomID(out.room_id)].redact[EventID(out.relates_to)]
            reason = {"reason": event.reason} if event.reason else {}
            answer = await api.api.request(Method.PUT, path[out.delivery_id], reason,
                                           metrics_method="redact")  # fmt: skip
            return str(answer["event_id"])
        encrypted = await self._encrypted(out.room_id, api)
        if event.kind is Kind.REACTION and template is not None:
            return await self._relay_reaction(api, out, encrypted)
        mxc = file = None
        if media is not None and event.attachment is not None:
            # Clients show a picture well only with its size, type and dimensions (``info``).
            attachment = described(event.attachment, media)
            out = replace(out, event=replace(event, attachment=attachment))
            if encrypted:
                file = await self._upload_encrypted(api, media)
            else:
                mxc = await api.upload_media(
                    media,
                    mime_type=attachment.mimetype,
                    filename=attachment.name,
                    size=len(media),
                )
        etype, content = matrix_content(
            out,
            sender_name=shown_name(event.sender),
            relay_template=template,
            mxc=mxc,
            file=file,
        )
        return await self._send_event(api, out.room_id, etype, content, encrypted,
                                      txn_id=out.delivery_id or None)  # fmt: skip

    async def _relay_reaction(self, api: ClientAPI, out: Outgoing, encrypted: bool) -> str:
        """A reaction the bot posts for someone: their name joins the reaction line under the
        message (`connectors.matrix.relayed_reactions`), which is created or edited."""
        assert out.relates_to is not None and out.event.reaction is not None
        name, key = shown_name(out.event.sender), out.event.reaction
        known = await self.state.relayed_reactions(out.room_id, out.relates_to)
        before = relayed_reactions.load(known[1]) if known else {}
        after = relayed_reactions.added(before, key, name)
        if after != before or known is None:
            notice_id = await self._post_reaction_line(
                api, out, known[0] if known else None, after, encrypted
            )
            await self.state.save_relayed_reactions(
                out.room_id, out.relates_to, notice_id, relayed_reactions.dump(after)
            )
        return relayed_reactions.reaction_ref(out.relates_to, name, key)

    async def _withdraw_reaction(
        self, api: ClientAPI, out: Outgoing, target: str, name: str, key: str
    ) -> str | None:
        """Take a withdrawn reaction off its line: edit the line, or redact it when it was
        the last."""
        known = await self.state.relayed_reactions(out.room_id, target)
        if known is None:
            return None
        notice_id, before = known[0], relayed_reactions.load(known[1])
        after = relayed_reactions.withdrawn(before, key, name)
        if after == before:
            return None
        if after:
            encrypted = await self._encrypted(out.room_id, api)
            await self._post_reaction_line(api, out, notice_id, after, encrypted)
            await self.state.save_relayed_reactions(
                out.room_id, target, notice_id, relayed_reactions.dump(after)
            )
            return None
        path = Path.v3.rooms[RoomID(out.room_id)].redact[EventID(notice_id)]
        await api.api.request(Method.PUT, path[out.delivery_id], {}, metrics_method="redact")
        await self.state.save_relayed_reactions(out.room_id, target, notice_id, None)
        return None

    async def _post_reaction_line(
        self, api: ClientAPI, out: Outgoing, notice_id: str | None,
        reactions: relayed_reactions.Reactions, encrypted: bool,
    ) -> str:  # fmt: skip
        """Post the reaction line as a reply to its message, or edit the one there."""
        text = relayed_reactions.line(reactions, self.network.language)
        content: JSON = {"msgtype": "m.notice", "body": text}
        if notice_id is None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": out.relates_to}}
        else:
            content = {
                "msgtype": "m.notice",
                "body": f"* {text}",
                "m.new_content": content,
                "m.relates_to": {"rel_type": "m.replace", "event_id": notice_id},
            }
        event_id = await self._send_event(api, out.room_id, "m.room.message", content,
                                          encrypted, txn_id=out.delivery_id or None)  # fmt: skip
        return notice_id or event_id

    async def _send_event(
        self, api: ClientAPI, room_id: str, etype: str, content: JSON, encrypted: bool,
        txn_id: str | None = None,
    ) -> str:  # fmt: skip
        if txn_id is not None and txn_id in self._unanswered:
            earlier = await landed(api, room_id, txn_id)
            if earlier is not None:
                self.log.info("A send to %s without an answer had landed as %s", room_id, earlier)
                self._unanswered.discard(txn_id)
                return earlier
        if encrypted:
            assert self.e2ee is not None
            content = await self.e2ee.encrypt(room_id, etype, content)
            etype = "m.room.encrypted"
        event_id = await api.send_message_event(
            RoomID(room_id),
            EventType.find(etype, EventType.Class.MESSAGE),
            content,  # type: ignore[arg-type]
            txn_id=txn_id,
        )
        if txn_id is not None:
            self._unanswered.discard(txn_id)
        return str(event_id)

    @staticmethod
    async def _upload_encrypted(api: ClientAPI, media: bytes) -> JSON:
        """Encrypt and upload an attachment for an encrypted room: the ``file`` object that
        lets its members decrypt it. Name and type stay inside the encrypted event."""
        ciphertext, file = encrypt_attachment(media)
        file.url = await api.upload_media(
            ciphertext, mime_type="application/octet-stream", size=len(ciphertext)
        )
        serialized: JSON = file.serialize()
        return serialized

    async def fetch_media(self, ref: str) -> bytes:
        mxc, keys = parse_media_ref(ref)
        try:
            data = await self.bot.download_media(ContentURI(mxc))
        except MatrixRequestError as e:
            failure = delivery_failure(self.name, e)
            if isinstance(failure, DeliveryError):
                failure.reason = Refusal.FILE_UNAVAILABLE
            raise failure from e
        except (MatrixConnectionError, aiohttp.ClientError, TimeoutError, OSError) as e:
            raise delivery_failure(self.name, e) from e
        if keys is None:
            return data
        try:
            return decrypt_attachment(data, keys.key, keys.sha256, keys.iv)
        except DecryptionError as e:
            raise DeliveryError(f"the attachment could not be decrypted: {e}", permanent=True,
                                reason=Refusal.FILE_UNAVAILABLE) from e  # fmt: skip

    async def notify(self, room_id: str, text: str) -> None:
        """A notice from the bot, encrypted in an encrypted room when the bridge can encrypt
        there (a refusal notice in a room it cannot encrypt for says why in the clear)."""
        content: JSON = {"msgtype": "m.notice", "body": text}
        encrypted = self.e2ee is not None and await self.room_encryption(room_id) is not None
        await self._send_event(self.bot, room_id, "m.room.message", content, encrypted)
