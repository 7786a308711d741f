"""Generated hostile mail against the email connector's readers and writers.

- Reading (`parse_mail`, `read_head`, `header_end`): whatever the bytes, the only error is the
  documented one (`MalformedMail`, `OverLimit`), which the SMTP server answers with a 5xx;
  anything else would be a 451 and a traceback, and the sender would retry for days.
- Writing (`render_mail`, `render_notice`): whatever a name, an organisation, a text, a file
  name or a link id holds, every header of the mail is one line free of control characters, and
  the mail has exactly the headers it should (none injected); its Subject and its sender's name
  read back as they were written, and no line is longer than RFC 5322 allows.
"""

from __future__ import annotations

import base64
import unicodedata
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32, default
from email.utils import parseaddr
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.connector import Outgoing
from bridge.events import Attachment, AttachmentKind, Event, Kind, Sender
from connectors.email.config import InboundSettings
from connectors.email.folding import POLICY
from connectors.email.head import HeaderLimits, OverLimit, header_end
from connectors.email.headers import header_text
from connectors.email.outbound import wire_bytes
from connectors.email.parse import MalformedMail, parse_mail, read_head
from connectors.email.render import render_mail, render_notice

SAMPLES = sorted((Path(__file__).parents[1] / "email_samples").glob("*.eml"))
ADDRESS = "wg@lists.passerelle.test"
DATE = datetime(2024, 3, 12, 9, 15, tzinfo=UTC)
LIMITS = HeaderLimits.of(InboundSettings("127.0.0.1", 2525, None, None, 1 << 20))
ENCODED_CRLF = "=?utf-8?q?Erika=0D=0AReply-To:_attacker=40evil=2Eexample?="
"""The display name that once put a ``Reply-To`` of its own into a DKIM-signed mail."""


def crlf(text: str) -> bytes:
    """The text as mail bytes: CRLF lines; surrogates as the raw bytes they stand for, or as
    the invalid UTF-8 of a lone surrogate."""
    text = text.replace("\n", "\r\n")
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


# Pieces of hostile headers

CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "utf-7", "x-unknown", "utf-8*de", "", "?"]
LINE_BREAKS = st.sampled_from(["\r\n", "\r", "\n", "\x00", "\u2028", "\x85", "\u202e"])


@st.composite
def encoded_words(draw: st.DrawFn) -> str:
    """An RFC 2047 encoded word of any bytes (line breaks likely), in Q or B encoding."""
    data = draw(st.one_of(st.binary(max_size=30), st.just(b"a\r\nReply-To: x@evil.example")))
    charset = draw(st.sampled_from(CHARSETS))
    if draw(st.booleans()):
        payload = "".join(f"={b:02X}" for b in data)
        return f"=?{charset}?q?{payload}?="
    return f"=?{charset}?b?{base64.b64encode(data).decode()}?="


NAMES = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=()), max_size=40),  # lone surrogates too
    encoded_words(),
    st.lists(st.one_of(encoded_words(), st.text(max_size=8), LINE_BREAKS), max_size=6).map("".join),
)
NESTED = st.integers(1, 1500).map(lambda n: "(" * n + "x" + ")" * n)
DATES = st.one_of(
    st.just("Tue, 12 Mar 2024 10:00:00 +0100"),
    st.integers(-(10**25), 10**25).map(lambda y: f"Mon, 1 Jan {y} 10:00:00 +0000"),
    st.tuples(st.integers(-99, 99), st.integers(-99, 99), st.integers(-99999, 99999)).map(
        lambda t: f"Mon, {t[0]} Feb 2024 {t[1]}:61:00 {t[2]:+05d}"
    ),
    st.text(max_size=30),
)
MESSAGE_IDS = st.one_of(
    st.just("<>"),
    st.just("<<a@b>>"),
    st.text(max_size=30).map(lambda t: f"<{t}@x.test>"),
    st.text(max_size=30),
)
FROMS = st.one_of(
    st.just("claire@anssi.test"),
    NAMES.map(lambda n: f"{n} <claire@anssi.test>"),
    NAMES.map(lambda n: f'"{n}" <c@a.test>'),
    NESTED.map(lambda c: f"{c} a@b.test"),
    st.text(max_size=40),
    st.just("a@b.test, c@d.test"),
    st.just("J\udcfcrgen <m\udce4x@b.test>"),
    st.just("g: a@b.test;"),
)


