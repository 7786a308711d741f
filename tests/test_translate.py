"""Tests of connectors.matrix.translate: Matrix event JSON ↔ bridge events.

The inbound payloads are written out as Element (web) and Synapse produce them: the fields a
homeserver adds (``origin_server_ts``, ``unsigned``, ``sender``) are included so the functions see
what they will see in production.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from bridge.connector import Outgoing
from bridge.events import Attachment, AttachmentKind, Event, Kind, MsgType, Sender
from connectors.matrix.relay_format import DEFAULT_RELAY_TEMPLATE
from connectors.matrix.translate import (
    MalformedEvent,
    event_from_matrix,
    ghost_localpart,
    matrix_content,
    read_receipts,
)
from tests import samples

ROOM = "!OGEhHVWSdvArJzumhm:bmi.example"
SENDER = Sender(
    "bund", "@max.mustermann:bmi.example", "Max Mustermann", org="BMI", suffix=" (BundesMessenger)"
)


def room_event(event_type: str, content: Any, event_id: str = "$ev1", **extra: Any) -> dict:
    """A room event as a homeserver delivers it in a transaction or in ``/sync``."""
    return {
        "type": event_type,
        "sender": SENDER.user_id,
        "content": content,
        "origin_server_ts": 1718000000000,
        "unsigned": {"age": 120},
        "event_id": event_id,
        "room_id": ROOM,
        **extra,
    }


def text_content(
    body: str, html: str | None = None, relates_to: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The content of an ``m.text`` message as Element sends it: ``html`` is its formatted body,
    ``relates_to`` its ``m.relates_to``."""
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if html is not None:
        content |= {"format": "org.matrix.custom.html", "formatted_body": html}
    if relates_to is not None:
        content["m.relates_to"] = relates_to
    return content


def media_content(msgtype: str | None, body: str, url: str, info: dict[str, Any]) -> dict[str, Any]:
    """The content of a file Element sends as a ``msgtype`` message (None: a sticker)."""
    content = {"body": body, "url": url, "info": info}
    return content if msgtype is None else {"msgtype": msgtype, **content}


def translate(raw: dict) -> Event | None:
    return event_from_matrix(raw, link_id="crisis", network="bund", sender=SENDER)


def must(raw: dict) -> Event:
    event = translate(raw)
    assert event is not None
    return event


# Inbound: messages


def test_text_with_formatted_body() -> None:
    content = text_content("Lage um **10 Uhr**", "Lage um <strong>10 Uhr</strong>")
    event = must(room_event("m.room.message", content | {"m.mentions": {}}))
    assert event == Event(
        kind=Kind.MESSAGE,
        link_id="crisis",
        network="bund",
        room_id=ROOM,
        remote_id="$ev1",
        sender=SENDER,
        text="Lage um **10 Uhr**",
        html="Lage um <strong>10 Uhr</strong>",
        msgtype=MsgType.TEXT,
    )


def test_plain_text_has_no_html() -> None:
    event = must(room_event("m.room.message", text_content("Bonjour")))
    assert (event.text, event.html) == ("Bonjour", None)


def test_formatted_body_is_sanitized() -> None:
    html = '<b onclick="x()">hi</b><script>alert(1)</script>'
    event = must(room_event("m.room.message", text_content("hi", html)))
    assert event.html == "<b>hi</b>"


def test_reply_drops_both_fallbacks() -> None:
    fallback = (
        "<mx-reply><blockquote>"
        f'<a href="https://matrix.to/#/{ROOM}/$parent?via=bmi.example">In reply to</a> '
        '<a href="https://matrix.to/#/@jean.dupont:tchap.example">'
        "@jean.dupont:tchap.example</a><br>quoted<br>second line"
        "</blockquote></mx-reply>"
    )
    content = text_content(
        "> <@jean.dupont:tchap.example> quoted\n> second line\n\nanswer",
        fallback + "answer",
        {"m.in_reply_to": {"event_id": "$parent"}},
    )
    event = must(room_event("m.room.message", content))
    assert event.kind is Kind.MESSAGE
    assert event.reply_to == "$parent"
    assert event.text == "answer"
    assert event.html == "answer"


