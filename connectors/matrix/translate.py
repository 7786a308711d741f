"""Matrix event JSON ↔ bridge events: pure functions, tested with real payloads.

Inbound works on the raw event dicts a homeserver sends (appservice transactions and ``/sync``
both deliver them), so a malformed event is answered with `MalformedEvent` naming the field,
never with a crash in the protocol code.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bridge.connector import Outgoing
from bridge.events import Attachment, AttachmentKind, Event, Kind, MsgType, Sender
from bridge.html import (
    html_to_text,
    sanitize,
    strip_plain_reply_fallback,
    strip_reply_fallback,
)
from connectors.matrix.relay_format import render_relay

JSON = dict[str, Any]

MAX_BODY = 64 * 1024
MAX_REASON = 500
"""Characters of a deletion's reason that cross."""

_TEXT_TYPES = {"m.text": MsgType.TEXT, "m.notice": MsgType.NOTICE, "m.emote": MsgType.EMOTE}
_MEDIA_TYPES = {
    "m.image": AttachmentKind.IMAGE,
    "m.file": AttachmentKind.FILE,
    "m.video": AttachmentKind.VIDEO,
    "m.audio": AttachmentKind.AUDIO,
}
_MSGTYPE_OF = {v: k for k, v in _TEXT_TYPES.items()}
_MEDIA_MSGTYPE_OF = {v: k for k, v in _MEDIA_TYPES.items()}


class MalformedEvent(ValueError):
    """An event that cannot be bridged, with the reason (logged; the rest keeps flowing)."""


def _str(content: JSON, key: str, *, required: bool = True) -> str | None:
    value = content.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"content.{key} must be a string")
    return value


def _int(info: JSON, key: str) -> int | None:
    value = info.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _relation(content: JSON) -> JSON:
    rel = content.get("m.relates_to")
    return rel if isinstance(rel, dict) else {}


def _text_and_html(content: JSON, *, is_reply: bool = False) -> tuple[str, str | None]:
    """Body and sanitized HTML; a reply's quoted fallback is dropped (targets render their own)."""
    body = _str(content, "body") or ""
    if len(body) > MAX_BODY:
        raise MalformedEvent(f"body is longer than {MAX_BODY} characters")
    html = None
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        html = sanitize(strip_reply_fallback(formatted) if is_reply else formatted)
    if is_reply:
        body = strip_plain_reply_fallback(body)
    return body, html


@dataclass(frozen=True)
class FileKeys:
    """What decrypts an encrypted attachment (the ``file`` object of an encrypted room's media
    event): the AES-CTR key (unpadded URL-safe base64, as in the JWK), the IV and the SHA-256
    of the ciphertext (unpadded base64)."""

    key: str
    iv: str
    sha256: str


