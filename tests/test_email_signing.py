"""Tests of connectors.email.signing: the DKIM signature the bridge writes with OpenSSL is the
one dkimpy writes on its own, byte for byte, and verifies with the public key."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.message import EmailMessage

import dkim
import pytest

from bridge.events import Attachment, AttachmentKind
from connectors.email.config import DkimKey
from connectors.email.folding import POLICY
from connectors.email.outbound import SIGNED_HEADERS, wire_bytes
from connectors.email.render import render_mail
from connectors.email.signing import private_key, sign
from tests.harness.dns import DkimKeyPair, dkim_keypair
from tests.samples import MAIL_DATE
from tests.test_email_render import ADDRESS, PDF, message, outgoing

DOMAIN = "lists.passerelle.test"
PDF_FILE = Attachment(
    kind=AttachmentKind.FILE, name="a.pdf", mimetype="application/pdf", size=len(PDF), ref="mxc://b"
)
MAILS = {
    "plain": (outgoing(message()), None),
    "html, accents, a reply": (
        outgoing(
            message(text="Grüße – Übermäßig", html="<p>Grüße – <b>Übermäßig</b></p>"),
            reply_to="cyber-wg/<parent.1@lists.passerelle.test>",
        ),
        None,
    ),
    "attachment": (outgoing(message(text="", attachment=PDF_FILE)), PDF),
}


@pytest.fixture(scope="module")
def keys() -> DkimKeyPair:
    return dkim_keypair()


def mail(name: str) -> tuple[bytes, list[bytes], EmailMessage]:
    """A mail as the bridge renders it: unsigned on the wire, the headers of `SIGNED_HEADERS`
    it has (as `wire_bytes` chose them with dkimpy), the message."""
    out, media = MAILS[name]
    msg = render_mail(out, link_id="cyber-wg", address=ADDRESS,
                      message_id="<s.1@lists.passerelle.test>", date=MAIL_DATE,
                      media=media)  # fmt: skip
    signed = [h for h in SIGNED_HEADERS if msg.get(h.decode()) is not None]
    return msg.as_bytes(policy=POLICY), signed, msg


def in_one_second(*signings: Callable[[], bytes]) -> list[bytes]:
    """What ``signings`` return, all made within one second of the clock: a signature carries
    its second in its t= tag. Made again the rare time a second ends between them."""
    for _ in range(5):
        started = int(time.time())
        made = [signing() for signing in signings]
        if int(time.time()) == started:
            return made
    raise AssertionError("no second long enough for the signatures")


@pytest.mark.parametrize("name", MAILS)
def test_signature_is_byte_identical_to_dkimpy(name: str, keys: DkimKeyPair) -> None:
    data, signed, msg = mail(name)
    expected, ours, wire = in_one_second(
        lambda: bytes(dkim.sign(data, b"pass1", DOMAIN.encode(), keys.private_pem,
                                include_headers=signed)),
        lambda: sign(data, b"pass1", DOMAIN.encode(), keys.private_pem, signed),
        lambda: wire_bytes(msg, DOMAIN, DkimKey("pass1", keys.private_pem)),
    )  # fmt: skip
    assert ours == expected
    assert wire == expected + data


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
