"""End to end with an XMPP agency: real Prosody, real slixmpp clients as its people, two real
Synapse homeservers and the bridge process. What people in the MUC see of what people in the
Matrix and Tchap rooms do, and the other way round."""

from __future__ import annotations

import asyncio
import io
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mautrix.types import RoomID
from PIL import Image
from slixmpp import JID, Message

from bridge.read_markers import MARKER_INTERVAL
from tests.harness import User, content, free_port
from tests.harness.expect import (
    bodies,
    body_is,
    edit_relation,
    joined_invite,
    name_of,
    receipt_on,
    receipts_since,
    typing_in,
    unique,
)
from tests.harness.module_world import module_world
from tests.harness.xmpp_clients import XmppUser
from tests.xmpp_world import AVATAR, COMPONENT, MUC, XmppWorld, start_xmpp_world

pytestmark = pytest.mark.e2e

Event = dict[str, Any]
PNG = AVATAR


xw = module_world("xw", start_xmpp_world, "xmpp-world", xmpp=True)
"""Prosody, two Synapses, their people and the bridge: one world for this module."""


def muc_reply_to(stanza_id: str) -> Callable[[Message], bool]:
    """A message of the room that replies (XEP-0461) to the one with the room's ``stanza_id``."""
    return lambda m: m["type"] == "groupchat" and m["reply"]["id"] == stanza_id


async def own_echo(xw: XmppWorld, who: str, sent: Message) -> Message:
    """The room's copy of a message ``who`` sent (it carries the room's stanza-id)."""
    return await xw.xmpp[who].wait_for(
        lambda m: m["type"] == "groupchat" and m["id"] == sent["id"] and m["from"].bare == MUC
    )


async def test_the_bridge_joins_the_muc_once_and_without_a_failure(xw: XmppWorld) -> None:
    """At first start (this test runs first): Alice, in the MUC before the bridge came, saw
    its occupant arrive once and never leave, and the bridge logged no failed join."""
    bridge = [p for p in xw.xmpp["alice"].presences if p["from"] == f"{MUC}/Passerelle"]
    assert [p["type"] for p in bridge] == ["available"]
    assert "Cannot join" not in xw.bridge.log_text()
    assert f"{MUC} refused" not in xw.bridge.log_text()


NEW_MUC = "neu@conference.xmpp.test"
NEW_LINK = f"""\
  - id: neu
    rooms:
      bund: "#neu:bund.test"
      xmpp: {NEW_MUC}
"""


async def test_a_link_to_a_new_muc_is_joined_at_once_and_the_room_is_open(xw: XmppWorld) -> None:
    """A link is added to a MUC nobody created yet: the bridge creates it without a failed
    join, and the room is open at once (Prosody locks a new room until its owner configures
    it): Bob can join, and Max's message reaches him through Max's puppet."""
    max_, bob = xw.users["max"], xw.xmpp["bob"]
    room = await max_.create_room(alias="neu", name="Neu", public=True)
    await xw.bridge.astop()
    xw.config_path.write_text(xw.config_path.read_text() + NEW_LINK)
    since = len(xw.bridge.log_text())
    await xw.bridge.start()

    await bob.join(NEW_MUC, "Bob")
    text = unique("Willkommen im neuen Raum")
    await max_.send_text(room, text)
    seen = await bob.wait_for_body(NEW_MUC, text)
    assert seen["from"].resource == "Max Mustermann [BMI]"
    answer = unique("Danke, Max")
    bob.say(NEW_MUC, answer)
    await max_.wait_for(room, body_is(answer))
    log = xw.bridge.log_text()[since:]
    assert "Cannot join" not in log and f"{NEW_MUC} refused" not in log
    assert f"Joined {NEW_MUC} as Passerelle" in log


async def test_muc_text_reaches_both_matrix_rooms_under_the_senders_names(xw: XmppWorld) -> None:
    max_, jean = xw.users["max"], xw.users["jean"]
    text = unique("Hallo aus der Behörde")
    xw.xmpp["alice"].say(MUC, text)
    seen = await max_.wait_for(xw.rooms["bund"], body_is(text))
    assert seen["sender"].startswith("@passerelle_=people_alice")
    assert await name_of(max_, xw.rooms["bund"], seen["sender"]) == "Alice Arnaud [BSI] (XMPP)"
    seen = await jean.wait_for(xw.rooms["tchap"], body_is(text))
    assert await name_of(jean, xw.rooms["tchap"], seen["sender"]) == "Alice Arnaud [BSI] (XMPP)"

    text = unique("Bob ist auch da")
    xw.xmpp["bob"].say(MUC, text)
    seen = await max_.wait_for(xw.rooms["bund"], body_is(text))
    assert await name_of(max_, xw.rooms["bund"], seen["sender"]) == "Bob [BSI] (XMPP)"


async def test_matrix_text_reaches_the_muc_under_real_names(xw: XmppWorld) -> None:
    alice = xw.xmpp["alice"]
    text = unique("Guten Tag aus Berlin")
    await xw.users["max"].send_text(xw.rooms["bund"], text)
    seen = await alice.wait_for_body(MUC, text)
    assert seen["from"].resource == "Max Mustermann [BMI]"

    text = unique("Bonjour de Paris")
    await xw.users["jean"].send_text(xw.rooms["tchap"], text)
    seen = await alice.wait_for_body(MUC, text)
    assert seen["from"].resource == "Jean Dupont [Intérieur] (Tchap)"
    assert "Jean Dupont [Intérieur] (Tchap)" in alice.occupants(MUC)


