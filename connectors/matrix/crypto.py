"""End-to-bridge encryption for one Matrix network: the bridge's own device and what it does.

mautrix's `OlmMachine` does the cryptography and the key bookkeeping (Olm sessions per device,
Megolm sessions per room, device lists, one-time keys, key requests); its state lives in the
bridge's database (`crypto_store`). This module is the thin part mautrix leaves to a bridge, in
the spirit of mautrix's own (deprecated) ``bridge.e2ee.EncryptionManager``:

- one device per network, kept across restarts: in appservice mode the bot's device is created
  through MSC4190 and used by masquerading (``device_id`` query parameter), in relay mode it is
  the bot account's login device;
- to-device events, device list changes and one-time key counts, from appservice transactions
  (MSC2409/MSC3202) or from ``/sync``, are fed to the machine;
- outgoing events are encrypted with the room's Megolm session, shared first with every device
  of the room's joined and invited users (ghosts have no devices and are left out);
- incoming events are decrypted here rather than by `OlmMachine.decrypt_megolm_event`, because
  that one returns typed events whose serialisation rewrites the content (edit fallbacks, sticker
  message types) and cannot represent encrypted redactions; the same store, the same replay
  check (message index) and the same sender-key check are used;
- an event whose room key has not arrived is parked in the database and retried when the key
  arrives; after ``room_key_wait`` seconds the room is told it could not be bridged;
- key requests are answered only for bridged rooms, to devices of users in the room that are
  trusted enough (mautrix's default: cross-signed, trust on first use).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import olm
from mautrix.client import Client
from mautrix.crypto import OlmMachine, PgCryptoStore, RejectKeyShare
from mautrix.errors import EncryptionError, GroupSessionWithheldError
from mautrix.types import (
    JSON as MautrixJSON,
)
from mautrix.types import (
    DeviceID,
    DeviceIdentity,
    DeviceLists,
    DeviceOTKCount,
    EventType,
    IdentityKey,
    RequestedKeyInfo,
    RoomID,
    RoomKeyWithheldCode,
    SessionID,
    ToDeviceEvent,
    TrustState,
    UserID,
)
from mautrix.util.async_db import Database

from connectors.matrix.crypto_store import PICKLE_KEY, PendingEvents, crypto_databases
from connectors.matrix.room_facts import SHARING, RoomFacts

JSON = dict[str, Any]

MEGOLM = "m.megolm.v1.aes-sha2"
DEVICE_NAME = "Passerelle"


class KeyNotYet(Exception):
    """The room key of an encrypted event has not arrived (yet)."""


class Undecryptable(Exception):
    """An encrypted event that will not be decrypted; the message says why (for the log), and
    ``kind`` which of the room's notices fits (`bridge.notices`, ``undecryptable.<kind>``):
    ``no_key``, ``algorithm``, ``replayed`` or ``failed``."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


DeviceFor = Callable[[str | None], Awaitable[str]]
"""Given the device ID stored from an earlier run (None on the first), make sure the device
exists on the homeserver and return its ID."""
Decrypted = Callable[[JSON], Awaitable[None]]
Undecrypted = Callable[[JSON, "Undecryptable"], Awaitable[None]]


