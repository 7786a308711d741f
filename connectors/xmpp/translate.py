"""XMPP stanzas ↔ bridge events: pure functions over ``xml.etree`` elements.

Inbound, `parse_message` and `parse_presence` read a stanza as the server delivered it into plain
dataclasses (a malformed one raises `MalformedStanza` naming what is wrong), and `message_event`,
`edit_event` and `reaction_changes` turn a MUC message into events once the connector has
resolved which message it refers to. Outbound, `message_body` renders an event as an XMPP body
and the ``*_stanza`` functions build the elements the component sends. No I/O here, so every
function is tested with real payloads.

Threads (XEP-0201): the bridge names a thread by its root's ID in the room (the root's
``stanza-id``), so a client that answers with the same ``<thread>`` is understood on the way
back; a thread message the bridge posts also replies (XEP-0461) to the root, with a one-line
quote of it as the fallback, for clients that show no threads.

IDs, and why a message has two: in a MUC, the room stamps every archived message with a
XEP-0359 ``stanza-id`` (by the room's JID), and that is what XEP-0424 retractions, XEP-0444
reactions and XEP-0461 replies refer to; XEP-0308 corrections refer to the sender's own message
``id`` instead (which the bridge always sets equal to its XEP-0359 ``origin-id``). The store keeps
the ``stanza-id`` (or the ``id`` in a room that assigns none); the connector maps ``id`` →
``stanza-id`` for corrections itself.
"""

from __future__ import annotations

import hashlib
import mimetypes
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urlsplit

from bridge.events import Attachment, AttachmentKind, Event, Kind, MsgType, Sender
from bridge.reaction_refs import ReactionRefs
from connectors.xmpp.styling import html_to_styled, styled_to_html

NS_STREAM = ("jabber:component:accept", "jabber:client")
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_REPLY = "urn:xmpp:reply:0"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_OOB = "jabber:x:oob"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
CHAT_STATES = ("active", "composing", "paused", "inactive", "gone")
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_MARKERS = "urn:xmpp:chat-markers:0"

MAX_BODY = 64 * 1024
"""Longest body bridged (characters), as on Matrix."""
MAX_REACTIONS = 50
MAX_REASON = 500
"""Characters of a retraction's reason that cross."""
MAX_THREAD_ID = 256
"""Longest XEP-0201 thread id read (the bridge's own are stanza-ids, far shorter)."""
THREAD_QUOTED = 80
"""Characters of a thread's root quoted in the fallback line."""
ORIGIN_PREFIX = "passerelle-"
"""Start of every origin-id the bridge assigns: a message carrying one was sent by the bridge."""

RETRACTION_FALLBACK = (
    "This person attempted to retract a previous message, but it's unsupported by your client."
)


class MalformedStanza(ValueError):
    """A stanza that cannot be bridged, with the reason (logged, or sent back as an error)."""


# -- reading --------------------------------------------------------------------------------------


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _child(el: ET.Element, ns: str, name: str) -> ET.Element | None:
    return el.find(f"{{{ns}}}{name}")


def _stream_child(el: ET.Element, name: str) -> ET.Element | None:
    """A child in the stream's own namespace (``body``, ``subject``, ``error``)."""
    for ns in NS_STREAM:
        found = _child(el, ns, name)
        if found is not None:
            return found
    return None


def split_jid(jid: str) -> tuple[str, str]:
    """(bare JID, resource) of a JID string."""
    bare, _, resource = jid.partition("/")
    return bare.lower(), resource


class _FromOccupant:
    """A stanza whose ``from`` is a full JID: in a MUC, the room's and the sender's nickname."""

    sender: str

    @property
    def room(self) -> str:
        return split_jid(self.sender)[0]

    @property
    def nick(self) -> str:
        return split_jid(self.sender)[1]


@dataclass(frozen=True)
class Reply:
    to: str
    """Full JID of the author of the message replied to (occupant JID in a MUC)."""
    id: str


