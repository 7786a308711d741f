"""Matrix network where the bridge is an application service: a bot plus one ghost per person.

mautrix's `AppServiceAPI`/`IntentAPI` do the client side (registering ghosts, joining, sending).
The transaction endpoint is our own thin aiohttp handler rather than mautrix's
`AppServiceServerMixin`, because that one answers 200 even when handling failed, keeps handled
transaction IDs only in memory and runs handlers as background tasks, so the homeserver would be
told "done" before the event is stored. Here a transaction is acknowledged only after every event
in it is in the outbox, and a wrong token gets the spec's 403 ``M_FORBIDDEN``.

A transaction the homeserver sends again (it was not acknowledged) is simply handled again:
room events are stored once by event ID (`Store.accept`), and memberships, state and typing
lists are facts that can be applied twice. Only to-device messages cannot (decrypting one uses up
its one-time key), so only transactions carrying them are recorded as handled, by ID and content
(Synapse on SQLite numbers transactions from 1 again after a restart).

With encryption allowed, the bot has one device (created through MSC4190, kept across restarts)
that encrypts for the bot and every ghost; transactions then also carry that device's to-device
events (MSC2409), device list changes and one-time key counts (MSC3202).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from mautrix.appservice import AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client import Client, ClientAPI
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import EventID, EventType, Membership, RoomCreatePreset, RoomID, UserID

from bridge import json_input
from bridge.config.model import Person
from bridge.connector import (
    DirectChatRefused,
    DirectChats,
    Host,
    Outgoing,
    ReadMarkers,
    ServesHttp,
    Typing,
)
from bridge.events import Kind, Sender
from bridge.naming import address_parts, heads, owner_account, person_sender, shown_name
from bridge.notices import notice
from bridge.policy import account_domain, ghost_refused, sender_refusal
from bridge.tasks import supervise
from connectors.matrix import tchap
from connectors.matrix.api import NamedAppServiceAPI, NamedCalls
from connectors.matrix.base import REFUSED_RETRY_SECONDS, MatrixConnector, token_refused
from connectors.matrix.catch_up import CatchUp
from connectors.matrix.config import Encryption, Flavour, MatrixNetwork
from connectors.matrix.crypto import DEVICE_NAME
from connectors.matrix.http import client_session
from connectors.matrix.state import GhostProfile
from connectors.matrix.translate import ghost_localpart, ghost_owner, read_receipts

READY_TIMEOUT = 30.0
TO_DEVICE_KEYS = ("de.sorunome.msc2409.to_device", "to_device")
DEVICE_LISTS_KEYS = ("org.matrix.msc3202.device_lists", "device_lists")
EPHEMERAL_KEYS = ("de.sorunome.msc2409.ephemeral", "ephemeral")
TYPING_TIMEOUT_MS = 30_000
OTK_COUNT_KEYS = (
    "org.matrix.msc3202.device_one_time_keys_count",
    "org.matrix.msc3202.device_one_time_key_counts",
    "device_one_time_keys_count",
)
"""Where transactions carry the encryption extensions: the unstable names Synapse sends today,
then the stable ones the MSCs define."""

MediaFetcher = Callable[[str], Awaitable[bytes]]


class _StateStore(ASStateStore, MemoryStateStore):
    """mautrix's membership/registration cache, in memory: it is rebuilt from the homeserver."""

    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


