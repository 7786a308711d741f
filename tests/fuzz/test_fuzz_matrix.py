"""Generated Matrix events against the Matrix translators and the appservice transaction
handler: a malformed event is `MalformedEvent` or nothing, never another exception, and a
transaction is answered 200 (or 400 when it is not JSON at all), never 500 — a refused
transaction would be retried by the homeserver for ever, holding up everything behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.connector import Outgoing
from bridge.events import Event, Kind, MsgType, Sender
from connectors.matrix.translate import MalformedEvent, event_from_matrix, matrix_content
from tests.offline import ROOM, serve_appservice

SENDER = Sender(network="bund", user_id="@max:bund.example", display_name="Max", org="BMI")

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)
HTML = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["<b>", "</b>", "<mx-reply>", "</mx-reply>", "<a href='mxc://x/y'>",
                              "<img src=' mxc://x/y'>", "<ul><li>", "<script>", "x", " ", "&amp;",
                              "<blockquote>", "<details>", "<pre><code>"]),
             max_size=60).map("".join),
)  # fmt: skip
CONTENT = st.fixed_dictionaries(
    {},
    optional={
        "msgtype": st.sampled_from(["m.text", "m.notice", "m.emote", "m.image", "m.file",
                                    "m.video", "m.audio", "m.location"]) | ANY_JSON,
        "body": st.text(max_size=100) | ANY_JSON,
        "format": st.just("org.matrix.custom.html") | ANY_JSON,
        "formatted_body": HTML | ANY_JSON,
        "url": st.sampled_from(["mxc://bund.example/abc", " mxc://x/y", "https://x"]) | ANY_JSON,
        "filename": st.text(max_size=30) | ANY_JSON,
        "info": st.fixed_dictionaries({}, optional={"mimetype": ANY_JSON, "size": ANY_JSON,
                                                    "w": ANY_JSON}) | ANY_JSON,
        "file": ANY_JSON | st.fixed_dictionaries({"url": st.just("mxc://x/y"), "v": st.just("v2"),
                                                  "key": ANY_JSON, "iv": ANY_JSON,
                                                  "hashes": ANY_JSON}),
        "m.relates_to": ANY_JSON | st.fixed_dictionaries(
            {"rel_type": st.sampled_from(["m.replace", "m.annotation", "m.thread"]) | ANY_JSON},
            optional={"event_id": st.text(max_size=20) | ANY_JSON, "key": ANY_JSON,
                      "m.in_reply_to": ANY_JSON},
        ),
        "m.new_content": ANY_JSON | st.fixed_dictionaries({"body": st.text(max_size=30)},
                                                          optional={"formatted_body": HTML,
                                                                    "format": ANY_JSON}),
        "redacts": ANY_JSON,
    },
)  # fmt: skip
EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["m.room.message", "m.sticker", "m.reaction", "m.room.redaction",
                                 "m.room.member", "m.room.encryption",
                                 "im.vector.room.access_rules", "m.typing"]) | ANY_JSON,
        "content": CONTENT | ANY_JSON,
    },
    optional={
        "event_id": st.text(min_size=1, max_size=20).map(lambda s: "$" + s) | ANY_JSON,
        "room_id": st.just(ROOM) | ANY_JSON,
        "sender": st.sampled_from(["@max:bund.example", "@passerelle_x:bund.example"])
        | ANY_JSON,
        "state_key": st.sampled_from(["", "@max:bund.example", "x"]) | ANY_JSON,
        "redacts": ANY_JSON,
    },
)  # fmt: skip


@given(EVENT)
@example({"type": "m.room.message", "event_id": "$a", "room_id": ROOM,
          "content": {"msgtype": "m.text", "body": "x", "format": "org.matrix.custom.html",
                      "formatted_body": "<ul><li>" * 10_000}})  # fmt: skip
@example({"type": "m.room.message", "event_id": "$a", "room_id": ROOM,
          "content": {"msgtype": "m.image", "body": "x", "url": " mxc://a/b",
                      "info": {"size": True, "mimetype": ["x"]}}})  # fmt: skip
def test_translating_any_event(raw: dict[str, Any]) -> None:
    try:
        event = event_from_matrix(raw, link_id="wg", network="bund", sender=SENDER)
    except MalformedEvent:
        return
    if event is not None:
        Event.from_json(event.to_json()).to_json().encode("utf-8")


@given(st.text(max_size=300), HTML, st.sampled_from(list(MsgType)), st.sampled_from(list(Kind)),
       st.text(max_size=80))  # fmt: skip
def test_rendering_any_event(text: str, html: str, msgtype: MsgType, kind: Kind, name: str) -> None:
    event = Event(kind=kind, link_id="wg", network="tchap", room_id="!r:t", remote_id="$x",
                  sender=SENDER, text=text, html=html or None, msgtype=msgtype,
                  reaction="👍" if kind is Kind.REACTION else None)  # fmt: skip
    out = Outgoing(event=event, room_id=ROOM, reply_to="$p", relates_to="$t", sender_is_local=False,
                   fetch_source_media=_no_media)  # fmt: skip
    for template in (None, "**{name}**: {message}"):
        etype, content = matrix_content(out, sender_name=name, relay_template=template)
        json.dumps(content, ensure_ascii=False).encode("utf-8")
        assert etype in ("m.room.message", "m.reaction")


async def _no_media(ref: str) -> bytes:
    raise AssertionError("no media")


# -- the transaction handler, served in this process -----------------------------------------------


class Handler:
    """The bund network's appservice endpoint (`serve_appservice`), driven from synchronous
    Hypothesis tests through an event loop of its own."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.appservice = self.loop.run_until_complete(serve_appservice(root, wary=True))
        self.store = self.appservice.store

    def put(self, txn_id: str, body: bytes) -> int:
        return self.loop.run_until_complete(self.appservice.put(txn_id, body))

    def close(self) -> None:
        self.loop.run_until_complete(self.appservice.close())
        self.loop.close()


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handler]:
    served = Handler(tmp_path_factory.mktemp("fuzz-appservice"))
    yield served
    served.close()