@dataclass(frozen=True)
class Reactions:
    target: str
    keys: tuple[str, ...]
    """The sender's whole set of reactions to the target (XEP-0444 replaces, never adds)."""


@dataclass(frozen=True)
class Oob:
    url: str
    desc: str | None


@dataclass(frozen=True)
class Message(_FromOccupant):
    """The parts of a ``<message/>`` the bridge reads."""

    sender: str
    """The full ``from`` (``room@service/nick`` in a MUC)."""
    to: str
    type: str
    id: str | None
    origin_id: str | None
    stanza_ids: dict[str, str] = field(default_factory=dict)
    """``by`` → ``id`` of every XEP-0359 stanza-id (only the one by the room counts)."""
    delayed_by: str | None = None
    """``from`` of an XEP-0203 delay: the room's JID for history replayed on join."""
    stamp: datetime | None = None
    body: str | None = None
    has_subject: bool = False
    occupant_id: str | None = None
    """XEP-0421: the author's ID in the room, stamped by a room that supports it (which strips
    any an occupant sent). A ``<x><item jid/></x>`` in a message is never read: an occupant
    can put one there and the room passes it on."""
    replace_id: str | None = None
    retract_id: str | None = None
    retract_origin_id: str | None = None
    """A XEP-0424 v0 retraction (fastening) names the origin-id instead."""
    reactions: Reactions | None = None
    reply: Reply | None = None
    thread: str | None = None
    """XEP-0201: the id of the thread the message belongs to."""
    oob: Oob | None = None
    chat_state: str | None = None
    """XEP-0085: ``composing`` while the sender types, another state once they stopped."""
    error: str | None = None
    """The defined condition of a ``type="error"`` message."""
    displayed: str | None = None
    """XEP-0333: the id of the message the sender has read up to (a MUC's stanza-id)."""

    def stanza_id(self, by: str) -> str | None:
        return self.stanza_ids.get(by.lower())


def error_condition(el: ET.Element) -> str | None:
    """The condition of a stanza's error (RFC 6120 §8.3), read from the stanza itself:
    slixmpp's error interface looks for it in ``jabber:client`` only, so on a component
    stream it reports a condition the server never sent."""
    error = _stream_child(el, "error")
    if error is None:
        return None
    for child in error:
        ns, name = _local(child.tag)
        if ns == NS_STANZAS and name != "text":
            return name
    return "undefined-condition"


def _fallback_ranges(el: ET.Element, for_ns: str, body_len: int) -> list[tuple[int, int]]:
    """XEP-0428 ``<body start end/>`` ranges (code points) marked as fallback for ``for_ns``."""
    ranges = []
    for fallback in el.findall(f"{{{NS_FALLBACK}}}fallback"):
        if fallback.get("for") != for_ns:
            continue
        for body in fallback.findall(f"{{{NS_FALLBACK}}}body"):
            try:
                start, end = int(body.get("start", "0")), int(body.get("end", str(body_len)))
            except ValueError as e:
                raise MalformedStanza("fallback body range is not a number") from e
            if 0 <= start <= end <= body_len:
                ranges.append((start, end))
    return ranges


def _strip_ranges(body: str, ranges: list[tuple[int, int]]) -> str:
    for start, end in sorted(ranges, reverse=True):
        body = body[:start] + body[end:]
    return body


def _required_id(el: ET.Element | None, what: str) -> str | None:
    if el is None:
        return None
    value = el.get("id")
    if not value:
        raise MalformedStanza(f"{what} without an id")
    return value


def _occupant_id(el: ET.Element) -> str | None:
    """The XEP-0421 occupant-id of a MUC stanza, if it carries one."""
    tag = _child(el, NS_OCCUPANT_ID, "occupant-id")
    return (tag.get("id") or None) if tag is not None else None


