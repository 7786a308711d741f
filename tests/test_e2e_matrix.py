"""End to end on two real Synapse homeservers: what a person in one linked room sees of what a
person in the other linked room does."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import aiohttp
import pytest
from mautrix.types import ContentURI, EventType, RoomID

from tests.harness import User, content
from tests.harness.bridge import BridgeProcess
from tests.harness.expect import (
    Event,
    bodies,
    body_has,
    body_is,
    crossed,
    edit_relation,
    joined_invite,
    name_of,
    passed_through,
    receipt_on,
    receipts_since,
    sent_and_mirrored,
    tchap_refused,
    typing_in,
    unique,
)
from tests.harness.synapse import free_port
from tests.world import GIVE_UP_AFTER, World

pytestmark = pytest.mark.e2e

RESTRICTED_BY_TCHAP = (
    "il est restreint (pas d’externes) et des personnes de bund.test y entreraient"
)


async def test_text_crosses_both_ways_under_real_names(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund, tchap = world.rooms["bund:main"], world.rooms["tchap:main"]
    seen = await crossed(max_, bund, "Guten Tag aus Berlin", jean.wait_for, tchap)
    assert seen["sender"].startswith("@passerelle_=people_max")
    assert seen["sender"].endswith(":tchap.test")
    assert await name_of(jean, tchap, seen["sender"]) == "Max Mustermann [BMI]"

    seen = await crossed(jean, tchap, "Bonjour de Paris", max_.wait_for, bund)
    assert seen["sender"].endswith(":bund.test")
    assert await name_of(max_, bund, seen["sender"]) == "Jean Dupont [Intérieur] (Tchap)"


async def test_unmapped_user_gets_profile_name_and_network_org(world: World) -> None:
    erika, jean = world.users["erika"], world.users["jean"]
    tchap = world.rooms["tchap:main"]
    seen = await crossed(erika, world.rooms["bund:main"], "Hallo von Erika", jean.wait_for, tchap)
    assert await name_of(jean, tchap, seen["sender"]) == "Erika Musterfrau [BMI]"


async def test_person_with_account_on_target_is_not_ghosted(world: World) -> None:
    anna, jean = world.users["anna_bund"], world.users["jean"]
    text = unique("Anna schreibt")
    await anna.send_text(world.rooms["bund:main"], text)
    seen = await jean.wait_for(
        world.rooms["tchap:main"], lambda e: text in e.get("content", {}).get("body", "")
    )
    assert seen["sender"] == "@passerelle:tchap.test"
    assert seen["content"]["body"] == f"Anna Schmidt [AA]: {text}"


async def test_formatted_text_is_sanitized(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    text = unique("wichtig")
    html = f"<b>{text}</b> <i>bitte</i><script>alert('pwned')</script>"
    await max_.send_text(world.rooms["bund:main"], text, html=html)
    seen = await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    formatted = seen["content"]["formatted_body"]
    assert formatted == f"<b>{text}</b> <i>bitte</i>"
    assert seen["content"]["format"] == "org.matrix.custom.html"


async def test_reply_edit_reaction_redaction_land_on_the_right_message(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund_room, tchap_room = world.rooms["bund:main"], world.rooms["tchap:main"]
    original, mirrored = await sent_and_mirrored(
        max_, bund_room, "Entwurf", jean.wait_for, tchap_room
    )

    reply_text = unique("Réponse")
    await jean.send_event(tchap_room, "m.room.message", content.reply(reply_text, mirrored))
    reply = await max_.wait_for(bund_room, body_is(reply_text))
    assert reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == original

    edited_text = unique("Endfassung")
    await max_.send_event(bund_room, "m.room.message", content.edit(edited_text, original))
    assert await edit_relation(jean, tchap_room, edited_text) == {
        "rel_type": "m.replace",
        "event_id": mirrored,
    }

    await jean.send_event(tchap_room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored, "key": "👍"},
    })  # fmt: skip
    reaction = await max_.wait_for(bund_room, lambda e: e.get("type") == "m.reaction")
    assert reaction["content"]["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": original,
        "key": "👍",
    }
    assert await name_of(max_, bund_room, reaction["sender"]) == "Jean Dupont [Intérieur] (Tchap)"

    await max_.client.redact(RoomID(bund_room), original, reason="Entwurf verworfen")
    redaction = await jean.wait_for(
        tchap_room, lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == mirrored
    )
    assert redaction["sender"].startswith("@passerelle_=people_max")
    assert redaction["content"]["reason"] == "Entwurf verworfen"
    gone = await jean.client.get_event(RoomID(tchap_room), mirrored)
    assert not gone.content.serialize().get("body")


async def _send_image(user: User, room_id: str, data: bytes, name: str) -> str:
    mxc = await user.client.upload_media(data, mime_type="image/png", filename=name)
    return await user.send_event(room_id, "m.room.message", {
        "msgtype": "m.image", "body": name, "url": mxc,
        "info": {"mimetype": "image/png", "size": len(data), "w": 1, "h": 1},
    })  # fmt: skip


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a2dd0b4a0000000049454e44ae426082"
)


async def test_image_bytes_arrive_intact_both_ways(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    data = PNG + uuid.uuid4().bytes
    await _send_image(max_, world.rooms["bund:main"], data, "lageplan.png")
    seen = await jean.wait_for(
        world.rooms["tchap:main"], lambda e: e["content"].get("msgtype") == "m.image"
        and e["content"].get("info", {}).get("size") == len(data)
    )  # fmt: skip
    assert seen["content"]["body"] == "lageplan.png"
    assert seen["content"]["url"].startswith("mxc://tchap.test/")
    assert await jean.client.download_media(ContentURI(seen["content"]["url"])) == data

    data = PNG + uuid.uuid4().bytes + b"fr"
    await _send_image(jean, world.rooms["tchap:main"], data, "plan.png")
    seen = await max_.wait_for(
        world.rooms["bund:main"], lambda e: e["content"].get("msgtype") == "m.image"
        and e["content"].get("info", {}).get("size") == len(data)
    )  # fmt: skip
    assert seen["content"]["url"].startswith("mxc://bund.test/")
    assert await max_.client.download_media(ContentURI(seen["content"]["url"])) == data


async def test_bridge_creates_room_from_config_and_invites_people(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    invited: list[str] = []
    for _ in range(100):
        sync = await max_.client.sync(timeout=0)
        invited = list(sync.get("rooms", {}).get("invite", {}))
        if invited:
            break
        await asyncio.sleep(0.2)
    assert len(invited) == 1, "the bridge should have invited Max to the room it created"
    room_id = invited[0]
    await max_.join(room_id)
    name = await max_.client.get_state_event(RoomID(room_id), EventType.ROOM_NAME)
    assert name.name == "Created WG"
    create = await max_.client.get_state_event(RoomID(room_id), EventType.ROOM_CREATE)
    assert create.room_version == "11"  # as configured, where Synapse's default is 12
    assert room_id.endswith(":bund.test")

    text = unique("Salut la nouvelle salle")
    await jean.send_text(world.rooms["tchap:created"], text)
    await max_.wait_for(room_id, body_is(text))
    text = unique("Danke")
    await max_.send_text(room_id, text)
    await jean.wait_for(world.rooms["tchap:created"], body_is(text))


async def test_restricted_tchap_room_is_refused(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    await tchap_refused(jean.wait_for, world.rooms["tchap:restr"], RESTRICTED_BY_TCHAP)

    secret = unique("nur intern")
    await jean.send_text(world.rooms["tchap:restr"], secret)
    outward = unique("von außen")
    await max_.send_text(world.rooms["bund:restr"], outward)
    await passed_through(max_, world.rooms["bund:main"], jean.wait_for, world.rooms["tchap:main"])
    await asyncio.sleep(1)
    tchap_bodies = await bodies(jean, world.rooms["tchap:restr"])
    bund_bodies = await bodies(max_, world.rooms["bund:restr"])
    assert outward not in tchap_bodies
    assert not any(b and secret in b for b in bund_bodies)
    members = await jean.client.get_joined_members(RoomID(world.rooms["tchap:restr"]))
    assert not [m for m in members if m.startswith("@passerelle_")]


async def test_an_access_rule_under_another_state_key_leaves_a_room_restricted(
    world: World,
) -> None:
    """Only the access-rules event with the empty state key is the room's rule: one a room
    admin adds under another key must not make the bridge link a restricted room."""
    max_, jean = world.users["max"], world.users["jean"]
    await jean.client.send_state_event(
        RoomID(world.rooms["tchap:restr"]),
        EventType.find("im.vector.room.access_rules", EventType.Class.STATE),
        {"rule": "unrestricted"},  # type: ignore[arg-type]
        state_key="unrestricted-really",
    )
    # Events of one homeserver reach the bridge in order: once this crossed, so did the rule.
    seen_first = unique("nach der Regel")
    await jean.send_text(world.rooms["tchap:main"], seen_first)
    await max_.wait_for(world.rooms["bund:main"], body_is(seen_first))

    outward = unique("bleibt draußen")
    await max_.send_text(world.rooms["bund:restr"], outward)
    await passed_through(max_, world.rooms["bund:main"], jean.wait_for, world.rooms["tchap:main"])
    await asyncio.sleep(1)
    assert outward not in await bodies(jean, world.rooms["tchap:restr"])


async def test_relay_mode_posts_as_bot_with_name_and_reads_via_sync(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    text = unique("Hallo Relay")
    await max_.send_text(world.rooms["bund:relay"], text, html=f"<em>{text}</em>")
    seen = await jean.wait_for(
        world.rooms["tchap:relay"], lambda e: text in e["content"].get("body", "")
    )
    assert seen["sender"] == "@relaybot:tchap.test"
    assert seen["content"]["body"] == f"Max Mustermann [BMI]: {text}"
    assert seen["content"]["formatted_body"] == (
        f"<strong>Max Mustermann [BMI]</strong>: <em>{text}</em>"
    )

    text = unique("Salut relay")
    await jean.send_text(world.rooms["tchap:relay"], text)
    seen = await max_.wait_for(world.rooms["bund:relay"], body_is(text))
    assert await name_of(max_, world.rooms["bund:relay"], seen["sender"]) == (
        "Jean Dupont [Intérieur] (Tchap)"
    )


async def test_relayed_reactions_are_one_line_naming_who_reacted(world: World) -> None:
    """The relay bot cannot react as Max or Erika: it keeps one notice under the message that
    says who reacted with what, edited as reactions come and go, gone with the last one."""
    max_, erika, jean = world.users["max"], world.users["erika"], world.users["jean"]
    bund_room, tchap_room = world.rooms["bund:relay"], world.rooms["tchap:relay"]
    text = unique("Qui est d'accord ?")
    original = await jean.send_text(tchap_room, text)
    mirrored = (await max_.wait_for(bund_room, body_is(text)))["event_id"]

    def line_is(body: str) -> Any:
        def match(e: Event) -> bool:
            content = e.get("content", {})
            return content.get("m.new_content", content).get("body") == body

        return match

    max_thumb = await max_.send_event(bund_room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored, "key": "👍"},
    })  # fmt: skip
    line = await jean.wait_for(tchap_room, line_is("Réactions : 👍 Max Mustermann [BMI]"))
    assert line["sender"] == "@relaybot:tchap.test"
    assert line["content"]["msgtype"] == "m.notice"
    assert line["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": original}}

    erika_thumb = await erika.send_event(bund_room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored, "key": "👍"},
    })  # fmt: skip
    await max_.send_event(bund_room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored, "key": "🎉"},
    })  # fmt: skip
    both = "Réactions : 👍 Max Mustermann [BMI], Erika Musterfrau [BMI]; 🎉 Max Mustermann [BMI]"
    edit = await jean.wait_for(tchap_room, line_is(both))
    assert edit["content"]["m.relates_to"] == {"rel_type": "m.replace",
                                               "event_id": line["event_id"]}  # fmt: skip

    await max_.client.redact(RoomID(bund_room), max_thumb)
    await jean.wait_for(
        tchap_room,
        line_is("Réactions : 👍 Erika Musterfrau [BMI]; 🎉 Max Mustermann [BMI]"),
    )
    await erika.client.redact(RoomID(bund_room), erika_thumb)
    await jean.wait_for(tchap_room, line_is("Réactions : 🎉 Max Mustermann [BMI]"))
    reactions = [e for e in await jean.messages(tchap_room) if e.get("type") == "m.reaction"]
    assert not [e for e in reactions if e["content"]["m.relates_to"]["event_id"] == original]


async def test_last_relayed_reaction_withdrawn_takes_the_line_away(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    bund_room, tchap_room = world.rooms["bund:relay"], world.rooms["tchap:relay"]
    text = unique("Une seule réaction")
    await jean.send_text(tchap_room, text)
    mirrored = (await max_.wait_for(bund_room, body_is(text)))["event_id"]
    thumb = await max_.send_event(bund_room, "m.reaction", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": mirrored, "key": "👀"},
    })  # fmt: skip
    line = await jean.wait_for(tchap_room, body_is("Réactions : 👀 Max Mustermann [BMI]"))
    await max_.client.redact(RoomID(bund_room), thumb)
    await jean.wait_for(
        tchap_room,
        lambda e: e.get("type") == "m.room.redaction" and e.get("redacts") == line["event_id"],
    )


async def test_relayed_file_caption_names_the_sender(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    name = f"{unique('plan')}.png"
    await _send_image(max_, world.rooms["bund:relay"], PNG + uuid.uuid4().bytes, name)
    seen = await jean.wait_for(
        world.rooms["tchap:relay"], lambda e: name in e["content"].get("body", "")
    )
    assert seen["sender"] == "@relaybot:tchap.test"
    assert seen["content"]["msgtype"] == "m.image"
    assert seen["content"]["filename"] == name
    assert seen["content"]["body"] == f"Max Mustermann [BMI]: {name}"
    assert seen["content"]["formatted_body"] == f"<strong>Max Mustermann [BMI]</strong>: {name}"


async def test_refused_credentials_are_named_in_the_log_and_readiness(world: World) -> None:
    """A wrong appservice token or relay password is an admin's mistake, not an outage: the
    log and the readiness answer say what to fix."""
    root = world.root / "refused"
    root.mkdir(exist_ok=True)
    config = world.config
    networks = config["networks"]
    networks["bund"]["appservice"]["as_token"] = "not-the-registered-token"
    networks["tchap-relay"]["relay"]["password"] = "not-the-password"
    port = free_port()
    text = json.dumps({
        "database": f"sqlite:{root}/passerelle.db",
        "listen": {"host": "127.0.0.1", "port": port},
        "networks": {"bund": networks["bund"], "tchap-relay": networks["tchap-relay"]},
        "links": [{"id": "relay", "rooms": {"bund": "#relay:bund.test",
                                            "tchap-relay": "#relay:tchap.test"}}],
    })  # fmt: skip
    (root / "config.yaml").write_text(text)
    bridge = BridgeProcess(root / "config.yaml", root, port=port)
    bridge.spawn()
    try:
        answer, status = await _readiness_naming_problems(bridge.ready_url, 2)
        assert status == 503
        missing = {"state": "refused", "unreachable": None, "rooms_not_set_up": ["relay"],
                   "rooms_not_set_up_count": 1}  # fmt: skip
        assert answer == {"ready": False, "networks": {
            "bund": {"problem": "the homeserver refused the appservice token — is the "
                     "registration (bund-registration.yaml) installed and the homeserver "
                     "restarted?", **missing},
            "tchap-relay": {"problem": "the homeserver refused the login of "
                            "@relaybot:tchap.test: check relay.user_id and relay.password",
                            **missing},
        }}  # fmt: skip
    finally:
        await bridge.astop()
    log = bridge.log_text()
    assert "bund: the homeserver refused the appservice token" in log
    assert "not reachable yet" not in log
    assert "not-the-password" not in log and "not-the-registered-token" not in log


async def test_no_metric_has_an_empty_label(world: World) -> None:
    """Every series can be told apart and alerted on: mautrix's request counters too, which
    named only some of the requests."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.bridge_url}/metrics") as resp:
            metrics = await resp.text()
    calls = re.findall(r'^bridge_matrix_api_calls_total\{method="([^"]*)"\}', metrics, re.M)
    assert {"join_room", "set_displayname", "sendMessageEvent"} <= set(calls), calls
    assert not [line for line in metrics.splitlines() if '=""' in line]