def _b64_length(value: object, *, urlsafe: bool = False) -> int | None:
    """Length in bytes of unpadded base64 ``value``, or None when it is not base64 at all."""
    if not isinstance(value, str) or not value:
        return None
    padded = value + "=" * (-len(value) % 4)
    try:
        if urlsafe:
            return len(base64.urlsafe_b64decode(padded.encode("ascii")))
        return len(base64.b64decode(padded.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _encrypted_file(file: object) -> tuple[str, FileKeys]:
    """The mxc URI and keys of an encrypted attachment's ``file`` object (spec: v2, AES-CTR
    with a 256-bit key and a 128-bit IV), or `MalformedEvent` naming what is wrong."""
    if not isinstance(file, dict):
        raise MalformedEvent("content.file must be an object")
    url, key, hashes = file.get("url"), file.get("key"), file.get("hashes")
    if not isinstance(url, str) or not url.startswith("mxc://"):
        raise MalformedEvent("content.file.url must be an mxc:// URI")
    if file.get("v") != "v2":
        raise MalformedEvent("content.file.v must be v2")
    if not isinstance(key, dict) or key.get("alg", "A256CTR") != "A256CTR":
        raise MalformedEvent("content.file.key must be an A256CTR key")
    if _b64_length(key.get("k"), urlsafe=True) != 32:
        raise MalformedEvent("content.file.key.k must be a 256-bit key")
    if _b64_length(file.get("iv")) != 16:
        raise MalformedEvent("content.file.iv must be 16 bytes of base64")
    sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
    if _b64_length(sha256) != 32:
        raise MalformedEvent("content.file.hashes.sha256 must be a SHA-256 in base64")
    return url, FileKeys(key=key["k"], iv=file["iv"], sha256=str(sha256))


def encrypted_media_ref(url: str, keys: FileKeys) -> str:
    """An `Attachment.ref` for encrypted media: the mxc URI, then the keys in the fragment (the
    outbox holds them only as long as it holds the message itself)."""
    return f"{url}#{urlencode({'k': keys.key, 'iv': keys.iv, 'sha256': keys.sha256})}"


def parse_media_ref(ref: str) -> tuple[str, FileKeys | None]:
    """The mxc URI of an `Attachment.ref`, and its keys when the media is encrypted."""
    url, _, fragment = ref.partition("#")
    if not fragment:
        return url, None
    fields = dict(parse_qsl(fragment))
    return url, FileKeys(key=fields["k"], iv=fields["iv"], sha256=fields["sha256"])


def _attachment(content: JSON, kind: AttachmentKind) -> Attachment:
    if "file" in content:
        ref = encrypted_media_ref(*_encrypted_file(content["file"]))
    else:
        url = content.get("url")
        if not isinstance(url, str) or not url.startswith("mxc://"):
            raise MalformedEvent("content.url must be an mxc:// URI")
        ref = url
    raw_info = content.get("info")
    info: JSON = raw_info if isinstance(raw_info, dict) else {}
    name = content.get("filename") if isinstance(content.get("filename"), str) else None
    return Attachment(
        kind=kind,
        name=name or _str(content, "body") or "file",
        mimetype=info.get("mimetype") if isinstance(info.get("mimetype"), str) else None,
        size=_int(info, "size"),
        ref=ref,
        width=_int(info, "w"),
        height=_int(info, "h"),
        duration_ms=_int(info, "duration"),
    )


def _thread_and_reply(rel: JSON) -> tuple[str | None, str | None]:
    """The thread root and the message replied to of a message's ``m.relates_to``.

    In a thread (``rel_type: m.thread``), ``m.in_reply_to`` with ``is_falling_back`` is only
    there for clients that know no threads (it names the thread's latest message): no reply."""
    in_reply = rel.get("m.in_reply_to")
    reply_to = in_reply.get("event_id") if isinstance(in_reply, dict) else None
    if reply_to is not None and not isinstance(reply_to, str):
        raise MalformedEvent("m.in_reply_to.event_id must be a string")
    if rel.get("rel_type") != "m.thread":
        return None, reply_to
    thread = rel.get("event_id")
    if not isinstance(thread, str):
        raise MalformedEvent("a thread's m.relates_to.event_id must be a string")
    if rel.get("is_falling_back") is True or reply_to == thread:
        return thread, None
    return thread, reply_to


def event_from_matrix(raw: JSON, *, link_id: str, network: str, sender: Sender) -> Event | None:
    """The bridge event for one Matrix room event, or None for events that are not bridged
    (state, receipts, unknown types). Raises `MalformedEvent` for broken content."""
    event_id = raw.get("event_id")
    room_id = raw.get("room_id")
    if not isinstance(event_id, str) or not isinstance(room_id, str):
        raise MalformedEvent("event_id and room_id must be strings")
    if "state_key" in raw:
        return None
    content = raw.get("content")
    if not isinstance(content, dict):
        raise MalformedEvent("content must be an object")
    make = functools.partial(
        Event, link_id=link_id, network=network, room_id=room_id, remote_id=event_id, sender=sender
    )
    etype = raw.get("type")
    if etype == "m.room.redaction":
        redacts = raw.get("redacts") or content.get("redacts")
        if not isinstance(redacts, str):
            raise MalformedEvent("redaction without a redacts event ID")
        reason = content.get("reason")
        reason = reason[:MAX_REASON] if isinstance(reason, str) and reason.strip() else None
        return make(kind=Kind.REDACTION, relates_to=redacts, reason=reason)
    if etype == "m.reaction":
        rel = _relation(content)
        if rel.get("rel_type") != "m.annotation":
            return None
        key, target = rel.get("key"), rel.get("event_id")
        if not isinstance(key, str) or not isinstance(target, str):
            raise MalformedEvent("reaction without key or event_id")
        return make(kind=Kind.REACTION, relates_to=target, reaction=key)
    if etype not in ("m.room.message", "m.sticker"):
        return None
    if not content:
        return None  # a redacted message
    rel = _relation(content)
    if rel.get("rel_type") == "m.replace":
        new = content.get("m.new_content")
        target = rel.get("event_id")
        if not isinstance(new, dict) or not isinstance(target, str):
            raise MalformedEvent("edit without m.new_content or event_id")
        text, html = _text_and_html(new)
        msgtype = _TEXT_TYPES.get(new.get("msgtype", "m.text"), MsgType.TEXT)
        return make(kind=Kind.EDIT, relates_to=target, text=text, html=html, msgtype=msgtype)
    thread, reply_to = _thread_and_reply(rel)
    msgtype_raw = "m.image" if etype == "m.sticker" else content.get("msgtype")
    if msgtype_raw in _MEDIA_TYPES:
        attachment = _attachment(content, _MEDIA_TYPES[msgtype_raw])
        caption = ""
        if isinstance(content.get("filename"), str) and content.get("body") != attachment.name:
            caption = _str(content, "body") or ""
        return make(kind=Kind.MESSAGE, attachment=attachment, text=caption, reply_to=reply_to,
                    thread=thread)  # fmt: skip
    text, html = _text_and_html(content, is_reply=reply_to is not None)
    if not text and not html:
        return None
    return make(
        kind=Kind.MESSAGE,
        text=text,
        html=html,
        msgtype=_TEXT_TYPES.get(str(msgtype_raw), MsgType.TEXT),
        reply_to=reply_to,
        thread=thread,
    )


MAX_LOCALPART = 200


def membership_change(raw: JSON) -> Kind | None:
    """Whether an ``m.room.member`` event is someone joining (`Kind.JOIN`) or leaving (left,
    kicked or banned: `Kind.LEAVE`) the room; None for what changes no one's presence (an
    invitation, a new name or avatar of a member: the same membership as before)."""
    content, unsigned = raw.get("content"), raw.get("unsigned")
    membership = content.get("membership") if isinstance(content, dict) else None
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    before = prev.get("membership") if isinstance(prev, dict) else None
    if membership == "join" and before != "join":
        return Kind.JOIN
    if membership in ("leave", "ban") and before in ("join", None):
        return Kind.LEAVE
    return None


def read_receipts(edu: JSON) -> dict[str, str]:
    """Who has read up to which event, from an ``m.receipt`` EDU (``content``: event ID →
    receipt type → user ID → receipt): public ``m.read`` receipts only, one event per user
    (the EDU lists one for each; anything malformed is skipped)."""
    content = edu.get("content")
    read: dict[str, str] = {}
    if not isinstance(content, dict):
        return read
    for event_id, receipts in content.items():
        users = receipts.get("m.read") if isinstance(receipts, dict) else None
        if (
            not isinstance(event_id, str)
            or not event_id.startswith("$")
            or not isinstance(users, dict)
        ):
            continue
        for user_id in users:
            if isinstance(user_id, str) and user_id.startswith("@"):
                read[user_id] = event_id
    return read


def ghost_localpart(prefix: str, network: str, local: str) -> str:
    """A stable ghost localpart for a remote user: the prefix, the source network, then their
    account as its kind writes it into addresses (``local``, `AccountFormat.local_form`) with
    every character outside Matrix's localpart set written as ``=xx``.

    User IDs may not exceed 255 bytes, so an overlong result keeps its start and ends in a
    hash of the whole ID (still stable, still distinct)."""
    escaped = re.sub(r"[^a-z0-9.\-/]", lambda m: "".join(f"={b:02x}" for b in m.group().encode()),
                     local)  # fmt: skip
    localpart = f"{prefix}{network}_{escaped}"
    if len(localpart) > MAX_LOCALPART:
        digest = hashlib.sha256(localpart.encode()).hexdigest()[:32]
        localpart = f"{localpart[: MAX_LOCALPART - 33]}-{digest}"
    return localpart


def ghost_owner(localpart: str, prefix: str, networks: list[str]) -> tuple[str, str] | None:
    """The (network, account in its local form) a ghost localpart stands for: the inverse of
    `ghost_localpart`, or None when it is not a ghost's or was shortened with a hash."""
    rest = localpart.removeprefix(prefix)
    if rest == localpart and prefix:
        return None
    for network in sorted(networks, key=len, reverse=True):
        if rest.startswith(f"{network}_"):
            escaped = rest[len(network) + 1 :]
            if len(localpart) >= MAX_LOCALPART - 33 and re.search(r"-[0-9a-f]{32}$", escaped):
                return None
            raw = re.sub(r"(?:=[0-9a-f]{2})+", _unescape, escaped)
            return network, raw
    return None


def _unescape(match: re.Match[str]) -> str:
    return bytes.fromhex(match.group().replace("=", "")).decode("utf-8", "replace")


def _message_content(event: Event, *, text: str, html: str | None) -> JSON:
    content: JSON = {"msgtype": _MSGTYPE_OF[event.msgtype], "body": text}
    if html is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = html
    return content


def _relay(event: Event, template: str | None, name: str) -> tuple[str, str | None]:
    if template is None:
        return event.text, event.html
    return render_relay(template, name, event.text, event.html)


def matrix_content(
    out: Outgoing,
    *,
    sender_name: str,
    relay_template: str | None = None,
    mxc: str | None = None,
    file: JSON | None = None,
) -> tuple[str, JSON]:
    """The ``(event type, content)`` to send for a message, edit or reaction.

    ``relay_template`` is set when the bridge bot posts on the sender's behalf (relay mode, or a
    sender who has a real account on this network); ``mxc`` when an attachment was uploaded,
    or ``file`` (its mxc URI and keys) when it was uploaded encrypted, for an encrypted room.
    """
    event = out.event
    if event.kind is Kind.REACTION:
        return "m.reaction", {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": out.relates_to,
                "key": event.reaction,
            }  # fmt: skip
        }
    if event.kind is Kind.EDIT:
        text, html = _relay(event, relay_template, sender_name)
        new = _message_content(event, text=text, html=html)
        content = {
            **_message_content(event, text=f"* {text}", html=f"* {html}" if html else None),
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": out.relates_to},
        }
        return "m.room.message", content
    if event.attachment is not None and (mxc is not None or file is not None):
        att = event.attachment
        info: JSON = {
            k: v
            for k, v in {
                "mimetype": att.mimetype,
                "size": att.size,
                "w": att.width,
                "h": att.height,
                "duration": att.duration_ms,
            }.items()  # fmt: skip
            if v is not None
        }
        content = {"msgtype": _MEDIA_MSGTYPE_OF[att.kind], "info": info,
                   "filename": att.name, "body": event.text or att.name}  # fmt: skip
        if file is not None:
            content["file"] = file
        else:
            content["url"] = mxc
        if relay_template is not None:
            # The caption names the sender (MSC2530: a body other than the filename is a
            # caption), bold in clients that show formatted captions.
            caption = event.text or att.name
            content["body"], content["formatted_body"] = render_relay(
                relay_template, sender_name, caption, event.html if event.text else None
            )
            content["format"] = "org.matrix.custom.html"
    else:
        text, html = _relay(event, relay_template, sender_name)
        if not text and html:
            text = html_to_text(html)
        content = _message_content(event, text=text, html=html)
    if out.thread:
        # Clients that know no threads show a reply: to the message replied to, else to the
        # root (`is_falling_back` tells the others that it is no real reply).
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": out.thread,
            "is_falling_back": out.reply_to is None,
            "m.in_reply_to": {"event_id": out.reply_to or out.thread},
        }
    elif out.reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": out.reply_to}}
    return "m.room.message", content
