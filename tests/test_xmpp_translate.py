"""XMPP stanzas ↔ bridge events, on stanzas as Prosody 0.12 delivers them to the component."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest

from bridge.connector import Outgoing
from bridge.events import AttachmentKind, Event, Kind, MsgType, Sender
from connectors.xmpp.rooms import QUOTED, Journal, Quote, Recent, Remembered, Room
from connectors.xmpp.translate import (
    NS_FALLBACK,
    NS_REPLY,
    ORIGIN_PREFIX,
    MalformedStanza,
    Oob,
    Reply,
    chat_stanza,
    chat_state_stanza,
    displayed_stanza,
    edit_event,
    groupchat_stanza,
    join_presence,
    message_body,
    message_event,
    origin_id,
    parse_message,
    parse_presence,
    parse_reaction_ref,
    quote_fallback,
    reaction_changes,
    reaction_id,
    reaction_ref,
    reactions_stanza,
    retraction_stanza,
)

if TYPE_CHECKING:
    from connectors.xmpp.translate import Message, Presence

ROOM = "wg@conference.xmpp.test"
STREAM = 'xmlns="jabber:component:accept"'
SENDER = Sender(network="xmpp", user_id="alice@xmpp.test", display_name="Alice")


def stanza(xml: str) -> ET.Element:
    return ET.fromstring(xml.replace("<message ", f"<message {STREAM} ", 1).replace(
        "<presence ", f"<presence {STREAM} ", 1))  # fmt: skip


def muc_message(nick: str, stanza_id: str, children: str, to: str = "c.test") -> Message:
    """A groupchat message the room's occupant ``nick`` sends, with ``children`` inside."""
    return parse_message(stanza(
        f'<message type="groupchat" id="{stanza_id}" to="{to}" from="{ROOM}/{nick}">{children}'
        "</message>"
    ))  # fmt: skip


def occupant_presence(nick: str, children: str, attributes: str = "") -> Presence:
    """A presence of the room's occupant ``nick``, as the listener gets it."""
    return parse_presence(stanza(
        f'<presence {attributes}to="passerelle.xmpp.test" from="{ROOM}/{nick}">{children}'
        "</presence>"
    ))  # fmt: skip


def event_of(msg: Message, remote_id: str) -> Event | None:
    """The event of ``msg``, sent by `SENDER` and replying to nothing, for link wg."""
    return message_event(msg, remote_id=remote_id, link_id="wg", network="xmpp", sender=SENDER,
                         reply_to=None)  # fmt: skip