async def _readiness_naming_problems(url: str, networks: int) -> tuple[Any, int]:
    """The readiness answer once it names a problem for ``networks`` networks (or after
    20 s, whatever it is then)."""
    answer: Any = None
    status = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as resp:
                    answer, status = await resp.json(), resp.status
                problems = [n.get("problem") for n in answer.get("networks", {}).values()]
                if len(problems) == networks and all(problems):
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    return answer, status


async def _put_transaction(
    world: World, network: str, txn_id: str, events: list[Event], token: str | None
) -> tuple[int, Event]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = f"{world.bridge_url}/as/{network}/_matrix/app/v1/transactions/{txn_id}"
    async with aiohttp.ClientSession() as session:
        async with session.put(url, json={"events": events}, headers=headers) as resp:
            return resp.status, await resp.json()


def _synthetic_message(world: World, text: str) -> Event:
    return {
        "type": "m.room.message",
        "event_id": f"$synthetic-{uuid.uuid4().hex}",
        "room_id": world.rooms["bund:main"],
        "sender": "@max:bund.test",
        "origin_server_ts": 0,
        "content": {"msgtype": "m.text", "body": text},
    }


async def test_wrong_hs_token_is_rejected_and_nothing_bridged(world: World) -> None:
    jean = world.users["jean"]
    text = unique("forged")
    event = _synthetic_message(world, text)
    status, body = await _put_transaction(world, "bund", "forged-1", [event], "wrong-token")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await _put_transaction(world, "bund", "forged-2", [event], None)
    assert (status, body["errcode"]) == (401, "M_UNAUTHORIZED")

    marker = unique("after forgery")
    await world.users["max"].send_text(world.rooms["bund:main"], marker)
    await jean.wait_for(world.rooms["tchap:main"], body_is(marker))
    seen = await bodies(jean, world.rooms["tchap:main"])
    assert text not in seen