def parse_message(el: ET.Element) -> Message:
    """Read a ``<message/>``; raises `MalformedStanza` for a stanza that cannot be bridged."""
    sender, to = el.get("from"), el.get("to")
    if not sender or not to:
        raise MalformedStanza("message without from or to")
    mtype = el.get("type") or "normal"
    stanza_ids = {}
    for sid in el.findall(f"{{{NS_SID}}}stanza-id"):
        by, value = sid.get("by"), sid.get("id")
        if by and value:
            stanza_ids[by.lower()] = value
    origin = _child(el, NS_SID, "origin-id")
    delay = _child(el, NS_DELAY, "delay")
    stamp = None
    if delay is not None and delay.get("stamp"):
        try:
            stamp = datetime.fromisoformat(str(delay.get("stamp")))
        except ValueError as e:
            raise MalformedStanza("delay stamp is not a timestamp") from e
    body_el = _stream_child(el, "body")
    body = (body_el.text or "") if body_el is not None else None
    if body is not None and len(body) > MAX_BODY:
        raise MalformedStanza(f"body is longer than {MAX_BODY} characters")
    retract_0 = None
    apply_to = _child(el, NS_FASTEN, "apply-to")
    if apply_to is not None and _child(apply_to, NS_RETRACT_0, "retract") is not None:
        retract_0 = _required_id(apply_to, "retraction")
    reactions = None
    reactions_el = _child(el, NS_REACTIONS, "reactions")
    if reactions_el is not None:
        target = _required_id(reactions_el, "reactions")
        assert target is not None
        keys = tuple(
            dict.fromkeys(
                (r.text or "").strip()
                for r in reactions_el.findall(f"{{{NS_REACTIONS}}}reaction")
                if (r.text or "").strip()
            )
        )
        if len(keys) > MAX_REACTIONS:
            raise MalformedStanza(f"more than {MAX_REACTIONS} reactions")
        reactions = Reactions(target, keys)
    reply = None
    reply_el = _child(el, NS_REPLY, "reply")
    if reply_el is not None:
        reply_id = _required_id(reply_el, "reply")
        assert reply_id is not None
        reply = Reply(reply_el.get("to") or "", reply_id)
        if body is not None:
            body = _strip_ranges(body, _fallback_ranges(el, NS_REPLY, len(body)))
    thread_el = _stream_child(el, "thread")
    thread = ((thread_el.text or "").strip() or None) if thread_el is not None else None
    if thread is not None and len(thread) > MAX_THREAD_ID:
        raise MalformedStanza(f"thread id is longer than {MAX_THREAD_ID} characters")
    oob = None
    oob_el = _child(el, NS_OOB, "x")
    if oob_el is not None:
        url_el = _child(oob_el, NS_OOB, "url")
        url = (url_el.text or "").strip() if url_el is not None else ""
        try:
            scheme = urlsplit(url).scheme
        except ValueError as e:  # e.g. an unclosed IPv6 bracket: "http://[::1"
            raise MalformedStanza(f"out-of-band URL is malformed: {e}") from e
        if scheme not in ("http", "https"):
            raise MalformedStanza("out-of-band URL is not http(s)")
        desc_el = _child(oob_el, NS_OOB, "desc")
        desc = ((desc_el.text or "").strip() or None) if desc_el is not None else None
        oob = Oob(url, desc)
    return Message(
        sender=sender,
        to=to,
        type=mtype,
        id=el.get("id"),
        origin_id=origin.get("id") if origin is not None else None,
        stanza_ids=stanza_ids,
        delayed_by=(delay.get("from", "").lower() or None) if delay is not None else None,
        stamp=stamp,
        body=body,
        has_subject=_stream_child(el, "subject") is not None,
        occupant_id=_occupant_id(el),
        replace_id=_required_id(_child(el, NS_CORRECT, "replace"), "correction"),
        retract_id=_required_id(_child(el, NS_RETRACT, "retract"), "retraction"),
        retract_origin_id=retract_0,
        reactions=reactions,
        reply=reply,
        thread=thread,
        oob=oob,
        chat_state=next(
            (state for state in CHAT_STATES if _child(el, NS_CHATSTATES, state) is not None), None
        ),
        error=error_condition(el) if mtype == "error" else None,
        displayed=_required_id(_child(el, NS_MARKERS, "displayed"), "displayed marker"),
    )