LIVE = stanza(
    '<message type="groupchat" xml:lang="en" id="0c7974454aab4c7ebf836395ba31e32e" '
    'to="passerelle.xmpp.test" from="wg@conference.xmpp.test/Alice"><body>Entwruf 6ca77c</body>'
    '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="6vIZzwiZ6PA4AC1EuMt="/>'
    '<stanza-id xmlns="urn:xmpp:sid:0" id="LZMtYdNTAHPaiG8ozl9Pb_B8" by="wg@conference.xmpp.test"/>'
    "</message>"
)
HISTORY = stanza(
    '<message xml:lang="en" to="passerelle.xmpp.test" id="a7932be8931245ebb2717184205af9f4" '
    'from="wg@conference.xmpp.test/Alice" type="groupchat"><body>Danach b6f469</body>'
    '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="6vIZzwiZ6PA4AC1EuMt="/>'
    '<x xmlns="http://jabber.org/protocol/muc#user"><item role="moderator" affiliation="owner" '
    'jid="alice@xmpp.test"/></x><delay xmlns="urn:xmpp:delay" from="wg@conference.xmpp.test" '
    'stamp="2026-11-26T22:23:25Z"/><stanza-id xmlns="urn:xmpp:sid:0" '
    'id="dxpbF3sdwrQ4vjmstcN8Fkk_" by="wg@conference.xmpp.test"/></message>'
)
FORGED = stanza(
    '<message type="groupchat" id="f1" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Mallory"><body>Ich bin Erika</body>'
    '<x xmlns="http://jabber.org/protocol/muc#user"><item jid="erika@xmpp.test/x"/></x>'
    '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="kS1eSOmD2Zf1TA3LuGWw="/>'
    '<stanza-id xmlns="urn:xmpp:sid:0" id="Qx0n3u0yJDmG3D1Ui6XWjhAa" by="wg@conference.xmpp.test"/>'
    "</message>"
)
"""What a room supporting XEP-0421 passes on of Mallory's message claiming to be Erika's: her
``<x><item jid/>`` untouched, the occupant-id the room stamped in place of hers."""
CORRECTION = stanza(
    '<message type="groupchat" id="93adeda8" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Alice"><body>Entwurf 9fd10a</body>'
    '<replace xmlns="urn:xmpp:message-correct:0" id="0c7974454aab4c7ebf836395ba31e32e"/>'
    '<stanza-id xmlns="urn:xmpp:sid:0" id="8XXxl7eOIqey2cB3xQ7YdhnE" by="wg@conference.xmpp.test"/>'
    "</message>"
)
RETRACTION = stanza(
    '<message type="groupchat" id="17101da6" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Alice"><body>This person attempted to retract a previous '
    'message, but your client does not support it.</body><fallback xmlns="urn:xmpp:fallback:0"/>'
    '<retract xmlns="urn:xmpp:message-retract:1" id="YFkxlyGVHso3uLL9JBZM_Za0"/>'
    '<store xmlns="urn:xmpp:hints"/><stanza-id xmlns="urn:xmpp:sid:0" '
    'id="RQObg7ZfiR1ubGiDnaXTnNDZ" by="wg@conference.xmpp.test"/></message>'
)
REACTIONS = stanza(
    '<message type="groupchat" id="984c03f0" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Alice"><reactions xmlns="urn:xmpp:reactions:0" '
    'id="b7lk2VqgTWauDq7bgspzUvLW"><reaction>❤️</reaction><reaction>👍</reaction>'
    '<reaction>❤️</reaction></reactions><store xmlns="urn:xmpp:hints"/>'
    '<stanza-id xmlns="urn:xmpp:sid:0" id="pPHNs0XQ8PmUCT36lX-Ku1hO" by="wg@conference.xmpp.test"/>'
    "</message>"
)
REPLY = stanza(
    '<message type="groupchat" id="5e1" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Alice"><body>&gt; Max Mustermann [BMI]:\n'
    "&gt; Wann ist das Treffen? 2cca3c\nUm zehn 078e07</body>"
    '<reply xmlns="urn:xmpp:reply:0" id="DtmmWqWtCyww8E3Bo7Bcri0d" '
    'to="wg@conference.xmpp.test/Max Mustermann [BMI]"/>'
    '<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:reply:0"><body end="55" start="0"/>'
    '</fallback><stanza-id xmlns="urn:xmpp:sid:0" id="t33rDMgT0Ico302_rhmz-g-D" '
    'by="wg@conference.xmpp.test"/></message>'
)
FILE = stanza(
    '<message type="groupchat" id="7a0a7f6c" to="passerelle.xmpp.test" '
    'from="wg@conference.xmpp.test/Alice"><body>http://127.0.0.1:58315/file_share/EkitQtrc/'
    'pixel%20art.png</body><x xmlns="jabber:x:oob"><url>http://127.0.0.1:58315/file_share/'
    'EkitQtrc/pixel%20art.png</url></x><stanza-id xmlns="urn:xmpp:sid:0" '
    'id="T1182hKCZtVG8CaXI6RfxVPL" by="wg@conference.xmpp.test"/></message>'
)


def test_live_message_reads_its_ids_and_body() -> None:
    msg = parse_message(LIVE)
    assert (msg.room, msg.nick, msg.type) == (ROOM, "Alice", "groupchat")
    assert msg.id == "0c7974454aab4c7ebf836395ba31e32e"
    assert msg.stanza_id(ROOM) == "LZMtYdNTAHPaiG8ozl9Pb_B8"
    assert msg.stanza_id("elsewhere@conference.xmpp.test") is None
    assert msg.delayed_by is None and msg.body == "Entwruf 6ca77c"
    event = event_of(msg, "LZMtYdNTAHPaiG8ozl9Pb_B8")
    assert event is not None
    assert (event.kind, event.text, event.html, event.room_id) == (
        Kind.MESSAGE,
        "Entwruf 6ca77c",
        None,
        ROOM,
    )


def test_history_is_marked_by_the_rooms_delay_and_carries_the_occupant_id() -> None:
    msg = parse_message(HISTORY)
    assert msg.delayed_by == ROOM
    assert msg.occupant_id == "6vIZzwiZ6PA4AC1EuMt="
    assert msg.stamp is not None and msg.stamp.year == 2026


