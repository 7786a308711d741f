"""End to end, threads across every kind of network on one link (``tests/thread_world.py``): a
thread started on bund is a thread on Tchap whose root is the bridged root, an XEP-0201
``<thread>`` in the MUC with a quoted line naming the root, a mail in the root's ``References``
chain; replies inside it from Tchap, from the MUC (with the same ``<thread>``, or as an XEP-0461
reply from a client that knows no threads) and by mail come back into the same thread."""

from __future__ import annotations

from typing import Any

import pytest
from slixmpp import Message

from tests.harness.expect import body_is, name_of, unique
from tests.harness.module_world import module_world
from tests.harness.smtp import RelayedMail
from tests.thread_world import ThreadWorld, start_thread_world
from tests.xmpp_world import MUC

pytestmark = pytest.mark.e2e

Event = dict[str, Any]


tw = module_world("tw", start_thread_world, "thread-world", xmpp=True)


def in_thread(root: str) -> Any:
    """A Matrix message posted in the thread of ``root``."""
    return lambda e: (
        (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
        and (e["content"]["m.relates_to"].get("event_id") == root)
    )


def both(*predicates: Any) -> Any:
    return lambda e: all(p(e) for p in predicates)


def groupchat_with(text: str) -> Any:
    return lambda m: m["type"] == "groupchat" and m["from"].bare == MUC and text in m["body"]


def about(text: str) -> Any:
    """A mail whose subject quotes ``text`` (the body is quoted-printable)."""
    return lambda mail: text in str(mail.message["Subject"])


def thread_content(root: str, body: str, reply_to: str | None = None) -> dict[str, Any]:
    """A message in a thread as Element Web sends it: without a reply of its own, its
    ``m.in_reply_to`` is the fallback for clients that show no threads."""
    return {
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or root},
        },
    }


async def test_a_thread_crosses_every_network_and_answers_come_back_into_it(
    tw: ThreadWorld,
) -> None:
    max_, jean, alice = tw.users["max"], tw.users["jean"], tw.xmpp["alice"]
    bund, tchap = tw.rooms["bund"], tw.rooms["tchap"]

    # Max asks on bund and opens a thread under his question.
    question = unique("Wer übernimmt den Lagebericht?")
    root = await max_.send_text(bund, question)
    first = unique("Ich schlage Jean vor")
    await max_.send_event(bund, "m.room.message", thread_content(root, first))

    # Tchap: a thread whose root is the bridged question.
    tchap_root = (await jean.wait_for(tchap, body_is(question)))["event_id"]
    seen = await jean.wait_for(tchap, body_is(first))
    assert seen["content"]["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": tchap_root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": tchap_root},
    }

    # MUC: the thread named by the question's stanza-id, and a line quoting the question for
    # clients that show no threads.
    muc_root: Message = await alice.wait_for(groupchat_with(question))
    root_sid = muc_root["stanza_id"]["id"]
    seen_muc: Message = await alice.wait_for(groupchat_with(first))
    assert seen_muc["thread"] == root_sid
    assert seen_muc["from"].resource == "Max Mustermann [BMI]"
    assert seen_muc["body"] == f"> Max Mustermann [BMI]: {question}\n{first}"
    assert seen_muc["reply"]["id"] == root_sid
    assert seen_muc["reply"].strip_fallback_content() == first

    # Mail: the same References chain as the question's mail.
    root_mail: RelayedMail = await tw.relay.wait_for(about(question))
    first_mail: RelayedMail = await tw.relay.wait_for(about(first))
    root_id = str(root_mail.message["Message-ID"])
    assert first_mail.message["In-Reply-To"] == root_id
    assert first_mail.message["References"] == root_id

    # Jean answers in the thread on Tchap: in the thread on bund.
    jeans = unique("D'accord, je m'en occupe")
    await jean.send_event(tchap, "m.room.message", thread_content(tchap_root, jeans))
    seen = await max_.wait_for(bund, both(body_is(jeans), in_thread(root)))
    assert seen["content"]["m.relates_to"]["is_falling_back"] is True
    assert await name_of(max_, bund, seen["sender"]) == "Jean Dupont [Intérieur] (Tchap)"

    # Alice answers from a client that knows threads (the same <thread>): in the thread.
    alices = unique("Das BSI liefert die Zahlen")
    msg = alice.client.make_message(mto=MUC, mbody=alices, mtype="groupchat")
    msg["thread"] = root_sid
    msg.send()
    seen = await max_.wait_for(bund, both(body_is(alices), in_thread(root)))
    assert await name_of(max_, bund, seen["sender"]) == "Alice Arnaud [BSI] (XMPP)"
    await jean.wait_for(tchap, both(body_is(alices), in_thread(tchap_root)))

    # From a client that knows no threads, Alice replies (XEP-0461) to Max's thread message:
    # a reply inside the thread.
    first_on_bund = (await max_.wait_for(bund, body_is(first)))["event_id"]
    plain = unique("Bis Freitag")
    alice.reply(MUC, seen_muc, plain)
    seen = await max_.wait_for(bund, both(body_is(plain), in_thread(root)))
    assert seen["content"]["m.relates_to"]["is_falling_back"] is False
    assert seen["content"]["m.relates_to"]["m.in_reply_to"] == {"event_id": first_on_bund}

    # Claire answers Max's thread mail from her mail client: a reply inside the thread.
    claires = unique("Bitte auch die ANSSI-Zahlen aufnehmen")
    await tw.claire_writes(
        f"Re: {first_mail.message['Subject']}", claires, str(first_mail.message["Message-ID"])
    )
    seen = await max_.wait_for(bund, both(body_is(claires), in_thread(root)))
    assert seen["content"]["m.relates_to"]["is_falling_back"] is False
    assert seen["content"]["m.relates_to"]["m.in_reply_to"] == {"event_id": first_on_bund}
    assert await name_of(max_, bund, seen["sender"]) == "Claire Martin [ANSSI] (Mail)"
    # ... and stays in the thread on the other networks too.
    await jean.wait_for(tchap, both(body_is(claires), in_thread(tchap_root)))
    claire_muc: Message = await alice.wait_for(groupchat_with(claires))
    assert claire_muc["thread"] == root_sid
