"""End to end in encrypted rooms, on two real Synapse homeservers with real encrypting clients:
what a person in one encrypted room sees, decrypted by their own client, of what a person in the
linked encrypted room does. Nothing the bridge posts into an encrypted room is in the clear."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from mautrix.crypto.sessions import OutboundGroupSession
from mautrix.types import DeviceID, EventType, RoomID, UserID

from tests.e2ee_world import (
    ENCRYPTED,
    CryptoUser,
    E2EEWorld,
    start_e2ee_world,
)
from tests.harness import content
from tests.harness.expect import (
    body_is,
    crossed,
    name_of,
    next_invite,
    notice_has,
    passed_through,
    sent_and_mirrored,
    tchap_refused,
    unique,
)
from tests.harness.module_world import module_world

pytestmark = pytest.mark.e2e

Event = dict[str, Any]
NOT_ENCRYPTED = "ce réseau exige le chiffrement de bout en bout et le salon n’est pas chiffré"

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a2dd0b4a0000000049454e44ae426082"
)


world = module_world("world", start_e2ee_world, "e2ee")


async def test_encrypted_text_crosses_both_ways_and_stays_encrypted(world: E2EEWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund, tchap = world.rooms["bund:secret"], world.rooms["tchap:secret"]
    seen = await crossed(max_, bund, "Vertraulich aus Berlin", jean.wait_for_decrypted, tchap)
    assert seen["encrypted"]
    assert seen["sender"].startswith("@passerelle_=people_max")
    assert await name_of(jean, tchap, seen["sender"]) == "Max Mustermann [BMI]"

    seen = await crossed(jean, tchap, "Confidentiel de Paris", max_.wait_for_decrypted, bund)
    assert seen["encrypted"]
    assert await name_of(max_, bund, seen["sender"]) == "Jean Dupont [Intérieur] (Tchap)"


async def test_commands_in_encrypted_rooms_get_encrypted_answers(world: E2EEWorld) -> None:
    """A command sent encrypted is answered encrypted, by the appservice bot and by the relay
    bot, and never crosses."""
    max_, jean = world.users["max"], world.users["jean"]
    await max_.send_text(world.rooms["bund:secret"], "!passerelle who")
    answer = await max_.wait_for_decrypted(world.rooms["bund:secret"], notice_has("Räumen"))
    assert answer["encrypted"] and answer["sender"] == "@passerelle:bund.test"
    assert answer["content"]["body"] == (
        "In den verbundenen Räumen:\n• Tchap: Jean Dupont [Intérieur]"
    )
    await jean.send_text(world.rooms["tchap:relay"], "!passerelle status")
    answer = await jean.wait_for_decrypted(world.rooms["tchap:relay"], notice_has("salon"))
    assert answer["encrypted"] and answer["sender"] == "@relaybot:tchap.test"
    assert answer["content"]["body"] == "Ce salon atteint :\n• bund : joignable"

    after = unique("Nach dem Befehl")
    await max_.send_text(world.rooms["bund:secret"], after)
    await jean.wait_for_decrypted(world.rooms["tchap:secret"], body_is(after))
    after = unique("Après la commande")
    await jean.send_text(world.rooms["tchap:relay"], after)
    await max_.wait_for_decrypted(world.rooms["bund:relay"], body_is(after))
    for user, room in ((jean, "tchap:secret"), (max_, "bund:relay")):
        shown = [await user.decrypted(raw) for raw in await user.messages(world.rooms[room])]
        assert [e for e in shown if "!passerelle" in e.get("content", {}).get("body", "")] == []


def image_of_size(size: int) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == "m.room.message"
        and e["content"].get("msgtype") == "m.image"
        and e["content"].get("info", {}).get("size") == size
    )


async def test_encrypted_image_arrives_encrypted_and_intact_both_ways(world: E2EEWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    data = PNG + uuid.uuid4().bytes
    await max_.send_image(world.rooms["bund:secret"], data, "lageplan.png")
    seen = await jean.wait_for_decrypted(world.rooms["tchap:secret"], image_of_size(len(data)))
    assert seen["encrypted"]
    assert seen["content"]["body"] == "lageplan.png"
    assert "url" not in seen["content"]
    assert seen["content"]["file"]["url"].startswith("mxc://tchap.test/")
    assert await jean.download_file(seen["content"]["file"]) == data

    data = PNG + uuid.uuid4().bytes + b"fr"
    await jean.send_image(world.rooms["tchap:secret"], data, "plan.png")
    seen = await max_.wait_for_decrypted(world.rooms["bund:secret"], image_of_size(len(data)))
    assert seen["encrypted"]
    assert seen["content"]["file"]["url"].startswith("mxc://bund.test/")
    assert await max_.download_file(seen["content"]["file"]) == data


def replying_to(event_id: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == "m.room.message"
        and e["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        == event_id
    )


def editing(event_id: str, text: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == "m.room.message"
        and e["content"].get("m.new_content", {}).get("body") == text
        and e["content"].get("m.relates_to", {}).get("event_id") == event_id
    )


async def test_replies_and_edits_land_on_the_right_message_both_ways(world: E2EEWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund, tchap = world.rooms["bund:secret"], world.rooms["tchap:secret"]
    original, mirrored = await sent_and_mirrored(
        max_, bund, "Entwurf", jean.wait_for_decrypted, tchap
    )

    reply_text = unique("Réponse")
    reply = await jean.send_content(tchap, content.reply(reply_text, mirrored))
    seen = await max_.wait_for_decrypted(bund, replying_to(original))
    assert seen["encrypted"] and seen["content"]["body"] == reply_text
    reply_on_bund = seen["event_id"]

    answer_text = unique("Antwort auf die Antwort")
    await max_.send_content(bund, content.reply(answer_text, reply_on_bund))
    seen = await jean.wait_for_decrypted(tchap, replying_to(reply))
    assert seen["encrypted"] and seen["content"]["body"] == answer_text

    edited_text = unique("Endfassung")
    await max_.send_content(bund, content.edit(edited_text, original))
    seen = await jean.wait_for_decrypted(tchap, editing(mirrored, edited_text))
    assert seen["encrypted"]

    corrected = unique("Réponse corrigée")
    await jean.send_content(tchap, content.edit(corrected, reply))
    seen = await max_.wait_for_decrypted(bund, editing(reply_on_bund, corrected))
    assert seen["encrypted"]


async def test_unencrypted_room_refused_where_encryption_is_required(world: E2EEWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    await tchap_refused(jean.wait_for_decrypted, world.rooms["tchap:plain"], NOT_ENCRYPTED)
    outward = unique("unverschlüsselt")
    await max_.send_text(world.rooms["bund:plain"], outward)
    await passed_through(
        max_, world.rooms["bund:secret"], jean.wait_for_decrypted, world.rooms["tchap:secret"]
    )
    members = await jean.client.get_joined_members(RoomID(world.rooms["tchap:plain"]))
    assert not [m for m in members if m.startswith("@passerelle_")]
    plain = [e["content"].get("body") for e in await jean.messages(world.rooms["tchap:plain"])]
    assert outward not in plain


async def test_relay_bot_encrypts_and_decrypts_in_an_encrypted_tchap_room(
    world: E2EEWorld,
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    text = unique("Hallo verschlüsseltes Relay")
    await max_.send_text(world.rooms["bund:relay"], text)
    seen = await jean.wait_for_decrypted(
        world.rooms["tchap:relay"], lambda e: text in e["content"].get("body", "")
    )
    assert seen["encrypted"]
    assert seen["sender"] == "@relaybot:tchap.test"
    assert seen["content"]["body"] == f"Max Mustermann [BMI]: {text}"

    bund = world.rooms["bund:relay"]
    seen = await crossed(
        jean, world.rooms["tchap:relay"], "Salut relay chiffré", max_.wait_for_decrypted, bund
    )
    assert seen["encrypted"]
    assert await name_of(max_, bund, seen["sender"]) == "Jean Dupont [Intérieur] (Tchap)"


async def _send_raw_encrypted(user: CryptoUser, room_id: str, content: dict[str, Any]) -> str:
    """Send an ``m.room.encrypted`` event exactly as given (what a broken or hostile client
    could send)."""
    return await user.send_event(room_id, "m.room.encrypted", content)


def _megolm(
    user: CryptoUser, session: OutboundGroupSession, room_id: str, text: str
) -> dict[str, Any]:
    """The ``m.room.encrypted`` content of ``text``, encrypted with ``session`` as ``user``'s
    device sends it, whoever the session's key was shared with (if anyone)."""
    ciphertext = session.encrypt(json.dumps({
        "room_id": room_id, "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": text},
    }))  # fmt: skip
    assert user.machine.account is not None
    return {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": ciphertext, "session_id": session.id,
        "sender_key": user.machine.account.identity_key, "device_id": user.client.device_id,
    }  # fmt: skip