def test_plain_reply_without_html() -> None:
    reply = {"m.in_reply_to": {"event_id": "$parent"}}
    event = must(
        room_event("m.room.message", text_content("> <@a:b> quoted\n\nanswer", None, reply))
    )
    assert (event.text, event.html, event.reply_to) == ("answer", None, "$parent")


def test_message_starting_with_a_quote_keeps_it_when_not_a_reply() -> None:
    event = must(room_event("m.room.message", text_content("> cited\n\nmine")))
    assert event.text == "> cited\n\nmine"


def test_edit_uses_new_content() -> None:
    new = text_content("Lage um **11 Uhr**", "Lage um <strong>11 Uhr</strong>")
    content = text_content(
        " * Lage um **11 Uhr**",
        " * Lage um <strong>11 Uhr</strong>",
        {"rel_type": "m.replace", "event_id": "$original"},
    )
    event = must(room_event("m.room.message", content | {"m.new_content": new}, "$edit"))
    assert event.kind is Kind.EDIT
    assert event.remote_id == "$edit"
    assert event.relates_to == "$original"
    assert event.text == "Lage um **11 Uhr**"
    assert event.html == "Lage um <strong>11 Uhr</strong>"
    assert event.msgtype is MsgType.TEXT


def test_reaction() -> None:
    event = must(
        room_event(
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$msg", "key": "👍"}},
            event_id="$react",
        )
    )
    assert event.kind is Kind.REACTION
    assert (event.remote_id, event.relates_to, event.reaction) == ("$react", "$msg", "👍")


def test_redaction_with_top_level_redacts() -> None:
    """Room versions up to 10 carry the target outside the content."""
    event = must(room_event("m.room.redaction", {"reason": "Tippfehler"}, redacts="$gone"))
    assert event.kind is Kind.REDACTION
    assert event.relates_to == "$gone"


def test_redaction_with_redacts_in_content() -> None:
    """Room version 11 moved ``redacts`` into the content (Synapse sends both for v11)."""
    event = must(room_event("m.room.redaction", {"redacts": "$gone"}))
    assert (event.kind, event.relates_to) == (Kind.REDACTION, "$gone")


def test_image_with_info() -> None:
    info = {"mimetype": "image/png", "size": 48213, "w": 1024, "h": 768,
            "xyz.amorgan.blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH"}  # fmt: skip
    content = media_content("m.image", "lagekarte.png", "mxc://bmi.example/AbCdEfGh", info)
    event = must(room_event("m.room.message", content | {"m.mentions": {}}))
    assert event.kind is Kind.MESSAGE
    assert event.text == ""  # the body is only the file name: no caption
    assert event.attachment == Attachment(
        AttachmentKind.IMAGE, "lagekarte.png", "image/png", 48213, "mxc://bmi.example/AbCdEfGh",
        width=1024, height=768,
    )  # fmt: skip


def test_file_with_filename_and_caption() -> None:
    info = {"mimetype": "application/pdf", "size": 102400}
    content = media_content(
        "m.file", "Voici le rapport de situation", "mxc://tchap.example/QwErTy", info
    )
    event = must(room_event("m.room.message", content | {"filename": "rapport.pdf"}))
    assert event.text == "Voici le rapport de situation"
    assert event.attachment is not None
    assert event.attachment.kind is AttachmentKind.FILE
    assert event.attachment.name == "rapport.pdf"
    assert event.attachment.mimetype == "application/pdf"
    assert event.attachment.size == 102400
    assert event.attachment.width is None


def test_sticker_is_an_image() -> None:
    info = {"mimetype": "image/png", "size": 8000, "w": 256, "h": 256}
    event = must(
        room_event(
            "m.sticker", media_content(None, "Daumen hoch", "mxc://bmi.example/sticker1", info)
        )
    )
    assert event.kind is Kind.MESSAGE
    assert event.attachment is not None
    assert event.attachment.kind is AttachmentKind.IMAGE
    assert event.attachment.ref == "mxc://bmi.example/sticker1"
    assert (event.attachment.width, event.attachment.height) == (256, 256)