async def test_one_person_is_one_occupant_whichever_account_they_write_from(
    xw: XmppWorld,
) -> None:
    """Anna is listed with accounts on both Matrix networks: the MUC sees one Anna."""
    alice = xw.xmpp["alice"]
    from_bund, from_tchap = unique("aus Berlin"), unique("depuis Paris")
    await xw.users["anna_bund"].send_text(xw.rooms["bund"], from_bund)
    first = await alice.wait_for_body(MUC, from_bund)
    await xw.users["anna_tchap"].send_text(xw.rooms["tchap"], from_tchap)
    second = await alice.wait_for_body(MUC, from_tchap)
    assert first["from"] == second["from"]
    assert first["from"].resource == "Anna Schmidt [AA]"
    assert [o for o in alice.occupants(MUC) if o.startswith("Anna Schmidt")] == [
        "Anna Schmidt [AA]"
    ]


async def test_who_is_answered_in_the_muc_and_lists_its_occupants_elsewhere(
    xw: XmppWorld,
) -> None:
    """``!passerelle who`` in the MUC: the bridge's occupant answers there (in English, this
    network's language) with the Matrix rooms' people; asked in the German room, it lists the
    MUC's occupants. Neither command crosses, the bridge's own users are never listed."""
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    alice.say(MUC, "!passerelle who")
    answer = await alice.wait_for(lambda m: m["from"] == f"{MUC}/Passerelle"
                                  and m["body"].startswith("In the linked rooms"))  # fmt: skip
    assert answer["body"] == (
        "In the linked rooms:\n"
        "• bund: Anna Schmidt, Erika Musterfrau, Max Mustermann\n"
        "• Tchap: Anna Schmidt [AA], Jean Dupont [Intérieur]"
    )

    def bot_notice(e: Event) -> bool:
        return e["sender"] == "@passerelle:bund.test" and e["content"].get("msgtype") == "m.notice"

    asked = await max_.send_text(xw.rooms["bund"], "!passerelle who")
    answer = await max_.wait_for(xw.rooms["bund"], bot_notice, after=asked)
    assert answer["content"]["body"] == (
        "In den verbundenen Räumen:\n"
        "• Tchap: Anna Schmidt [AA], Jean Dupont [Intérieur]\n"
        "• XMPP: Alice, Bob, Mallory"
    )
    marker = unique("nach den Befehlen")
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    await xw.users["jean"].wait_for(xw.rooms["tchap"], body_is(marker))
    await max_.send_text(xw.rooms["bund"], marker)
    await alice.wait_for(lambda m: m["body"] == marker and m["from"].resource != "Alice")
    assert "!passerelle who" not in await bodies(xw.users["jean"], xw.rooms["tchap"])
    assert [e for e in await max_.messages(xw.rooms["bund"]) if e["sender"] != max_.user_id
            and e["content"].get("body") == "!passerelle who"] == []  # fmt: skip
    assert [m for m in alice.received if m["body"] == "!passerelle who"
            and m["from"].resource != "Alice"] == []  # fmt: skip


async def test_a_taken_nickname_gets_a_suffix(xw: XmppWorld) -> None:
    bob, alice = xw.xmpp["bob"], xw.xmpp["alice"]
    await bob.join(MUC, "Clara Schulz [BMI]")  # Bob renames himself before Clara ever writes
    clara = await User.register(xw.bund, "clara", displayname="Clara Schulz")
    xw.users["clara"] = clara
    await clara.join(xw.rooms["bund"])
    text = unique("Hallo, ich bin neu")
    await clara.send_text(xw.rooms["bund"], text)
    seen = await alice.wait_for_body(MUC, text)
    assert seen["from"].resource == "Clara Schulz [BMI] (2)"