def test_the_author_is_who_the_rooms_presences_showed_never_the_message() -> None:
    room = Room(ROOM, "wg", Journal(), occupant_ids=True)
    assert room.occupant_seen("Alice", "alice@xmpp.test", "6vIZzwiZ6PA4AC1EuMt=")
    assert room.occupant_seen("Mallory", "mallory@other.test", "kS1eSOmD2Zf1TA3LuGWw=")
    assert room.author(parse_message(FORGED)) == "mallory@other.test"
    assert room.author(parse_message(HISTORY)) == "alice@xmpp.test"
    room.left()  # Alice is gone; her history keeps its author
    assert room.author(parse_message(HISTORY)) == "alice@xmpp.test"
    stranger = Room(ROOM, "wg", Journal(), occupant_ids=True)
    assert stranger.author(parse_message(FORGED)) is None  # nobody vouches: not bridged


def test_without_occupant_ids_the_author_is_the_nicknames_occupant() -> None:
    room = Room(ROOM, "wg", Journal())
    assert not room.occupant_seen("Mallory", "mallory@other.test", "forged-or-meaningless")
    assert room.author(parse_message(FORGED)) == "mallory@other.test"
    assert room.author(parse_message(HISTORY)) is None  # Alice is not in the room
    room.occupant_seen("Alice", None, None)  # a room that hides real JIDs
    assert room.author(parse_message(HISTORY)) == f"{ROOM}/Alice"


def test_an_occupant_id_identity_is_not_forgotten_when_a_presence_hides_it() -> None:
    room = Room(ROOM, "wg", Journal(), occupant_ids=True)
    assert room.occupant_seen("Alice", "alice@xmpp.test", "oid")
    assert not room.occupant_seen("Alice", None, "oid")
    assert not room.occupant_seen("Alice", "alice@xmpp.test", "oid")
    assert room.identities == {"oid": "alice@xmpp.test"}


def test_correction_names_the_original_message_id() -> None:
    msg = parse_message(CORRECTION)
    assert msg.replace_id == "0c7974454aab4c7ebf836395ba31e32e"
    event = edit_event(msg, remote_id="8XXx", link_id="wg", network="xmpp", sender=SENDER,
                       relates_to="LZMtYdNTAHPaiG8ozl9Pb_B8")  # fmt: skip
    assert (event.kind, event.relates_to, event.text) == (
        Kind.EDIT,
        "LZMtYdNTAHPaiG8ozl9Pb_B8",
        "Entwurf 9fd10a",
    )


def test_retractions_v1_and_v0() -> None:
    assert parse_message(RETRACTION).retract_id == "YFkxlyGVHso3uLL9JBZM_Za0"
    v0 = stanza(
        f'<message type="groupchat" id="r0" to="passerelle.xmpp.test" from="{ROOM}/Alice">'
        '<apply-to xmlns="urn:xmpp:fasten:0" id="origin-1">'
        '<retract xmlns="urn:xmpp:message-retract:0"/></apply-to></message>'
    )
    assert parse_message(v0).retract_origin_id == "origin-1"


def test_reactions_are_a_set_and_changes_are_diffed() -> None:
    reactions = parse_message(REACTIONS).reactions
    assert reactions is not None
    assert reactions.target == "b7lk2VqgTWauDq7bgspzUvLW"
    assert reactions.keys == ("❤️", "👍")
    before = {"👍": reaction_id("old", "👍"), "🎉": reaction_id("old", "🎉")}
    added, removed = reaction_changes(before, reactions.keys, "new")
    assert added == {"❤️": reaction_id("new", "❤️")}
    assert removed == [reaction_id("old", "🎉")]


def test_reply_fallback_is_stripped() -> None:
    msg = parse_message(REPLY)
    assert msg.reply == Reply("wg@conference.xmpp.test/Max Mustermann [BMI]",
                              "DtmmWqWtCyww8E3Bo7Bcri0d")  # fmt: skip
    assert msg.body == "Um zehn 078e07"


def test_out_of_band_url_becomes_an_attachment() -> None:
    msg = parse_message(FILE)
    event = event_of(msg, "T118")
    assert event is not None and event.attachment is not None
    assert event.attachment.kind is AttachmentKind.IMAGE
    assert event.attachment.name == "pixel art.png"
    assert event.attachment.mimetype == "image/png"
    assert event.attachment.ref == msg.body
    assert event.text == ""