@dataclass(frozen=True)
class Presence(_FromOccupant):
    """A MUC presence: who is (no longer) in the room, under which nickname."""

    sender: str
    to: str
    type: str
    """``available``, ``unavailable`` or ``error``."""
    real_jid: str | None
    """The occupant's real bare JID, where the room tells it: the room builds this item
    itself (Prosody drops whatever ``muc#user`` element the occupant sent)."""
    occupant_id: str | None
    """XEP-0421: the occupant's stable ID in the room, in a room that supports it."""
    statuses: frozenset[int]
    new_nick: str | None
    """Set with status 303: the occupant changed nickname to this one."""
    error: str | None
    id: str | None = None
    """The stanza's id: an error keeps the id of the stanza it answers."""

    @property
    def is_self(self) -> bool:
        """Status 110: this presence is about the addressee's own occupant."""
        return 110 in self.statuses


def parse_presence(el: ET.Element) -> Presence:
    sender, to = el.get("from"), el.get("to")
    if not sender or not to:
        raise MalformedStanza("presence without from or to")
    x = _child(el, NS_MUC_USER, "x")
    real_jid = new_nick = None
    statuses: set[int] = set()
    if x is not None:
        item = _child(x, NS_MUC_USER, "item")
        if item is not None:
            real_jid = split_jid(item.get("jid", ""))[0] or None
            new_nick = item.get("nick")
        for status in x.findall(f"{{{NS_MUC_USER}}}status"):
            code = status.get("code", "")
            if code.isdigit():
                statuses.add(int(code))
    ptype = el.get("type") or "available"
    return Presence(
        sender=sender,
        to=to,
        type=ptype,
        real_jid=real_jid,
        occupant_id=_occupant_id(el),
        statuses=frozenset(statuses),
        new_nick=new_nick,
        error=error_condition(el) if ptype == "error" else None,
        id=el.get("id"),
    )


# -- to events ------------------------------------------------------------------------------------


def attachment_from_oob(oob: Oob) -> Attachment:
    """An attachment for an out-of-band URL (an XEP-0363 upload); its name is the URL's last
    path segment, its kind follows the type that name suggests."""
    name = unquote(urlsplit(oob.url).path.rsplit("/", 1)[-1]) or "file"
    mimetype = mimetypes.guess_type(name)[0]
    major = (mimetype or "").split("/", 1)[0]
    kind = {
        "image": AttachmentKind.IMAGE,
        "video": AttachmentKind.VIDEO,
        "audio": AttachmentKind.AUDIO,
    }.get(major, AttachmentKind.FILE)
    return Attachment(kind=kind, name=name, mimetype=mimetype, size=None, ref=oob.url)


def text_event_parts(body: str) -> tuple[str, str | None, MsgType]:
    """Text, HTML (from XEP-0393 styling) and type of a body; ``/me`` (XEP-0245) is an emote."""
    if body.startswith("/me "):
        return body[4:], None, MsgType.EMOTE
    return body, styled_to_html(body), MsgType.TEXT