@pytest.mark.parametrize(
    ("msgtype", "expected"), [("m.emote", MsgType.EMOTE), ("m.notice", MsgType.NOTICE)]
)
def test_emote_and_notice(msgtype: str, expected: MsgType) -> None:
    event = must(room_event("m.room.message", {"msgtype": msgtype, "body": "winkt"}))
    assert (event.msgtype, event.text) == (expected, "winkt")


@pytest.mark.parametrize(
    "raw",
    [
        room_event("m.room.member", {"membership": "join"}, state_key=SENDER.user_id),
        room_event("m.room.name", {"name": "Krisenstab"}, state_key=""),
        room_event("m.room.message", {}),  # a redacted message
        room_event("m.reaction", {"m.relates_to": {"rel_type": "m.reference", "event_id": "$x"}}),
        room_event("m.call.invite", {"call_id": "1"}),
    ],
    ids=["member", "room-name", "redacted", "non-annotation-reaction", "unknown-type"],
)
def test_events_that_are_not_bridged(raw: dict) -> None:
    assert translate(raw) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (room_event("m.room.message", "not an object"), "content must be an object"),
        (room_event("m.room.message", ["a"]), "content must be an object"),
        (room_event("m.room.message", {"msgtype": "m.text", "body": 42}), "content.body"),
        (room_event("m.room.message", {"msgtype": "m.text"}), "content.body"),
        (
            room_event("m.room.message", {"msgtype": "m.image", "body": "a.png"}),
            "content.url must be an mxc:// URI",
        ),
        (
            room_event(
                "m.room.message",
                {"msgtype": "m.image", "body": "a.png", "url": "https://evil.example/a.png"},
            ),
            "content.url must be an mxc:// URI",
        ),
        (
            room_event(
                "m.room.message",
                {
                    "msgtype": "m.file",
                    "body": "secret.pdf",
                    "file": {
                        "url": "mxc://tchap.example/enc",
                        "key": {"kty": "oct", "alg": "A256CTR", "k": "x", "ext": True},
                        "iv": "AAAA",
                        "hashes": {"sha256": "abc"},
                        "v": "v2",
                    },
                },
            ),
            "content.file.key.k must be a 256-bit key",
        ),
        (room_event("m.room.redaction", {}), "redaction without a redacts"),
        (
            room_event(
                "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$m"}}
            ),
            "reaction without key",
        ),
        (
            room_event(
                "m.room.message",
                {"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": "m.replace"}},
            ),
            "edit without m.new_content",
        ),
        (
            room_event(
                "m.room.message",
                {
                    "msgtype": "m.text",
                    "body": "x",
                    "m.relates_to": {"m.in_reply_to": {"event_id": 5}},
                },
            ),
            "m.in_reply_to.event_id",
        ),
        ({"type": "m.room.message", "content": {"body": "x"}, "room_id": ROOM}, "event_id"),
    ],
    ids=[
        "content-string",
        "content-list",
        "body-int",
        "body-missing",
        "image-without-url",
        "image-http-url",
        "encrypted-file",
        "redaction-without-target",
        "reaction-without-key",
        "edit-without-new-content",
        "reply-id-not-string",
        "no-event-id",
    ],
)
def test_malformed_events(raw: dict, message: str) -> None:
    with pytest.raises(MalformedEvent, match=re.escape(message)):
        translate(raw)


def test_huge_body_is_refused() -> None:
    with pytest.raises(MalformedEvent, match="longer than"):
        translate(room_event("m.room.message", {"msgtype": "m.text", "body": "a" * 70_000}))


def test_event_json_roundtrip() -> None:
    events = [
        must(room_event("m.room.message", {"msgtype": "m.emote", "body": "winkt"})),
        must(
            room_event(
                "m.room.message",
                media_content(
                    "m.video",
                    "Einsatz — «vidéo».mp4",
                    "mxc://bmi.example/vid",
                    {"mimetype": "video/mp4", "size": 9, "w": 1, "h": 2, "duration": 3000},
                ),
            )
        ),
        must(
            room_event(
                "m.reaction",
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$m", "key": "🇫🇷"}},
            )
        ),
    ]
    for event in events:
        assert Event.from_json(event.to_json()) == event
    video = events[1].attachment
    assert video is not None
    assert (video.kind, video.duration_ms) == (AttachmentKind.VIDEO, 3000)