async def test_resent_transaction_is_bridged_once(world: World) -> None:
    jean = world.users["jean"]
    text = unique("einmal")
    event = _synthetic_message(world, text)
    token = world.hs_token("bund")
    txn = f"replay-{uuid.uuid4().hex}"
    for _ in range(2):
        status, _body = await _put_transaction(world, "bund", txn, [event], token)
        assert status == 200
    # Even under a new transaction ID the same event is recognised.
    status, _body = await _put_transaction(world, "bund", txn + "-again", [event], token)
    assert status == 200

    # A homeserver that numbers transactions from 1 again after a restart (Synapse on SQLite)
    # reuses an ID for new events: those are new, not a replay.
    reused = unique("neue Transaktion, alte Nummer")
    status, _body = await _put_transaction(
        world, "bund", txn, [_synthetic_message(world, reused)], token
    )
    assert status == 200
    await jean.wait_for(world.rooms["tchap:main"], body_is(reused))
    seen = await bodies(jean, world.rooms["tchap:main"])
    assert seen.count(text) == 1


async def test_a_burst_of_long_messages_crosses_whole(world: World) -> None:
    """Long messages sent while the bridge is held up reach it in one transaction of several
    megabytes; a transaction the bridge refused would be retried by the homeserver for ever."""
    max_, jean = world.users["max"], world.users["jean"]
    texts = [unique(f"Langer Bericht {i:02d}") + " " + "Absatz. " * 7_500 for i in range(30)]
    world.bridge.pause()
    try:
        for text in texts:
            await max_.send_text(world.rooms["bund:main"], text)
    finally:
        world.bridge.resume()
    await jean.wait_for(world.rooms["tchap:main"], body_is(texts[-1]), timeout=90)
    arrived = await bodies(jean, world.rooms["tchap:main"], limit=200)
    assert [b for b in arrived if b in texts] == texts