def test_styled_body_gets_html_and_me_is_an_emote() -> None:
    event = event_of(muc_message("Bob", "s", "<body>das ist *wichtig*</body>"), "s")
    assert event is not None and event.html == "das ist <strong>wichtig</strong>"
    event = event_of(muc_message("Bob", "e", "<body>/me winkt</body>"), "e")
    assert event is not None and (event.msgtype, event.text) == (MsgType.EMOTE, "winkt")


def test_chat_states_and_empty_bodies_make_no_event() -> None:
    msg = muc_message("Bob", "c", '<composing xmlns="http://jabber.org/protocol/chatstates"/>')
    assert event_of(msg, "c") is None


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ('<message type="groupchat" from="r@c.test/n"><body>x</body></message>', "from or to"),
        ('<message type="groupchat" from="r@c.test/n" to="c.test"><body>x</body>'
         '<replace xmlns="urn:xmpp:message-correct:0"/></message>', "correction without an id"),
        ('<message type="groupchat" from="r@c.test/n" to="c.test"><reactions '
         'xmlns="urn:xmpp:reactions:0"/></message>', "reactions without an id"),
        ('<message type="groupchat" from="r@c.test/n" to="c.test"><body>f</body><x '
         'xmlns="jabber:x:oob"><url>file:///etc/passwd</url></x></message>', r"not http\(s\)"),
        ('<message type="groupchat" from="r@c.test/n" to="c.test"><body>f</body><x '
         'xmlns="jabber:x:oob"><url>http://[::1</url></x></message>', "URL is malformed"),
        ('<message type="groupchat" from="r@c.test/n" to="c.test"><body>x</body><delay '
         'xmlns="urn:xmpp:delay" stamp="yesterday"/></message>', "not a timestamp"),
        (f'<message type="groupchat" from="r@c.test/n" to="c.test"><body>{"x" * 70000}</body>'
         "</message>", "longer than"),
    ],
)  # fmt: skip
def test_malformed_stanzas_are_refused_with_the_reason(xml: str, reason: str) -> None:
    with pytest.raises(MalformedStanza, match=reason):
        parse_message(stanza(xml))


def test_unknown_namespaces_are_ignored() -> None:
    unknown = '<whatever xmlns="urn:example:unknown"><deep/></whatever>'
    msg = muc_message("Bob", "u", "<body>hi</body>" + unknown)
    assert msg.body == "hi"


def test_error_message_names_its_condition() -> None:
    msg = parse_message(stanza(
        f'<message type="error" id="passerelle-1" to="p@c.test" from="{ROOM}"><error '
        'type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text '
        'xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">You are not in the room</text></error>'
        "</message>"
    ))  # fmt: skip
    assert msg.error == "not-acceptable"


def test_presences_of_the_room() -> None:
    own = occupant_presence(
        "Passerelle",
        '<x xmlns="http://jabber.org/protocol/muc#user"><status code="100"/><item '
        'jid="passerelle.xmpp.test" role="participant" affiliation="none"/><status code="110"/>'
        "</x>",
    )
    assert own.is_self and own.nick == "Passerelle" and own.real_jid == "passerelle.xmpp.test"
    other = occupant_presence(
        "Bob",
        '<x xmlns="http://jabber.org/protocol/muc#user"><item jid="bob@xmpp.test/qWVucsM7" '
        'role="participant" affiliation="none"/></x>',
    )
    assert not other.is_self and other.real_jid == "bob@xmpp.test" and other.type == "available"
    assert own.occupant_id is None
    stamped = occupant_presence(
        "Bob",
        '<occupant-id xmlns="urn:xmpp:occupant-id:0" id="b0b="/><x '
        'xmlns="http://jabber.org/protocol/muc#user"><item jid="bob@xmpp.test/qWVucsM7" '
        'role="participant" affiliation="none"/></x>',
    )
    assert stamped.occupant_id == "b0b="
    renamed = occupant_presence(
        "Bob",
        '<x xmlns="http://jabber.org/protocol/muc#user"><item nick="Robert" role="participant"/>'
        '<status code="303"/></x>',
        'type="unavailable" ',
    )
    assert renamed.new_nick == "Robert" and 303 in renamed.statuses
    conflict = parse_presence(stanza(
        f'<presence type="error" id="j1" to="p@passerelle.xmpp.test" from="{ROOM}/Bob"><error '
        'type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></presence>'
    ))  # fmt: skip
    assert conflict.error == "conflict" and conflict.id == "j1"  # the join it answers