def _transaction(events: list[Any], extra: dict[str, Any]) -> bytes:
    return json.dumps({"events": events, **extra}).encode()


TRANSACTION_EXTRA = st.fixed_dictionaries(
    {},
    optional={
        "ephemeral": ANY_JSON | st.lists(st.fixed_dictionaries(
            {"type": st.just("m.typing"), "room_id": st.just(ROOM) | ANY_JSON,
             "content": ANY_JSON | st.fixed_dictionaries({"user_id": ANY_JSON})}), max_size=3),
        "de.sorunome.msc2409.to_device": ANY_JSON,
        "org.matrix.msc3202.device_lists": ANY_JSON,
    },
)  # fmt: skip
COUNTER = iter(range(10**9))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(EVENT | ANY_JSON, max_size=5), TRANSACTION_EXTRA)
def test_any_transaction_is_taken(handler: Handler, events: list[Any], extra: dict) -> None:
    status = handler.put(f"fuzz-{next(COUNTER)}", _transaction(events, extra))
    assert status == 200


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
@example(b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}")
@example(b'{"events": [{"type": "m.room.message", "content": {"body": "\xff\\ud800"}}]}')
@example(b'{"events": [], "x": ' + b"1" * 5000 + b"}")
@example(b"")
def test_any_bytes_get_an_answer_other_than_500(handler: Handler, body: bytes) -> None:
    status = handler.put(f"bytes-{next(COUNTER)}", body)
    assert status in (200, 400)


def test_the_handler_under_fuzz_does_bridge(handler: Handler) -> None:
    """The properties above are not vacuous: a good event among bad ones is queued."""
    before = handler.loop.run_until_complete(handler.store.outbox_size())
    good = {
        "type": "m.room.message",
        "event_id": f"$good{next(COUNTER)}",
        "room_id": ROOM,
        "sender": "@max:bund.example",
        "content": {"msgtype": "m.text", "body": "gut"},
    }
    bad = {"type": "m.room.message", "event_id": "$bad", "room_id": ROOM, "content": []}
    assert handler.put(f"good-{next(COUNTER)}", _transaction([bad, good, 7], {})) == 200
    assert handler.loop.run_until_complete(handler.store.outbox_size()) == before + 1
