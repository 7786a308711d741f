"""A received mail → bridge events: pure functions, tested with real-world MIME.

`parse_mail` reads the raw bytes (any structure, any common charset, RFC 2047/2231 encoded
headers and names, quoted-printable or base64 bodies) into a `ParsedMail`, or raises
`MalformedMail` naming what is wrong, for the SMTP server to answer 550 with. `mail_events`
turns a parsed mail into the events of one link.

How a mail becomes events
    An `Event` carries one attachment, a mail may carry many. A mail becomes one message event
    with its text (subject, new text, the quoted conversation folded away in a ``<details>``),
    then one event per attachment. IDs on an email network are per link, since the same mail may
    be addressed to several link addresses and the store knows each ID once per network:
    ``<link>/<Message-ID>`` for the text, ``<link>/<Message-ID>#<n>`` for attachment ``n``
    (counted from 1). A mail with attachments but no text at all starts with its first
    attachment under the plain ``<link>/<Message-ID>``. Attachments are referenced as
    ``<spool key>/<n>``: the connector keeps their bytes in its spool until they are delivered.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import errors, policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from functools import partial
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from bridge.events import Attachment, AttachmentKind, Event, Kind, Sender
from bridge.html import MAX_DEPTH, escape, html_to_text, sanitize, text_to_html, too_deep
from connectors.email.headers import one_line
from connectors.email.quotes import split_html, split_plain

MAX_PARTS = 100
"""More MIME parts than any person writes: beyond this a mail is refused as malformed."""
MAX_ATTACHMENTS = 20
MAX_TEXT_BYTES = 24 * 1024
MAX_HTML_BYTES = 32 * 1024
"""UTF-8 bytes of text and of HTML that cross: Matrix events are limited to 64 KiB in all.
Longer text is cut (and says so); longer HTML is left out, the text stands for it."""
MAX_THREAD = 20
"""Message-IDs of ``In-Reply-To``/``References`` looked up for a reply's parent."""
MAX_HTML_DEPTH = MAX_DEPTH
"""Elements nested in a mail's HTML: deeper is refused as malformed."""
MAX_ADDRESS = 254
"""Characters of a From address (RFC 5321's limit on a path, less its angle brackets)."""
TRUNCATED = "\n[…truncated]"
QUOTE_SUMMARY = "Quoted text"

_FATAL_DEFECTS = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
)
_BASE64_DEFECTS = (
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64LengthDefect,
)
_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
"""``<left@right>`` in printable ASCII, as RFC 5322 has it: a Message-ID goes into the headers of
every mail that answers it."""
_REPLY_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|antw|sv|r[ée]f|r[ée]p|wg|tr|fwd?)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_WINDOWS_1252 = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "l1": "cp1252",
}
_IMAGE_WITHOUT_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
_TOO_DEEP = "(nested too deeply)"


class MalformedMail(ValueError):
    """A mail that cannot be bridged; the message is the reason, fit for an SMTP reply."""


@dataclass(frozen=True)
class MailAttachment:
    index: int
    """Position among the mail's attachments, from 1."""
    name: str
    mimetype: str
    data: bytes

    @property
    def kind(self) -> AttachmentKind:
        major = self.mimetype.split("/", 1)[0]
        return {
            "image": AttachmentKind.IMAGE,
            "video": AttachmentKind.VIDEO,
            "audio": AttachmentKind.AUDIO,
        }.get(major, AttachmentKind.FILE)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    """``<id@host>``; derived from the content when the mail has none, so that a redelivered
    mail without one is still recognised."""
    from_address: str
    """Lower-cased."""
    from_name: str
    """The From display name, or the address when there is none."""
    subject: str
    text: str
    """What the author wrote, without the quoted conversation."""
    html: str | None
    """Sanitized HTML of the same, with the quoted conversation folded into ``<details>``;
    None for a plain-text mail that quotes nothing."""
    attachments: tuple[MailAttachment, ...]
    thread: tuple[str, ...]
    """Message-IDs this mail answers, most likely parent first: ``In-Reply-To``, then
    ``References`` from the newest."""
    auto_submitted: bool
    """An automatic reply or notification (``Auto-Submitted``): never bridged."""

    @property
    def is_reply_subject(self) -> bool:
        return bool(_REPLY_SUBJECT.match(self.subject))