def message_event(
    msg: Message,
    *,
    remote_id: str,
    link_id: str,
    network: str,
    sender: Sender,
    reply_to: str | None,
    thread: str | None = None,
) -> Event | None:
    """A new message (text or file); None when there is nothing to bridge (chat states,
    receipts, an empty body). ``thread`` is the root of its thread, if it names one: a reply
    to that root is a message in the thread, no reply."""
    attachment = None
    if msg.oob is not None:
        attachment = attachment_from_oob(msg.oob)
        text, html, msgtype = msg.oob.desc or "", None, MsgType.TEXT
        if msg.body and msg.body.strip() != msg.oob.url:
            text = msg.body.replace(msg.oob.url, "").strip()
    elif msg.body and msg.body.strip():
        text, html, msgtype = text_event_parts(msg.body)
    else:
        return None
    return Event(
        kind=Kind.MESSAGE,
        link_id=link_id,
        network=network,
        room_id=msg.room,
        remote_id=remote_id,
        sender=sender,
        text=text,
        html=html,
        msgtype=msgtype,
        reply_to=None if reply_to == thread else reply_to,
        thread=thread,
        attachment=attachment,
    )


def edit_event(
    msg: Message, *, remote_id: str, link_id: str, network: str, sender: Sender, relates_to: str
) -> Event:
    text, html, msgtype = text_event_parts(msg.body or "")
    return Event(kind=Kind.EDIT, link_id=link_id, network=network, room_id=msg.room,
                 remote_id=remote_id, sender=sender, relates_to=relates_to, text=text, html=html,
                 msgtype=msgtype)  # fmt: skip


def reaction_id(stanza_id: str, key: str) -> str:
    """The ID of one reaction out of a XEP-0444 stanza (which carries the whole set)."""
    return f"{stanza_id}/reaction/{key}"


def reaction_changes(
    before: dict[str, str], after: tuple[str, ...], stanza_id: str
) -> tuple[dict[str, str], list[str]]:
    """What a XEP-0444 stanza changed: the reactions added (key → new reaction ID) and the IDs
    of the reactions withdrawn, given the sender's previous reactions (key → ID)."""
    added = {key: reaction_id(stanza_id, key) for key in after if key not in before}
    removed = [rid for key, rid in before.items() if key not in after]
    return added, removed


_REACTION_REFS = ReactionRefs("reaction\n")
reaction_ref = _REACTION_REFS.make
"""What the store records for a reaction the bridge put on XMPP: XEP-0444 has no ID for one
reaction (a stanza carries a person's whole set), so the ID names the message, the puppet and
the key."""
parse_reaction_ref = _REACTION_REFS.parse


def fallback_id(msg: Message) -> str:
    """An ID for a message that carries none (neither stanza-id nor id): a digest of what it
    is, so a redelivery is still recognised."""
    digest = hashlib.sha256(
        "\0".join([msg.sender, msg.body or "", str(msg.stamp or "")]).encode()
    ).hexdigest()
    return f"sha256:{digest[:32]}"


# -- from events ----------------------------------------------------------------------------------


def origin_id(network: str, remote_id: str) -> str:
    """The origin-id (and message id) the bridge gives the XMPP copy of an event: derived from
    the source event, so a retried send reuses it and an edit finds its original's."""
    digest = hashlib.sha256(f"{network}\0{remote_id}".encode()).hexdigest()[:32]
    return f"{ORIGIN_PREFIX}{digest}"


def message_body(event: Event, *, relay_name: str | None = None) -> str:
    """The XMPP body of a message or edit: HTML as XEP-0393 styling, an emote as ``/me``, and
    ``Name: `` in front when the bridge posts for someone (``relay_name``)."""
    text = html_to_styled(event.html) if event.html else event.text
    if event.msgtype is MsgType.EMOTE:
        return f"/me {text}" if relay_name is None else f"* {relay_name} {text}"
    return text if relay_name is None else f"{relay_name}: {text}"


def quote_fallback(nick: str | None, text: str) -> str:
    """A reply's quoted fallback (XEP-0461 §3), as slixmpp writes it: ``> Nick:`` then the
    quoted lines."""
    quoted = "\n".join("> " + line.strip() for line in text.split("\n")) + "\n"
    return f"> {nick}:\n{quoted}" if nick else quoted