async def test_undecryptable_messages_are_reported_in_the_room(world: E2EEWorld) -> None:
    jean = world.users["jean"]
    room = world.rooms["tchap:secret"]
    await _send_raw_encrypted(jean, room, {"algorithm": "org.example.rot13", "ciphertext": "x"})
    notice = await jean.wait_for_decrypted(room, notice_has("non pris en charge"))
    assert notice["encrypted"]
    assert notice["sender"] == "@passerelle:tchap.test"
    assert notice["content"]["body"] == (
        "⚠️ Un message de Jean Dupont [Intérieur] n’a pas pu être déchiffré par la passerelle et "
        "n’a pas été relayé (chiffrement non pris en charge)."
    )

    # A session whose key Jean's client never shares: the bridge waits for it, then says so.
    session = OutboundGroupSession(RoomID(room))
    session.shared = True  # as far as olm knows: the key goes to no device at all
    await _send_raw_encrypted(
        jean, room, _megolm(jean, session, room, unique("jamais déchiffrable"))
    )
    notice = await jean.wait_for_decrypted(room, notice_has("sa clé n’est pas arrivée"))
    assert notice["encrypted"]


async def test_restarted_bridge_keeps_its_device_and_decrypts_what_came_meanwhile(
    world: E2EEWorld,
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bot = UserID("@passerelle:tchap.test")
    before = (await jean.client.query_keys([bot])).device_keys[bot]
    # Jean's client has a session shared with the bridge's device already; it keeps using it.
    warm_up = unique("avant l'arrêt")
    await jean.send_text(world.rooms["tchap:secret"], warm_up)
    await max_.wait_for_decrypted(world.rooms["bund:secret"], body_is(warm_up))

    await world.bridge.astop()
    during = unique("pendant l'arrêt")
    await jean.send_text(world.rooms["tchap:secret"], during)
    await world.bridge.start()
    seen = await max_.wait_for_decrypted(world.rooms["bund:secret"], body_is(during), timeout=60)
    assert seen["encrypted"]

    after = unique("après le redémarrage")
    await jean.send_text(world.rooms["tchap:secret"], after)
    await max_.wait_for_decrypted(world.rooms["bund:secret"], body_is(after))
    text = unique("Nach dem Neustart")
    await max_.send_text(world.rooms["bund:secret"], text)
    seen = await jean.wait_for_decrypted(world.rooms["tchap:secret"], body_is(text))
    assert seen["encrypted"]
    assert (await jean.client.query_keys([bot])).device_keys[bot].keys() == before.keys()


async def test_message_whose_key_comes_late_is_bridged_when_it_arrives(
    world: E2EEWorld,
) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    room = world.rooms["bund:secret"]
    session = OutboundGroupSession(RoomID(room))
    session.shared = True
    # The key as it is before the first message: what Max's client will share, late.
    late = OutboundGroupSession.from_pickle(
        session.pickle("k"), "k", session.max_age, session.max_messages,
        session.creation_time, session.use_time, 0, RoomID(room), shared=False,
    )  # fmt: skip
    text = unique("Schlüssel kommt später")
    encrypted = _megolm(max_, session, room, text)
    await _send_raw_encrypted(max_, room, encrypted)
    # The bridge handles a room's events in order: once this one is across, it holds the other.
    marker = unique("Markierung")
    await max_.send_text(room, marker)
    await jean.wait_for_decrypted(world.rooms["tchap:secret"], body_is(marker))

    # The bridge keeps waiting for the key across a restart.
    await world.bridge.restart()
    await max_.crypto_store.add_outbound_group_session(late)
    await max_.machine.share_group_session(RoomID(room), [UserID("@passerelle:bund.test")])
    await max_.crypto_store.remove_outbound_group_session(RoomID(room))
    seen = await jean.wait_for_decrypted(world.rooms["tchap:secret"], body_is(text))
    assert seen["encrypted"]

    # The same ciphertext again, as a new event: a replay, reported and not bridged.
    await _send_raw_encrypted(max_, room, encrypted)
    notice = await max_.wait_for_decrypted(room, notice_has("schon einmal empfangen"))
    assert notice["encrypted"]


def joined(user_id: str) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("type") == "m.room.member"
        and e.get("state_key") == user_id
        and e["content"].get("membership") == "join"
    )