@st.composite
def content_types(draw: st.DrawFn, maintype: str, subtype: str) -> str:
    params = draw(
        st.lists(
            st.one_of(
                st.sampled_from(CHARSETS).map(lambda c: f"charset={c}"),
                st.just("format=flowed; delsp=yes"),
                NAMES.map(lambda n: f'name="{n}"'),
                NAMES.map(lambda n: f"name*=utf-8''{n}"),
                NESTED,
            ),
            max_size=3,
        )
    )
    return "; ".join([f"{maintype}/{subtype}", *params])


@st.composite
def leaf_parts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["plain", "html", "octet-stream", "rfc822"]))
    maintype = {"octet-stream": "application", "rfc822": "message"}.get(kind, "text")
    headers = [f"Content-Type: {draw(content_types(maintype, kind))}"]
    encoding = draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "x-bogus"]))
    if encoding:
        headers.append(f"Content-Transfer-Encoding: {encoding}")
    if draw(st.booleans()):
        headers.append(f'Content-Disposition: attachment; filename="{draw(NAMES)}"')
    if kind == "html":
        depth = draw(st.integers(0, 400))
        body = "<div>" * depth + draw(st.text(max_size=40)) + "</div>" * depth
    elif kind == "rfc822":
        body = f"From: {draw(FROMS)}\nSubject: {draw(NAMES)}\n\n{draw(st.text(max_size=40))}"
    else:
        body = draw(st.text(max_size=60))
    return "\n".join(headers) + "\n\n" + body


def multipart(parts: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(["mixed", "alternative", "related"]).map(
        lambda sub: (
            f'Content-Type: multipart/{sub}; boundary="b{len(parts)}"\n\n'
            + "".join(f"--b{len(parts)}\n{p}\n" for p in parts)
            + f"--b{len(parts)}--\n"
        )
    )


PARTS = st.recursive(
    leaf_parts(), lambda inner: st.lists(inner, max_size=3).flatmap(multipart), max_leaves=6
)


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    headers = [f"From: {draw(FROMS)}"] if draw(st.integers(0, 9)) else []
    optional = {
        "Subject": NAMES,
        "Date": DATES,
        "Message-ID": MESSAGE_IDS,
        "In-Reply-To": MESSAGE_IDS,
        "References": MESSAGE_IDS,
        "Auto-Submitted": st.sampled_from(["no", "auto-replied", "(" * 900]),
        "To": st.one_of(NESTED, NAMES),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            headers.append(f"{name}: {draw(values)}")
    return crlf("\n".join(headers) + "\nMIME-Version: 1.0\n" + draw(PARTS))


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A real client's mail with bytes changed, removed or inserted here and there."""
    raw = bytearray(draw(st.sampled_from(SAMPLES)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at : at + draw(st.integers(1, 200))]
        else:
            raw[at:at] = draw(
                st.sampled_from([b"\r\n", b"\r\n\r\n", b"(((", b"=?", b"\xff", b"--"])
            )
    return bytes(raw)


HOSTILE_MAILS = {
    "empty Message-ID": crlf("From: a@b.test\nMessage-ID: <>\n\nHallo\n"),
    "Date in the year 10^20": crlf(
        "From: a@b.test\nDate: Mon, 1 Jan 100000000000000000000 10:00:00 +0000\n\nHallo\n"
    ),
    "non-ASCII From, no Message-ID": b"From: J\xfcrgen <m\xe4x@b.test>\r\n\r\nHallo\r\n",
    "2,000 nested parentheses in From": crlf(f"From: {'(' * 2000}{')' * 2000} a@b.test\n\nHi\n"),
    "2,000 nested parentheses in Content-Type": crlf(
        f"From: a@b.test\nContent-Type: text/plain {'(' * 2000}{')' * 2000}\n\nHallo\n"
    ),
    "1,000 nested HTML elements": crlf(
        "From: a@b.test\nContent-Type: text/html\n\n" + "<div>" * 1000 + "x" + "</div>" * 1000
    ),
}


def pinned(property_test):  # type: ignore[no-untyped-def]
    for raw in HOSTILE_MAILS.values():
        property_test = example(raw)(property_test)
    return property_test


@pinned
@given(st.one_of(mails(), mutated_samples(), st.binary(max_size=300)))
def test_reading_a_mail_raises_nothing_but_malformed(raw: bytes) -> None:
    try:
        parsed = parse_mail(raw)
    except MalformedMail as refused:
        assert "\n" not in str(refused) and "\r" not in str(refused)
        return
    for text in (parsed.from_name, parsed.subject, *(a.name for a in parsed.attachments)):
        assert text == text.encode("utf-8").decode("utf-8")
        assert "\n" not in text and "\r" not in text and "\x00" not in text


@pinned
@given(st.one_of(mails(), mutated_samples(), st.binary(max_size=300)))
def test_reading_a_header_block_raises_nothing_but_malformed(raw: bytes) -> None:
    try:
        end = header_end(raw, LIMITS)
        head = read_head(raw, end)
    except (OverLimit, MalformedMail):
        return
    assert head.from_address == head.from_address.lower()


SLOW_HEADERS = {
    "700 KB Subject of encoded words": crlf(
        "From: a@b.test\nSubject: " + "\n ".join(["=?utf-8?q?=C3=A4=C3=B6?="] * 30_000) + "\n\n"
    ),
    "40,000 Content-Type parameters": crlf(
        "From: a@b.test\nContent-Type: text/plain;"
        + "".join(f"\n p{i}=v{i};" for i in range(40_000))
        + "\n\nHallo\n"
    ),
}


@example(SLOW_HEADERS["700 KB Subject of encoded words"])
@example(SLOW_HEADERS["40,000 Content-Type parameters"])
@given(
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=200)), max_size=40).map(
        lambda fields: crlf("".join(f"{n}: {v}\n" for n, v in fields) + "\nbody")
    )
)
def test_a_header_block_is_within_the_limits_or_refused(raw: bytes) -> None:
    try:
        end = header_end(raw, LIMITS)
    except OverLimit as refused:
        assert str(refused).split()[0] in ("Header", "More")
        return
    assert end <= LIMITS.max_bytes