# Outbound


JEAN = Sender("tchap", "@jean:tchap.example", "Jean")


def bridged(**fields: Any) -> Event:
    return samples.message(JEAN, "crisis", "!src:tchap.example", "$src", "Bonjour", **fields)


def outgoing(
    event: Event, *, reply_to: str | None = None, relates_to: str | None = None
) -> Outgoing:
    return samples.outgoing(event, ROOM, reply_to=reply_to, relates_to=relates_to)


def test_outbound_plain_message() -> None:
    assert matrix_content(outgoing(bridged()), sender_name="Jean") == (
        "m.room.message",
        {"msgtype": "m.text", "body": "Bonjour"},
    )


def test_outbound_formatted_notice() -> None:
    event = bridged(text="**fin**", html="<strong>fin</strong>", msgtype=MsgType.NOTICE)
    assert matrix_content(outgoing(event), sender_name="Jean") == (
        "m.room.message",
        {
            "msgtype": "m.notice",
            "body": "**fin**",
            "format": "org.matrix.custom.html",
            "formatted_body": "<strong>fin</strong>",
        },
    )


def test_outbound_reply() -> None:
    event = bridged(text="oui", reply_to="$parent_on_tchap")
    etype, content = matrix_content(outgoing(event, reply_to="$parent_here"), sender_name="Jean")
    assert etype == "m.room.message"
    assert content["body"] == "oui"
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$parent_here"}}


def test_outbound_reply_to_unknown_parent_is_a_plain_message() -> None:
    _, content = matrix_content(outgoing(bridged(reply_to="$lost")), sender_name="Jean")
    assert "m.relates_to" not in content


def test_outbound_edit() -> None:
    event = bridged(kind=Kind.EDIT, relates_to="$orig", text="corrigé", html="<em>corrigé</em>")
    etype, content = matrix_content(outgoing(event, relates_to="$orig_here"), sender_name="Jean")
    assert etype == "m.room.message"
    replaces = {"rel_type": "m.replace", "event_id": "$orig_here"}
    assert content == text_content("* corrigé", "* <em>corrigé</em>", replaces) | {
        "m.new_content": text_content("corrigé", "<em>corrigé</em>")
    }


def test_outbound_plain_edit_has_no_html() -> None:
    event = bridged(kind=Kind.EDIT, relates_to="$orig", text="corrigé")
    _, content = matrix_content(outgoing(event, relates_to="$orig_here"), sender_name="Jean")
    assert content["body"] == "* corrigé"
    assert "formatted_body" not in content
    assert content["m.new_content"] == text_content("corrigé")


def test_outbound_reaction() -> None:
    event = bridged(kind=Kind.REACTION, relates_to="$m", reaction="👍", text="")
    assert matrix_content(outgoing(event, relates_to="$m_here"), sender_name="Jean") == (
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$m_here", "key": "👍"}},
    )


def test_outbound_image() -> None:
    attachment = Attachment(
        AttachmentKind.IMAGE, "carte.png", "image/png", 48213, "mxc://tchap.example/src",
        width=1024, height=768,
    )  # fmt: skip
    event = bridged(text="", attachment=attachment)
    etype, content = matrix_content(
        outgoing(event), sender_name="Jean", mxc="mxc://bmi.example/uploaded"
    )
    assert etype == "m.room.message"
    assert content == {
        "msgtype": "m.image",
        "url": "mxc://bmi.example/uploaded",
        "info": {"mimetype": "image/png", "size": 48213, "w": 1024, "h": 768},
        "filename": "carte.png",
        "body": "carte.png",
    }


def test_outbound_file_with_caption_and_unknown_info() -> None:
    attachment = Attachment(
        kind=AttachmentKind.FILE, name="r.pdf", mimetype=None, size=None, ref="mxc://t/x"
    )
    event = bridged(text="le rapport", attachment=attachment)
    _, content = matrix_content(outgoing(event), sender_name="Jean", mxc="mxc://b/y")
    assert content["msgtype"] == "m.file"
    assert content["info"] == {}
    assert (content["filename"], content["body"]) == ("r.pdf", "le rapport")


