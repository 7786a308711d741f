"""An encrypted world: two real Synapse homeservers (``bund.test`` and ``tchap.test``) with the
appservice encryption extensions on, users who are real encrypting clients (mautrix's `Client`
with an `OlmMachine` and python-olm), end-to-end encrypted rooms on both sides, and the bridge
between them with ``encryption`` set per network:

- ``bund`` (appservice) allows encryption,
- ``tchap`` (appservice) and ``tchap-relay`` (relay mode) require it.

Links: ``secret`` (encrypted rooms on both sides), ``relay`` (encrypted rooms, Tchap side in relay
mode) and ``plain`` (unencrypted rooms: Tchap refuses it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mautrix.client.state_store import MemoryStateStore
from mautrix.crypto import OlmMachine, StateStore
from mautrix.crypto.attachments import decrypt_attachment, encrypt_attachment
from mautrix.crypto.store import MemoryCryptoStore
from mautrix.errors import DecryptionError
from mautrix.types import (
    ContentURI,
    EncryptedEvent,
    EventType,
    LoginType,
    RoomID,
    UserID,
)

from tests.harness import Homeserver, User
from tests.harness import world as build

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

RELAY_PASSWORD = "relay-bot-password-for-e2ee-tests"
PASSWORD = "user-password-for-e2ee-tests"
ROOM_KEY_WAIT = {"bund": 60, "tchap": 5}
"""Seconds the bridge waits for a missing room key: long on bund, where a key comes late on
purpose; short on Tchap, where one never comes (so that test stays quick)."""
HOMESERVER_OPTIONS: dict[str, Any] = {
    "experimental_features": {
        "msc2409_to_device_messages_enabled": True,
        "msc3202_transaction_extensions": True,
    }
}
"""What Synapse needs for an encrypting appservice (README, "Encrypted rooms")."""
ENCRYPTED = {"type": "m.room.encryption", "state_key": "",
             "content": {"algorithm": "m.megolm.v1.aes-sha2"}}  # fmt: skip

BUND_OPTIONS = "encryption: allow\nroom_key_wait: {wait}\n"
TCHAP_OPTIONS = "restricted_rooms_allow: [bund.test]\nencryption: require\nroom_key_wait: {wait}\n"
PEOPLE_AND_LINKS = ("people:\n" + build.MAX + "links:\n" + build.matrix_link("secret")
                    + build.matrix_link("plain") + build.RELAY_LINK)  # fmt: skip


class _ClientState(MemoryStateStore, StateStore):
    """mautrix's in-memory room state, plus the one question `OlmMachine` adds."""

    async def find_shared_rooms(self, user_id: UserID) -> list[RoomID]:
        return [
            room_id
            for room_id, members in self.members.items()
            if user_id in members and await self.is_encrypted(room_id)
        ]


