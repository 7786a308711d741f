"""Tests of connectors.email.signing: the DKIM signature the bridge writes with OpenSSL is the
one dkimpy writes on its own, byte for byte, and verifies with the public key."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.message import EmailMessage

import dkim
import pytest

from bridge.connector import Outgoing
from bridge.events import Attachment, AttachmentKind, Event, Kind, Sender
from connectors.email.config import DkimKey
from connectors.email.folding import POLICY
from connectors.email.outbound import SIGNED_HEADERS, wire_bytes
from connectors.email.render import render_mail
from connectors.email.signing import private_key, sign
from tests.harness.dns import DkimKeyPair, dkim_keypair

DOMAIN = "lists.passerelle.test"
ADDRESS = f"cyber-wg@{DOMAIN}"
ERIKA = Sender(
    network="bund",
    user_id="@erika:bund.test",
    display_name="Erika Müller-Lüdenscheidt",
    person_id="erika",
    org="BMI",
    suffix="",
)
ATTACHMENT = Attachment(
    kind=AttachmentKind.FILE, name="a.pdf", mimetype="application/pdf", size=4, ref="mxc://b/x"
)
MAILS = {
    "plain": (dict(text="Guten Tag aus Berlin"), None, None),
    "html, accents, a reply": (
        dict(text="Grüße – Übermäßig", html="<p>Grüße – <b>Übermäßig</b></p>"),
        "<parent.1@lists.passerelle.test>",
        None,
    ),
    "attachment": (dict(text="", attachment=ATTACHMENT), None, b"%PDF"),
}


@pytest.fixture(scope="module")
def keys() -> DkimKeyPair:
    return dkim_keypair()


async def _no_media(ref: str) -> bytes:
    raise AssertionError("no media expected")


def mail(name: str) -> tuple[bytes, list[bytes], EmailMessage]:
    """A mail as the bridge renders it: unsigned on the wire, the headers of `SIGNED_HEADERS`
    it has (as `wire_bytes` chose them with dkimpy), the message."""
    fields, reply_to, media = MAILS[name]
    event = Event(
        kind=Kind.MESSAGE,
        link_id="cyber-wg",
        network="bund",
        room_id="!r:bund.test",
        remote_id="$e1",
        sender=ERIKA,
        **fields,  # type: ignore[arg-type]
    )
    out = Outgoing(event, ADDRESS, reply_to, None, False, _no_media)
    msg = render_mail(
        out,
        link_id="cyber-wg",
        address=ADDRESS,
        message_id="<s.1@lists.passerelle.test>",
        date=datetime(2024, 3, 12, 9, 15, tzinfo=UTC),
        media=media,
    )
    signed = [h for h in SIGNED_HEADERS if msg.get(h.decode()) is not None]
    return msg.as_bytes(policy=POLICY), signed, msg


@pytest.mark.parametrize("name", MAILS)
def test_signature_is_byte_identical_to_dkimpy(
    name: str, keys: DkimKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_710_234_900.0)  # the t= tag: one second for both
    data, signed, msg = mail(name)
    expected = bytes(dkim.sign(data, b"pass1", DOMAIN.encode(), keys.private_pem,
                               include_headers=signed))  # fmt: skip
    assert sign(data, b"pass1", DOMAIN.encode(), keys.private_pem, signed) == expected
    assert wire_bytes(msg, DOMAIN, DkimKey("pass1", keys.private_pem)) == expected + data


def test_signature_verifies_with_the_public_key(keys: DkimKeyPair) -> None:
    _data, _signed, msg = mail("html, accents, a reply")
    signed = wire_bytes(msg, DOMAIN, DkimKey("pass1", keys.private_pem))
    record = keys.record.encode()

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name == b"pass1._domainkey.lists.passerelle.test." else None

    assert dkim.verify(signed, dnsfunc=txt)
    assert not dkim.verify(signed.replace(b"Gr=C3=BC=C3=9Fe", b"Hallo"), dnsfunc=txt)


def test_key_is_loaded_once(keys: DkimKeyPair) -> None:
    assert private_key(keys.private_pem) is private_key(bytes(keys.private_pem))
