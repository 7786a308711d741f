"""End to end through real SMTP: people send mail to the bridge's own SMTP server, the bridge
mails through a real relay, and real Matrix users on two Synapse homeservers see the result.
The world is described in ``tests/email_world.py``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

import aiosmtplib
import dkim
import pytest
from mautrix.types import ContentURI

from tests.email_world import (
    CLAIRE,
    MAX,
    MAX_MESSAGE_BYTES,
    PARSE_TIMEOUT,
    EmailWorld,
    compose,
    send_mail,
    sign,
    start_email_world,
    wire,
)
from tests.harness import (
    User,
    content,
)
from tests.harness.bridge import REPO_ROOT
from tests.harness.dns import dkim_keypair
from tests.harness.expect import body_has, body_is, name_of, unique
from tests.harness.module_world import module_world
from tests.harness.smtp import RelayedMail

pytestmark = pytest.mark.e2e

Event = dict[str, Any]
PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n\x00\xff binary\r\n.\r\n%%EOF\n"
)


world = module_world("world", start_email_world, "email-world")


def mentions(text: str) -> Any:
    return lambda mail: text.encode() in mail.raw


async def claire_writes(world: EmailWorld, subject: str, text: str, **kw: Any) -> str:
    """Claire mails the wg link from her signing mail server; returns her Message-ID."""
    msg = compose(CLAIRE, world.address("mail"), subject, text, name="Claire Martin", **kw)
    await send_mail(world, "mail", sign(msg, world.claire_key.private_pem), CLAIRE)
    return str(msg["Message-ID"])


async def test_mail_arrives_in_both_rooms_with_name_and_attachment(world: EmailWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    subject, text = unique("Lagebericht"), "Anbei der Bericht für März."
    await claire_writes(
        world, subject, text, attachment=("Bericht März.pdf", "application/pdf", PDF)
    )
    expected = f"{subject}\n\n{text}"
    for user, room, name in (
        (max_, world.rooms["bund:wg"], "Claire Martin [ANSSI] (Mail)"),
        (jean, world.rooms["tchap:wg"], "Claire Martin [ANSSI] (Mail)"),
    ):
        seen = await user.wait_for(room, body_is(expected))
        assert await name_of(user, room, seen["sender"]) == name
        assert seen["content"]["formatted_body"].startswith(f"<p><strong>{subject}</strong></p>")
        file = await user.wait_for(
            room,
            lambda e: e["content"].get("filename") == "Bericht März.pdf",
            after=seen["event_id"],
        )
        assert file["sender"] == seen["sender"]
        assert file["content"]["msgtype"] == "m.file"
        assert file["content"]["info"] == {"mimetype": "application/pdf", "size": len(PDF)}
        assert await user.client.download_media(ContentURI(file["content"]["url"])) == PDF


async def test_matrix_message_is_mailed_signed_and_threaded(world: EmailWorld) -> None:
    max_, jean = world.users["max"], world.users["jean"]
    text = unique("Treffen am Donnerstag um 14 Uhr?")
    original = await max_.send_text(world.rooms["bund:wg"], text)
    mail = await world.relay.wait_for(mentions(text))
    msg = mail.message
    assert dkim.verify(mail.raw, dnsfunc=world.dns.txt)
    assert b"d=lists.passerelle.test" in mail.raw.split(b"\r\n\r\n", 1)[0]
    assert str(msg["From"]) == '"Max Mustermann [BMI] via Passerelle" <wg@lists.passerelle.test>'
    assert str(msg["Reply-To"]) == "wg <wg@lists.passerelle.test>"
    assert str(msg["Message-ID"]).endswith("@lists.passerelle.test>")
    assert msg["In-Reply-To"] is None
    assert mail.recipients == [CLAIRE], "Max has the message already; Claire gets it by mail"
    assert mail.mail_from == "wg@lists.passerelle.test"

    # Jean answers on Tchap: the mail names Max's mail as its parent.
    mirrored = (await jean.wait_for(world.rooms["tchap:wg"], body_is(text)))["event_id"]
    answer = unique("Jeudi 14h me convient")
    await jean.send_event(
        world.rooms["tchap:wg"], "m.room.message", content.reply(answer, mirrored)
    )
    answer_relayed = await world.relay.wait_for(mentions(answer))
    answer_mail = answer_relayed.message
    assert answer_mail["In-Reply-To"] == msg["Message-ID"]
    assert answer_mail["References"] == msg["Message-ID"]
    assert str(answer_mail["From"]).startswith('"Jean Dupont [Intérieur] (Tchap) via Passerelle"')
    assert answer_relayed.recipients == [CLAIRE, MAX]

    # Claire answers Max's mail from her mail client: a Matrix reply to Max's message.
    reply = unique("Passt mir")
    reply_id = await claire_writes(
        world, f"Re: {msg['Subject']}", reply, in_reply_to=str(msg["Message-ID"])
    )
    seen = await max_.wait_for(world.rooms["bund:wg"], body_is(reply))
    assert seen["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == original
    seen = await jean.wait_for(world.rooms["tchap:wg"], body_is(reply))
    assert seen["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == mirrored

    # And a Matrix reply to Claire's mail threads under her Message-ID.
    claire_event = (await max_.wait_for(world.rooms["bund:wg"], body_is(reply)))["event_id"]
    back = unique("Prima")
    await max_.send_event(
        world.rooms["bund:wg"], "m.room.message", content.reply(back, claire_event)
    )
    back_mail = (await world.relay.wait_for(mentions(back))).message
    assert back_mail["In-Reply-To"] == reply_id


async def test_mail_from_a_person_with_spf_lands_under_their_mapped_name(world: EmailWorld) -> None:
    jean = world.users["jean"]
    text = unique("Kurz von unterwegs")
    msg = compose(MAX, world.address("mail"), "", text, name="max")
    await send_mail(world, "mail", wire(msg), MAX)
    seen = await jean.wait_for(world.rooms["tchap:wg"], body_is(text))
    shown = await name_of(jean, world.rooms["tchap:wg"], seen["sender"])
    # One person, one name wherever they write from: Max's first account is on bund.
    assert shown == "Max Mustermann [BMI]"


async def test_forged_sender_is_rejected_marked_or_quarantined(world: EmailWorld) -> None:
    max_ = world.users["max"]
    forger = dkim_keypair(1024)

    def forged(network: str, text: str) -> bytes:
        msg = compose(CLAIRE, world.address(network), "Dringend", text, name="Claire Martin")
        return sign(msg, forger.private_pem)

    rejected = unique("Bitte sofort überweisen")
    with pytest.raises(aiosmtplib.SMTPDataError) as refusal:
        await send_mail(world, "mail", forged("mail", rejected), CLAIRE)
    assert refusal.value.code == 550
    assert "not verified" in refusal.value.message

    marked = unique("Bitte sofort überweisen")
    await send_mail(world, "mail-lax", forged("mail-lax", marked), CLAIRE)
    seen = await max_.wait_for(world.rooms["bund:lax"], body_has(marked))
    assert seen["content"]["body"].startswith("⚠️ unverified sender: <claire.martin@anssi.test>")
    assert await name_of(max_, world.rooms["bund:lax"], seen["sender"]) == (
        "Claire Martin (unverified sender) (Mail)"
    )

    held = unique("Bitte sofort überweisen")
    await send_mail(world, "mail-held", forged("mail-held", held), CLAIRE)
    genuine = unique("Echte Nachricht")
    msg = compose(CLAIRE, world.address("mail-held"), "", genuine, name="Claire Martin")
    await send_mail(world, "mail-held", sign(msg, world.claire_key.private_pem), CLAIRE)
    await max_.wait_for(world.rooms["bund:held"], body_is(genuine))
    assert not [e for e in await max_.messages(world.rooms["bund:held"]) if body_has(held)(e)]
    listing = await quarantine_listing(world)
    assert "mail-held: 1 quarantined mail(s)" in listing
    assert f"from {CLAIRE} to held@held.passerelle.test" in listing
    assert "dkim=fail (d=anssi.test" in listing

    await asyncio.sleep(0.5)
    bund_bodies = [
        e["content"].get("body", "") for e in await max_.messages(world.rooms["bund:wg"])
    ]
    assert not [b for b in bund_bodies if rejected in b]


async def test_relay_down_delays_mail_in_order(world: EmailWorld) -> None:
    max_ = world.users["max"]
    texts = [unique(f"Relay ist weg {i}") for i in range(3)]
    world.relay.stop()
    try:
        for text in texts:
            await max_.send_text(world.rooms["bund:wg"], text)
        await asyncio.sleep(2)
        assert not [m for m in world.relay.mails if mentions(texts[0])(m)]
    finally:
        world.relay.start()
    await world.relay.wait_for(mentions(texts[-1]), timeout=60)
    arrived: list[RelayedMail] = [
        m for m in world.relay.mails if any(t.encode() in m.raw for t in texts)
    ]
    assert [next(t for t in texts if t.encode() in m.raw) for m in arrived] == texts


async def test_bad_mail_is_refused_at_smtp_time_and_nothing_else_harmed(world: EmailWorld) -> None:
    port = world.inbound["mail"]
    malformed = (
        b"From: Claire Martin <claire.martin@anssi.test>\r\nTo: wg@lists.passerelle.test\r\n"
        b"Subject: kaputt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"--x\r\nContent-Type: text/plain\r\n\r\nwhere is my boundary\r\n--x--\r\n"
    )
    with pytest.raises(aiosmtplib.SMTPDataError) as refusal:
        await send_mail(world, "mail", sign(malformed, world.claire_key.private_pem), CLAIRE)
    assert (refusal.value.code, refusal.value.message.split(":")[0]) == (
        550,
        "5.6.0 Malformed message",
    )

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await smtp.connect()
    try:
        await smtp.ehlo()
        await smtp.mail(CLAIRE)
        unknown = await smtp.rcpt("nobody@lists.passerelle.test")
    except aiosmtplib.SMTPRecipientRefused as e:
        unknown = e  # type: ignore[assignment]
    assert unknown.code == 550 and "no such link address" in unknown.message
    await smtp.rset()
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as stranger:
        await smtp.mail("mallory@evil.test")
        await smtp.rcpt("wg@lists.passerelle.test")
    assert stranger.value.code == 550 and "may not post" in stranger.value.message
    await smtp.rset()
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as loop:
        await smtp.mail("wg@lists.passerelle.test")
    assert loop.value.code == 550 and "mail loop" in loop.value.message
    await smtp.quit()

    too_big = compose(
        CLAIRE,
        world.address("mail"),
        "Groß",
        "x",
        attachment=("big.bin", "application/octet-stream", b"\0" * MAX_MESSAGE_BYTES),
    )
    # The sending server announces the size (ESMTP SIZE): refused before any data is sent.
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as size:
        await send_mail(world, "mail", wire(too_big), CLAIRE)
    assert size.value.code == 552

    still = unique("Server läuft noch")
    await claire_writes(world, "", still)
    await world.users["max"].wait_for(world.rooms["bund:wg"], body_is(still))
    log = world.bridge.log_text()
    assert "Refused a malformed mail from claire.martin@anssi.test: broken MIME structure" in log
    assert "Refused mail from wg@lists.passerelle.test: the bridge's own domain" in log


async def test_attachment_survives_a_bridge_restart_before_delivery(world: EmailWorld) -> None:
    jean = world.users["jean"]
    data = PDF + uuid.uuid4().bytes
    subject = unique("Nach dem Neustart")
    await world.tchap.astop()
    try:
        await claire_writes(
            world, subject, "Anhang folgt.", attachment=("neu.pdf", "application/pdf", data)
        )
        world.bridge.kill()
    finally:
        await world.tchap.start()
    await world.bridge.start()
    seen = await jean.wait_for(
        world.rooms["tchap:wg"], body_is(f"{subject}\n\nAnhang folgt."), timeout=60
    )
    file = await jean.wait_for(
        world.rooms["tchap:wg"],
        lambda e: (
            e["content"].get("filename") == "neu.pdf"
            and e["content"].get("info", {}).get("size") == len(data)
        ),
        after=seen["event_id"],
        timeout=60,
    )
    assert await jean.client.download_media(ContentURI(file["content"]["url"])) == data


async def test_starttls_is_offered_where_a_certificate_is_configured(world: EmailWorld) -> None:
    offered = {}
    for network in ("mail", "mail-lax"):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=world.inbound[network], start_tls=False)
        await smtp.connect()
        await smtp.ehlo()
        offered[network] = smtp.supports_extension("starttls")
        await smtp.quit()
    assert offered == {"mail": False, "mail-lax": True}


ENCODED_CRLF_NAME = "=?utf-8?q?Erika=0D=0AReply-To:_attacker=40evil=2Eexample?="
"""A Matrix display name that decodes to a line break and a ``Reply-To`` header (issue 10)."""
MAILED_HEADERS = {
    "dkim-signature", "from", "to", "reply-to", "subject", "date", "message-id", "list-id",
    "list-post", "precedence", "content-type", "content-transfer-encoding", "mime-version",
}  # fmt: skip


async def test_a_display_name_cannot_add_headers_to_the_mail(world: EmailWorld) -> None:
    erika = await User.register(
        world.bund, f"erika-{uuid.uuid4().hex[:6]}", displayname=ENCODED_CRLF_NAME
    )
    try:
        await erika.join(world.rooms["bund:wg"])
        text = unique("Bitte an mich antworten")
        await erika.send_text(world.rooms["bund:wg"], text)
        mail = await world.relay.wait_for(mentions(text))
    finally:
        await erika.close()
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(mail.raw)
    names = [name.lower() for name in head.keys()]
    assert sorted(names) == sorted(MAILED_HEADERS), "one of each header, none injected"
    assert str(mail.message["Reply-To"]) == "wg <wg@lists.passerelle.test>"
    sender = mail.message["From"].addresses
    assert [a.addr_spec for a in sender] == ["wg@lists.passerelle.test"]
    assert sender[0].display_name.startswith("Erika Reply-To: attacker@evil.example")
    assert dkim.verify(mail.raw, dnsfunc=world.dns.txt)


def folded(name: str, pieces: list[str]) -> str:
    """A header field of many pieces, one per line, as a mail client folds a long one."""
    return f"{name}: " + "\r\n ".join(pieces)


def hostile(headers: str, body: str = "Hallo\r\n") -> bytes:
    return (f"From: {MAX}\r\nTo: wg@lists.passerelle.test\r\n{headers}\r\n\r\n{body}").encode()


PARAMETERS = [f"p{i}=v{i};" for i in range(40_000)]
SLOW_MAILS = {
    "700 KB Subject of encoded words": (
        hostile(folded("Subject", ["=?utf-8?q?=C3=A4=C3=B6=C3=BC?="] * 24_000)),
        (552, "5.3.4 Header block larger than 65536 bytes"),
    ),
    "40,000 Content-Type parameters": (
        hostile(folded("Content-Type", ["text/plain;", *PARAMETERS])),
        (552, "5.3.4 Header block larger than 65536 bytes"),
    ),
    "40,000 parameters in a MIME part": (
        hostile(
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"',
            "--b\r\n" + folded("Content-Type", ["text/plain;", *PARAMETERS]) + "\r\n\r\nHallo"
            "\r\n--b--\r\n",
        ),
        (554, f"5.6.0 Message too complex: not read within {PARSE_TIMEOUT:g} s"),
    ),
}


@pytest.mark.parametrize("case", SLOW_MAILS)
async def test_a_mail_slow_to_read_is_refused_while_other_links_keep_flowing(
    world: EmailWorld, case: str
) -> None:
    raw, refusal = SLOW_MAILS[case]
    assert len(raw) < MAX_MESSAGE_BYTES
    submission = asyncio.create_task(send_mail(world, "mail", raw, MAX))
    await asyncio.sleep(0.5)  # the bridge has the mail by now
    text = unique("Läuft die Brücke noch?")
    await world.users["max"].send_text(world.rooms["bund:wg"], text)
    await world.users["jean"].wait_for(world.rooms["tchap:wg"], body_is(text))
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await submission
    assert (refused.value.code, refused.value.message) == refusal


UTF8_NAME = "Jürgen Müller"
NESTED_COMMENT = ["(" * 500] * 4 + [")" * 500] * 4
"""2,000 nested parentheses, folded (a line may not be longer than 1,000 characters)."""
BAD_MAILS = {
    "non-ASCII From address, no Message-ID": (
        b"From: J\xfcrgen <m\xe4x@bmi.test>\r\nSubject: Hallo\r\n\r\nHallo\r\n",
        "the From address is not UTF-8",
    ),
    "empty Message-ID": (
        hostile("Message-ID: <>"),
        "unreadable Message-ID header",
    ),
    "Date in the year 10^20": (
        hostile("Date: Mon, 1 Jan 100000000000000000000 10:00:00 +0000"),
        "unreadable Date header",
    ),
    "2,000 nested parentheses in From": (
        (folded("From", NESTED_COMMENT + [MAX]) + "\r\n\r\nHallo\r\n").encode(),
        "unreadable From header (nested too deeply)",
    ),
    "2,000 nested parentheses in Content-Type": (
        hostile(folded("Content-Type", ["text/plain", *NESTED_COMMENT])),
        "unreadable Content-Type header (nested too deeply)",
    ),
    "1,000 nested HTML elements": (
        hostile("Content-Type: text/html", "<div>\r\n" * 1000 + "tief" + "</div>\r\n" * 1000),
        "HTML nested deeper than 100 elements",
    ),
}


@pytest.mark.parametrize("case", BAD_MAILS)
async def test_a_malformed_mail_gets_a_precise_refusal_and_no_traceback(
    world: EmailWorld, case: str
) -> None:
    raw, reason = BAD_MAILS[case]
    logged = len(world.bridge.log_text())
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send_mail(world, "mail", raw, MAX)
    assert (refused.value.code, refused.value.message) == (
        550,
        f"5.6.0 Malformed message: {reason}",
    )
    log = world.bridge.log_text()[logged:]
    assert f"Refused a malformed mail from {MAX}: {reason}" in log
    assert "Traceback" not in log


async def test_a_raw_utf8_sender_name_without_message_id_is_bridged(world: EmailWorld) -> None:
    text = unique("Grüße ohne Message-ID")
    raw = f"From: {UTF8_NAME} <{MAX}>\r\nSubject: \r\n\r\n{text}\r\n".encode()
    await send_mail(world, "mail", raw, MAX)
    await world.users["jean"].wait_for(world.rooms["tchap:wg"], body_is(text))


STRASSE = "Straße – Übermäßig: Rückmeldung für Baustellen und Umleitungen im Süden"
"""A subject the email package's own folder mailed as "…Rückmeldungfür…" (issue 13)."""
ZOE = "Zoë Größenwahn-Übermäßig – Abteilung Straße"
"""A name the email package's own folder mailed with two spaces before "Straße"."""
STRASSE_WRITTEN = {
    "raw UTF-8, as swaks sends it": STRASSE.encode(),
    "encoded words folded mid-word, as Thunderbird writes them": (
        b"=?UTF-8?Q?Stra=c3=9fe_=e2=80=93_=c3=9cberm=c3=a4=c3=9fig=3a_R=c3=bcckmeldung_f?=\r\n"
        b" =?UTF-8?Q?=c3=bcr_Baustellen_und_Umleitungen_im_S=c3=bcden?="
    ),
}