def _text(value: str) -> str:
    """Header text with the raw 8-bit bytes a mail may carry (which the email package keeps as
    surrogates) read as UTF-8, or else as Windows-1252."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _one_line(value: object) -> str:
    return one_line(_text(str(value or "")))


def _header(msg: Message, name: str) -> str:
    """A header's value as the email package reads it ("" when there is none); raises
    `MalformedMail` naming the header when it cannot be read."""
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except RecursionError:
        raise MalformedMail(f"unreadable {name} header {_TOO_DEEP}") from None
    except Exception:  # the header parsers raise IndexError, OverflowError… on hostile input
        raise MalformedMail(f"unreadable {name} header") from None


def _decode(part: Message) -> str:
    """A text part's content in its declared charset; mail that lies about its charset (or names
    none) is read as UTF-8 and then as Windows-1252, never refused for it."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    # As browsers do (WHATWG Encoding), Latin-1 labels mean Windows-1252: Outlook's dashes
    # and quotes are there.
    charset = _WINDOWS_1252.get(charset, charset)
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", errors="replace")


def _unflow(text: str, delsp: bool) -> str:
    """Undo ``format=flowed`` (RFC 3676): a line ending in a space continues on the next."""
    lines: list[str] = []
    joining = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if joining and lines:
            lines[-1] += line
        else:
            lines.append(line)
        joining = line.endswith(" ") and line != "-- " and not line.startswith(">")
        if joining and delsp:
            lines[-1] = lines[-1][:-1]
    return "\n".join(lines)


def _plain(part: Message) -> str:
    text = _decode(part)
    if part.get_param("format", "", header="content-type") == "flowed":
        delsp = str(part.get_param("delsp", "no", header="content-type")).lower() == "yes"
        text = _unflow(text, delsp)
    return text.replace("\r\n", "\n")


def _walk(msg: Message) -> Iterator[Message]:
    for count, part in enumerate(msg.walk(), 1):
        if count > MAX_PARTS:
            raise MalformedMail(f"more than {MAX_PARTS} MIME parts")
        yield part


def _check_structure(msg: Message) -> None:
    for part in _walk(msg):
        for defect in part.defects:
            if isinstance(defect, _FATAL_DEFECTS):
                raise MalformedMail(f"broken MIME structure: {type(defect).__name__}")


def _safe_name(name: str | None, mimetype: str, index: int) -> str:
    """The attachment's own file name without any directories; made up when it has none."""
    if name:
        name = PureWindowsPath(PurePosixPath(_one_line(name)).name).name.strip(". ")
    if not name:
        extension = mimetypes.guess_extension(mimetype) or ".bin"
        name = f"attachment-{index}{extension}"
    return name[:200]


def _parts(msg: Message) -> Iterator[Message]:
    """The leaf parts of a mail, plus each forwarded mail (``message/rfc822``) as a whole: a
    forward travels as one ``.eml`` attachment instead of being taken apart."""
    for part in _walk(msg):
        if part is not msg and part.get_content_type() == "message/rfc822":
            yield part
        elif not part.is_multipart():
            yield part


def _forwarded(parts: list[Message]) -> set[int]:
    """Ids of the parts inside forwarded mails, which their ``.eml`` attachment already holds."""
    inside: set[int] = set()
    for part in parts:
        if part.get_content_type() == "message/rfc822":
            inside.update(id(p) for p in part.walk() if p is not part)
    return inside


def _attachment_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        message = inner[0] if isinstance(inner, list) and inner else inner
        return message.as_bytes() if isinstance(message, Message) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _attachments(msg: EmailMessage, bodies: set[int]) -> tuple[MailAttachment, ...]:
    found: list[MailAttachment] = []
    parts = list(_parts(msg))
    skip = bodies | _forwarded(parts)
    for part in parts:
        if id(part) in skip:
            continue
        mimetype = part.get_content_type()
        filename = part.get_filename()
        if (
            mimetype in ("text/plain", "text/html")
            and not filename
            and (part.get_content_disposition() != "attachment")
        ):
            continue  # an alternative body the client added (e.g. an HTML fragment per part)
        data = _attachment_bytes(part)
        bad = [d for d in part.defects if isinstance(d, _BASE64_DEFECTS)]
        if bad:
            shown = filename or mimetype
            raise MalformedMail(f"attachment {shown!r} is not valid base64")
        if mimetype == "application/octet-stream" and filename:
            mimetype = mimetypes.guess_type(filename)[0] or mimetype
        index = len(found) + 1
        if index > MAX_ATTACHMENTS:
            raise MalformedMail(f"more than {MAX_ATTACHMENTS} attachments")
        found.append(MailAttachment(index, _safe_name(filename, mimetype, index), mimetype, data))
    return tuple(found)