async def test_nothing_is_bridged_back_to_where_it_came_from(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    text, marker = unique("Nur einmal"), unique("Ende")
    await max_.send_text(xw.rooms["bund"], text)
    await alice.wait_for_body(MUC, text)
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    await xw.users["jean"].wait_for(xw.rooms["tchap"], body_is(marker))
    assert (await bodies(max_, xw.rooms["bund"])).count(text) == 1
    assert (await bodies(xw.users["jean"], xw.rooms["tchap"])).count(text) == 1
    assert [m["body"] for m in alice.received].count(text) == 1


async def test_corrections_cross_both_ways(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    room = xw.rooms["bund"]
    original = alice.say(MUC, unique("Entwruf"))
    mirrored = await max_.wait_for(room, body_is(original["body"]))
    fixed = unique("Entwurf")
    alice.correct(MUC, original, fixed)
    assert await edit_relation(max_, room, fixed) == {
        "rel_type": "m.replace",
        "event_id": mirrored["event_id"],
    }

    text = unique("Tippfeler")
    event_id = await max_.send_text(room, text)
    seen = await alice.wait_for_body(MUC, text)
    fixed = unique("Tippfehler")
    await max_.send_event(room, "m.room.message", content.edit(fixed, event_id))
    correction = await alice.wait_for_body(MUC, fixed)
    assert correction["replace"]["id"] == seen["id"]
    assert correction["from"] == seen["from"]


async def test_retractions_cross_both_ways(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    room = xw.rooms["bund"]
    sent = alice.say(MUC, unique("Versehen"))
    mirrored = await max_.wait_for(room, body_is(sent["body"]))
    alice.retract(MUC, (await own_echo(xw, "alice", sent))["stanza_id"]["id"],
                  fallback="Tippfehler, bitte ignorieren")  # fmt: skip
    redaction = await max_.wait_for(
        room,
        lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == mirrored["event_id"],
    )
    assert redaction["content"].get("reason") == "Tippfehler, bitte ignorieren"

    text = unique("Falscher Raum")
    event_id = await max_.send_text(room, text)
    seen = await alice.wait_for_body(MUC, text)
    await max_.client.redact(RoomID(room), event_id, reason="Falscher Raum gewählt")  # type: ignore[arg-type]
    retraction = await alice.wait_for(
        lambda m: m["type"] == "groupchat" and m["retract"]["id"] == seen["stanza_id"]["id"]
    )
    assert retraction["from"] == seen["from"]
    assert retraction["body"].splitlines()[-1] == "Falscher Raum gewählt"


def reactions_to(target: str, keys: set[str]) -> Any:
    return lambda m: m["reactions"]["id"] == target and m["reactions"]["values"] == keys


async def test_reactions_cross_both_ways(xw: XmppWorld) -> None:
    jean, alice, max_ = xw.users["jean"], xw.xmpp["alice"], xw.users["max"]
    sent = alice.say(MUC, unique("Einverstanden?"))
    stanza_id = (await own_echo(xw, "alice", sent))["stanza_id"]["id"]
    mirrored = await jean.wait_for(xw.rooms["tchap"], body_is(sent["body"]))
    reaction_id = await jean.send_event(xw.rooms["tchap"], "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored["event_id"],
                         "key": "👍"},
    })  # fmt: skip

    seen = await alice.wait_for(reactions_to(stanza_id, {"👍"}))
    assert seen["from"].resource == "Jean Dupont [Intérieur] (Tchap)"
    await jean.client.redact(RoomID(xw.rooms["tchap"]), reaction_id)  # type: ignore[arg-type]
    await alice.wait_for(reactions_to(stanza_id, set()))

    text = unique("Bitte um Zustimmung")
    event_id = await max_.send_text(xw.rooms["bund"], text)
    seen = await alice.wait_for_body(MUC, text)
    alice.react(MUC, seen["stanza_id"]["id"], ["❤️"])
    reaction = await max_.wait_for(xw.rooms["bund"], lambda e: e.get("type") == "m.reaction" and (
        e["content"].get("m.relates_to", {}).get("event_id") == event_id))  # fmt: skip
    assert reaction["content"]["m.relates_to"]["key"] == "❤️"
    assert await name_of(max_, xw.rooms["bund"], reaction["sender"]) == "Alice Arnaud [BSI] (XMPP)"
    alice.react(MUC, seen["stanza_id"]["id"], [])
    await max_.wait_for(
        xw.rooms["bund"],
        lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == reaction["event_id"],
    )


async def test_replies_cross_both_ways(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    room = xw.rooms["bund"]
    question = unique("Wann ist das Treffen?")
    event_id = await max_.send_text(room, question)
    seen = await alice.wait_for_body(MUC, question)
    answer = unique("Um zehn")
    alice.reply(MUC, seen, answer)
    reply = await max_.wait_for(room, body_is(answer))
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == event_id

    sent = alice.say(MUC, unique("Wer kommt mit?"))
    stanza_id = (await own_echo(xw, "alice", sent))["stanza_id"]["id"]
    mirrored = await max_.wait_for(room, body_is(sent["body"]))
    answer = unique("Ich komme")
    await max_.send_event(room, "m.room.message", content.reply(answer, mirrored["event_id"]))
    reply = await alice.wait_for(muc_reply_to(stanza_id))
    assert reply["reply"].strip_fallback_content() == answer
    assert reply["body"].startswith(f"> Alice:\n> {sent['body']}\n")
    assert reply["from"].resource == "Max Mustermann [BMI]"


async def test_files_cross_both_ways_with_their_bytes(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    room = xw.rooms["bund"]
    url = await alice.upload(PNG, "pixel.png", "image/png")
    alice.share(MUC, url)
    image = await max_.wait_for(
        room, lambda e: e.get("type") == "m.room.message" and e["content"].get("url")
        and e["content"].get("body") == "pixel.png",
    )  # fmt: skip
    assert image["content"]["msgtype"] == "m.image"
    assert await max_.client.download_media(image["content"]["url"]) == PNG

    data = uuid.uuid4().bytes * 1000
    mxc = await max_.client.upload_media(data, mime_type="text/plain", filename="bericht.txt")
    await max_.send_event(room, "m.room.message", {
        "msgtype": "m.file", "body": "bericht.txt", "filename": "bericht.txt", "url": str(mxc),
        "info": {"mimetype": "text/plain", "size": len(data)},
    })  # fmt: skip
    shared = await alice.wait_for(
        lambda m: m["type"] == "groupchat" and m["oob"]["url"].endswith("/bericht.txt")
    )
    assert shared["body"] == shared["oob"]["url"]
    async with aiohttp.ClientSession() as session, session.get(shared["oob"]["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == data


async def test_files_from_xmpp_reach_matrix_with_their_size_type_and_dimensions(
    xw: XmppWorld,
) -> None:
    """What a Matrix client needs to show a picture well (``info``), from the bytes: an XMPP
    file is only a URL."""
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    room = xw.rooms["bund"]
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (0, 90, 160)).save(out, "JPEG")
    photo = out.getvalue()
    alice.share(MUC, await alice.upload(photo, "foto.jpg", "image/jpeg"))
    note = "Bitte bis Freitag prüfen.\n".encode() * 40
    alice.share(MUC, await alice.upload(note, "notiz.txt", "text/plain"))

    def file_named(name: str) -> Any:
        return lambda e: e.get("type") == "m.room.message" and e["content"].get("body") == name

    image = (await max_.wait_for(room, file_named("foto.jpg")))["content"]
    assert image["msgtype"] == "m.image"
    assert image["info"] == {"mimetype": "image/jpeg", "size": len(photo), "w": 64, "h": 48}
    assert await max_.client.download_media(image["url"]) == photo
    text = (await max_.wait_for(room, file_named("notiz.txt")))["content"]
    assert text["msgtype"] == "m.file"
    assert text["info"] == {"mimetype": "text/plain", "size": len(note)}


async def test_styling_crosses_both_ways(xw: XmppWorld) -> None:
    max_, alice = xw.users["max"], xw.xmpp["alice"]
    tag = uuid.uuid4().hex[:6]
    styled = f"*wichtig* _bitte_ `code` {tag}\n> zitiert"
    alice.say(MUC, styled)
    seen = await max_.wait_for(xw.rooms["bund"], body_is(styled))
    assert seen["content"]["formatted_body"] == (
        f"<strong>wichtig</strong> <em>bitte</em> <code>code</code> {tag}"
        "<blockquote>zitiert</blockquote>"
    )

    await max_.send_text(
        xw.rooms["bund"], f"wichtig bitte {tag}",
        html=f"<b>wichtig</b> <i>bitte</i> <del>nicht</del> <code>x</code> {tag}",
    )  # fmt: skip
    await alice.wait_for_body(MUC, f"*wichtig* _bitte_ ~nicht~ `x` {tag}")


async def test_people_of_disallowed_domains_are_refused(xw: XmppWorld) -> None:
    mallory, alice, max_ = xw.xmpp["mallory"], xw.xmpp["alice"], xw.users["max"]
    secret, marker = unique("Geheim von aussen"), unique("Danach")
    mallory.say(MUC, secret)
    await alice.wait_for_body(MUC, secret)
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    assert secret not in await bodies(max_, xw.rooms["bund"])
    assert secret not in await bodies(xw.users["jean"], xw.rooms["tchap"])

    puppet = f"=people_max@{COMPONENT}"
    error = await mallory.direct(puppet, unique("Hallo Max"))
    assert error["error"]["condition"] == "forbidden"


async def test_malformed_and_oversized_messages_harm_nothing(xw: XmppWorld) -> None:
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    broken = alice.client.make_message(mto=MUC, mtype="groupchat", mbody=unique("Ohne Ziel"))
    broken.append(ET.Element("{urn:xmpp:message-correct:0}replace"))  # a correction of nothing
    broken.send()
    oversized = "x" * 70_000
    alice.say(MUC, oversized)
    marker = unique("Alles gut")
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    seen = await bodies(max_, xw.rooms["bund"])
    assert broken["body"] not in seen and oversized not in seen


async def test_the_component_is_a_gateway_and_puppets_have_vcards(xw: XmppWorld) -> None:
    alice = xw.xmpp["alice"]
    identities = await alice.disco_identities(COMPONENT)
    assert ("gateway", "matrix") in [(c, t) for c, t, _ in identities]
    text = unique("Mit Bild")
    await xw.users["jean"].send_text(xw.rooms["tchap"], text)
    await alice.wait_for_body(MUC, text)
    jean = f"tchap_jean.dupont-interieur.gouv.fr\\3atchap.test@{COMPONENT}"
    assert await alice.vcard(jean) == ("Jean Dupont [Intérieur] (Tchap)", AVATAR)


async def test_people_with_an_xmpp_account_are_not_puppeted_there(xw: XmppWorld) -> None:
    alice = xw.xmpp["alice"]
    text = unique("Erika schreibt")
    await xw.users["erika"].send_text(xw.rooms["bund"], text)
    seen = await alice.wait_for_body(MUC, f"Erika Musterfrau [BSI]: {text}")
    assert seen["from"].resource == "Passerelle"
    assert not [nick for nick in alice.occupants(MUC) if nick.startswith("Erika")]
    seen = await xw.users["jean"].wait_for(xw.rooms["tchap"], body_is(text))
    assert await name_of(xw.users["jean"], xw.rooms["tchap"], seen["sender"]) == (
        "Erika Musterfrau [BSI]"
    )


async def test_a_kicked_bridge_rejoins_and_catches_up(xw: XmppWorld) -> None:
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    before = unique("Vor dem Rauswurf")
    alice.say(MUC, before)
    await max_.wait_for(xw.rooms["bund"], body_is(before))
    await alice.kick(MUC, "Passerelle")
    missed = unique("Während der Abwesenheit")
    alice.say(MUC, missed)
    await max_.wait_for(xw.rooms["bund"], body_is(missed), timeout=60)
    assert (await bodies(max_, xw.rooms["bund"])).count(before) == 1


async def test_a_bridge_restart_catches_up_without_doubles(xw: XmppWorld) -> None:
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    before = unique("Vor dem Bridge-Neustart")
    alice.say(MUC, before)
    await max_.wait_for(xw.rooms["bund"], body_is(before))
    await xw.bridge.astop()
    missed = unique("Während die Brücke ruht")
    alice.say(MUC, missed)
    await alice.wait_for_body(MUC, missed)
    await xw.bridge.start()
    await max_.wait_for(xw.rooms["bund"], body_is(missed), timeout=60)
    answer = unique("Wieder da")
    await max_.send_text(xw.rooms["bund"], answer)
    seen = await alice.wait_for_body(MUC, answer)
    assert seen["from"].resource == "Max Mustermann [BMI]"
    assert (await bodies(max_, xw.rooms["bund"])).count(before) == 1
    assert (await bodies(max_, xw.rooms["bund"])).count(missed) == 1


@pytest.fixture
async def no_history(xw: XmppWorld) -> AsyncIterator[None]:
    """The MUC replays no history to someone joining (Alice owns it): what the bridge knew of
    earlier messages after a restart is only what it stored."""
    await xw.xmpp["alice"].set_history_length(MUC, 0)
    yield
    await xw.xmpp["alice"].set_history_length(MUC, 20)


@pytest.mark.usefixtures("no_history")
async def test_replies_corrections_and_reactions_keep_their_target_across_a_restart(
    xw: XmppWorld,
) -> None:
    """Alice's message, Jean's 👍 and Alice's ❤️ on it, then the bridge restarts (the room
    replays nothing): Max's reply still reaches the MUC addressed to Alice's message with her
    words quoted, Alice's correction still edits the right event, her withdrawn ❤️ still
    disappears, and Jean's second reaction still shows beside his first."""
    alice, max_, jean = xw.xmpp["alice"], xw.users["max"], xw.users["jean"]
    room = xw.rooms["bund"]
    sent = alice.say(MUC, unique("Vorschlag: Treffen am Donnerstag"))
    stanza_id = (await own_echo(xw, "alice", sent))["stanza_id"]["id"]
    mirrored = await max_.wait_for(room, body_is(sent["body"]))
    in_tchap = await jean.wait_for(xw.rooms["tchap"], body_is(sent["body"]))
    await jean.send_event(xw.rooms["tchap"], "m.reaction", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": in_tchap["event_id"], "key": "👍"}})  # fmt: skip
    await alice.wait_for(reactions_to(stanza_id, {"👍"}))
    alice.react(MUC, stanza_id, ["❤️"])
    relation = {"rel_type": "m.annotation", "event_id": mirrored["event_id"], "key": "❤️"}
    heart = await max_.wait_for(room, lambda e: e.get("type") == "m.reaction"
                                and e["content"].get("m.relates_to") == relation)  # fmt: skip

    await xw.bridge.restart()

    answer = unique("Donnerstag passt")
    await max_.send_event(room, "m.room.message", content.reply(answer, mirrored["event_id"]))
    reply = await alice.wait_for(muc_reply_to(stanza_id))
    assert reply["reply"]["to"] == f"{MUC}/Alice"
    assert reply["body"].startswith(f"> Alice:\n> {sent['body']}\n")
    assert reply["reply"].strip_fallback_content() == answer

    corrected = unique("Vorschlag: Treffen am Freitag")
    alice.correct(MUC, sent, corrected)
    assert (await edit_relation(max_, room, corrected))["event_id"] == mirrored["event_id"]

    alice.react(MUC, stanza_id, [])
    await max_.wait_for(room, lambda e: e.get("type") == "m.room.redaction"
                        and e.get("redacts") == heart["event_id"])  # fmt: skip
    await jean.send_event(xw.rooms["tchap"], "m.reaction", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": in_tchap["event_id"], "key": "🎉"}})  # fmt: skip
    await alice.wait_for(reactions_to(stanza_id, {"👍", "🎉"}))


async def test_prosody_restart_loses_nothing_sent_afterwards(xw: XmppWorld) -> None:
    max_, jean, alice = xw.users["max"], xw.users["jean"], xw.xmpp["alice"]
    before = unique("Vor dem Neustart")
    alice.say(MUC, before)
    await max_.wait_for(xw.rooms["bund"], body_is(before))

    await xw.prosody.restart()
    await alice.reconnect()
    from_xmpp, from_matrix = unique("Nach dem Neustart (XMPP)"), unique("Nach dem Neustart")
    alice.say(MUC, from_xmpp)
    await max_.send_text(xw.rooms["bund"], from_matrix)
    await max_.wait_for(xw.rooms["bund"], body_is(from_xmpp), timeout=90)
    await jean.wait_for(xw.rooms["tchap"], body_is(from_xmpp), timeout=90)
    await alice.wait_for_body(MUC, from_matrix, timeout=90)
    await jean.wait_for(xw.rooms["tchap"], body_is(from_matrix), timeout=90)

    marker = unique("Zum Schluss")
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    assert (await bodies(max_, xw.rooms["bund"])).count(before) == 1
    assert [m["body"] for m in alice.received].count(from_matrix) == 1


async def test_one_to_one_chat_opens_a_direct_room_and_answers_flow_back(xw: XmppWorld) -> None:
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    puppet = f"=people_max@{COMPONENT}"
    since = (await max_.client.sync(timeout=0))["next_batch"]
    text = unique("Hallo Max, eine Frage unter vier Augen")
    first = alice.chat(puppet, text)
    room = await joined_invite(max_, since)
    seen = await max_.wait_for(room, body_is(text))
    assert await name_of(max_, room, seen["sender"]) == "Alice Arnaud [BSI] (XMPP)"

    answer = unique("Gern, hier die Antwort")
    await max_.send_text(room, answer)
    got = await alice.wait_for(lambda m: m["type"] == "chat" and m["body"] == answer)
    assert got["from"].bare == puppet

    corrected = unique("Hallo Max, eine korrigierte Frage")
    fix = alice.client.make_message(mto=puppet, mbody=corrected, mtype="chat")
    fix["replace"]["id"] = first["id"]
    fix.send()
    assert await edit_relation(max_, room, corrected) == {
        "rel_type": "m.replace",
        "event_id": seen["event_id"],
    }

    again = unique("Noch eine Nachricht")
    alice.chat(puppet, again)
    await max_.wait_for(room, body_is(again))  # the same chat, not a new one


async def test_typing_crosses_both_ways(xw: XmppWorld) -> None:
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    ghost_of_alice = "@passerelle_=people_alice:bund.test"
    alice.say(MUC, unique("Gleich kommt mehr"))  # her ghost is in the room from now on
    alice.typing(MUC, True)
    await typing_in(max_, xw.rooms["bund"], lambda users: ghost_of_alice in users)
    alice.typing(MUC, False)
    await typing_in(max_, xw.rooms["bund"], lambda users: ghost_of_alice not in users)

    hello = unique("Max ist da")
    await max_.send_text(xw.rooms["bund"], hello)  # his puppet joins the MUC with it
    await alice.wait_for_body(MUC, hello)
    await max_.client.set_typing(RoomID(xw.rooms["bund"]), 20_000)
    composing = await alice.wait_for(
        lambda m: m["type"] == "groupchat" and m["from"].bare == MUC
        and m["from"].resource.startswith("Max Mustermann") and m["chat_state"] == "composing"
    )  # fmt: skip
    assert not composing["body"]


NS_MARKERS = "urn:xmpp:chat-markers:0"


def displayed(message_id: str) -> Any:
    """A one-to-one displayed marker (XEP-0333) for ``message_id``."""

    def matches(m: Message) -> bool:
        marker = m.xml.find(f"{{{NS_MARKERS}}}displayed")
        return m["type"] == "chat" and marker is not None and marker.get("id") == message_id

    return matches


@pytest.mark.usefixtures("online")
async def test_read_markers_cross_a_one_to_one_chat_both_ways_unless_turned_off(
    xw: XmppWorld,
) -> None:
    bob, max_ = xw.xmpp["bob"], xw.users["max"]
    puppet = f"=people_max@{COMPONENT}"
    since = (await max_.client.sync(timeout=0))["next_batch"]
    joined = set(await max_.client.get_joined_rooms())
    question = unique("Max, hast du das gelesen?")
    asked = bob.chat(puppet, question)
    room = await joined_invite(max_, since, joined)
    seen = await max_.wait_for(room, body_is(question))
    ghost_of_bob = seen["sender"]

    await max_.client.send_receipt(RoomID(room), seen["event_id"])
    marker = await bob.wait_for(displayed(asked["id"]))
    assert marker["from"].bare == puppet

    answer = unique("Ja, gelesen")
    answer_id = await max_.send_text(room, answer)
    got = await bob.wait_for(lambda m: m["type"] == "chat" and m["body"] == answer)
    assert got.xml.find(f"{{{NS_MARKERS}}}markable") is not None  # clients will mark it read
    bob.displayed(puppet, got["id"])
    await receipt_on(max_, room, ghost_of_bob, answer_id)

    original = xw.config_path.read_text()
    off = original.replace("    name_suffix: \" (XMPP)\"\n",
                           "    name_suffix: \" (XMPP)\"\n    read_markers: false\n")  # fmt: skip
    assert off != original
    xw.config_path.write_text(off)
    try:
        assert "1 network(s) reconnected" in await xw.bridge.reload()
        later = unique("Noch eine Frage")
        asked_later = bob.chat(puppet, later)
        seen_later = await max_.wait_for(room, body_is(later), timeout=60)
        await max_.client.send_receipt(RoomID(room), seen_later["event_id"])
        again = unique("Auch gelesen")
        again_id = await max_.send_text(room, again)
        got_again = await bob.wait_for(lambda m: m["type"] == "chat" and m["body"] == again)
        since = (await max_.client.sync(timeout=0))["next_batch"]
        bob.displayed(puppet, got_again["id"])
        await asyncio.sleep(MARKER_INTERVAL + 2)  # longer than a marker could be held back
        assert not [m for m in bob.received if displayed(asked_later["id"])(m)]
        assert again_id not in await receipts_since(max_, room, ghost_of_bob, since)
    finally:
        xw.config_path.write_text(original)
        await xw.bridge.reload()


async def joined_names(user: User, room_id: str) -> dict[str, str]:
    """The room's joined members, user ID → display name, as ``user`` sees them."""
    members = await user.client.get_joined_members(RoomID(room_id))
    return {str(u): str(m.displayname) for u, m in members.items()}


async def eventually(check: Any, what: str, timeout: float = 30) -> None:  # noqa: ASYNC109
    """Wait until the async ``check`` holds."""
    for _ in range(int(timeout * 4)):
        if await check():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"never: {what}")


@pytest.mark.usefixtures("online")
async def test_a_member_joining_and_leaving_tchap_comes_and_goes_on_bund_and_in_the_muc(
    xw: XmppWorld,
) -> None:
    max_, jean, alice = xw.users["max"], xw.users["jean"], xw.xmpp["alice"]
    localpart = f"marie.curie{uuid.uuid4().hex[:4]}-recherche.gouv.fr"
    marie = await User.register(xw.tchap, localpart, displayname="Marie Curie [Recherche]",
                                password=xw.password)  # fmt: skip
    shown = "Marie Curie [Recherche] (Tchap)"
    try:
        since = len(alice.presences)
        await marie.join(xw.rooms["tchap"])

        async def on_bund() -> bool:
            return shown in (await joined_names(max_, xw.rooms["bund"])).values()

        await eventually(on_bund, f"{shown} in the German room")
        await eventually(lambda: asyncio.sleep(0, shown in alice.occupants(MUC)),
                         f"{shown} in the MUC")  # fmt: skip
        # The bridge's own ghost and puppet joining are not mirrored back anywhere.
        await asyncio.sleep(2)
        names = (await joined_names(jean, xw.rooms["tchap"])).values()
        assert [n for n in names if "Marie Curie" in n] == ["Marie Curie [Recherche]"]
        names = (await joined_names(max_, xw.rooms["bund"])).values()
        assert [n for n in names if "Marie Curie" in n] == [shown]

        await marie.leave(xw.rooms["tchap"])

        async def gone_from_bund() -> bool:
            return shown not in (await joined_names(max_, xw.rooms["bund"])).values()

        await eventually(gone_from_bund, f"{shown} gone from the German room")
        await eventually(lambda: asyncio.sleep(0, bool(alice.left(MUC, shown, since))),
                         f"{shown} gone from the MUC")  # fmt: skip
        assert shown not in alice.occupants(MUC)
    finally:
        await marie.close()


@pytest.mark.usefixtures("online")
async def test_a_link_with_mirror_members_false_shows_no_one_coming(xw: XmppWorld) -> None:
    max_, jean, alice = xw.users["max"], xw.users["jean"], xw.xmpp["alice"]
    original = xw.config_path.read_text()
    off = original.replace("  - id: wg\n", "  - id: wg\n    mirror_members: false\n")
    assert off != original
    xw.config_path.write_text(off)
    localpart = f"paul.martin{uuid.uuid4().hex[:4]}-recherche.gouv.fr"
    paul = await User.register(xw.tchap, localpart, displayname="Paul Martin [Recherche]",
                               password=xw.password)  # fmt: skip
    try:
        assert "mirror_members changed" in await xw.bridge.reload()
        await paul.join(xw.rooms["tchap"])
        after = unique("Paul est arrivé")
        await jean.send_text(xw.rooms["tchap"], after)
        # A mirrored join would have crossed before this message, in the link's order.
        await max_.wait_for(xw.rooms["bund"], body_is(after))
        await alice.wait_for_body(MUC, after)
        names = (await joined_names(max_, xw.rooms["bund"])).values()
        assert not [n for n in names if "Paul Martin" in n]
        assert not [n for n in alice.occupants(MUC) if "Paul Martin" in n]
    finally:
        xw.config_path.write_text(original)
        await xw.bridge.reload()
        await paul.close()


@pytest.mark.usefixtures("online")
async def test_an_occupant_joining_and_leaving_the_muc_comes_and_goes_in_both_matrix_rooms(
    xw: XmppWorld,
) -> None:
    max_, jean = xw.users["max"], xw.users["jean"]
    localpart = f"dora{uuid.uuid4().hex[:4]}"
    await asyncio.to_thread(xw.prosody.register, localpart, xw.password, "xmpp.test")
    dora = XmppUser(f"{localpart}@xmpp.test", xw.password, xw.prosody.c2s_port)
    await dora.connect()
    nick = f"Dora {localpart[-4:]}"
    shown = f"{nick} [BSI] (XMPP)"
    rooms = ((max_, xw.rooms["bund"]), (jean, xw.rooms["tchap"]))
    try:
        await dora.join(MUC, nick)
        for user, room in rooms:

            async def there(user: User = user, room: str = room) -> bool:
                return shown in (await joined_names(user, room)).values()

            await eventually(there, f"{shown} in {room}")
        dora.client.plugin["xep_0045"].leave_muc(JID(MUC), nick)
        for user, room in rooms:

            async def gone(user: User = user, room: str = room) -> bool:
                return shown not in (await joined_names(user, room)).values()

            await eventually(gone, f"{shown} gone from {room}")
    finally:
        await dora.close()


# -- hostile input: each is refused or survived, and everything else keeps crossing -------------

OCCUPANT_ID = "{urn:xmpp:occupant-id:0}occupant-id"
MUC_ITEM = "{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}item"


@pytest.fixture
async def online(xw: XmppWorld) -> None:
    """Every XMPP user logged in (an earlier test restarts Prosody)."""
    for user in xw.xmpp.values():
        await user.ensure_online()


@pytest.mark.usefixtures("online")
async def test_a_message_posing_as_someone_else_is_not_bridged(xw: XmppWorld) -> None:
    """Mallory (of a refused domain) claims Erika's JID (a MUC item in her message) and Alice's
    occupant-id: the room passes the item on as it is, the bridge believes neither."""
    mallory, alice = xw.xmpp["mallory"], xw.xmpp["alice"]
    max_, jean = xw.users["max"], xw.users["jean"]
    hello = alice.say(MUC, unique("Hallo zusammen"))
    seen_by_mallory = await mallory.wait_for_body(MUC, hello["body"])
    alices_id = seen_by_mallory.xml.find(OCCUPANT_ID).get("id")
    forged = unique("Hier schreibt Erika")
    mallory.forge(MUC, forged, jid="erika@xmpp.test/x", occupant_id=alices_id)
    echo = await alice.wait_for_body(MUC, forged)
    assert echo.xml.find(MUC_ITEM).get("jid") == "erika@xmpp.test/x"  # what the bridge gets too
    marker = unique("Nach der Fälschung")
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    await jean.wait_for(xw.rooms["tchap"], body_is(marker))
    assert forged not in await bodies(max_, xw.rooms["bund"])
    assert forged not in await bodies(jean, xw.rooms["tchap"])


@pytest.mark.usefixtures("online")
async def test_history_after_a_restart_has_the_authors_the_room_showed(xw: XmppWorld) -> None:
    """While the bridge is away Carol writes and leaves, and Mallory forges a message as Erika:
    replayed on rejoin, Carol's is bridged under her name (the room showed who she is before),
    Mallory's not at all."""
    mallory, alice, max_ = xw.xmpp["mallory"], xw.xmpp["alice"], xw.users["max"]
    await asyncio.to_thread(xw.prosody.register, "carol", xw.password)
    carol = XmppUser("carol@xmpp.test", xw.password, xw.prosody.c2s_port)
    await carol.connect()
    await carol.join(MUC, "Carol")
    hello = unique("Carol ist da")
    carol.say(MUC, hello)
    await max_.wait_for(xw.rooms["bund"], body_is(hello))

    await xw.bridge.astop()
    missed, forged = unique("Carol war kurz da"), unique("Erika, angeblich")
    carol.say(MUC, missed)
    await alice.wait_for_body(MUC, missed)
    await carol.close()
    mallory.forge(MUC, forged, jid="erika@xmpp.test", occupant_id="forged")
    marker = unique("Zurück aus der Pause")
    alice.say(MUC, marker)
    await alice.wait_for_body(MUC, marker)
    await xw.bridge.start()

    await max_.wait_for(xw.rooms["bund"], body_is(marker), timeout=60)
    seen = await max_.wait_for(xw.rooms["bund"], body_is(missed))
    assert await name_of(max_, xw.rooms["bund"], seen["sender"]) == "Carol [BSI] (XMPP)"
    assert forged not in await bodies(max_, xw.rooms["bund"])
    assert forged not in await bodies(xw.users["jean"], xw.rooms["tchap"])


async def test_files_are_fetched_only_from_the_upload_service(xw: XmppWorld) -> None:
    """Out-of-band URLs to the bridge's own /metrics, a web server on loopback, and the upload
    service under another name are not bridged (and not requested); an uploaded file is."""
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    requests: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(body=b"internal only")

    app = web.Application()
    app.router.add_get("/{tail:.*}", secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        refused = [
            f"http://127.0.0.1:{xw.bridge.port}/metrics",
            f"http://127.0.0.1:{port}/intern.txt",
            f"http://localhost:{xw.prosody.http_port}/file_share/x/anders.png",
            f"http://[::ffff:127.0.0.1]:{port}/v6.txt",
        ]
        for url in refused:
            alice.share(MUC, url)
        url = await alice.upload(PNG, "echt.png", "image/png")
        alice.share(MUC, url)
        image = await max_.wait_for(xw.rooms["bund"], body_is("echt.png"))
        assert await max_.client.download_media(image["content"]["url"]) == PNG
    finally:
        await runner.cleanup()
    seen = await bodies(max_, xw.rooms["bund"])
    for name in ("metrics", "intern.txt", "anders.png", "v6.txt", *refused):
        assert name not in seen
    assert requests == []


@pytest.mark.usefixtures("online")
async def test_a_styling_bomb_holds_up_nothing(xw: XmppWorld) -> None:
    """Bodies whose directives open no span cost the bridge little (they once took it half a
    minute each, even from refused senders): other messages cross meanwhile."""
    mallory, alice, bob = xw.xmpp["mallory"], xw.xmpp["alice"], xw.xmpp["bob"]
    max_ = xw.users["max"]
    bomb = "*a " * 21000
    mallory.say(MUC, bomb)
    mallory.say(MUC, bomb + "*")
    allowed = "*a " * 5000 + unique("Ende")
    alice.say(MUC, allowed)
    answer = unique("Antwort aus Berlin")
    await max_.send_text(xw.rooms["bund"], answer)
    await alice.wait_for_body(MUC, answer)
    marker = unique("Danach")
    bob.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    seen = await bodies(max_, xw.rooms["bund"])
    assert allowed in seen
    assert bomb not in seen and bomb + "*" not in seen


async def test_a_malformed_file_url_keeps_the_bridge_in_the_room(xw: XmppWorld) -> None:
    """A message whose out-of-band URL cannot be parsed is not bridged, and not answered with
    an error (which would get the bridge kicked from the room, again on every history
    replay)."""
    alice, max_ = xw.xmpp["alice"], xw.users["max"]
    since = len(alice.presences)
    broken = alice.client.make_message(mto=MUC, mbody=unique("Kaputt"), mtype="groupchat")
    broken["oob"]["url"] = "http://[::1"
    broken.send()
    marker = unique("Noch alle da")
    alice.say(MUC, marker)
    await max_.wait_for(xw.rooms["bund"], body_is(marker))
    assert alice.left(MUC, "Passerelle", since) == []
    assert broken["body"] not in await bodies(max_, xw.rooms["bund"])


async def test_a_chat_to_a_malformed_address_leaves_one_to_one_chats_working(
    xw: XmppWorld,
) -> None:
    """Addresses on the component that no puppet has, including ones that crashed the
    unescaping (``x\\``): each is answered item-not-found, and a chat after them still opens."""
    alice = xw.xmpp["alice"]
    for localpart in ("x\\", "x\\5", "bund_x\\5cy"):
        error = await alice.direct(f"{localpart}@{COMPONENT}", unique("Hallo?"))
        assert error["error"]["condition"] == "item-not-found"
    lena = await User.register(xw.bund, "lena", displayname="Lena Lang")
    xw.users["lena"] = lena
    since = (await lena.client.sync(timeout=0))["next_batch"]
    text = unique("Hallo Lena, kurz unter uns")
    alice.chat(f"bund_lena\\3abund.test@{COMPONENT}", text)
    room = await joined_invite(lena, since)
    await lena.wait_for(room, body_is(text))
