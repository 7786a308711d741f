"""Threads through the pure translators and the ID map: a Matrix thread (``m.thread`` with its
reply fallback), an XMPP ``<thread>`` (XEP-0201) with the quoted line naming the root, a mail's
``References`` chain; and the store telling which thread a message was posted in, so that a
reply inside a thread stays there. End to end on real servers: ``tests/test_e2e_threads.py``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from bridge.connector import Outgoing
from bridge.events import Event, Kind, Sender
from bridge.store import OutboxItem, Store
from connectors.email.parse import message_remote_id, parse_mail
from connectors.email.render import render_mail
from connectors.matrix.translate import MalformedEvent, event_from_matrix, matrix_content
from connectors.xmpp.translate import (
    NS_FALLBACK,
    NS_REPLY,
    NS_STREAM,
    MalformedStanza,
    Reply,
    groupchat_stanza,
    message_event,
    parse_message,
    thread_fallback,
)
from tests.harness.postgres import Opener
from tests.test_router import close, open_bridge, settled
from tests.test_router import message as router_message

ROOM = "!OGEhHVWSdvArJzumhm:bund.test"
MUC = "wg@conference.xmpp.test"
MAX = Sender(network="bund", user_id="@max:bund.test", display_name="Max Mustermann", org="BMI")


def thread_message(rel: dict[str, Any], body: str = "Ich schaue es mir an") -> dict[str, Any]:
    """A message in a thread as Element Web sends it (Synapse adds the rest)."""
    return {
        "type": "m.room.message",
        "sender": MAX.user_id,
        "content": {"msgtype": "m.text", "body": body, "m.relates_to": rel},
        "origin_server_ts": 1718000000000,
        "unsigned": {"age": 12},
        "event_id": "$in_thread",
        "room_id": ROOM,
    }


def thread_relation(root: str, falling_back: bool, in_reply_to: str) -> dict[str, Any]:
    """The ``m.relates_to`` of a message in the thread of ``root``: replying to ``in_reply_to``
    or, ``falling_back``, naming it only for clients that know no threads."""
    return {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": falling_back,
        "m.in_reply_to": {"event_id": in_reply_to},
    }


def from_matrix(raw: dict[str, Any]) -> Event:
    event = event_from_matrix(raw, link_id="wg", network="bund", sender=MAX)
    assert event is not None
    return event


async def no_media(ref: str) -> bytes:
    raise AssertionError(f"rendering must not fetch media ({ref})")


def outgoing(room: str, *, thread: str | None, reply_to: str | None = None) -> Outgoing:
    event = Event(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id=ROOM,
                  remote_id="$in_thread", sender=MAX, text="Ich schaue es mir an",
                  thread="$root", reply_to="$parent" if reply_to else None)  # fmt: skip
    return Outgoing(event=event, room_id=room, reply_to=reply_to, relates_to=None,
                    sender_is_local=False, fetch_source_media=no_media, thread=thread)  # fmt: skip


# Matrix


def test_matrix_thread_message_names_its_root_and_its_fallback_is_no_reply() -> None:
    event = from_matrix(thread_message(thread_relation("$root", True, "$latest_in_thread")))
    assert (event.thread, event.reply_to, event.text) == ("$root", None, "Ich schaue es mir an")


def test_matrix_reply_inside_a_thread_carries_both() -> None:
    body = "> <@jean:tchap.test> Wer übernimmt?\n\nIch"
    event = from_matrix(thread_message(thread_relation("$root", False, "$parent"), body))
    assert (event.thread, event.reply_to, event.text) == ("$root", "$parent", "Ich")


def test_matrix_thread_without_event_id_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="thread"):
        from_matrix(thread_message({"rel_type": "m.thread", "event_id": 7}))


@pytest.mark.parametrize(
    ("reply_to", "falling_back", "in_reply_to"),
    [(None, True, "$root_here"), ("$parent_here", False, "$parent_here")],
    ids=["falls-back-to-the-root", "a-reply-inside-is-a-real-reply"],
)
def test_matrix_outbound_thread_message(
    reply_to: str | None, falling_back: bool, in_reply_to: str
) -> None:
    out = outgoing(ROOM, thread="$root_here", reply_to=reply_to)
    _, content = matrix_content(out, sender_name="Max")
    assert content["m.relates_to"] == thread_relation("$root_here", falling_back, in_reply_to)


def test_matrix_outbound_thread_whose_root_is_unknown_here_is_a_plain_message() -> None:
    _, content = matrix_content(outgoing(ROOM, thread=None), sender_name="Max")
    assert "m.relates_to" not in content


# XMPP


def stanza(xml: str) -> ET.Element:
    return ET.fromstring(xml.replace("<message ", '<message xmlns="jabber:component:accept" ', 1))


def test_xmpp_thread_is_read_and_a_reply_to_its_root_is_no_reply() -> None:
    msg = parse_message(
        stanza(
            '<message type="groupchat" id="c1" to="passerelle.xmpp.test" '
            f'from="{MUC}/Alice"><body>Ich auch</body><thread>ROOTSID</thread>'
            '<reply xmlns="urn:xmpp:reply:0" id="ROOTSID" to="wg@conference.xmpp.test/Max"/>'
            f'<stanza-id xmlns="urn:xmpp:sid:0" id="S2" by="{MUC}"/></message>'
        )
    )
    assert msg.thread == "ROOTSID"
    alice = Sender(network="xmpp", user_id="alice@xmpp.test", display_name="Alice")
    event = message_event(msg, remote_id="S2", link_id="wg", network="xmpp", sender=alice,
                          reply_to="ROOTSID", thread="ROOTSID")  # fmt: skip
    assert event is not None
    assert (event.thread, event.reply_to, event.text) == ("ROOTSID", None, "Ich auch")


def test_xmpp_overlong_thread_id_is_refused() -> None:
    with pytest.raises(MalformedStanza, match="thread id"):
        parse_message(
            stanza(
                f'<message type="groupchat" id="c1" to="passerelle.xmpp.test" from="{MUC}/Alice">'
                f"<body>x</body><thread>{'t' * 300}</thread></message>"
            )
        )


def test_xmpp_thread_fallback_is_one_shortened_line() -> None:
    assert thread_fallback("Max", "Wer\nübernimmt?") == "> Max: Wer übernimmt?\n"
    line = thread_fallback("Max", "lang " * 40)
    assert line.count("\n") == 1 and line.endswith("…\n") and len(line) < 100


def test_xmpp_thread_stanza_carries_thread_reply_and_marked_fallback() -> None:
    fallback = thread_fallback("Max", "Wer übernimmt?")
    el = groupchat_stanza(MUC, "p@c.test", "passerelle-2", "Ich schaue es mir an",
                          reply=Reply(f"{MUC}/Max", "ROOTSID"), fallback=fallback,
                          thread="ROOTSID")  # fmt: skip
    thread = el.find(f"{{{NS_STREAM[0]}}}thread")
    assert thread is not None and thread.text == "ROOTSID"
    body = el.find(f"{{{NS_STREAM[0]}}}body")
    assert body is not None and body.text == "> Max: Wer übernimmt?\nIch schaue es mir an"
    span = el.find(f"{{{NS_FALLBACK}}}fallback[@for='{NS_REPLY}']/{{{NS_FALLBACK}}}body")
    assert span is not None and span.get("end") == str(len(fallback))
    msg = parse_message(el)  # what a thread-aware client reads
    assert (msg.thread, msg.body) == ("ROOTSID", "Ich schaue es mir an")


# Mail


def mail_of(out: Outgoing) -> Any:
    msg = render_mail(out, link_id="wg", address="wg@lists.passerelle.test",
                      message_id="<new@lists.passerelle.test>", date=datetime.now(UTC),
                      media=None)  # fmt: skip
    return BytesParser(policy=policy.SMTP).parsebytes(msg.as_bytes(policy=policy.SMTP))


def test_mail_in_a_thread_answers_the_root_mail() -> None:
    root = message_remote_id("wg", "<root@lists.passerelle.test>")
    mail = mail_of(outgoing("wg@lists.passerelle.test", thread=root))
    assert mail["In-Reply-To"] == "<root@lists.passerelle.test>"
    assert mail["References"] == "<root@lists.passerelle.test>"


def test_mail_replying_inside_a_thread_chains_root_then_parent() -> None:
    root = message_remote_id("wg", "<root@lists.passerelle.test>")
    parent = message_remote_id("wg", "<parent@anssi.test>")
    mail = mail_of(outgoing("wg@lists.passerelle.test", thread=root, reply_to=parent))
    assert mail["In-Reply-To"] == "<parent@anssi.test>"
    assert mail["References"] == "<root@lists.passerelle.test> <parent@anssi.test>"
    # A mail client answering it names the whole chain; the bridge looks the parent up first.
    answer = (
        "From: Claire <claire@anssi.test>\r\nTo: wg@lists.passerelle.test\r\n"
        "Subject: Re: x\r\nMessage-ID: <answer@anssi.test>\r\n"
        f"In-Reply-To: <new@lists.passerelle.test>\r\nReferences: {mail['References']}"
        " <new@lists.passerelle.test>\r\n\r\nJa\r\n"
    )
    assert parse_mail(answer.encode()).thread == (
        "<new@lists.passerelle.test>",
        "<parent@anssi.test>",
        "<root@lists.passerelle.test>",
    )


# The ID map


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


def bund_message(remote_id: str, thread: str | None = None) -> Event:
    return Event(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id=ROOM,
                 remote_id=remote_id, sender=MAX, text=remote_id, thread=thread)  # fmt: skip


async def bridged(store: Store, event: Event, copy: str) -> None:
    """Accept ``event`` and deliver it to the mail network as ``copy``."""
    assert await store.accept(event, ["mail"])
    items = await store.queue_head("wg", "mail", 1)
    item = OutboxItem(items[0].id, "wg", "mail", event, 0, 0)
    await store.delivered(item, copy, "wg@lists.passerelle.test")


async def test_store_knows_the_thread_of_a_message_on_every_network(store: Store) -> None:
    await bridged(store, bund_message("$root"), "wg/<root@mail>")
    await bridged(store, bund_message("$in_thread", thread="$root"), "wg/<in@mail>")
    assert await store.thread_of("bund", "$in_thread") == "$root"
    assert await store.thread_of("mail", "wg/<in@mail>") == "wg/<root@mail>"
    # The root itself, and a message nobody knows, are in no thread.
    assert await store.thread_of("bund", "$root") is None
    assert await store.thread_of("mail", "wg/<root@mail>") is None
    assert await store.thread_of("mail", "wg/<unknown@mail>") is None
    # A thread whose root never reached the network has no ID there.
    assert await store.accept(bund_message("$orphan", thread="$never_bridged"), ["mail"])
    assert await store.thread_of("bund", "$orphan") == "$never_bridged"


async def test_router_resolves_the_thread_and_a_reply_inside_it_joins_it(tmp_path: Path) -> None:
    bridge = await open_bridge(tmp_path)
    try:
        await bridge.router.ingest(router_message("$root", "Frage"))
        await settled(bridge.router)
        await bridge.router.ingest(router_message("$t1", "Im Faden", thread="$root"))
        await settled(bridge.router)
        assert [out.thread for out in bridge.tchap.sent] == [None, "$tchap-1"]
        assert [out.thread for out in bridge.third.sent] == [None, "$third-1"]
        # The copies are $tchap-1 (the root) and $tchap-2. A reply on Tchap that names no
        # thread, to the thread's message there (as a mail or a client that knows no threads
        # sends it): in the thread, with its reply.
        await bridge.router.ingest(
            router_message("$answer", "Antwort", network="tchap", reply_to="$tchap-2")
        )
        await settled(bridge.router)
        answer = bridge.bund.sent[-1]
        assert (answer.event.text, answer.thread, answer.reply_to) == ("Antwort", "$root", "$t1")
        assert (bridge.third.sent[-1].thread, bridge.third.sent[-1].reply_to) == (
            "$third-1",
            "$third-2",
        )
        # A thread never reaches into another link: a root named there is no root here.
        await bridge.router.ingest(router_message("$elsewhere", "Anderswo", link="other"))
        await settled(bridge.router)
        await bridge.router.ingest(router_message("$stray", "Fremd", thread="$elsewhere"))
        await settled(bridge.router)
        stray = bridge.tchap.sent[-1]
        assert (stray.event.text, stray.thread) == ("Fremd", None)
    finally:
        await close(bridge)
