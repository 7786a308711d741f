"""Tests of connectors.email.parse and .quotes: received mail → bridge events.

The samples in ``tests/email_samples/`` are written the way the clients produce them:
Thunderbird (format=flowed plain text plus HTML with ``moz-cite-prefix``), Outlook (Latin-1
quoted-printable, ``divRplyFwdMsg`` and the "De :/Envoyé :" header block), Gmail (attribution
wrapped at 76 columns, ``gmail_quote``) and a mail mixing Latin-1 quoted-printable text,
Windows-1252 base64 HTML, RFC 2047 and RFC 2231 encoded names and two base64 attachments.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.events import AttachmentKind, Event, Kind
from connectors.email.parse import (
    MAX_HTML_DEPTH,
    MAX_TEXT_BYTES,
    Doubt,
    MalformedMail,
    ParsedMail,
    header_message_id,
    mail_events,
    message_remote_id,
    parse_mail,
    read_head,
)
from connectors.email.quotes import split_plain

SAMPLES = Path(__file__).parent / "email_samples"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a2dd0b4a0000000049454e44ae426082"
)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def mail(headers: str, body: str = "Hallo\n") -> bytes:
    return (headers.strip() + "\n\n" + body).replace("\n", "\r\n").encode()


def events_of(
    parsed: ParsedMail,
    *,
    address: str = "wg@l.test",
    reply_to: str | None = None,
    doubt: Doubt | None = None,
) -> list[Event]:
    """The events link ``wg`` on network ``mail`` gets for ``parsed``, its files spooled at k…k."""
    return mail_events(
        parsed,
        link_id="wg",
        network="mail",
        address=address,
        spool_key="k" * 32,
        reply_to=reply_to,
        doubt=doubt,
    )


def test_thunderbird_reply_is_trimmed_and_threaded() -> None:
    parsed = parse_mail(sample("thunderbird-reply.eml"))
    assert parsed.from_address == "claire.martin@anssi.test"
    assert parsed.from_name == "Claire Martin"
    assert parsed.subject == "Re: [cyber-wg] Entwurf der Gemeinsamen Erklärung"
    assert parsed.is_reply_subject
    assert parsed.message_id == "<3f1c2b7e-8a45-4d7e-9c11-5b0e6f2a9d41@anssi.test>"
    assert parsed.thread == (
        "<171023555.def@lists.passerelle.test>",
        "<171023001.abc@lists.passerelle.test>",
    )
    # format=flowed: the soft line break after "würde ich" is undone.
    assert parsed.text == (
        "Hallo Max,\n\ndanke für den Entwurf. Für mich passt Absatz 2 so, Absatz 3 würde ich "
        "noch kürzen.\n\nGrüße\nClaire"
    )
    assert parsed.html is not None
    new, _, quote = parsed.html.partition("<details>")
    assert "<b>Absatz 2</b>" in new and "Hier der Entwurf" not in new
    assert quote.startswith("<summary>Quoted text</summary>")
    assert "Hier der Entwurf der gemeinsamen Erklärung." in quote
    assert "moz-cite-prefix" not in parsed.html and "cite=" not in parsed.html
    assert parsed.attachments == ()


def test_outlook_reply_in_latin1_quoted_printable() -> None:
    parsed = parse_mail(sample("outlook-reply.eml"))
    assert parsed.from_name == "Dupont, Jean"
    assert parsed.subject == "RE: [cyber-wg] Réunion de jeudi"
    assert parsed.text == (
        "Bonjour,\n\nJeudi 14h me convient très bien.\n\nCordialement,\nJean Dupont\n"
        "Ministère de l'Intérieur"
    )
    assert parsed.html is not None
    new, _, quote = parsed.html.partition("<details>")
    assert "<b>très bien</b>" in new
    assert "Treffen wir uns" not in new and "Treffen wir uns am Donnerstag" in quote
    assert "<style" not in parsed.html and "P {margin-top" not in parsed.html
    assert parsed.thread == ("<171030000.ghi@lists.passerelle.test>",)


def test_gmail_reply_with_wrapped_attribution_and_hostile_html() -> None:
    parsed = parse_mail(sample("gmail-reply-fr.eml"))
    assert parsed.text == "J'ajouterais un point sur l'exercice commun."
    assert parsed.html is not None
    new = parsed.html.partition("<details>")[0]
    assert "exercice commun" in new
    assert "<script" not in parsed.html and "alert" not in parsed.html
    assert "tracker.example" not in parsed.html and "<img" not in parsed.html
    assert "Vorschlag für die Tagesordnung" in parsed.html.partition("<details>")[2]


def test_charset_mix_and_attachments() -> None:
    parsed = parse_mail(sample("latin1-attachments.eml"))
    assert parsed.from_name == "Jürgen Müller"
    assert parsed.subject == "Lagebericht März – Grüße"
    # Declared ISO-8859-1, written by a Windows client: 0x96 is an en dash.
    assert (
        parsed.text
        == "Guten Tag,\n\nanbei der Lagebericht für März – mit Skizze.\n\nJürgen Müller\nBSI"
    )
    assert parsed.html == (
        "<p>Guten Tag,</p><p>anbei der <i>Lagebericht</i> für März – mit Skizze.</p>"
        "<p>Jürgen Müller<br>BSI</p>"
    )
    pdf, png = parsed.attachments
    assert (pdf.index, pdf.name, pdf.mimetype, pdf.kind) == (
        1,
        "Lagebericht März.pdf",
        "application/pdf",
        AttachmentKind.FILE,
    )
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.data.endswith(b"%%EOF\n")
    assert (png.index, png.name, png.mimetype, png.kind) == (
        2,
        "Skizze übersicht.png",
        "image/png",
        AttachmentKind.IMAGE,
    )
    assert png.data == PNG


def test_events_of_a_mail_with_attachments() -> None:
    parsed = parse_mail(sample("latin1-attachments.eml"))
    events = events_of(parsed, address="wg@lists.test")
    text, pdf, png = events
    msgid = "<20240314080000.12345@mail.bsi.test>"
    assert [e.remote_id for e in events] == [f"wg/{msgid}", f"wg/{msgid}#1", f"wg/{msgid}#2"]
    assert all(e.kind is Kind.MESSAGE and e.room_id == "wg@lists.test" for e in events)
    assert text.sender.user_id == "juergen.mueller@bsi.test"
    assert text.sender.display_name == "Jürgen Müller"
    assert text.text.startswith("Lagebericht März – Grüße\n\nGuten Tag,")
    assert text.html is not None and text.html.startswith(
        "<p><strong>Lagebericht März – Grüße</strong></p><p>Guten Tag,</p>"
    )
    assert pdf.attachment is not None and pdf.attachment.ref == "k" * 32 + "/1"
    assert pdf.attachment.name == "Lagebericht März.pdf" and pdf.attachment.size == 125
    assert png.attachment is not None and png.attachment.kind is AttachmentKind.IMAGE
    assert png.text == "" and png.reply_to is None
    # The subject goes with every event of the mail: a classification tag in it marks the files.
    assert all(e.extra == {"subject": "Lagebericht März – Grüße"} for e in events)


def test_reply_leaves_the_subject_out_and_points_at_its_parent() -> None:
    parsed = parse_mail(sample("thunderbird-reply.eml"))
    parent = message_remote_id("wg", "<171023555.def@lists.passerelle.test>")
    (event,) = events_of(parsed, reply_to=parent)
    assert event.reply_to == "wg/<171023555.def@lists.passerelle.test>"
    assert event.text.startswith("Hallo Max,")
    assert event.extra["subject"].startswith("Re:")  # left out of the text, still classified
    assert header_message_id(parent) == "<171023555.def@lists.passerelle.test>"
    assert header_message_id(parent + "#2") == "<171023555.def@lists.passerelle.test>"


def test_unverified_sender_is_marked_and_matches_no_person() -> None:
    parsed = parse_mail(sample("thunderbird-reply.eml"))
    doubt = Doubt("nicht bestätigt", "⚠️ <claire.martin@anssi.test> ist nicht bestätigt")
    (event,) = events_of(parsed, doubt=doubt)
    assert event.sender.user_id == "unverified:claire.martin@anssi.test"
    assert event.sender.display_name == "Claire Martin (nicht bestätigt)"
    assert event.text.startswith("⚠️ <claire.martin@anssi.test> ist nicht bestätigt\n\n")
    assert event.html is not None and event.html.startswith(
        "<p><em>⚠️ &lt;claire.martin@anssi.test&gt; ist nicht bestätigt</em></p>"
    )


def test_attachment_only_mail_starts_with_the_attachment() -> None:
    raw = mail(
        """