def body_mentions(text: str) -> Any:
    """A relayed mail whose plain text holds ``text`` (quoted-printable may break raw lines)."""
    return lambda mail: text in mail.message.get_body(("plain",)).get_content()


async def test_a_subject_and_a_name_with_accents_arrive_as_written(world: EmailWorld) -> None:
    zoe = await User.register(world.bund, f"zoe-{uuid.uuid4().hex[:6]}", displayname=ZOE)
    try:
        await zoe.join(world.rooms["bund:wg"])
        marker = unique("Danke")  # past the subject's 60 characters
        await zoe.send_text(world.rooms["bund:wg"], f"{STRASSE} {marker}")
        mail = await world.relay.wait_for(body_mentions(marker))
    finally:
        await zoe.close()
    assert mail.message["Subject"] == f"[wg] {STRASSE[:59]}…"
    (sender,) = mail.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        f"{ZOE} [BMI] via Passerelle",
        "wg@lists.passerelle.test",
    )


@pytest.mark.parametrize("case", STRASSE_WRITTEN)
async def test_a_mailed_subject_with_accents_reaches_matrix_as_written(
    world: EmailWorld, case: str
) -> None:
    text = unique("Bitte bis Freitag")
    msg = compose(CLAIRE, world.address("mail"), "SUBJECT", text, name="Claire Martin")
    raw = wire(msg).replace(b"Subject: SUBJECT", b"Subject: " + STRASSE_WRITTEN[case])
    await send_mail(world, "mail", sign(raw, world.claire_key.private_pem), CLAIRE)
    await world.users["max"].wait_for(world.rooms["bund:wg"], body_is(f"{STRASSE}\n\n{text}"))