def test_outbound_relay_template() -> None:
    event = bridged(text="text")
    etype, content = matrix_content(
        outgoing(event), sender_name="Name", relay_template=DEFAULT_RELAY_TEMPLATE
    )
    assert etype == "m.room.message"
    assert content == text_content("Name: text", "<strong>Name</strong>: text")


def test_outbound_relayed_edit_keeps_the_name_in_new_content() -> None:
    event = bridged(kind=Kind.EDIT, relates_to="$o", text="neu")
    _, content = matrix_content(
        outgoing(event, relates_to="$o_here"),
        sender_name="Max Mustermann [BMI]",
        relay_template=DEFAULT_RELAY_TEMPLATE,
    )
    assert content["m.new_content"]["body"] == "Max Mustermann [BMI]: neu"
    assert (
        content["m.new_content"]["formatted_body"] == "<strong>Max Mustermann [BMI]</strong>: neu"
    )
    assert content["body"] == "* Max Mustermann [BMI]: neu"


# Ghosts and names

LOCALPART = re.compile(r"[a-z0-9._=/-]+")


@pytest.mark.parametrize(
    "user_id",
    [
        "@max.mustermann:bmi.example",
        "@Max.Mustermann:BMI.example",
        "@élise_ü:tchap.example:8448",
        "@😀:x",
        "@a b:c",
    ],  # fmt: skip
)
def test_ghost_localpart_is_a_valid_stable_localpart(user_id: str) -> None:
    localpart = ghost_localpart("_passerelle_", "bund", user_id)
    assert LOCALPART.fullmatch(localpart), localpart
    assert localpart.startswith("_passerelle_bund_")
    assert ghost_localpart("_passerelle_", "bund", user_id) == localpart


def test_ghost_localpart_of_a_plain_id_stays_readable() -> None:
    assert ghost_localpart("_p_", "tchap", "jean.dupont:tchap.example") == (
        "_p_tchap_jean.dupont=3atchap.example"
    )


TRICKY = [
    "@alice:a.example",
    "@Alice:a.example",
    "@ALICE:a.example",
    "@alice:A.example",
    "@alice_:a.example",
    "@alice=5f:a.example",
    "@alice=3d5f:a.example",
    "@alice:a.example:443",
    "@alice:a.example=3a443",
    "@alice=3aa.example:443",
    "@@alice:a.example",
    "@é:a.example",
    "@e\u0301:a.example",
    "@=c3=a9:a.example",
]


def test_ghost_localparts_never_collide() -> None:
    localparts = {u: ghost_localpart("_p_", "tchap", u) for u in TRICKY}
    for a, b in itertools.combinations(TRICKY, 2):
        assert localparts[a] != localparts[b], (a, b, localparts[a])


def test_ghost_localparts_of_different_networks_do_not_collide() -> None:
    assert ghost_localpart("_p_", "a", "@b_c:x") != ghost_localpart("_p_", "a_b", "@c:x")
    assert ghost_localpart("_p_", "tchap", "@a:x") != ghost_localpart("_p_", "bund", "@a:x")


def test_read_receipts_are_the_public_ones_one_event_per_reader() -> None:
    edu = {
        "type": "m.receipt",
        "room_id": ROOM,
        "content": {
            "$ev1": {"m.read": {"@max:bmi.example": {"ts": 1}, "@erika:bmi.example": {"ts": 2}}},
            "$ev2": {"m.read.private": {"@anna:bmi.example": {"ts": 3}}},
            "$ev3": {"m.read": {"@erika:bmi.example": {"ts": 4, "thread_id": "main"}}},
            "not-an-event": {"m.read": {"@max:bmi.example": {}}},
            "$ev4": "nonsense",
            "$ev5": {"m.read": ["@max:bmi.example"]},
        },
    }
    assert read_receipts(edu) == {"@max:bmi.example": "$ev1", "@erika:bmi.example": "$ev3"}
    assert read_receipts({"type": "m.receipt", "content": []}) == {}