# -- outbound -------------------------------------------------------------------------------------


async def _no_media(ref: str) -> bytes:
    raise AssertionError("not needed")


def outgoing(**kw: object) -> Outgoing:
    event = Event(**{"kind": Kind.MESSAGE, "link_id": "wg", "network": "bund",
                     "room_id": "!r:bund.test", "remote_id": "$e", "sender": SENDER,
                     **kw})  # type: ignore[arg-type]  # fmt: skip
    return Outgoing(event=event, room_id=ROOM, reply_to=None, relates_to=None,
                    sender_is_local=False, fetch_source_media=_no_media)  # fmt: skip


def test_body_renders_html_as_styling_and_names_a_relayed_sender() -> None:
    event = outgoing(text="wichtig", html="<b>wichtig</b> <code>x</code>").event
    assert message_body(event) == "*wichtig* `x`"
    assert message_body(event, relay_name="Anna Schmidt [AA]") == "Anna Schmidt [AA]: *wichtig* `x`"
    emote = outgoing(text="winkt", msgtype=MsgType.EMOTE).event
    assert message_body(emote) == "/me winkt"


def test_origin_ids_are_stable_per_source_event() -> None:
    first = origin_id("bund", "$event")
    assert first == origin_id("bund", "$event") and first.startswith(ORIGIN_PREFIX)
    assert first != origin_id("tchap", "$event")


def test_reply_stanza_quotes_and_marks_its_fallback() -> None:
    fallback = quote_fallback("Alice", "Wer kommt mit?")
    assert fallback == "> Alice:\n> Wer kommt mit?\n"
    el = groupchat_stanza(ROOM, "p@c.test", "passerelle-1", "Ich komme",
                          reply=Reply(f"{ROOM}/Alice", "S1"), fallback=fallback)  # fmt: skip
    msg = parse_message(el)
    assert msg.reply == Reply(f"{ROOM}/Alice", "S1")
    assert msg.body == "Ich komme"  # the parser strips exactly the marked fallback
    span = el.find(f"{{{NS_FALLBACK}}}fallback/{{{NS_FALLBACK}}}body")
    assert span is not None and span.get("end") == str(len(fallback))
    assert el.find(f"{{{NS_REPLY}}}reply") is not None
    assert msg.origin_id == msg.id == "passerelle-1"


def test_correction_file_retraction_and_reactions_stanzas() -> None:
    corrected = parse_message(
        groupchat_stanza(ROOM, "p@c.test", "passerelle-2", "neu", replace_id="passerelle-1")
    )
    assert corrected.replace_id == "passerelle-1"
    shared = parse_message(groupchat_stanza(ROOM, "p@c.test", "passerelle-3", "https://u/f.txt",
                                            oob=Oob("https://u/f.txt", "Bericht")))  # fmt: skip
    assert shared.oob == Oob("https://u/f.txt", "Bericht")
    retracted = parse_message(retraction_stanza(ROOM, "p@c.test", "passerelle-4", "S1"))
    assert retracted.retract_id == "S1" and retracted.body
    reacted = parse_message(reactions_stanza(ROOM, "p@c.test", "passerelle-5", "S1", ["👍"]))
    assert reacted.reactions is not None and reacted.reactions.keys == ("👍",)
    withdrawn = parse_message(reactions_stanza(ROOM, "p@c.test", "passerelle-6", "S1", []))
    assert withdrawn.reactions is not None and withdrawn.reactions.keys == ()


def test_reaction_refs_round_trip_and_other_ids_are_not_refs() -> None:
    ref = reaction_ref("S1", "bund_max\\3abund.test@c.test", "👍")
    assert parse_reaction_ref(ref) == ("S1", "bund_max\\3abund.test@c.test", "👍")
    assert parse_reaction_ref("S1") is None


def test_join_presence_asks_for_history_only_for_the_listener() -> None:
    listener = join_presence(f"{ROOM}/Passerelle", "c.test", "j1", history=True)
    puppet = join_presence(f"{ROOM}/Max", "m@c.test", "j2", history=False, photo_hash="ab12")
    muc = "{http://jabber.org/protocol/muc}"
    assert listener.find(f"{muc}x/{muc}history") is None
    history = puppet.find(f"{muc}x/{muc}history")
    assert history is not None and history.get("maxstanzas") == "0"
    assert puppet.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == "ab12"