async def quarantine_listing(world: EmailWorld) -> str:
    """What ``passerelle quarantine`` prints for the world's config."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "quarantine", "-c", str(world.config_path),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    return stdout.decode()


async def test_without_dns_each_policy_does_what_it_says(world: EmailWorld) -> None:
    max_ = world.users["max"]
    sent: dict[str, tuple[str, str, bytes]] = {}
    for network in ("mail-lax", "mail-held", "mail"):
        text = unique("Lagebild trotz DNS-Ausfall")
        msg = compose(CLAIRE, world.address(network), "", text, name="Claire Martin")
        sent[network] = (text, str(msg["Message-ID"]), sign(msg, world.claire_key.private_pem))
    with world.dns.silent():
        for network in ("mail-lax", "mail-held"):
            await send_mail(world, network, sent[network][2], CLAIRE)
        with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
            await send_mail(world, "mail", sent["mail"][2], CLAIRE)
    assert (deferred.value.code, deferred.value.message) == (
        451,
        "4.7.0 Cannot verify the sender right now, please try again later",
    )

    # mark: bridged, saying the sender could not be checked (not that it is forged).
    marked = await max_.wait_for(world.rooms["bund:lax"], body_has(sent["mail-lax"][0]))
    assert marked["content"]["body"].startswith(
        "⚠️ sender could not be verified: DKIM and SPF for <claire.martin@anssi.test> could "
        "not be checked (DNS did not answer)\n\n"
    )
    assert await name_of(max_, world.rooms["bund:lax"], marked["sender"]) == (
        "Claire Martin (sender could not be verified) (Mail)"
    )

    # quarantine: held, and listed with why.
    listing = await quarantine_listing(world)
    entry = listing.split(f"Message-ID {sent['mail-held'][1]}\n", 1)[1].splitlines()[0]
    assert entry.strip().startswith("sender could not be verified: dkim=temperror (d=anssi.test")

    # reject: the sending server tries again later, and then (DNS back) the mail gets through.
    await send_mail(world, "mail", sent["mail"][2], CLAIRE)
    await max_.wait_for(world.rooms["bund:wg"], body_is(sent["mail"][0]))
    held = sent["mail-held"][0]
    assert not [e for e in await max_.messages(world.rooms["bund:held"]) if body_has(held)(e)]


async def test_a_mail_is_one_info_line_and_the_smtp_dialogue_is_at_debug(
    world: EmailWorld,
) -> None:
    logged = len(world.bridge.log_text())
    text = unique("Fürs Protokoll")
    message_id = await claire_writes(world, "", text)
    await world.users["max"].wait_for(world.rooms["bund:wg"], body_is(text))
    lines = world.bridge.log_text()[logged:].splitlines()
    (line,) = [line for line in lines if " INFO " in line and message_id in line]
    assert f" INFO passerelle.mail: Mail {message_id} from {CLAIRE} (envelope {CLAIRE}, " in line
    assert " to wg@lists.passerelle.test, " in line
    assert " bytes, sender verified (dkim=pass (d=anssi.test)" in line
    assert line.endswith(": bridged into wg")
    assert not [line for line in lines if " INFO mail.log: " in line]
    assert [line for line in lines if " DEBUG mail.log: " in line and ">> b'DATA'" in line]


async def test_mails_in_a_row_share_one_relay_connection(world: EmailWorld) -> None:
    """The connection to the relay stays open between mails, and a new one is made when the
    relay closed it (here by restarting)."""
    max_ = world.users["max"]
    first, second = unique("Erste von zweien"), unique("Zweite von zweien")
    await max_.send_text(world.rooms["bund:wg"], first)
    one = await world.relay.wait_for(mentions(first))
    await max_.send_text(world.rooms["bund:wg"], second)
    two = await world.relay.wait_for(mentions(second))
    assert one.connection == two.connection

    world.relay.stop()
    world.relay.start()
    third = unique("Nach dem Neustart des Relais")
    await max_.send_text(world.rooms["bund:wg"], third)
    three = await world.relay.wait_for(mentions(third))
    assert three.connection != two.connection
    assert three.recipients == [CLAIRE]