class CryptoUser(User):
    """A Matrix user whose client encrypts and decrypts like Element does: its own device with
    keys uploaded, a sync loop that receives room keys, automatic encryption in encrypted
    rooms. ``wait_for_decrypted`` reads the room as that user sees it, decrypted."""

    def __init__(self, user_id: str, access_token: str, base_url: str) -> None:
        super().__init__(user_id, access_token, base_url)
        self.state = _ClientState()
        self.client.state_store = self.state
        self.client.sync_store = self.crypto_store = MemoryCryptoStore(user_id, "test")
        self.machine = OlmMachine(self.client, self.crypto_store, self.state)

    @classmethod
    async def new_device(cls, hs: Homeserver, localpart: str) -> CryptoUser:
        """Another device of an existing user: a fresh login with the world's password."""
        user = cls(f"@{localpart}:{hs.server_name}", "", hs.url)
        await user.client.login(
            identifier=UserID(user.user_id), login_type=LoginType.PASSWORD, password=PASSWORD
        )
        await user.start_crypto()
        return user

    async def start_crypto(self) -> None:
        self.client.device_id = (await self.client.whoami()).device_id
        await self.crypto_store.put_device_id(self.client.device_id)
        await self.machine.load()
        await self.machine.share_keys()
        self.client.crypto = self.machine
        self.client.start(None)

    async def close(self) -> None:
        self.client.stop()
        await super().close()

    async def send_content(self, room_id: str, content: dict[str, Any]) -> str:
        """Send an ``m.room.message`` (encrypted in an encrypted room); return its event ID."""
        event_id = await self.client.send_message_event(
            RoomID(room_id),
            EventType.ROOM_MESSAGE,
            content,  # type: ignore[arg-type]
        )
        return str(event_id)

    async def send_image(self, room_id: str, data: bytes, name: str) -> str:
        """An image as clients send it into an encrypted room: encrypted, with its keys."""
        ciphertext, file = encrypt_attachment(data)
        file.url = await self.client.upload_media(ciphertext, mime_type="application/octet-stream")
        return await self.send_content(room_id, {
            "msgtype": "m.image", "body": name, "file": file.serialize(),
            "info": {"mimetype": "image/png", "size": len(data), "w": 1, "h": 1},
        })  # fmt: skip

    async def download_file(self, file: dict[str, Any]) -> bytes:
        data = await self.client.download_media(ContentURI(file["url"]))
        return decrypt_attachment(data, file["key"]["k"], file["hashes"]["sha256"], file["iv"])

    async def decrypted(self, raw: Event) -> Event:
        """An event as this user's client shows it: decrypted when it can be, with
        ``encrypted`` telling whether it arrived encrypted."""
        if raw.get("type") != "m.room.encrypted":
            return {**raw, "encrypted": False}
        try:
            event = await self.machine.decrypt_megolm_event(
                EncryptedEvent.deserialize(json.loads(json.dumps(raw)))
            )
        except (DecryptionError, ValueError):
            return {**raw, "encrypted": True}
        shown = event.serialize()
        shown.pop("mautrix", None)
        return {**shown, "encrypted": True}

    async def wait_for_decrypted(
        self,
        room_id: str,
        predicate: Predicate,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> Event:
        """Like `User.wait_for`, on the events as this user reads them (decrypted); room keys
        arriving meanwhile through the sync loop are used on the next poll."""

        async def poll() -> Event:
            while True:
                for raw in await self.messages(room_id, 100):
                    event = await self.decrypted(raw)
                    if predicate(event):
                        return event
                await asyncio.sleep(0.2)

        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            latest = [await self.decrypted(raw) for raw in await self.messages(room_id, 15)]
            summary = "\n".join(
                f"  {e.get('type')} from {e.get('sender')}: {e.get('content')}" for e in latest
            )
            raise TimeoutError(
                f"{self.user_id}: no matching event in {room_id} after {timeout}s; "
                f"latest events:\n{summary}"
            ) from None


@dataclass(kw_only=True)
class E2EEWorld(build.BaseWorld):
    users: dict[str, CryptoUser] = field(default_factory=dict)  # type: ignore[assignment]


async def _crypto_user(hs: Homeserver, localpart: str, name: str) -> CryptoUser:
    user_id, token = await hs.register(localpart, displayname=name, password=PASSWORD)
    user = CryptoUser(user_id, token, hs.url)
    await user.start_crypto()
    return user


def write_config(root: Path, bund_port: int, tchap_port: int, bridge_port: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "relay-password").write_text(RELAY_PASSWORD + "\n")
    path = root / "config.yaml"
    path.write_text(
        build.head("encrypted test world", f"sqlite:{root}/passerelle.db", bridge_port)
        + "networks:\n"
        + build.bund(bund_port, BUND_OPTIONS.format(wait=ROOM_KEY_WAIT["bund"]))
        + build.tchap(tchap_port, TCHAP_OPTIONS.format(wait=ROOM_KEY_WAIT["tchap"]))
        + build.tchap_relay(tchap_port, "encryption: require\n")
        + PEOPLE_AND_LINKS
    )
    return path


async def start_e2ee_world(root: Path) -> E2EEWorld:
    """Everything up and the bridge ready; rooms exist before the bridge starts."""
    ports = build.Ports()
    config_path = write_config(root, ports.bund, ports.tchap, ports.bridge)
    world = E2EEWorld.registered(root, config_path, ports, homeserver_config=HOMESERVER_OPTIONS)
    bund, tchap = world.bund, world.tchap
    await world.start_servers()
    await build.register_relay_bot(tchap, RELAY_PASSWORD)

    u, r = world.users, world.rooms
    u["max"] = await _crypto_user(bund, "max", "Max Mustermann")
    u["eve"] = await _crypto_user(bund, "eve", "Eve Außenstehend")
    u["jean"] = await _crypto_user(
        tchap, "jean.dupont-interieur.gouv.fr", "Jean Dupont [Intérieur]"
    )
    for link, encrypted in (("secret", True), ("plain", False), ("relay", True)):
        state = [ENCRYPTED] if encrypted else []
        r[f"bund:{link}"] = await u["max"].create_room(
            alias=link, name=link, public=True, initial_state=state
        )
        r[f"tchap:{link}"] = await u["jean"].create_room(
            alias=link, name=link, public=True, initial_state=[build.UNRESTRICTED, *state]
        )
    await world.bridge.start()
    return world