def test_room_memory_resolves_ids_through_corrections() -> None:
    room = Room(ROOM, "wg", Journal())
    room.remember_ids("S1", "msg-1", "origin-1")
    room.quotes["S1"] = Quote("Alice", "Entwruf")
    room.remember_ids("S2", "msg-2")
    room.originals["S2"] = "S1"
    assert room.resolve("msg-1") == room.resolve("origin-1") == room.resolve("S1") == "S1"
    assert room.resolve("msg-2") == "S1"  # a correction of a correction targets the original
    assert room.resolve("unknown") is None


def test_room_memories_come_back_from_their_journal() -> None:
    """What a room learned, noted in its journal and restored into a fresh room (as after a
    restart), answers the same."""
    journal = Journal()
    room = Room(ROOM, "wg", journal)
    room.remember_ids("S1", "msg-1", "origin-1")
    room.quotes["S1"] = Quote.of("Alice", "Entwurf")
    room.originals["S2"] = "S1"
    room.reactions[("alice@xmpp.test", "S1")] = {"👍": "S3"}
    room.sent_reactions[("p@c.test", "S1")] = ["❤️", "🎉"]
    assert journal.pending.is_set()
    entries = journal.take()
    assert not journal.pending.is_set() and journal.take() == []
    again = Room(ROOM, "wg", Journal())
    for entry in entries:
        again.restore(entry)
    again.restore(Remembered(ROOM, "a memory of a later version", '"k"', '"v"'))
    assert again.resolve("origin-1") == again.resolve("S2") == "S1"
    assert again.quotes.get("S1") == Quote("Alice", "Entwurf")
    assert again.reactions.get(("alice@xmpp.test", "S1")) == {"👍": "S3"}
    assert again.sent_reactions.get(("p@c.test", "S1")) == ["❤️", "🎉"]
    assert again.journal.entries == []  # restoring notes nothing


def test_quotes_keep_the_start_of_long_messages() -> None:
    assert Quote.of("Alice", "kurz") == Quote("Alice", "kurz")
    long = Quote.of("Alice", "x" * 10_000)
    assert len(long.text) == QUOTED and long.text.endswith("…")


def test_recent_forgets_the_oldest() -> None:
    recent: Recent[str, int] = Recent(size=2)
    recent["a"], recent["b"], recent["c"] = 1, 2, 3
    assert "a" not in recent and recent.get("c") == 3 and len(recent) == 2


def test_chat_states_are_read_and_written() -> None:
    chat_state = "<composing xmlns='http://jabber.org/protocol/chatstates'/>"
    composing = muc_message("Alice", "c1", chat_state, to="passerelle.xmpp.test")
    assert (composing.chat_state, composing.body) == ("composing", None)
    el = chat_state_stanza("wg@conference.xmpp.test", "p@passerelle.xmpp.test", "id1", False)
    assert parse_message(el).chat_state == "active"
    assert parse_message(el).body is None


def test_displayed_markers_are_read_and_written_and_chat_messages_are_markable() -> None:
    marker = parse_message(stanza(
        "<message from='alice@xmpp.test/phone' to='=people_max@passerelle.xmpp.test' "
        "type='chat' id='m1'><displayed xmlns='urn:xmpp:chat-markers:0' id='passerelle-abc'/>"
        "</message>"
    ))  # fmt: skip
    assert (marker.displayed, marker.body) == ("passerelle-abc", None)
    with pytest.raises(MalformedStanza, match="displayed marker without an id"):
        parse_message(stanza(
            "<message from='alice@xmpp.test/phone' to='=people_max@passerelle.xmpp.test' "
            "type='chat'><displayed xmlns='urn:xmpp:chat-markers:0'/></message>"
        ))  # fmt: skip
    el = displayed_stanza("alice@xmpp.test", "p@passerelle.xmpp.test", "id1", "m7", "chat")
    parsed = parse_message(el)
    assert (parsed.type, parsed.displayed, parsed.body) == ("chat", "m7", None)
    chat = chat_stanza("alice@xmpp.test", "p@passerelle.xmpp.test", "id2", "Hallo")
    assert chat.find("{urn:xmpp:chat-markers:0}markable") is not None