@dataclass(eq=False, kw_only=True)
class E2EE:
    network: str
    client: Client
    facts: RoomFacts
    db: Database
    log: logging.Logger
    room_key_wait: float
    is_ghost: Callable[[str], bool]
    is_bridged: Callable[[str], bool]
    machine: OlmMachine | None = field(default=None, init=False)
    _pending: PendingEvents | None = field(default=None, init=False)
    _on_decrypted: Decrypted | None = field(default=None, init=False)
    _on_undecryptable: Undecrypted | None = field(default=None, init=False)
    _waiters: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _room_locks: defaultdict[str, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock), init=False
    )
    _decrypt_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def olm(self) -> OlmMachine:
        assert self.machine is not None, "E2EE.start() has not completed"
        return self.machine

    # Start and stop

    async def start(
        self, device_for: DeviceFor, on_decrypted: Decrypted, on_undecryptable: Undecrypted
    ) -> None:
        """Open the stored identity (or create one), make sure the homeserver has its device and
        keys, and resume waiting for the keys of parked events. Raises when the homeserver
        refuses (the caller decides between retrying and giving up)."""
        self._on_decrypted, self._on_undecryptable = on_decrypted, on_undecryptable
        crypto_db, pending_db = await crypto_databases(self.db)
        self._pending = PendingEvents(pending_db, self.network)
        store = PgCryptoStore(self.network, PICKLE_KEY, crypto_db)
        await store.open()
        stored = await store.get_device_id() or None
        device_id = await device_for(stored)
        self.client.device_id = device_id  # type: ignore[assignment]
        account = await store.get_account()
        fresh = account is None or stored != device_id
        if account is not None and stored != device_id:
            self.log.warning("Device changed from %s to %s: new encryption identity", stored,
                             device_id)  # fmt: skip
        elif account is not None and not await self._keys_on_server(account.identity_key):
            self.log.warning("The homeserver lost device %s's keys: new encryption identity",
                             device_id)  # fmt: skip
            fresh = True
        if fresh and account is not None:
            await store.delete()
            store = PgCryptoStore(self.network, PICKLE_KEY, crypto_db)
        machine = OlmMachine(self.client, store, self.facts, log=self.log.getChild("olm"))  # type: ignore[arg-type]
        machine.allow_key_share = self._allow_key_share
        await machine.load()
        if fresh:
            await store.put_device_id(device_id)  # type: ignore[arg-type]
        await machine.share_keys()
        self.machine = machine
        self.log.info("End-to-bridge encryption ready: device %s of %s", device_id,
                      self.client.mxid)  # fmt: skip
        for parked in await self._pending.all():
            self._watch(parked.raw, parked.received_at)

    async def _keys_on_server(self, identity_key: str) -> bool:
        """Whether the homeserver still publishes this device with our identity key."""
        response = await self.client.query_keys([self.client.mxid])
        device = response.device_keys.get(self.client.mxid, {}).get(self.client.device_id)
        return device is not None and device.curve25519 == identity_key

    async def stop(self) -> None:
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)

    # What the homeserver tells the device

    async def receive(
        self, to_device: list[Any], device_lists: JSON | None, otk_counts: JSON | None
    ) -> None:
        """To-device events, device list changes and this device's one-time key count, from an
        appservice transaction or a ``/sync`` batch. A broken item is logged and skipped."""
        for raw in to_device:
            if isinstance(raw, dict):
                await self._to_device(raw)
        if isinstance(device_lists, dict):
            try:
                changes = DeviceLists.deserialize(_copy(device_lists))
                await self.olm.handle_device_lists(changes)
            except Exception:
                self.log.exception("Could not handle device list changes")
        if isinstance(otk_counts, dict):
            try:
                await self.olm.handle_otk_count(DeviceOTKCount.deserialize(_copy(otk_counts)))
            except Exception:
                self.log.exception("Could not top up one-time keys")

    async def _to_device(self, raw: JSON) -> None:
        to_user, to_device = raw.get("to_user_id"), raw.get("to_device_id")
        if to_user is not None and (
            to_user != self.client.mxid or to_device != self.client.device_id
        ):
            return  # an appservice receives the to-device events of every user in its namespace
        etype = raw.get("type")
        try:
            if etype == "m.room.encrypted":
                await self.olm.handle_to_device_event(ToDeviceEvent.deserialize(_copy(raw)))
            elif etype == "m.room_key_request":
                await self.olm.handle_room_key_request(ToDeviceEvent.deserialize(_copy(raw)))
            else:
                self.log.debug("Ignoring to-device %s from %s", etype, raw.get("sender"))
        except Exception as e:
            self.log.warning("Could not handle to-device %s from %s: %s", etype, raw.get("sender"),
                             e)  # fmt: skip

    def otk_counts_of(self, per_user: object) -> JSON | None:
        """This device's entry of an appservice transaction's one-time key counts (keyed by
        user, then device)."""
        if not isinstance(per_user, dict):
            return None
        counts = per_user.get(self.client.mxid, {})
        mine = counts.get(self.client.device_id) if isinstance(counts, dict) else None
        return mine if isinstance(mine, dict) else None

    # Room state

    async def members(self, room_id: str) -> set[str]:
        """Users whose devices get the room's keys (joined or invited), fetched once."""
        if not self.facts.knows_members(room_id):
            events = await self.client.get_members(RoomID(room_id))
            self.facts.set_members(
                room_id,
                {
                    str(e.state_key)
                    for e in events
                    if e.content.serialize().get("membership") in SHARING
                },
            )
        return self.facts.members(room_id)

    async def on_membership(self, room_id: str, user_id: str, membership: str) -> None:
        """A member event: someone who gains or loses access must not share the session the
        others had, so the next message starts a new one (ghosts have no devices: no change)."""
        changed = self.facts.set_membership(room_id, user_id, membership)
        if changed and not self.is_ghost(user_id) and self.facts.encryption(room_id) is not None:
            await self.olm.crypto_store.remove_outbound_group_session(RoomID(room_id))

    # Encrypting

    async def encrypt(self, room_id: str, event_type: str, content: JSON) -> JSON:
        """The ``m.room.encrypted`` content for an event in ``room_id``, sharing a new session
        first when the room has none (or it was invalidated)."""
        room = RoomID(room_id)
        etype = EventType.find(event_type, EventType.Class.MESSAGE)
        async with self._room_locks[room_id]:
            first_use = not self.facts.knows_members(room_id)
            people = [
                UserID(u) for u in sorted(await self.members(room_id)) if not self.is_ghost(u)
            ]
            if first_use:
                # First use since start: devices may have come or gone while the bridge was
                # down, unseen (appservice transactions missed then are not resent with them).
                await self.olm.crypto_store.remove_outbound_group_session(room)
                await self.olm.handle_device_lists(DeviceLists(changed=people))
            try:
                encrypted = await self.olm.encrypt_megolm_event(room, etype, content)
            except EncryptionError:
                await self.olm.share_group_session(room, people)
                encrypted = await self.olm.encrypt_megolm_event(room, etype, content)
        result: JSON = encrypted.serialize()
        return result

    # Decrypting

    async def decrypt(self, raw: JSON) -> JSON:
        """The decrypted form of an ``m.room.encrypted`` room event: the same event with the
        plaintext's type and content. Raises `KeyNotYet` or `Undecryptable`."""
        content = raw.get("content")
        if not isinstance(content, dict):
            raise Undecryptable("the encrypted event has no content")
        algorithm = content.get("algorithm")
        if algorithm != MEGOLM:
            raise Undecryptable(f"unsupported encryption algorithm {algorithm!r}", "algorithm")
        session_id, ciphertext = content.get("session_id"), content.get("ciphertext")
        if not isinstance(session_id, str) or not isinstance(ciphertext, str):
            raise Undecryptable("the encrypted event lacks its session or ciphertext")
        room_id, event_id = str(raw.get("room_id")), str(raw.get("event_id"))
        store = self.olm.crypto_store
        async with self._decrypt_lock:
            try:
                session = await store.get_group_session(RoomID(room_id), SessionID(session_id))
            except GroupSessionWithheldError as e:
                raise Undecryptable(f"the sender withheld its key ({e.withheld_code})") from e
            if session is None:
                raise KeyNotYet(session_id)
            try:
                plaintext, index = session.decrypt(ciphertext)
            except olm.OlmGroupSessionError as e:
                raise Undecryptable(f"its ciphertext is broken ({e})") from e
            timestamp = raw.get("origin_server_ts")
            if not await store.validate_message_index(
                session.sender_key,
                SessionID(session_id),
                event_id,  # type: ignore[arg-type]
                index,
                timestamp if isinstance(timestamp, int) else 0,
            ):
                raise Undecryptable(
                    "it replays an earlier message (message index reused)", "replayed"
                )
        await self._check_sender(raw, session.sender_key, session.signing_key,
                                 bool(session.forwarding_chain))  # fmt: skip
        try:
            payload = json.loads(plaintext)
        except json.JSONDecodeError as e:
            raise Undecryptable("its plaintext is not JSON") from e
        if not isinstance(payload, dict) or payload.get("room_id") != room_id:
            raise Undecryptable("its plaintext belongs to another room")
        inner_type, inner = payload.get("type"), payload.get("content")
        if not isinstance(inner_type, str) or not isinstance(inner, dict):
            raise Undecryptable("its plaintext lacks a type or content")
        if "m.relates_to" in content and "m.relates_to" not in inner:
            inner["m.relates_to"] = content["m.relates_to"]
        return {**raw, "type": inner_type, "content": inner}

    async def _check_sender(
        self, raw: JSON, sender_key: str, signing_key: str, forwarded: bool
    ) -> None:
        """The session must come from a device of the sender when the sender has that device
        (a session from an impostor device claiming the sender's identity key is refused)."""
        sender = raw.get("sender")
        if forwarded or not isinstance(sender, str):
            return
        device = await self.olm.get_or_fetch_device_by_key(UserID(sender), IdentityKey(sender_key))
        if device is not None and device.signing_key != signing_key:
            raise Undecryptable("its session's signing key does not match the sender's device")

    async def park(self, raw: JSON) -> None:
        """Keep an event whose key has not arrived and decrypt it once the key arrives (or
        report it after ``room_key_wait``)."""
        assert self._pending is not None
        await self._pending.add(raw)
        self._watch(raw, time.time())

    async def _request_key(self, raw: JSON) -> None:
        """Ask the sender's devices for a missing key: the key they sent may have been lost
        (Synapse does not keep to-device events for an appservice that was down)."""
        content = raw["content"]
        try:
            await self.olm.request_room_key(
                RoomID(str(raw.get("room_id"))),
                IdentityKey(str(content.get("sender_key"))),
                SessionID(str(content.get("session_id"))),
                {UserID(str(raw.get("sender"))): [DeviceID("*")]},
                timeout=0,
            )
        except Exception as e:
            self.log.warning("Could not request the key of %s: %s", raw.get("event_id"), e)

    def _watch(self, raw: JSON, received_at: float) -> None:
        task = asyncio.create_task(self._wait_for_key(raw, received_at))
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)

    async def _wait_for_key(self, raw: JSON, received_at: float) -> None:
        assert self._pending is not None
        assert self._on_decrypted is not None and self._on_undecryptable is not None
        event_id, room_id = str(raw.get("event_id")), RoomID(str(raw.get("room_id")))
        session_id = SessionID(str(raw["content"].get("session_id")))
        remaining = received_at + self.room_key_wait - time.time()
        try:
            if remaining > 0 and not await self.olm.crypto_store.has_group_session(
                room_id, session_id
            ):
                await self._request_key(raw)
                await self.olm.wait_for_session(room_id, session_id, timeout=remaining)
            try:
                decrypted = await self.decrypt(raw)
            except KeyNotYet:
                late = f"its key did not arrive within {self.room_key_wait:g} seconds"
                await self._on_undecryptable(raw, Undecryptable(late, "no_key"))
            except Undecryptable as e:
                await self._on_undecryptable(raw, e)
            else:
                await self._on_decrypted(decrypted)
            await self._pending.remove(event_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("Parked event %s stays parked until the next start", event_id)

    # Key requests

    async def _allow_key_share(self, device: DeviceIdentity, request: RequestedKeyInfo) -> bool:
        """Share a session this device created, only with a device of a user who is in the
        bridged room it belongs to, and trusted as mautrix bridges require by default
        (cross-signed by its owner, whose identity is trusted on first use)."""
        who = f"{device.user_id}/{device.device_id}"
        if device.trust == TrustState.BLACKLISTED:
            raise RejectKeyShare(f"{who} is blacklisted", code=RoomKeyWithheldCode.BLACKLISTED,
                                 reason="Your device is blacklisted by the bridge")  # fmt: skip
        room_id = str(request.room_id)
        if not await self._sent_by_us(room_id, str(request.session_id)):
            raise RejectKeyShare(f"{who} asked for session {request.session_id}, not ours",
                                 code=RoomKeyWithheldCode.UNAVAILABLE,
                                 reason="The bridge shares only the keys it created")  # fmt: skip
        if not self.is_bridged(room_id):
            raise RejectKeyShare(f"{who} asked for a key of {room_id}, not a bridged room",
                                 code=RoomKeyWithheldCode.UNAVAILABLE,
                                 reason="That room is not bridged")  # fmt: skip
        membership = await self._membership(room_id, device.user_id)
        if membership != "join":
            raise RejectKeyShare(f"{who} is not in {room_id}",
                                 code=RoomKeyWithheldCode.UNAUTHORIZED,
                                 reason="You are not in that room")  # fmt: skip
        if await self.olm.resolve_trust(device) < self.olm.share_keys_min_trust:
            raise RejectKeyShare(f"{who} is not trusted enough",
                                 code=RoomKeyWithheldCode.UNVERIFIED,
                                 reason="Your device is not trusted by the bridge")  # fmt: skip
        self.log.info("Sharing the key of session %s with %s", request.session_id, who)
        return True

    async def _sent_by_us(self, room_id: str, session_id: str) -> bool:
        """Whether the session is one this device created (others' keys are theirs to share)."""
        try:
            session = await self.olm.crypto_store.get_group_session(
                RoomID(room_id), SessionID(session_id)
            )
        except GroupSessionWithheldError:
            return False
        account = self.olm.account
        return (
            session is not None
            and account is not None
            and (session.sender_key == account.identity_key)
        )

    async def _membership(self, room_id: str, user_id: str) -> str | None:
        """The user's membership now, asked of the homeserver (never a stale cache)."""
        try:
            member = await self.client.get_state_event(
                RoomID(room_id), EventType.ROOM_MEMBER, user_id
            )
        except Exception:
            return None
        return str(member.serialize().get("membership"))


def _copy(raw: JSON) -> MautrixJSON:
    """mautrix's deserialisers annotate the dict they are given: keep the caller's intact."""
    return MautrixJSON(json.loads(json.dumps(raw)))