async def test_one_unreadable_event_does_not_hold_up_its_transaction(world: World) -> None:
    """Bytes that are not UTF-8, numbers beyond any integer type, nesting deeper than a parser
    recurses: the transaction is taken, its other events cross, nothing stops."""
    jean, token = world.users["jean"], world.hs_token("bund")
    logged_before = len(world.bridge.log_text())
    good = [unique(f"lesbar {i}") for i in range(3)]
    events = [json.dumps(_synthetic_message(world, text)).encode() for text in good]
    odd = _synthetic_message(world, "PLACEHOLDER")
    odd["content"]["depth"] = "DEEP"
    hostile = (
        json.dumps(odd).encode()
        .replace(b"PLACEHOLDER", b"caf\\u00e9 \\ud800 \xff\xfe")
        .replace(b'"DEEP"', b"[" * 5000 + b"]" * 5000)
        .replace(b'"origin_server_ts": 0', b'"origin_server_ts": ' + b"9" * 5000)
    )  # fmt: skip
    body = b'{"events": [' + b", ".join([events[0], hostile, *events[1:]]) + b"]}"
    url = f"{world.bridge_url}/as/bund/_matrix/app/v1/transactions/odd-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as session:
        async with session.put(url, data=body, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
    for text in good:
        await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    await jean.wait_for(world.rooms["tchap:main"], body_is("café \ufffd \ufffd\ufffd"))
    assert "Traceback" not in world.bridge.log_text()[logged_before:]


async def test_bridge_killed_mid_conversation_loses_and_doubles_nothing(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    world.bridge.kill()
    german = [unique(f"während des Ausfalls {i}") for i in range(3)]
    french = [unique(f"pendant la panne {i}") for i in range(3)]
    relayed = [unique(f"relay pendant la panne {i}") for i in range(2)]
    for g, f in zip(german, french, strict=True):
        await max_.send_text(world.rooms["bund:main"], g)
        await jean.send_text(world.rooms["tchap:main"], f)
    for r in relayed:
        await jean.send_text(world.rooms["tchap:relay"], r)
    await world.bridge.start()

    await jean.wait_for(world.rooms["tchap:main"], body_is(german[-1]), timeout=60)
    await max_.wait_for(world.rooms["bund:main"], body_is(french[-1]), timeout=60)
    await max_.wait_for(world.rooms["bund:relay"], body_is(relayed[-1]), timeout=60)
    await asyncio.sleep(1)
    tchap_bodies = await bodies(jean, world.rooms["tchap:main"])
    bund_bodies = await bodies(max_, world.rooms["bund:main"])
    relay_bodies = await bodies(max_, world.rooms["bund:relay"])
    assert [b for b in tchap_bodies if b in german] == german
    assert [b for b in bund_bodies if b in french] == french
    assert [b for b in relay_bodies if b in relayed] == relayed


async def sent_while_tchap_is_down(world: World, label: str, down_for: float) -> list[str]:
    """Three messages Max sends into bund's main room while tchap.test is down for ``down_for``
    s; they reach Tchap, in order, once it is back."""
    max_, jean = world.users["max"], world.users["jean"]
    await world.tchap.astop()
    texts = [unique(f"{label} {i}") for i in range(3)]
    try:
        for text in texts:
            await max_.send_text(world.rooms["bund:main"], text)
        await asyncio.sleep(down_for)
    finally:
        await world.tchap.start()
    await jean.wait_for(world.rooms["tchap:main"], body_is(texts[-1]), timeout=60)
    seen = await bodies(jean, world.rooms["tchap:main"])
    assert [b for b in seen if b in texts] == texts
    return texts


async def test_target_homeserver_down_delays_delivery_in_order(world: World) -> None:
    await sent_while_tchap_is_down(world, "Tchap ist gerade weg", 1.5)


async def test_an_outage_longer_than_every_retry_loses_nothing(world: World) -> None:
    """Longer than the eight attempts' backoff: a network that is down is not a message that
    failed, so nothing is given up and the messages arrive in order once it is back."""
    texts = await sent_while_tchap_is_down(world, "Wartung läuft", 12)
    notices = [
        b for b in await bodies(world.users["max"], world.rooms["bund:main"]) if b and "⚠️" in b
    ]
    assert not [n for n in notices if any(t in n for t in texts)]


async def test_sender_is_told_in_their_language_when_a_message_expires(world: World) -> None:
    max_ = world.users["max"]
    await world.tchap.astop()
    text = unique("kommt nie an")
    try:
        await max_.send_text(world.rooms["bund:main"], text)
        notice = await max_.wait_for(
            world.rooms["bund:main"],
            lambda e: (
                e["content"].get("msgtype") == "m.notice" and text in e["content"].get("body", "")
            ),
            timeout=GIVE_UP_AFTER + 30,
        )
    finally:
        await world.tchap.start()
    assert notice["sender"] == "@passerelle:bund.test"
    assert notice["content"]["body"] == (
        f"⚠️ Nachricht „{text}“ von Max Mustermann konnte nicht an Tchap zugestellt werden "
        "(seit 1 min nicht erreichbar)."
    )


async def test_ghost_carries_the_senders_avatar(world: World) -> None:
    erika, jean = world.users["erika"], world.users["jean"]
    avatar = PNG + b"erika"
    mxc = await erika.client.upload_media(avatar, mime_type="image/png", filename="erika.png")
    await erika.client.set_avatar_url(mxc)
    await erika.wait_for(
        world.rooms["bund:main"],
        lambda e: e.get("type") == "m.room.member" and e["content"].get("avatar_url") == mxc,
    )
    text = unique("mit Bild")
    await erika.send_text(world.rooms["bund:main"], text)
    seen = await jean.wait_for(world.rooms["tchap:main"], body_is(text))
    member = await jean.client.get_state_event(
        RoomID(world.rooms["tchap:main"]), EventType.ROOM_MEMBER, seen["sender"]
    )
    assert member.avatar_url and member.avatar_url.startswith("mxc://tchap.test/")
    assert await jean.client.download_media(member.avatar_url) == avatar


async def test_inviting_a_ghost_opens_a_direct_chat_with_the_person(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    ghost_of_max = "@passerelle_=people_max:tchap.test"
    since = (await max_.client.sync(timeout=0))["next_batch"]
    dm = await jean.create_room(invitees=[ghost_of_max], is_direct=True)
    await jean.wait_for(
        dm, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == ghost_of_max
        and e["content"].get("membership") == "join"
    )  # fmt: skip
    text = unique("Une question privée")
    await jean.send_text(dm, text)

    private = await joined_invite(max_, since)
    seen = await max_.wait_for(private, body_is(text))
    assert await name_of(max_, private, seen["sender"]) == "Jean Dupont [Intérieur] (Tchap)"

    answer = unique("Gern, hier die Antwort")
    await max_.send_text(private, answer)
    seen = await jean.wait_for(dm, body_is(answer))
    assert seen["sender"] == ghost_of_max


async def test_direct_chat_into_tchap_refused_for_a_domain_not_allowed(world: World) -> None:
    max_ = world.users["max"]
    ghost_of_jean = "@passerelle_tchap_jean.dupont-interieur.gouv.fr=3atchap.test:bund.test"
    dm = await max_.create_room(invitees=[ghost_of_jean], is_direct=True)
    notice = await max_.wait_for(dm, lambda e: e["content"].get("msgtype") == "m.notice")
    assert notice["sender"] == ghost_of_jean
    assert notice["content"]["body"] == (
        "Dieser Chat kann nicht verbunden werden: er ist ein Direktchat, und Personen von "
        "bund.test kämen hinzu."
    )
    await max_.wait_for(
        dm, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == ghost_of_jean
        and e["content"].get("membership") == "leave"
    )  # fmt: skip


async def test_typing_shows_on_the_other_side(world: World) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    ghost = "@passerelle_=people_max:tchap.test"
    await max_.client.set_typing(RoomID(world.rooms["bund:main"]), 20_000)
    await typing_in(jean, world.rooms["tchap:main"], lambda users: ghost in users)
    await max_.client.set_typing(RoomID(world.rooms["bund:main"]), 0)
    await typing_in(jean, world.rooms["tchap:main"], lambda users: ghost not in users)


async def test_read_receipts_of_listed_people_cross_and_strangers_stay_private(
    world: World,
) -> None:
    max_, erika, jean = world.users["max"], world.users["erika"], world.users["jean"]
    bund, tchap = world.rooms["bund:main"], world.rooms["tchap:main"]
    ghost_of_max = "@passerelle_=people_max:tchap.test"
    for user in (max_, erika):  # each has a ghost in the Tchap room from now on
        hello = unique(f"Hallo von {user.user_id}")
        await user.send_text(bund, hello)
        await jean.wait_for(tchap, body_is(hello))
    ghost_of_erika = (await jean.wait_for(tchap, body_has("Hallo von @erika")))["sender"]
    since = (await jean.client.sync(timeout=0))["next_batch"]
    question = unique("Qui a lu ceci ?")
    question_id = await jean.send_text(tchap, question)
    seen = await max_.wait_for(bund, body_is(question))
    await erika.client.send_receipt(RoomID(bund), seen["event_id"])  # Erika is not in "people"
    await max_.client.send_receipt(RoomID(bund), seen["event_id"])
    await receipt_on(jean, tchap, ghost_of_max, question_id)
    assert question_id not in await receipts_since(jean, tchap, ghost_of_erika, since)
