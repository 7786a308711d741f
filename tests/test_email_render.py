"""Tests of connectors.email.render and .outbound: bridge events → the mail members get, and its
DKIM signature as a receiving server checks it (dkimpy, asking a real DNS server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

import dkim
import pytest

from bridge.connector import DeliveryError, Outgoing
from bridge.events import Attachment, AttachmentKind, Event, Kind, Sender
from connectors.email.config import DkimKey
from connectors.email.outbound import wire_bytes
from connectors.email.parse import parse_mail
from connectors.email.render import mailed, render_notice, sender_label
from tests import samples
from tests.harness.dns import DnsServer, dkim_keypair
from tests.samples import MAIL_DATE, rendered_mail

ADDRESS = "cyber-wg@lists.passerelle.test"
MAX = Sender("bund", "@max:bund.test", "Max Mustermann", person_id="max", org="BMI")
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\nbinary\x00bytes\r\n.\r\nstill binary\n%%EOF\n"


def outgoing(event: Event, reply_to: str | None = None, relates_to: str | None = None) -> Outgoing:
    return samples.outgoing(event, ADDRESS, reply_to=reply_to, relates_to=relates_to)


def message(**fields: Any) -> Event:
    return samples.message(MAX, "cyber-wg", "!r:bund.test", "$e1", "Guten Tag aus Berlin", **fields)


def pdf(name: str = "a.pdf", mimetype: str = "application/pdf") -> Attachment:
    """`PDF` as a file sent from Matrix."""
    return Attachment(AttachmentKind.FILE, name, mimetype, len(PDF), "mxc://bund.test/x")


def render(out: Outgoing, media: bytes | None = None) -> bytes:
    return wire_bytes(rendered_mail(out, media=media), "lists.passerelle.test", None)


def notice(text: str) -> bytes:
    msg = render_notice(
        link_id="cyber-wg",
        address=ADDRESS,
        text=text,
        message_id="<n.1@lists.passerelle.test>",
        date=MAIL_DATE,
    )
    return wire_bytes(msg, "lists.passerelle.test", None)


def test_plain_message_headers() -> None:
    parsed = parse_mail(render(outgoing(message())))
    assert parsed.from_name == "Max Mustermann [BMI] via Passerelle"
    assert parsed.from_address == ADDRESS
    assert parsed.message_id == "<new.1@lists.passerelle.test>"
    assert parsed.subject == "[cyber-wg] Guten Tag aus Berlin"
    assert parsed.text == "Guten Tag aus Berlin"
    assert parsed.html is None
    assert parsed.thread == ()
    raw = render(outgoing(message()))
    assert b"Reply-To: cyber-wg <cyber-wg@lists.passerelle.test>\r\n" in raw
    assert b"List-Id: cyber-wg <cyber-wg.lists.passerelle.test>\r\n" in raw
    assert b"Date: Tue, 12 Mar 2024 09:15:00 +0000\r\n" in raw


def test_reply_carries_in_reply_to_and_references() -> None:
    out = outgoing(message(reply_to="$parent"), reply_to="cyber-wg/<orig.7@anssi.test>")
    raw = render(out)
    assert b"In-Reply-To: <orig.7@anssi.test>\r\n" in raw
    assert b"References: <orig.7@anssi.test>\r\n" in raw
    assert parse_mail(raw).thread == ("<orig.7@anssi.test>",)


def test_html_message_is_multipart_alternative() -> None:
    out = outgoing(message(text="wichtig bitte", html="<b>wichtig</b> <i>bitte</i>"))
    raw = render(out)
    assert b"Content-Type: multipart/alternative" in raw
    parsed = parse_mail(raw)
    assert parsed.text == "wichtig bitte"
    assert parsed.html == "<b>wichtig</b> <i>bitte</i>"


def test_attachment_is_carried_byte_for_byte() -> None:
    raw = render(outgoing(message(text="", attachment=pdf("Lagebericht März.pdf"))), media=PDF)
    parsed = parse_mail(raw)
    (got,) = parsed.attachments
    assert (got.name, got.mimetype, got.data) == ("Lagebericht März.pdf", "application/pdf", PDF)
    assert parsed.text == "[Lagebericht März.pdf]"
    assert parsed.subject == "[cyber-wg] Lagebericht März.pdf"


def test_edit_is_a_correction_in_the_thread_of_the_original() -> None:
    edit = message(kind=Kind.EDIT, relates_to="$e1", text="Guten Abend aus Berlin")
    raw = render(outgoing(edit, relates_to="cyber-wg/<first.2@lists.passerelle.test>"))
    parsed = parse_mail(raw)
    assert parsed.subject == "Correction: [cyber-wg] Guten Abend aus Berlin"
    assert parsed.text == "Correction: Guten Abend aus Berlin"
    assert parsed.thread == ("<first.2@lists.passerelle.test>",)


def test_reactions_and_redactions_are_not_mailed() -> None:
    assert mailed(message())
    assert mailed(message(kind=Kind.EDIT, relates_to="$e1"))
    assert not mailed(message(kind=Kind.REACTION, relates_to="$e1", reaction="👍"))
    assert not mailed(message(kind=Kind.REDACTION, relates_to="$e1"))


@pytest.mark.parametrize(
    ("sender", "label"),
    [
        (MAX, "Max Mustermann [BMI]"),
        (
            Sender("tchap", "@j:t", "Jean Dupont [Intérieur]", org="Intérieur", suffix=" (Tchap)"),
            "Jean Dupont [Intérieur] (Tchap)",
        ),
        (Sender("bund", "@e:b", "Erika\nMusterfrau", suffix=" (Bund)"), "Erika Musterfrau (Bund)"),
        (Sender("bund", "@nobody:b", ""), "@nobody:b"),
    ],
)
def test_sender_label(sender: Sender, label: str) -> None:
    assert sender_label(sender) == label


def test_header_injection_through_names_is_impossible() -> None:
    evil = Sender("bund", "@x:b", "Eve\r\nBcc: everyone@example.org", org="X\nY")
    raw = render(outgoing(message(sender=evil, text="hi\r\nBcc: more@example.org")))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head


ENCODED_CRLF = "=?utf-8?q?Erika=0D=0AReply-To:_attacker=40evil=2Eexample?="
HEADERS = [
    "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Id", "List-Post",
    "Precedence", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
]  # fmt: skip


def headers_of(raw: bytes) -> list[tuple[str, str]]:
    """Every header field of the mail's top part, as a receiving server splits them."""
    return BytesHeaderParser(policy=policy.compat32).parsebytes(raw).items()