def _first(body: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first of ``keys`` present in a transaction body."""
    return next((body[key] for key in keys if key in body), None)


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


class AppserviceConnector(MatrixConnector, DirectChats, Typing, ReadMarkers, ServesHttp):
    def __init__(self, network: MatrixNetwork, host: Host) -> None:
        super().__init__(network, host)
        assert network.appservice is not None
        self.settings = network.appservice
        self._ghost_re = re.compile(
            rf"^@{re.escape(self.settings.ghost_prefix)}.*:{re.escape(network.server_name)}$"
        )
        self._session: aiohttp.ClientSession | None = None
        self._api: AppServiceAPI | None = None
        self._state = _StateStore()
        self._ghosts: dict[UserID, GhostProfile] = {}
        self._named_in: dict[UserID, set[RoomID]] = {}
        """For each ghost renamed while running, the rooms whose member event already shows
        the new name. Synapse renames a user in their rooms in a background task, room by room:
        a message sent right after the rename would show the old name, so the first message
        into each room sets the name there first (`_name_in`)."""
        self._intents: dict[UserID, IntentAPI] = {}
        """Each ghost's intent, made once: mautrix builds a new one on every ``intent()`` call
        (it already keeps each ghost's API object for good)."""
        self._typing: dict[str, set[str]] = {}
        """Room → who the homeserver last said was typing there (the bridge's own users left
        out)."""
        self._catch_up_task: asyncio.Task[None] | None = None
        self.catch_up = CatchUp(
            lambda: self.state,
            host.store,
            lambda: self.bot,
            self._room_event,
            lambda: host.directory.rooms(self.name),
            self.settings.catch_up_interval,
            self.log.getChild("catch-up"),
        )

    @property
    def routes(self) -> list[web.RouteDef]:
        """The homeserver → appservice API (transactions, user and alias queries, ping)."""
        return [
            *(
                route
                for prefix in ("/_matrix/app/v1", "")
                for route in (
                    web.put(prefix + "/transactions/{txn_id}", self._transaction),
                    web.get(prefix + "/users/{user_id}", self._query_user),
                    web.get(prefix + "/rooms/{alias}", self._query_alias),
                )
            ),
            web.post("/_matrix/app/v1/ping", self._ping),
        ]

    async def start(self) -> None:
        self._session = client_session()
        self._api = NamedAppServiceAPI(
            base_url=self.network.homeserver,
            bot_mxid=UserID(f"@{self.settings.bot}:{self.network.server_name}"),
            token=self.settings.as_token,
            log=self.log,  # type: ignore[arg-type]
            state_store=self._state,
            client_session=self._session,
        )
        self.bot = self._api.bot_intent()
        self._setup_task = supervise(f"setup:{self.name}", self._setup, self.log)

    async def _setup(self) -> None:
        while True:
            try:
                await self.bot.ensure_registered()  # type: ignore[attr-defined]
                await self.bot.set_displayname("Passerelle")
                break
            except Exception as e:
                if token_refused(e):
                    self.set_refused(
                        "the homeserver refused the appservice token — is the registration "
                        f"({self.name}-registration.yaml) installed and the homeserver restarted?"
                    )
                    await asyncio.sleep(REFUSED_RETRY_SECONDS)
                    continue
                self.log.warning("Homeserver %s not reachable yet: %s", self.network.homeserver, e)
                await asyncio.sleep(2)
        self.set_refused(None)
        try:
            # Makes the homeserver retry transactions it queued while we were down now, instead
            # of after its backoff. Only a hint: the homeserver may answer it with an error
            # while the bridge is still starting (behind a proxy that waits for readiness, the
            # ping cannot reach it yet), and it retries in any case.
            await self.bot.appservice_ping(self.settings.id)  # type: ignore[attr-defined]
        except Exception as e:
            self.log.info("The appservice ping through %s failed (%s); going on",
                          self.network.homeserver, e)  # fmt: skip
        if self.network.encryption is not Encryption.OFF and self.e2ee is None:
            client = self._device_client()
            await self.start_e2ee(client, lambda stored: self._bot_device(client, stored))
        await self.setup_rooms()
        if self._catch_up_task is None or self._catch_up_task.done():
            self._catch_up_task = supervise(f"catch-up:{self.name}", self.catch_up.run, self.log)

    async def joined(self, room_id: str) -> None:
        try:
            await self.catch_up.from_now(room_id)
        except Exception as e:  # the room's first read takes its token instead
            self.log.warning("Could not note where %s's timeline stands: %s", room_id, e)

    def _device_client(self) -> Client:
        """The bot as its encryption device: the appservice token, masquerading as the bot
        (and, once it exists, as its device)."""
        assert self._session is not None
        client = Client(
            self.bot.mxid,
            api=NamedCalls(
                self.network.homeserver,
                self.settings.as_token,
                client_session=self._session,
                log=self.log.getChild("device"),  # type: ignore[arg-type]
            ),
        )
        client.api.as_user_id = self.bot.mxid
        return client

    @staticmethod
    async def _bot_device(client: Client, stored: str | None) -> str:
        """The bot's device, created (or found again) through MSC4190's ``PUT /devices``."""
        device_id = stored or f"PASSERELLE{secrets.token_hex(5).upper()}"
        await client.create_device_msc4190(device_id, DEVICE_NAME)
        return device_id

    async def stop(self) -> None:
        for task in (self._setup_task, self._catch_up_task):
            if task is not None:
                task.cancel()
        await self.close(self._session)

    @property
    def exclusive(self) -> bool:
        """Only with encryption: its device's keys and sessions may be used by one process."""
        return self.network.encryption is not Encryption.OFF

    def is_own(self, user_id: str) -> bool:
        return user_id == str(self.bot.mxid) or bool(self._ghost_re.match(user_id))

    def is_ghost(self, user_id: str) -> bool:
        return bool(self._ghost_re.match(user_id))

    async def poster(self, out: Outgoing) -> tuple[ClientAPI, str | None]:
        if out.sender_is_local:
            return self.bot, "**{name}**: {message}"
        intent = await self._ghost(out.event.sender, out.fetch_source_media)
        await intent.ensure_joined(RoomID(out.room_id))
        await self._name_in(intent, RoomID(out.room_id))
        return intent, None

    async def _name_in(self, intent: IntentAPI, room_id: RoomID) -> None:
        """Show a renamed ghost's new name in ``room_id`` now (see `_named_in`): its member
        event there again, with the new name and everything else (its avatar) as it was."""
        named = self._named_in.get(intent.mxid)
        profile = self._ghosts.get(intent.mxid)
        if named is None or room_id in named or profile is None:
            return
        try:
            member = await intent.get_state_event(room_id, EventType.ROOM_MEMBER, intent.mxid)
            content = member.serialize()
            if isinstance(content, dict) and content.get("displayname") != profile.name:
                renamed = {**content, "displayname": profile.name}
                await intent.send_state_event(
                    room_id, EventType.ROOM_MEMBER, renamed, state_key=intent.mxid
                )
        except MatrixRequestError as e:  # the message still goes; Synapse renames it later
            self.log.warning("Could not show %s's new name in %s: %s", intent.mxid, room_id, e)
        named.add(room_id)

    def _ghost_id(self, sender: Sender) -> UserID:
        localpart = ghost_localpart(self.settings.ghost_prefix,
                                    *address_parts(self.host.config, sender))  # fmt: skip
        return UserID(f"@{localpart}:{self.network.server_name}")

    async def people_changed(self, people: Sequence[Person]) -> None:
        """Rename the ghosts these people already have here (Synapse shows the new name in
        every room they are in); people without one yet get it named right when it is made."""
        for person in people:
            sender = person_sender(self.host.config, person)
            user_id = self._ghost_id(sender)
            current = await self.state.ghost_profile(user_id)
            name = shown_name(sender)
            if current is None or current.name == name:
                continue
            await self._intent(user_id).set_displayname(name)
            await self.state.save_ghost_profile(user_id, GhostProfile(name, current.avatar))
            self._ghosts.pop(user_id, None)
            self._named_in[user_id] = set()
            self.log.info("Renamed %s to %s", user_id, name)

    async def leave_ghosts(self, room_id: str) -> None:
        members = await self.bot.get_joined_members(RoomID(room_id))
        for user_id in members:
            if self.is_ghost(user_id):
                await self._intent(user_id).leave_room(RoomID(room_id))

    async def senders_refused(self, networks: Collection[str]) -> None:
        """Each ghost of someone no longer let out of ``networks`` leaves the rooms of their
        links here (one request for the members of each room of a link with such a network).
        A ghost whose ID was shortened with a hash (an account of over 200 characters) cannot
        be read back, and stays."""
        if not self.host.leads(self.name):
            return
        config, directory = self.host.config, self.host.directory
        for room_id in directory.rooms(self.name):
            link_id = directory.link_for(self.name, room_id)
            link = self.host.links.get(link_id) if link_id is not None else None
            if link is None or not set(networks) & (link.rooms.keys() - {self.name}):
                continue
            try:
                members = await self.bot.get_joined_members(RoomID(room_id))
            except Exception as e:
                self.log.warning("Could not read the members of %s: %s", room_id, e)
                continue
            for user_id in members:
                parts = ghost_owner(user_id.split(":", 1)[0].removeprefix("@"),
                                    self.settings.ghost_prefix, heads(config))  # fmt: skip
                if (
                    not self.is_ghost(user_id)
                    or parts is None
                    or not ghost_refused(config, self.host.federation, link, *parts, self.name)
                ):
                    continue
                try:
                    await self._intent(user_id).leave_room(RoomID(room_id))
                    await self._state.set_membership(RoomID(room_id), user_id, Membership.LEAVE)
                except Exception as e:
                    self.log.warning("%s could not leave %s: %s", user_id, room_id, e)
                    continue
                self.log.info("%s left %s (link %s): the federation list of their network no "
                              "longer lets them out", user_id, room_id, link.id)  # fmt: skip

    async def _ghost(self, sender: Sender, fetch: MediaFetcher | None) -> IntentAPI:
        """The sender's ghost, registered and named, with their avatar when ``fetch`` can get
        it. The profile last set is remembered, so an unchanged one costs no request."""
        user_id = self._ghost_id(sender)
        intent = self._intent(user_id)
        wanted = GhostProfile(shown_name(sender), sender.avatar)
        if self._ghosts.get(user_id) == wanted:
            return intent
        current = await self.state.ghost_profile(user_id)
        if current != wanted:
            await intent.ensure_registered()
            if current is None or current.name != wanted.name:
                await intent.set_displayname(wanted.name)
                if current is not None:
                    self._named_in[user_id] = set()
            avatar = current.avatar if current else None
            if wanted.avatar != avatar and wanted.avatar and fetch is not None:
                avatar = await self._copy_avatar(intent, sender, fetch)
            wanted = GhostProfile(wanted.name, avatar)
            await self.state.save_ghost_profile(user_id, wanted)
        self._ghosts[user_id] = wanted
        return intent

    def _intent(self, user_id: UserID) -> IntentAPI:
        assert self._api is not None
        intent = self._intents.get(user_id)
        if intent is None:
            intent = self._intents[user_id] = self._api.intent(user_id)
        return intent

    async def _copy_avatar(
        self, intent: IntentAPI, sender: Sender, fetch: MediaFetcher
    ) -> str | None:
        """Give the ghost the sender's avatar; a failure leaves the ghost's avatar as it was."""
        assert sender.avatar is not None
        try:
            data = await fetch(sender.avatar)
            mxc = await intent.upload_media(data, filename="avatar")
            await intent.set_avatar_url(mxc)
            return sender.avatar
        except Exception as e:
            self.log.warning("Could not copy the avatar of %s: %s", sender.user_id, e)
            return None

    async def open_direct(self, link_id: str, user_id: str, sender: Sender) -> str:
        """A private room that the sender's ghost opens with ``user_id``; the bot joins too so
        that delivery notices can be posted there."""
        if self.network.flavour is Flavour.TCHAP:
            refusal = tchap.restricted_room_refusal(
                tchap.AccessRule.DIRECT,
                [account_domain(self.host.config, sender.network, sender.user_id)],
                self.network.restricted_rooms_allow,
            )
            if refusal is not None:
                raise DirectChatRefused(refusal)
        intent = await self._ghost(sender, None)
        initial_state: list[dict[str, object]] = []
        if self.network.flavour is Flavour.TCHAP:
            initial_state.append(tchap.access_rules_state(tchap.AccessRule.DIRECT))
        if self.network.encryption is Encryption.REQUIRE:
            initial_state.append(self.encryption_state())
        room_id = await intent.create_room(
            invitees=[UserID(user_id), self.bot.mxid],
            is_direct=True,
            preset=RoomCreatePreset.TRUSTED_PRIVATE,
            initial_state=initial_state,  # type: ignore[arg-type]
        )
        await self.bot.join_room(room_id)
        await self.joined(room_id)
        self.log.info("Opened direct chat %s with %s for link %s", room_id, user_id, link_id)
        return str(room_id)

    async def on_ghost_invited(self, room_id: str, ghost: str, inviter: str) -> None:
        """A user here invited a ghost to a room of its own: open the direct chat with the
        person the ghost stands for, on their network. The ghost joins either way, and says
        so and leaves when the chat cannot be opened."""
        if self.host.directory.bound_link(self.name, room_id) is not None:
            return
        parts = ghost_owner(
            ghost.split(":", 1)[0].removeprefix("@"),
            self.settings.ghost_prefix,
            heads(self.host.config),
        )
        owner = owner_account(self.host.config, *parts, self.name) if parts else None
        intent = self._intent(UserID(ghost))
        await intent.ensure_registered()
        await intent.join_room(RoomID(room_id))
        if owner is None:
            return
        network, remote = owner
        sender = await self.sender(room_id, inviter, intent)
        try:
            await self._admit_direct(room_id, intent)
            await self.host.direct_chat(self.name, room_id, sender, network, remote)
        except DirectChatRefused as e:
            # In the clear even in an encrypted chat: the bot's device may not be in it.
            refused = notice("direct_refused", reason=e.reason).render(self.network.language)
            await intent.send_notice(RoomID(room_id), refused)
            await intent.leave_room(RoomID(room_id))

    async def _admit_direct(self, room_id: str, intent: IntentAPI) -> None:
        """Refuse a chat whose encryption this network may not bridge; bring the bot into an
        encrypted one, since its device is the one that reads and writes for the ghosts."""
        refusal = await self.encryption_refusal(room_id, intent)
        if refusal is not None:
            raise DirectChatRefused(refusal)
        if await self.room_encryption(room_id, intent) is not None:
            try:
                await intent.invite_user(RoomID(room_id), self.bot.mxid)
                await self.bot.join_room(RoomID(room_id))
            except MatrixRequestError as e:
                self.log.warning("The bot cannot join direct chat %s: %s", room_id, e)
                raise DirectChatRefused(notice("direct_refused.bot_cannot_join")) from e

    # The homeserver → bridge API

    def _auth_error(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token is None:
            token = request.query.get("access_token")
        if token is None:
            return _error(401, "M_UNAUTHORIZED", "Missing homeserver token")
        if not hmac.compare_digest(token.encode(), self.settings.hs_token.encode()):
            self.log.warning("Rejected a request with a wrong homeserver token")
            return _error(403, "M_FORBIDDEN", "Invalid homeserver token")
        return None

    async def _transaction(self, request: web.Request) -> web.Response:
        if (denied := self._auth_error(request)) is not None:
            return denied
        txn_id = request.match_info["txn_id"]
        raw_body = await request.read()
        try:
            body = json_input.loads(raw_body)
        except json_input.Unreadable as e:
            self.log.warning("Refused transaction %s: %s", txn_id, e)
            return _error(400, "M_NOT_JSON", f"Malformed transaction: {e}")
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            self.log.warning("Refused transaction %s: no list of events", txn_id)
            return _error(400, "M_BAD_JSON", "Malformed transaction: events must be a list")
        to_device = _first(body, TO_DEVICE_KEYS) if self.e2ee is not None else None
        to_device = to_device if isinstance(to_device, list) else []
        digest = hashlib.sha256(raw_body).hexdigest() if to_device else None
        if digest and await self.state.txn_handled(txn_id, digest):
            return web.json_response({})
        if not self.rooms_ready.is_set():
            try:
                await asyncio.wait_for(self.rooms_ready.wait(), READY_TIMEOUT)
            except TimeoutError:
                return _error(503, "M_UNKNOWN", "Bridge rooms are not set up yet")
        if not self.catch_up.first_pass.is_set():
            with contextlib.suppress(TimeoutError):  # late rather than never
                await asyncio.wait_for(self.catch_up.first_pass.wait(), READY_TIMEOUT)
        if self.e2ee is not None:
            # Keys first: a room key and the message it opens may share a transaction.
            await self.e2ee.receive(
                to_device,
                _first(body, DEVICE_LISTS_KEYS),
                self.e2ee.otk_counts_of(_first(body, OTK_COUNT_KEYS)),
            )
        if self.catch_up.wary:
            await self._read_before(events)
        for raw in events:
            if not isinstance(raw, dict):
                self.log.warning("Ignoring a non-object event in transaction %s", txn_id)
                continue
            if isinstance(raw.get("room_id"), str):
                self.catch_up.active(raw["room_id"])
            if self._echo(raw):
                continue
            try:
                await self._room_event(raw)
            except Exception:
                # Not acknowledged: the homeserver sends the transaction again, or may drop it;
                # either way the rooms are read for what it holds.
                self.catch_up.everything()
                raise
        ephemeral = _first(body, EPHEMERAL_KEYS)
        for edu in ephemeral if isinstance(ephemeral, list) else []:
            if isinstance(edu, dict) and edu.get("type") == "m.typing":
                await self._on_typing(edu)
            elif isinstance(edu, dict) and edu.get("type") == "m.receipt":
                await self._on_receipt(edu)
        if digest:
            await self.state.mark_txn_handled(txn_id, digest)
        return web.json_response({})

    def _echo(self, raw: dict[str, Any]) -> bool:
        """Whether an event is the bridge's own message coming back: the homeserver pushes
        every event of a bridged room, those its ghosts and bot post too, so one of the two
        transactions of each bridged message holds nothing but this. Dropped before anything
        else looks at it; state events (a ghost's membership) are still taken in."""
        sender = raw.get("sender")
        return "state_key" not in raw and isinstance(sender, str) and self.is_own(sender)

    async def _read_before(self, events: list[Any]) -> None:
        """Read the rooms of a transaction up to its events first (`CatchUp.wary`); a room
        that cannot be read now is left to the pushed events and the regular catch-up. The
        bridge's own messages have nothing to wait for (`_echo`)."""
        rooms = {raw["room_id"] for raw in events if isinstance(raw, dict)
                 and isinstance(raw.get("room_id"), str) and not self._echo(raw)}  # fmt: skip
        for room_id in rooms:
            if not self.catch_up.knows(room_id) or not self.host.directory.link_for(
                self.name, room_id
            ):
                continue
            try:
                await self.catch_up.read(room_id)
            except Exception as e:
                self.log.debug("Could not read %s before its pushed events: %s", room_id, e)

    async def _room_event(self, raw: dict[str, Any]) -> None:
        """One room event, pushed in a transaction or read by the catch-up."""
        await self._track_membership(raw)
        await self.handle_room_event(raw)

    async def _on_typing(self, edu: dict[str, Any]) -> None:
        """Who started or stopped typing in a bridged room, from the room's whole typing list
        (the homeserver sends the list, not the changes)."""
        room_id, content = edu.get("room_id"), edu.get("content")
        if not isinstance(room_id, str) or not isinstance(content, dict):
            return
        await self._ensure_checked(room_id)
        if self.host.directory.link_for(self.name, room_id) is None:
            return
        users = content.get("user_ids")
        now = {u for u in users if isinstance(u, str) and not self.is_own(u)} if isinstance(
            users, list) else set()  # fmt: skip
        before = self._typing.get(room_id, set())
        self._typing[room_id] = now
        for user_id in sorted(now ^ before):
            try:
                sender = await self.sender(room_id, user_id)
                await self.host.typing(self.name, room_id, sender, user_id in now)
            except Exception:
                self.log.exception("Could not pass on the typing of %s", user_id)

    async def mirror_member(self, out: Outgoing) -> None:
        """The sender's ghost joins the room (named, with their avatar) or leaves it; never
        for someone with an account here, nor into a room its rules keep them out of."""
        sender = out.event.sender
        if out.sender_is_local:
            return
        room_id = RoomID(out.room_id)
        if out.event.kind is Kind.LEAVE:
            user_id = self._ghost_id(sender)
            if await self._ghost_in(out.room_id, user_id):
                await self._intent(user_id).leave_room(room_id)
                await self._state.set_membership(room_id, user_id, Membership.LEAVE)
            return
        refusal = await self.sender_refusal(out.room_id, sender)
        if refusal is not None:
            self.log.info("%s does not join %s: %s", sender.user_id, room_id, refusal)
            return
        intent = await self._ghost(sender, out.fetch_source_media)
        await intent.ensure_joined(room_id)

    async def _on_receipt(self, edu: dict[str, Any]) -> None:
        """Read receipts in a bridged room, passed on as read markers (the ghosts' own, which
        the bridge set, are not passed back)."""
        room_id = edu.get("room_id")
        if (
            not self.network.read_markers
            or not isinstance(room_id, str)
            or self.host.directory.link_for(self.name, room_id) is None
        ):
            return
        config, listed = self.host.config, self.host.federation
        for user_id, event_id in read_receipts(edu).items():
            if self.is_own(user_id) or sender_refusal(config, listed, self.name, user_id):
                continue
            try:
                sender = await self.sender(room_id, user_id)
                self.host.read(self.name, room_id, sender, event_id)
            except Exception:
                self.log.exception("Could not pass on the read receipt of %s", user_id)

    async def show_read(self, room_id: str, sender: Sender, remote_id: str) -> None:
        """The sender's ghost sets its read receipt, if it is in the room."""
        if not self.network.read_markers or await self.sender_refusal(room_id, sender):
            return
        user_id = self._ghost_id(sender)
        if not await self._ghost_in(room_id, user_id):
            return
        await self._intent(user_id).send_receipt(RoomID(room_id), EventID(remote_id))

    async def _ghost_in(self, room_id: str, user_id: UserID) -> bool:
        """Whether a ghost is in the room: as the memberships seen so far say, else as the
        room's state says (read once as the bot, then remembered)."""
        known = await self._state.get_member(RoomID(room_id), user_id)
        membership = known.membership if known is not None else None
        if membership is None:
            try:
                member = await self.bot.get_state_event(
                    RoomID(room_id), EventType.ROOM_MEMBER, user_id
                )
                membership = Membership(member.serialize().get("membership"))
            except (MatrixRequestError, ValueError):
                membership = Membership.LEAVE
            await self._state.set_membership(RoomID(room_id), user_id, membership)
        return membership is Membership.JOIN

    async def set_typing(self, room_id: str, sender: Sender, typing: bool) -> None:
        await self._ensure_checked(room_id)  # a room refused there shows no one typing
        if (
            self.host.directory.link_for(self.name, room_id) is None
            or await self.sender_refusal(room_id, sender) is not None
        ):
            return
        intent = await self._ghost(sender, None)
        await intent.set_typing(RoomID(room_id), TYPING_TIMEOUT_MS if typing else 0)

    async def _track_membership(self, raw: dict[str, object]) -> None:
        """Keep mautrix's membership cache right, so ``ensure_joined`` re-joins a kicked ghost."""
        content = raw.get("content")
        if raw.get("type") != "m.room.member" or not isinstance(content, dict):
            return
        try:
            membership = Membership(content.get("membership"))
        except ValueError:
            return
        await self._state.set_membership(
            RoomID(str(raw.get("room_id"))), UserID(str(raw.get("state_key"))), membership
        )

    async def _query_user(self, request: web.Request) -> web.Response:
        if (denied := self._auth_error(request)) is not None:
            return denied
        user_id = request.match_info["user_id"]
        if self._ghost_re.match(user_id) and self._api is not None:
            await self._intent(UserID(user_id)).ensure_registered()
            return web.json_response({})
        return _error(404, "M_NOT_FOUND", "No such user")

    async def _query_alias(self, request: web.Request) -> web.Response:
        if (denied := self._auth_error(request)) is not None:
            return denied
        return _error(404, "M_NOT_FOUND", "The bridge provisions no aliases")

    async def _ping(self, request: web.Request) -> web.Response:
        if (denied := self._auth_error(request)) is not None:
            return denied
        return web.json_response({})
