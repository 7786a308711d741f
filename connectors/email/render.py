"""A bridge event → the mail that the link's email members get: pure functions.

Every mail is From ``<name> [<org>] via Passerelle <link address>`` with ``Reply-To`` the link
address, so that answering goes back to the link; it is addressed ``To`` the link address (the
members are only in the envelope, as on a mailing list) and carries ``List-Id`` so clients
can file it and vacation responders stay quiet. ``Message-ID`` is on the bridge's mail domain;
a reply or a correction names its parent in ``In-Reply-To`` and ``References`` so mail clients
thread it. A message in a thread (a Matrix thread, an XMPP ``<thread>``) starts its
``References`` with the thread root's mail, so that the whole thread is one chain in mail
clients, and answers the root where it answers nothing else.

What is mailed: messages (text, and HTML as ``multipart/alternative``; an attachment as a
``multipart/mixed`` part) and edits (a short "Correction:" mail in the thread of the original).
Reactions and redactions are not mailed: a mail per 👍 would drown the conversation, and a mail
cannot be taken back, so announcing a deletion would only repeat what was deleted.
"""

from __future__ import annotations

import re
from datetime import datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime

from bridge.connector import Outgoing
from bridge.events import Event, Kind, Sender
from bridge.html import html_to_text
from bridge.naming import shown_name
from connectors.email.headers import header_text
from connectors.email.parse import header_message_id

BRIDGE_NAME = "Passerelle"
SUBJECT_SUMMARY = 60


class _HeaderClasses(HeaderRegistry):
    """The email package's header registry, keeping the class it makes for each header name:
    the package builds a new class (`type(...)`) for every header of every mail, a sixth of
    the CPU that rendering a mail takes. The class depends on the name only."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


_POLICY = policy.default.clone(header_factory=_HeaderClasses())
"""`email.policy.default` (what `EmailMessage()` takes), with the header classes kept."""

_MIMETYPE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]{0,63})/([a-z0-9][a-z0-9!#$&^_.+-]{0,63})")
"""RFC 6838 type and subtype names; an attachment's MIME type comes from another network."""


def mailed(event: Event) -> bool:
    """Whether this kind of event becomes a mail at all (see the module docstring)."""
    return event.kind in (Kind.MESSAGE, Kind.EDIT)


def sender_label(sender: Sender) -> str:
    """The sender as a From name: as every network shows them (`bridge.naming`), made safe
    for a header."""
    return header_text(shown_name(sender))


def _subject(link_id: str, event: Event) -> str:
    summary = event.summary(SUBJECT_SUMMARY) or "…"
    subject = header_text(f"[{link_id}] {summary}")
    return f"Correction: {subject}" if event.kind is Kind.EDIT else subject


def _texts(event: Event) -> tuple[str, str | None]:
    text, html = event.text, event.html
    if not text and html:
        text = html_to_text(html)
    if not text and event.attachment is not None:
        text = f"[{event.attachment.name}]"
    if event.kind is Kind.EDIT:
        text = f"Correction: {text}"
        html = f"<p><em>Correction:</em></p>{html}" if html else None
    return text, html


def _encodable(text: str) -> str:
    """``text`` without the lone surrogates (which JSON lets through) that UTF-8 cannot hold."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _attachment_type(mimetype: str | None) -> tuple[str, str]:
    """``(maintype, subtype)`` of an attachment: its own when it is a well-formed type of a
    single part, else ``application/octet-stream`` (a ``multipart`` or ``message`` type would
    make the mail's structure lie)."""
    match = _MIMETYPE.fullmatch((mimetype or "").strip().lower())
    if match is None or match.group(1) in ("multipart", "message"):
        return "application", "octet-stream"
    return match.group(1), match.group(2)


def render_mail(
    out: Outgoing,
    *,
    link_id: str,
    address: str,
    message_id: str,
    date: datetime,
    media: bytes | None,
) -> EmailMessage:
    """The mail for one event of link ``link_id`` (whose address is ``address``).

    ``message_id`` is the new mail's ``<id@domain>``; ``out.reply_to`` (a reply),
    ``out.thread`` (its thread's root) or ``out.relates_to`` (an edit) are IDs on the email
    network, as the router resolved them.
    """
    event = out.event
    msg = EmailMessage(policy=_POLICY)
    local, _, domain = address.partition("@")
    name = header_text(link_id)
    msg["From"] = Address(f"{sender_label(event.sender)} via {BRIDGE_NAME}", local, domain)
    msg["To"] = Address(name, local, domain)
    msg["Reply-To"] = Address(name, local, domain)
    msg["Subject"] = _subject(link_id, event)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    parent = out.relates_to if event.kind is Kind.EDIT else out.reply_to or out.thread
    if parent:
        chain = dict.fromkeys(header_message_id(ref) for ref in (out.thread, parent) if ref)
        msg["In-Reply-To"] = header_message_id(parent)
        msg["References"] = " ".join(chain)
    msg["List-Id"] = f"{name} <{local}.{domain}>"
    msg["List-Post"] = f"<mailto:{address}>"
    msg["Precedence"] = "list"
    text, html = _texts(event)
    msg.set_content(_encodable(text), cte="quoted-printable")
    if html:
        msg.add_alternative(
            _encodable(f"<html><body>{html}</body></html>"), subtype="html", cte="quoted-printable"
        )
    att = event.attachment
    if event.kind is Kind.MESSAGE and att is not None and media is not None:
        maintype, subtype = _attachment_type(att.mimetype)
        msg.add_attachment(
            media,
            maintype=maintype,
            subtype=subtype,
            filename=header_text(att.name) or "attachment",
        )
    return msg


def render_notice(
    *, link_id: str, address: str, text: str, message_id: str, date: datetime
) -> EmailMessage:
    """A notice from the bridge itself to a link's email members (a message that could not
    be delivered elsewhere)."""
    msg = EmailMessage(policy=_POLICY)
    local, _, domain = address.partition("@")
    name = header_text(link_id)
    msg["From"] = Address(BRIDGE_NAME, local, domain)
    msg["To"] = Address(name, local, domain)
    msg["Subject"] = header_text(f"[{name}] {header_text(text)[:SUBJECT_SUMMARY]}")
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["List-Id"] = f"{name} <{local}.{domain}>"
    msg.set_content(_encodable(text), cte="quoted-printable")
    return msg