def thread_fallback(nick: str, text: str) -> str:
    """The quoted line that names a thread's root, for clients that show no threads: ``> Nick:
    `` and the start of its text, on one line."""
    line = " ".join(text.split())
    if len(line) > THREAD_QUOTED:
        line = line[: THREAD_QUOTED - 1] + "…"
    return f"> {nick}: {line}\n"


def _message(room: str, sender: str, msg_id: str, body: str | None) -> ET.Element:
    el = ET.Element(
        f"{{{NS_STREAM[0]}}}message",
        {"to": room, "from": sender, "type": "groupchat", "id": msg_id},
    )
    if body is not None:
        ET.SubElement(el, f"{{{NS_STREAM[0]}}}body").text = body
    ET.SubElement(el, f"{{{NS_SID}}}origin-id", {"id": msg_id})
    return el


def groupchat_stanza(
    room: str,
    sender: str,
    msg_id: str,
    body: str,
    *,
    replace_id: str | None = None,
    reply: Reply | None = None,
    fallback: str = "",
    oob: Oob | None = None,
    thread: str | None = None,
) -> ET.Element:
    """A MUC message: text (with a reply's fallback quoted before it), a correction of
    ``replace_id``, or a file's URL with its XEP-0066 out-of-band element; in ``thread``
    (XEP-0201) where it belongs to one."""
    el = _message(room, sender, msg_id, fallback + body)
    if thread is not None:
        ET.SubElement(el, f"{{{NS_STREAM[0]}}}thread").text = thread
    if replace_id is not None:
        ET.SubElement(el, f"{{{NS_CORRECT}}}replace", {"id": replace_id})
    if reply is not None:
        ET.SubElement(el, f"{{{NS_REPLY}}}reply", {"to": reply.to, "id": reply.id})
        if fallback:
            marker = ET.SubElement(el, f"{{{NS_FALLBACK}}}fallback", {"for": NS_REPLY})
            span = {"start": "0", "end": str(len(fallback))}
            ET.SubElement(marker, f"{{{NS_FALLBACK}}}body", span)
    if oob is not None:
        x = ET.SubElement(el, f"{{{NS_OOB}}}x")
        ET.SubElement(x, f"{{{NS_OOB}}}url").text = oob.url
        if oob.desc:
            ET.SubElement(x, f"{{{NS_OOB}}}desc").text = oob.desc
    return el


def chat_state_stanza(room: str, sender: str, msg_id: str, typing: bool) -> ET.Element:
    """XEP-0085: ``composing`` while the sender types, ``active`` once they stopped; no body,
    and a hint not to archive it."""
    el = _message(room, sender, msg_id, None)
    ET.SubElement(el, f"{{{NS_CHATSTATES}}}{'composing' if typing else 'active'}")
    ET.SubElement(el, f"{{{NS_HINTS}}}no-store")
    return el


def displayed_stanza(to: str, sender: str, msg_id: str, read_id: str, mtype: str) -> ET.Element:
    """XEP-0333: ``sender`` has read up to the message ``read_id`` (in a MUC, its stanza-id),
    sent to a chat partner (``mtype`` ``chat``) or a room (``groupchat``)."""
    el = _message(to, sender, msg_id, None)
    el.set("type", mtype)
    ET.SubElement(el, f"{{{NS_MARKERS}}}displayed", {"id": read_id})
    return el


def retraction_stanza(
    room: str, sender: str, msg_id: str, target: str, reason: str | None = None
) -> ET.Element:
    """XEP-0424 (v1) retraction of ``target`` (the room's stanza-id), with the fallback body
    and store hint the XEP asks for; a deletion's ``reason`` follows the fallback text, on a
    line of its own (XEP-0424 has no element for it)."""
    body = f"{RETRACTION_FALLBACK}\n{reason}" if reason else RETRACTION_FALLBACK
    el = _message(room, sender, msg_id, body)
    ET.SubElement(el, f"{{{NS_RETRACT}}}retract", {"id": target})
    ET.SubElement(el, f"{{{NS_FALLBACK}}}fallback", {"for": NS_RETRACT})
    ET.SubElement(el, f"{{{NS_HINTS}}}store")
    return el