async def test_encrypted_direct_chat_with_a_ghost(world: E2EEWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    ghost_of_jean = "@passerelle_tchap_jean.dupont-interieur.gouv.fr=3atchap.test:bund.test"
    since = (await jean.client.sync(timeout=0))["next_batch"]
    dm = await max_.create_room(invitees=[ghost_of_jean], is_direct=True, initial_state=[ENCRYPTED])
    # The ghost brings the bridge bot in: its device is the one that decrypts for the ghost.
    await max_.wait_for(dm, joined("@passerelle:bund.test"))
    text = unique("Eine vertrauliche Frage")
    await max_.send_text(dm, text)

    private = await next_invite(jean, since)
    await jean.join(private)
    seen = await jean.wait_for_decrypted(private, body_is(text))
    assert seen["encrypted"]
    assert await name_of(jean, private, seen["sender"]) == "Max Mustermann [BMI]"

    answer = unique("Réponse confidentielle")
    await jean.send_text(private, answer)
    seen = await max_.wait_for_decrypted(dm, body_is(answer))
    assert seen["encrypted"] and seen["sender"] == ghost_of_jean


async def test_bridge_shares_its_keys_only_with_trusted_devices_of_members(
    world: E2EEWorld,
) -> None:
    max_, jean, eve = world.users["max"], world.users["jean"], world.users["eve"]
    room = world.rooms["bund:secret"]
    text = unique("avant le nouvel appareil")
    await jean.send_text(world.rooms["tchap:secret"], text)
    event_id = (await max_.wait_for_decrypted(room, body_is(text)))["event_id"]
    raw = next(e for e in await max_.messages(room) if e["event_id"] == event_id)
    sender_key, session_id = raw["content"]["sender_key"], raw["content"]["session_id"]
    bot = {UserID("@passerelle:bund.test"): [DeviceID("*")]}

    # Max's new device, cross-signed by Max: it missed the key and asks the bridge for it.
    laptop = await CryptoUser.new_device(world.bund, "max")
    try:
        await laptop.machine.generate_recovery_key()
        # As clients do, ask again if no answer came: the bridge may learn of the new device
        # (and its cross-signature) only after the first request reached it.
        received = False
        for _ in range(3):
            await laptop.machine.request_room_key(
                RoomID(room), sender_key, session_id, dict(bot), timeout=0
            )
            received = await laptop.machine.wait_for_session(RoomID(room), session_id, timeout=15)
            if received:
                break
        assert received, "the bridge never shared the room key with Max's new device"
        shown = await laptop.decrypted(raw)
        assert shown["content"]["body"] == text
    finally:
        await laptop.close()

    # Eve is not in the room: her request is refused, and she is told why.
    withheld: list[dict[str, Any]] = []

    async def on_withheld(evt: Any) -> None:
        withheld.append(evt.content.serialize())

    eve.client.add_event_handler(EventType.ROOM_KEY_WITHHELD, on_withheld)
    await eve.machine.request_room_key(RoomID(room), sender_key, session_id, dict(bot), timeout=0)
    for _ in range(150):
        if withheld:
            break
        await asyncio.sleep(0.2)
    assert withheld and withheld[0]["code"] == "m.unauthorised"
    assert withheld[0]["session_id"] == session_id