def test_encoded_words_in_a_display_name_cannot_add_headers() -> None:
    erika = Sender("bund", "@erika:bund.test", ENCODED_CRLF, org="BMI")
    raw = render(outgoing(message(sender=erika, text=ENCODED_CRLF)))
    assert [name for name, _ in headers_of(raw)] == HEADERS
    parsed = parse_mail(raw)
    assert parsed.from_name == "Erika Reply-To: attacker@evil.example [BMI] via Passerelle"
    assert parsed.from_address == ADDRESS
    assert parsed.subject == "[cyber-wg] Erika Reply-To: attacker@evil.example"


def test_every_name_the_mail_carries_is_clean() -> None:
    att = pdf("=?utf-8?q?plan=0D=0AX-Evil:_1?=.pdf\u202e", "text/plain\r\nX-Evil: 2")
    evil = Sender("bund", "@e:b", "\u202eevE", org=ENCODED_CRLF, suffix="\u2028(Bund)")
    out = outgoing(message(sender=evil, text="", attachment=att))
    msg = rendered_mail(out, link_id="wg\u2029=?utf-8?q?=0A?=", media=PDF)
    raw = wire_bytes(msg, "lists.passerelle.test", None)
    assert [name for name, _ in headers_of(raw)] == [
        *HEADERS[:9], "MIME-Version", "Content-Type"
    ]  # fmt: skip
    (got,) = parse_mail(raw).attachments
    assert (got.name, got.mimetype) == ("plan X-Evil: 1.pdf", "application/pdf")
    part = list(msg.iter_attachments())[0]
    assert part.get_content_type() == "application/octet-stream"
    assert [name for name, _ in part.items()] == [
        "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version"
    ]  # fmt: skip


@pytest.mark.parametrize("mimetype", ["multipart/mixed", "message/delivery-status", "", "pdf"])
def test_an_attachment_type_that_would_break_the_structure_is_octet_stream(
    mimetype: str,
) -> None:
    att = Attachment(AttachmentKind.FILE, "a.bin", mimetype, len(PDF), "mxc://b/x")
    raw = render(outgoing(message(text="", attachment=att)), media=PDF)
    (got,) = parse_mail(raw).attachments
    assert (got.mimetype, got.data) == ("application/octet-stream", PDF)


def test_a_mail_whose_header_would_break_a_line_is_not_sent() -> None:
    msg = rendered_mail(outgoing(message()))
    msg.set_raw("X-Injected", "a\r\nBcc: everyone@example.org")
    with pytest.raises(DeliveryError) as refused:
        wire_bytes(msg, "lists.passerelle.test", None)
    assert refused.value.permanent
    assert str(refused.value) == (
        "not sent: its X-Injected header would hold a line break or control character"
    )
    del msg["X-Injected"]
    msg.replace_header("Subject", "a\x00b")
    with pytest.raises(DeliveryError, match="its Subject header"):
        wire_bytes(msg, "lists.passerelle.test", None)


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    server.start()
    yield server
    server.stop()


def test_signed_mail_verifies_with_the_published_key(dns_server: DnsServer) -> None:
    keys = dkim_keypair()
    dns_server.publish("pass1._domainkey.lists.passerelle.test", keys.record)
    out = outgoing(message(html="<p>Grüße</p>", attachment=pdf()))
    msg = rendered_mail(out, message_id="<s.1@lists.passerelle.test>", media=PDF)
    signed = wire_bytes(msg, "lists.passerelle.test", DkimKey("pass1", keys.private_pem))
    assert signed.startswith(b"DKIM-Signature: ")
    assert b"d=lists.passerelle.test" in signed and b"s=pass1" in signed
    assert dkim.verify(signed, dnsfunc=dns_server.txt)
    assert not dkim.verify(signed.replace(b"Gr=C3=BC=C3=9Fe", b"Hallo"), dnsfunc=dns_server.txt)


def test_notice_is_marked_automatic() -> None:
    parsed = parse_mail(notice("⚠️ Message did not arrive"))
    assert parsed.auto_submitted
    assert parsed.from_name == "Passerelle"
    assert parsed.text == "⚠️ Message did not arrive"


def test_notice_subject_is_clean() -> None:
    raw = notice(f"⚠️ Message from {ENCODED_CRLF} could not be delivered")
    assert [name for name, _ in headers_of(raw)] == [
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "List-Id",
        "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
    ]  # fmt: skip
    assert parse_mail(raw).subject == (
        "[cyber-wg] ⚠️ Message from Erika Reply-To: attacker@evil.example could"
    )