def retraction_reason(body: str | None) -> str | None:
    """The reason in a retraction's body: what follows the standard fallback text, or the
    sender's own text where their client wrote one instead."""
    text = (body or "").removeprefix(RETRACTION_FALLBACK).strip()
    return text[:MAX_REASON] or None


def reactions_stanza(
    room: str, sender: str, msg_id: str, target: str, keys: list[str]
) -> ET.Element:
    """XEP-0444 reactions: the sender's whole current set for ``target``, with a store hint
    so the room archives it (and gives it a stanza-id)."""
    el = _message(room, sender, msg_id, None)
    reactions = ET.SubElement(el, f"{{{NS_REACTIONS}}}reactions", {"id": target})
    for key in keys:
        ET.SubElement(reactions, f"{{{NS_REACTIONS}}}reaction").text = key
    ET.SubElement(el, f"{{{NS_HINTS}}}store")
    return el


def join_presence(
    occupant: str,
    sender: str,
    stanza_id: str,
    *,
    history: bool,
    photo_hash: str | None = None,
) -> ET.Element:
    """Joining a MUC as ``occupant`` (``room/nick``); ``history`` asks for the room's recent
    history (the bridge's own listener wants it, puppets do not), ``photo_hash`` announces a
    vCard avatar (XEP-0153). The room's error, if any, carries ``stanza_id``."""
    el = ET.Element(
        f"{{{NS_STREAM[0]}}}presence", {"to": occupant, "from": sender, "id": stanza_id}
    )
    x = ET.SubElement(el, f"{{{NS_MUC}}}x")
    if not history:
        ET.SubElement(x, f"{{{NS_MUC}}}history", {"maxstanzas": "0"})
    if photo_hash is not None:
        update = ET.SubElement(el, f"{{{NS_VCARD_UPDATE}}}x")
        ET.SubElement(update, f"{{{NS_VCARD_UPDATE}}}photo").text = photo_hash
    return el


def leave_presence(occupant: str, sender: str) -> ET.Element:
    return ET.Element(
        f"{{{NS_STREAM[0]}}}presence", {"to": occupant, "from": sender, "type": "unavailable"}
    )


# -- one-to-one chats -----------------------------------------------------------------------------


def direct_key(user: str, puppet: str) -> str:
    """How a one-to-one chat is known to the rest of the bridge (its "room"): the XMPP user's
    bare JID and the puppet's, which together are the chat."""
    return f"{user} {puppet}"


def split_direct_key(key: str) -> tuple[str, str] | None:
    """(user JID, puppet JID) of a `direct_key`; None for anything else (a MUC's JID)."""
    user, sep, puppet = key.partition(" ")
    return (user, puppet) if sep and user and puppet else None


def direct_message_id(key: str, msg_id: str) -> str:
    """A chat message's ID for the store: message ids are only unique within their chat."""
    return f"{key}#{msg_id}"


def stanza_id_of(remote_id: str) -> str:
    """The XMPP message id inside a `direct_message_id`."""
    return remote_id.rpartition("#")[2]


def chat_stanza(
    to: str, sender: str, msg_id: str, body: str, *, replace_id: str | None = None,
    oob: Oob | None = None,
) -> ET.Element:  # fmt: skip
    """A one-to-one message (text, a correction of ``replace_id``, or a file), markable
    (XEP-0333) so that the user's client says when it was read."""
    el = groupchat_stanza(to, sender, msg_id, body, replace_id=replace_id, oob=oob)
    el.set("type", "chat")
    ET.SubElement(el, f"{{{NS_MARKERS}}}markable")
    return el