def _message_id(msg: Message, raw: bytes, sender: str) -> str:
    """The mail's Message-ID; derived from what a redelivery keeps when it has none."""
    header = _MSGID.search(_header(msg, "Message-ID"))
    if header is not None and len(header.group()) <= 250:
        return header.group()
    body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    stable = b"\0".join(
        [
            sender.encode(),
            _one_line(_header(msg, "Date")).encode(),
            _one_line(_header(msg, "Subject")).encode(),
            body,
        ]
    )
    return f"<{hashlib.sha256(stable).hexdigest()[:40]}@no-message-id.invalid>"


def _thread(msg: EmailMessage) -> tuple[str, ...]:
    ids: list[str] = []
    for header, newest_first in (("In-Reply-To", False), ("References", True)):
        found = _MSGID.findall(_header(msg, header))
        for msgid in reversed(found) if newest_first else found:
            if msgid not in ids:
                ids.append(msgid)
    return tuple(ids[:MAX_THREAD])


def _sender(msg: Message) -> tuple[str, str]:
    """``(address, name)`` of the From header, which must name exactly one address."""
    _header(msg, "From")
    header = msg["From"]
    addresses: tuple[Any, ...] = tuple(getattr(header, "addresses", ()) or ())
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise MalformedMail("the From header must name exactly one address")
    try:
        address = str(addresses[0].addr_spec).encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        raise MalformedMail("the From address is not UTF-8") from None
    if one_line(address) != address or " " in address or len(address) > MAX_ADDRESS:
        raise MalformedMail("the From address is not one address of at most 254 characters")
    address = address.lower()
    return address, _one_line(addresses[0].display_name) or address


def _clean(html: str) -> str:
    """Sanitized HTML without the ``<img>`` tags the sanitizer emptied (remote images); raises
    `MalformedMail` for HTML nested deeper than `MAX_HTML_DEPTH` (no layout a person made, and
    the sanitizer's time grows with the square of the depth)."""
    if too_deep(html, MAX_HTML_DEPTH):
        raise MalformedMail(f"HTML nested deeper than {MAX_HTML_DEPTH} elements")
    return _IMAGE_WITHOUT_SOURCE.sub("", sanitize(html)).strip()


def _truncate(text: str) -> str:
    data = text.encode()
    if len(data) <= MAX_TEXT_BYTES:
        return text
    cut = MAX_TEXT_BYTES - len(TRUNCATED.encode())
    return data[:cut].decode(errors="ignore") + TRUNCATED


def _body(msg: EmailMessage) -> tuple[str, str | None, set[int]]:
    """``(text, html, ids of the body parts)``: the new text and the folded quote."""
    plain_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    bodies = {id(p) for p in (plain_part, html_part) if p is not None}
    plain = _plain(plain_part) if plain_part is not None else None
    html: str | None = None
    quote_html = ""
    if html_part is not None:
        head, quote = split_html(_decode(html_part))
        html, quote_html = _clean(head), _clean(quote)
        if not html_to_text(html).strip():
            html, quote_html = _clean(head + quote), ""
    if plain is not None:
        text, quote_text = split_plain(plain)
    else:
        text, quote_text = html_to_text(html or ""), ""
    if html is None and quote_text:
        html = text_to_html(text)
        quote_html = f"<blockquote>{text_to_html(quote_text)}</blockquote>"
    if html is not None and quote_html:
        html += f"<details><summary>{QUOTE_SUMMARY}</summary>{quote_html}</details>"
    if html is not None and len(html.encode()) > MAX_HTML_BYTES:
        html = None
    return _truncate(text), html, bodies


@dataclass(frozen=True)
class Head:
    """What the header block of a received mail says about where it comes from: enough to
    decide whether to read the rest."""

    from_address: str
    """Lower-cased, as `ParsedMail.from_address`."""
    message_id: str
    """As `ParsedMail.message_id`."""
    auto_submitted: bool


def _read_headers(msg: Message, raw: bytes) -> tuple[str, str, str, bool]:
    """``(from address, from name, Message-ID, auto-submitted)``, after checking that the
    headers the bridge relies on can be read."""
    address, name = _sender(msg)
    _header(msg, "Date")
    auto = _one_line(_header(msg, "Auto-Submitted")).lower()
    return address, name, _message_id(msg, raw, address), bool(auto) and auto != "no"