# Writing

NAMES_WRITTEN = st.one_of(NAMES, st.just(ENCODED_CRLF))
MAIL_HEADERS = {
    "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Id", "List-Post",
    "Precedence", "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
}  # fmt: skip
NOTICE_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "List-Id",
    "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
}  # fmt: skip
PART_HEADERS = {"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version"}


def assert_clean_headers(msg: EmailMessage, expected: set[str]) -> None:
    """Every header of every part, as sent, is one unfolded line without control characters;
    the top part has exactly ``expected``, each once."""
    raw = wire_bytes(msg, "lists.passerelle.test", None)
    names = [name for name, _ in BytesHeaderParser(policy=compat32).parsebytes(raw).items()]
    if msg.is_multipart():
        expected = expected - {"Content-Transfer-Encoding"}
    assert sorted(names) == sorted(expected)
    for part in msg.walk():
        if part is not msg:
            assert {name for name, _ in part.items()} <= PART_HEADERS | {"Content-Type"}
        for name, value in part.raw_items():
            folded = POLICY.fold_binary(name, value).removesuffix(b"\r\n")
            line = folded.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
            assert not any(b < 0x20 and b != 0x09 or b == 0x7F for b in line), folded


@example(ENCODED_CRLF, "BMI", ENCODED_CRLF, "wg", ENCODED_CRLF, "text/plain")
@example("x" * 80 + " " + "y" * 120, None, "", "cyber-wg", "a.pdf", "")  # an empty line folded in
@example("Eve\r\nBcc: x@evil.example", "X\nY", "hi\r\nBcc: y@evil.example", "wg", "a\rb", "")
@given(
    NAMES_WRITTEN,
    st.one_of(st.none(), NAMES_WRITTEN),
    st.text(st.characters(exclude_categories=()), max_size=200),
    st.one_of(st.just("cyber-wg"), NAMES_WRITTEN),
    NAMES_WRITTEN,
    st.one_of(st.text(max_size=30), st.sampled_from(["multipart/mixed", "message/rfc822"])),
)
def test_a_rendered_mail_has_clean_headers_only(
    name: str, org: str | None, text: str, link_id: str, filename: str, mimetype: str
) -> None:
    async def no_media(ref: str) -> bytes:
        raise AssertionError(ref)

    sender = Sender("bund", "@e:b", name, org=org, suffix=" (Bund)")
    attachment = Attachment(AttachmentKind.FILE, filename, mimetype, 3, "mxc://b/x")
    base = dict(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id="!r:b", sender=sender)
    for event in (
        Event(**base, remote_id="$1", text=text),  # type: ignore[arg-type]
        Event(**base, remote_id="$2", attachment=attachment),  # type: ignore[arg-type]
    ):
        out = Outgoing(event, ADDRESS, None, None, False, no_media)
        msg = render_mail(
            out,
            link_id=link_id,
            address=ADDRESS,
            message_id="<m.1@l.test>",
            date=DATE,
            media=b"abc",
        )
        assert_clean_headers(msg, MAIL_HEADERS)