From: a@b.test
Message-ID: <only@b.test>
Content-Type: image/png; name=plan.png
Content-Disposition: attachment; filename="../../etc/plan.png"
Content-Transfer-Encoding: base64
""",
        "iVBORw0KGgo=\n",
    )
    parsed = parse_mail(raw)
    (event,) = events_of(parsed)
    assert event.remote_id == "wg/<only@b.test>"
    assert event.attachment is not None and event.attachment.name == "plan.png"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            mail("From: a@b.test\nContent-Type: multipart/mixed", "--x\n\nhi\n--x--\n"),
            "NoBoundaryInMultipartDefect",
        ),
        (
            mail('From: a@b.test\nContent-Type: multipart/mixed; boundary="zz"', "no parts here\n"),
            "StartBoundaryNotFoundDefect",
        ),
        (mail("To: wg@l.test\nSubject: who?"), "exactly one address"),
        (mail("From: a@b.test, c@d.test"), "exactly one address"),
        (mail("From: not an address"), "exactly one address"),
        (
            mail(
                'From: a@b.test\nContent-Type: multipart/mixed; boundary="b"',
                "--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/pdf\n"
                'Content-Disposition: attachment; filename="x.pdf"\n'
                "Content-Transfer-Encoding: base64\n\n%%%notbase64!!!\n--b--\n",
            ),
            "not valid base64",
        ),
    ],
)
def test_malformed_mail_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMail, match=reason):
        parse_mail(raw)


def test_too_many_parts_is_malformed() -> None:
    parts = "".join(f"--b\nContent-Type: text/plain\n\npart {i}\n" for i in range(120))
    raw = mail('From: a@b.test\nContent-Type: multipart/mixed; boundary="b"', parts + "--b--\n")
    with pytest.raises(MalformedMail, match="more than 100 MIME parts"):
        parse_mail(raw)


def test_missing_message_id_is_derived_from_the_content() -> None:
    first = mail("Received: from a by b\nFrom: a@b.test\nSubject: Hi\nDate: Mon, 1 Jan 2024")
    again = mail("Received: from c by d\nFrom: a@b.test\nSubject: Hi\nDate: Mon, 1 Jan 2024")
    other = mail("From: a@b.test\nSubject: Hi\nDate: Mon, 1 Jan 2024", "Something else\n")
    ids = [parse_mail(raw).message_id for raw in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].endswith("@no-message-id.invalid>")


def test_charsets_that_lie_or_are_unknown() -> None:
    undeclared = mail("From: a@b.test\nContent-Type: text/plain", "Grüße aus Köln\n")
    assert parse_mail(undeclared).text == "Grüße aus Köln"
    unknown = mail("From: a@b.test\nContent-Type: text/plain; charset=x-no-such-charset", "Grüße\n")
    assert parse_mail(unknown).text == "Grüße"
    latin1_as_utf8 = mail("From: a@b.test\nContent-Type: text/plain; charset=utf-8").replace(
        b"Hallo", "Grüße".encode("latin-1")
    )
    assert parse_mail(latin1_as_utf8).text == "Grüße"


def test_automatic_replies_are_recognised() -> None:
    raw = mail("From: a@b.test\nAuto-Submitted: auto-replied\nSubject: Abwesenheitsnotiz")
    assert parse_mail(raw).auto_submitted
    assert not parse_mail(mail("From: a@b.test\nAuto-Submitted: no")).auto_submitted


@pytest.mark.parametrize(
    ("text", "reply", "quote_start"),
    [
        ("Ok.\n\nAm 12.03.24 um 10:15 schrieb Max:\n> Entwurf\n", "Ok.", "Am 12.03.24"),
        (
            "Merci !\n\nLe mar. 12 mars 2024 à 10:15, Jean <j@x.fr> a écrit :\n> Projet\n",
            "Merci !",
            "Le mar.",
        ),
        (
            "Thanks.\n\n-----Original Message-----\nFrom: Max\nSent: Tuesday\n\nDraft\n",
            "Thanks.",
            "-----Original Message-----",
        ),
        ("Passt.\n\n> zitiert ohne Kopfzeile\n> zweite Zeile\n", "Passt.", "> zitiert"),
        ("Nur Text,\nkein Zitat.\n", "Nur Text,\nkein Zitat.", ""),
        ("> erst das Zitat\nDann die Antwort\n", "> erst das Zitat\nDann die Antwort", ""),
    ],
)
def test_split_plain(text: str, reply: str, quote_start: str) -> None:
    new, quote = split_plain(text)
    assert new == reply
    assert quote.startswith(quote_start)


def test_overlong_text_is_cut_and_overlong_html_left_out() -> None:
    long_text = "Grüße " * 10000
    raw = mail("From: a@b.test\nContent-Type: text/plain; charset=utf-8", long_text)
    parsed = parse_mail(raw)
    assert parsed.text.endswith("\n[…truncated]")
    assert len(parsed.text.encode()) <= MAX_TEXT_BYTES
    html = mail("From: a@b.test\nContent-Type: text/html; charset=utf-8", f"<p>{long_text}</p>")
    parsed = parse_mail(html)
    assert parsed.html is None and parsed.text.startswith("Grüße Grüße")


def test_a_forwarded_mail_travels_whole_as_an_eml_attachment() -> None:
    raw = mail(
        'From: a@b.test\nMessage-ID: <fwd@b.test>\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain; charset=utf-8\n\nSiehe unten.\n"
        "--b\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
        "From: c@d.test\nSubject: Original\nContent-Type: text/plain\n\nDer Originaltext.\n"
        "--b--\n",
    )
    parsed = parse_mail(raw)
    assert parsed.text == "Siehe unten."
    (forwarded,) = parsed.attachments
    assert (forwarded.name, forwarded.mimetype) == ("attachment-1.eml", "message/rfc822")
    assert b"Subject: Original" in forwarded.data and b"Der Originaltext." in forwarded.data


HOSTILE = [
    (
        b"From: J\xfcrgen <m\xe4x@b.test>\r\nSubject: Hallo\r\n\r\nHallo\r\n",
        "the From address is not UTF-8",
    ),
    (
        mail('From: "a\x01b"@b.test'),
        "the From address is not one address of at most 254 characters",
    ),
    (mail("From: a@b.test\nMessage-ID: <>"), "unreadable Message-ID header"),
    (
        mail("From: a@b.test\nDate: Mon, 1 Jan 100000000000000000000 10:00:00 +0000"),
        "unreadable Date header",
    ),
    (
        mail(f"From: {'(' * 2000}{')' * 2000} a@b.test"),
        "unreadable From header (nested too deeply)",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), HOSTILE)
def test_hostile_headers_are_malformed_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMail) as refused:
        parse_mail(raw)
    assert str(refused.value) == reason
    with pytest.raises(MalformedMail) as refused:
        read_head(raw, raw.index(b"\r\n\r\n") + 4)
    assert str(refused.value) == reason, "the header step says the same"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            mail(f"From: a@b.test\nContent-Type: text/plain {'(' * 2000}{')' * 2000}"),
            "unreadable Content-Type header or MIME parts (nested too deeply)",
        ),
        (
            mail("From: a@b.test\nContent-Type: text/html", "<div>" * 1000 + "x" + "</div>" * 1000),
            f"HTML nested deeper than {MAX_HTML_DEPTH} elements",
        ),
        (
            mail(
                'From: a@b.test\nContent-Type: multipart/mixed; boundary="b"',
                "--b\nContent-Type: text/plain\n\nHallo\n--b\nContent-Type: image/png;"
                f" name*=x{'(' * 2000}\nContent-Disposition: attachment; filename"
                f"={'(' * 2000}{')' * 2000}\n\nxx\n--b--\n",
            ),
            "unreadable Content-Type header or MIME parts (nested too deeply)",
        ),
    ],
)
def test_hostile_content_is_malformed_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMail) as refused:
        parse_mail(raw)
    assert str(refused.value) == reason


def test_html_as_deep_as_a_long_thread_is_kept() -> None:
    html = "<div><blockquote>" * (MAX_HTML_DEPTH // 2) + "Ja" + "</blockquote></div>" * 50
    parsed = parse_mail(mail("From: a@b.test\nContent-Type: text/html", html))
    assert parsed.text == "Ja" or parsed.text.endswith("Ja")
    assert parsed.html is not None and parsed.html.count("<blockquote>") == MAX_HTML_DEPTH // 2


@pytest.mark.parametrize(
    ("raw", "name", "subject"),
    [
        # 8-bit headers as SMTPUTF8 clients (UTF-8) and old Windows mailers (Latin-1) send them.
        (
            b"From: J\xc3\xbcrgen <j@b.test>\r\nSubject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nHallo\r\n",
            "Jürgen",
            "Grüße",
        ),
        (
            b"From: J\xfcrgen \x96 BSI <j@b.test>\r\nSubject: Hallo\r\n\r\nHallo\r\n",
            "Jürgen – BSI",
            "Hallo",
        ),
        # Nothing that would end or turn a line around reaches a room or another mail.
        (
            mail(
                "From: =?utf-8?q?Eve=E2=80=AE_=0D=0AX-Evil:_1?= <e@b.test>\n"
                "Subject: =?utf-8?q?a=E2=80=A8b?="
            ),
            "Eve X-Evil: 1",
            "a b",
        ),
    ],
)
def test_names_and_subjects_are_clean_text(raw: bytes, name: str, subject: str) -> None:
    parsed = parse_mail(raw)
    assert (parsed.from_name, parsed.subject) == (name, subject)
    assert parsed.message_id.endswith("@no-message-id.invalid>")


def test_a_message_id_outside_printable_ascii_is_replaced() -> None:
    parsed = parse_mail(mail("From: a@b.test\nMessage-ID: <a\x01b@c.test>"))
    assert parsed.message_id.endswith("@no-message-id.invalid>")
    assert parse_mail(mail("From: a@b.test\nMessage-ID: <a.b@c.test>")).message_id == "<a.b@c.test>"


def test_the_head_says_what_the_whole_mail_says() -> None:
    raw = mail("From: Claire <Claire@ANSSI.test>\nAuto-Submitted: auto-replied\nSubject: Abwesend")
    head = read_head(raw, raw.index(b"\r\n\r\n") + 4)
    parsed = parse_mail(raw)
    assert (
        (head.from_address, head.message_id, head.auto_submitted)
        == (
            parsed.from_address,
            parsed.message_id,
            parsed.auto_submitted,
        )
        == ("claire@anssi.test", parsed.message_id, True)
    )