def read_head(raw: bytes, end: int) -> Head:
    """Read only the header block of a mail (``raw[:end]``, as `connectors.email.head` found
    it). Raises `MalformedMail` as `parse_mail` does for the same headers."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw[:end], headersonly=True)
    except RecursionError:
        raise MalformedMail(f"unreadable Content-Type header {_TOO_DEEP}") from None
    except Exception as exc:  # the parser is lenient; anything it raises is a broken mail
        raise MalformedMail(f"unreadable headers ({type(exc).__name__})") from None
    address, _name, message_id, auto = _read_headers(msg, raw)
    return Head(address, message_id, auto)


def parse_mail(raw: bytes) -> ParsedMail:
    """Read a received mail. Raises `MalformedMail`, and nothing else, for what cannot be
    bridged: a broken MIME structure, no single From address, an unreadable header the bridge
    relies on, undecodable attachments, absurd part counts or nesting."""
    try:
        return _parse(raw)
    except MalformedMail:
        raise
    except RecursionError:
        raise MalformedMail(f"unreadable Content-Type header or MIME parts {_TOO_DEEP}") from None
    except Exception as exc:  # the email package is lenient, but raises all kinds of errors
        raise MalformedMail(f"unreadable MIME content ({type(exc).__name__})") from None


def _parse(raw: bytes) -> ParsedMail:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    _check_structure(msg)
    address, name, message_id, auto = _read_headers(msg, raw)
    text, html, bodies = _body(msg)
    attachments = _attachments(msg, bodies)
    return ParsedMail(
        message_id=message_id,
        from_address=address,
        from_name=name,
        subject=_one_line(_header(msg, "Subject")),
        text=text,
        html=html,
        attachments=attachments,
        thread=_thread(msg),
        auto_submitted=auto,
    )


def message_remote_id(link_id: str, message_id: str, attachment: int = 0) -> str:
    """The ID of a mail's event on an email network (see the module docstring)."""
    base = f"{link_id}/{message_id}"
    return f"{base}#{attachment}" if attachment else base


def header_message_id(remote_id: str) -> str:
    """The Message-ID inside an email network's event ID, for ``In-Reply-To``/``References``."""
    return remote_id.split("/", 1)[-1].split("#", 1)[0]


@dataclass(frozen=True)
class Doubt:
    """How a mail is marked whose sender DKIM and SPF did not confirm (the ``mark`` policy),
    in the network's language: ``label`` after the sender's name, ``warning`` above the text."""

    label: str
    warning: str


def mail_events(
    mail: ParsedMail,
    *,
    link_id: str,
    network: str,
    address: str,
    spool_key: str,
    reply_to: str | None,
    doubt: Doubt | None,
) -> list[Event]:
    """The events one link gets for a mail sent to its ``address``.

    ``reply_to`` is the ID (on this network) of the bridged message the mail answers, if any:
    then the subject is left out, as the reply already shows what it is about. A sender in
    ``doubt`` gets an ID that no ``people`` entry can match, the doubt's label after their name
    and its warning above the text.
    """
    name, user_id = mail.from_name, mail.from_address
    if doubt is not None:
        name, user_id = f"{name} ({doubt.label})", f"unverified:{mail.from_address}"
    sender = Sender(network=network, user_id=user_id, display_name=name)
    text, html = mail.text, mail.html
    if mail.subject and reply_to is None:
        text = f"{mail.subject}\n\n{text}" if text else mail.subject
        html = f"<p><strong>{escape(mail.subject)}</strong></p>" + (
            html if html is not None else text_to_html(mail.text)
        )
    if doubt is not None:
        text = f"{doubt.warning}\n\n{text}"
        html = f"<p><em>{escape(doubt.warning)}</em></p>" + (
            html if html is not None else text_to_html(mail.text)
        )
    events: list[Event] = []
    # The subject, for the classification marks a mail may bear in it (`bridge.link_policy`):
    # they mark its files too.
    extra = {"subject": mail.subject} if mail.subject else {}
    event = partial(Event, kind=Kind.MESSAGE, link_id=link_id, network=network, room_id=address,
                    sender=sender, extra=extra)  # fmt: skip
    if mail.text.strip() or mail.subject or doubt is not None:
        remote_id = message_remote_id(link_id, mail.message_id)
        events.append(event(remote_id=remote_id, text=text, html=html, reply_to=reply_to))
    for att in mail.attachments:
        first = not events
        events.append(
            event(
                remote_id=message_remote_id(link_id, mail.message_id, 0 if first else att.index),
                reply_to=reply_to if first else None,
                attachment=Attachment(
                    kind=att.kind,
                    name=att.name,
                    mimetype=att.mimetype,
                    size=len(att.data),
                    ref=f"{spool_key}/{att.index}",
                ),
            )
        )
    return events