def rfc2047_mailbox(raw: bytes, name: str) -> tuple[str, str]:
    """``(display name, address)`` of an address field as RFC 2047 reads it: the email
    package's legacy decoder, which (unlike its newer parser) ignores the space between two
    encoded words of a display name, as the RFC and other decoders do."""
    value = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)[name]
    display, address = parseaddr(value.replace("\r\n", "").replace("\n", ""))
    return str(make_header(decode_header(display))), address


@example(
    "Straße – Übermäßig: Rückmeldung für Baustellen und Umleitungen im Süden",
    "Zoë Größenwahn-Übermäßig – Abteilung Straße",
    "BMI",
)
@example("x" * 80 + " " + "y" * 120, "Москва Париж Берлин Рим Мадрид Лиссабон Варшава", None)
@example("a  b\tc", '"\\', "(x) <y@z>, w:")
@given(
    st.text(st.characters(exclude_categories=()), max_size=200),
    NAMES_WRITTEN,
    st.one_of(st.none(), NAMES_WRITTEN),
)
def test_a_rendered_subject_and_sender_read_as_written(
    text: str, name: str, org: str | None
) -> None:
    async def no_media(ref: str) -> bytes:
        raise AssertionError(ref)

    sender = Sender("bund", "@e:b", name, org=org, suffix=" (Bund)")
    event = Event(Kind.MESSAGE, "wg", "bund", "!r:b", "$1", sender, text=text)
    out = Outgoing(event, ADDRESS, None, None, False, no_media)
    msg = render_mail(
        out, link_id="wg", address=ADDRESS, message_id="<m.1@l.test>", date=DATE, media=None
    )
    raw = wire_bytes(msg, "lists.passerelle.test", None)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert str(BytesParser(policy=default).parsebytes(raw)["Subject"]) == str(msg["Subject"])
    assert rfc2047_mailbox(raw, "From") == (msg["From"].addresses[0].display_name, ADDRESS)


@example(ENCODED_CRLF, "wg")
@given(st.text(st.characters(exclude_categories=()), max_size=300), NAMES_WRITTEN)
def test_a_rendered_notice_has_clean_headers_only(text: str, link_id: str) -> None:
    msg = render_notice(
        link_id=link_id, address=ADDRESS, text=text, message_id="<n@l.test>", date=DATE
    )
    assert_clean_headers(msg, NOTICE_HEADERS)


@example(ENCODED_CRLF)
@example("=?utf-8?q?=3D=3Futf-8=3Fq=3F=3D0D=3D0A=3F=3D?=")
@given(NAMES_WRITTEN)
def test_header_text_is_one_line_without_encoded_words(text: str) -> None:
    clean = header_text(text)
    assert "=?" not in clean and clean == " ".join(clean.split())
    assert not [c for c in clean if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]
    assert not set(clean) & set(
        "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    )
    assert header_text(clean) == clean
