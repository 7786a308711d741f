"""What the appservice and relay modes of a Matrix network share: room set-up, the Tchap access
rule check, receiving a room event, sending one, media and notices.

The two modes differ only in how they receive (appservice transactions or ``/sync``) and in who
posts (a ghost per person, or the bot with the sender's name in front): `MatrixConnector` leaves
exactly those to its subclasses.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from typing import Any

from mautrix.client import ClientAPI
from mautrix.errors import MatrixRequestError, MNotFound
from mautrix.types import EventID, EventType, RoomAlias, RoomID, UserID

from bridge.config.model import Flavour, Link, MatrixNetwork
from bridge.connector import Connector, DeliveryError, Host, Outgoing
from bridge.events import Event, Kind, Sender
from bridge.policy import foreign_domains, sender_allowed
from connectors.matrix import tchap
from connectors.matrix.translate import (
    MalformedEvent,
    display_name,
    event_from_matrix,
    matrix_content,
)

JSON = dict[str, Any]

ACCESS_RULES = EventType.find(tchap.ACCESS_RULES_EVENT, t_class=EventType.Class.STATE)
SETUP_RETRY_SECONDS = 5.0
_PERMANENT_ERRCODES = {"M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM"}


def _profile(member: JSON, user_id: str) -> tuple[str, str | None]:
    """Display name (the user ID when unset) and avatar of an ``m.room.member`` content."""
    name, avatar = member.get("displayname"), member.get("avatar_url")
    return (
        name if isinstance(name, str) and name else user_id,
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
        self._setup_task: asyncio.Task[None] | None = None
        self.rooms_ready = asyncio.Event()

    @property
    def links(self) -> list[Link]:
        return [link for link in self.host.config.links if self.name in link.rooms]

    @abstractmethod
    def is_own(self, user_id: str) -> bool:
        """Users whose events the bridge itself caused (bot, ghosts): never bridged again."""

    @abstractmethod
    async def poster(self, out: Outgoing) -> tuple[ClientAPI, str | None]:
        """Who posts ``out`` into its room, and the relay template when that is the bot."""

    # Rooms

    async def setup_rooms(self) -> None:
        """Join or create every link's room, retrying the ones that fail in the background."""
        self._pending_rooms = {link.id for link in self.links}
        while self._pending_rooms:
            for link in self.links:
                if link.id not in self._pending_rooms:
                    continue
                try:
                    await self._setup_room(link)
                    self._pending_rooms.discard(link.id)
                except Exception as e:
                    self.log.warning("Room of link %s not ready yet: %s", link.id, e)
            if self._pending_rooms:
                self.rooms_ready.set()  # the ones that work already flow
                await asyncio.sleep(SETUP_RETRY_SECONDS)
        self.rooms_ready.set()

    async def _setup_room(self, link: Link) -> None:
        spec = link.rooms[self.name]
        if spec.create is not None:
            room_id = await self.host.store.created_room(link.id, self.name)
            if room_id is None:
                room_id = await self._create_room(link)
                await self.host.store.save_created_room(link.id, self.name, room_id)
                self.log.info("Created room %s for link %s", room_id, link.id)
        else:
            assert spec.room is not None
            room_id = spec.room
            if room_id.startswith("#"):
                room_id = (await self.bot.resolve_room_alias(RoomAlias(room_id))).room_id
            await self.bot.join_room(RoomID(room_id), max_retries=2)
        self.host.directory.bind(link.id, self.name, room_id)
        if self.network.flavour is Flavour.TCHAP:
            await self._check_access_rules(link.id, room_id, None)

    async def _create_room(self, link: Link) -> str:
        assert link.rooms[self.name].create is not None
        create = link.rooms[self.name].create
        invitees = []
        for person_id in link.people:
            person = self.host.config.person(person_id)
            if person and self.name in person.accounts:
                invitees.append(UserID(person.accounts[self.name]))
        initial_state: list[JSON] = []
        if self.network.flavour is Flavour.TCHAP:
            # A bridged room has people from outside by definition: Tchap calls that
            # an "external access" room.
            initial_state.append(
                {
                    "type": tchap.ACCESS_RULES_EVENT,
                    "state_key": "",
                    "content": {"rule": tchap.AccessRule.UNRESTRICTED.value},
                }  # fmt: skip
            )
        return await self.bot.create_room(
            name=create.name if create else None,
            topic=create.topic if create else None,
            invitees=invitees,
            initial_state=initial_state,  # type: ignore[arg-type]
        )

    async def _check_access_rules(self, link_id: str, room_id: str, content: JSON | None) -> None:
        """Refuse a Tchap room whose access rule keeps out the people this link brings in."""
        if content is None:
            try:
                state = await self.bot.get_state_event(RoomID(room_id), ACCESS_RULES)
                content = state.serialize()
            except MNotFound:
                content = None
        rule = tchap.parse_access_rule(content)
        domains = foreign_domains(self.host.config, self.host.links.get(link_id), self.name)
        reason = tchap.restricted_room_refusal(rule, domains, self.network.restricted_rooms_allow)
        already = self.host.directory.disabled_reason(link_id, self.name)
        if reason and not already:
            self.host.directory.disable(link_id, self.name, reason)
            self.log.error("Refusing to bridge link %s into %s: %s", link_id, room_id, reason)
            await self.notify(
                room_id,
                f"This room is not bridged: {reason}. Nothing will be bridged into or out of "
                "it while this holds.",
            )
        elif not reason and already:
            self.host.directory.enable(link_id, self.name)
            self.log.info("Link %s into %s enabled: access rule is now %s", link_id, room_id, rule)

    # Receiving

    async def handle_room_event(self, raw: JSON) -> None:
        """One room event from the homeserver. Returns once the event is stored (or ignored).

        Raises only when storing failed, so that the source is not acknowledged and sends it
        again; any other failure is this event's alone: it is logged and the stream goes on.
        """
        try:
            event = await self._to_event(raw)
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
            return None
        bound = self.host.directory.bound_link(self.name, room_id)
        if bound and etype == tchap.ACCESS_RULES_EVENT and self.network.flavour is Flavour.TCHAP:
            await self._check_access_rules(bound, room_id, raw.get("content") or {})
            return None
        if self.is_own(sender_id):
            return None
        link_id = self.host.directory.link_for(self.name, room_id)
        if link_id is None:
            return None
        if etype == "m.room.encrypted":
            self.log.warning("Encrypted event %s in %s cannot be bridged yet", raw.get("event_id"),
                             room_id)  # fmt: skip
            return None
        if not sender_allowed(self.network, sender_id):
            self.log.info("Not bridging %s: %s is not an allowed domain", raw.get("event_id"),
                          sender_id)  # fmt: skip
            return None
        name, avatar = await self._member(room_id, sender_id)
        sender = Sender(network=self.name, user_id=sender_id, display_name=name, avatar=avatar)
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
        if content.get("membership") != "invite":
            return
        if user_id == str(self.bot.mxid):
            await self._on_bot_invited(room_id)
        elif self.is_own(user_id) and isinstance(raw.get("sender"), str):
            await self.on_ghost_invited(room_id, user_id, raw["sender"])

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
            except MatrixRequestError:
                self._members[key] = (user_id, None)
        return self._members[key]

    # Sending

    async def send(self, out: Outgoing, media: bytes | None) -> str | None:
        api, template = await self.poster(out)
        event = out.event
        try:
            if event.kind is Kind.REDACTION:
                assert out.target is not None
                return str(await api.redact(RoomID(out.room_id), EventID(out.target)))
            mxc = None
            if media is not None and event.attachment is not None:
                mxc = await api.upload_media(
                    media,
                    mime_type=event.attachment.mimetype,
                    filename=event.attachment.name,
                    size=len(media),
                )
            etype, content = matrix_content(
                out,
                sender_name=display_name(event.sender, self.network.flavour),
                relay_template=template,
                mxc=mxc,
            )
            event_id = await api.send_message_event(
                RoomID(out.room_id),
                EventType.find(etype, EventType.Class.MESSAGE),
                content,  # type: ignore[arg-type]
            )
            return str(event_id)
        except MatrixRequestError as e:
            if e.errcode == "M_DUPLICATE_ANNOTATION":
                return None  # the same reaction is already there (relay bot reacting twice)
            permanent = e.errcode in _PERMANENT_ERRCODES or e.http_status == 413
            raise DeliveryError(f"{self.name} refused it: {e}", permanent=permanent) from e

    async def fetch_media(self, ref: str) -> bytes:
        return await self.bot.download_media(ref)  # type: ignore[arg-type]

    async def notify(self, room_id: str, text: str) -> None:
        await self.bot.send_notice(RoomID(room_id), text)
