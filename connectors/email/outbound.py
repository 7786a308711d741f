"""Handing mail to the configured SMTP relay (aiosmtplib), DKIM-signed (dkimpy) on the way.

A relay that cannot be reached or answers 4xx is unavailable (`Unavailable`: the mail waits,
in order, and no attempt is counted); a 5xx answer means the relay will never take this mail,
which `DeliveryError` with ``permanent=True`` tells the outbox.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage

import aiosmtplib
import dkim

from bridge.connector import DeliveryError, Refusal, Unavailable
from connectors.email.config import DkimKey, RelaySecurity, SmtpRelay
from connectors.email.folding import POLICY

log = logging.getLogger(__name__)

SEND_TIMEOUT = 60.0
SIGNED_HEADERS = [
    b"from",
    b"to",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"in-reply-to",
    b"references",
    b"list-id",
    b"list-post",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
]
_FOLD = re.compile(rb"\r\n[ \t]")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def check_headers(msg: EmailMessage) -> None:
    """Raise a permanent `DeliveryError` when a header of any part of ``msg``, as the generator
    folds it, would hold a line break, NUL or other control character outside folding.

    `render` cleans every value it writes (`connectors.email.headers`); this is the last word
    before the mail is signed, whatever the email package of this Python does with a value.
    """
    for part in msg.walk():
        for name, value in part.raw_items():  # what the generator folds, as it folds it
            folded = POLICY.fold_binary(name, value)
            if _CONTROL.search(_FOLD.sub(b" ", folded.removesuffix(b"\r\n"))):
                raise DeliveryError(
                    f"not sent: its {name} header would hold a line break or control character",
                    permanent=True,
                )


def wire_bytes(msg: EmailMessage, domain: str, key: DkimKey | None) -> bytes:
    """The mail as sent: CRLF lines, people's words in its headers written by
    `connectors.email.folding`, with a ``DKIM-Signature`` of ``domain`` when a key is set;
    `check_headers` first.

    Text parts are quoted-printable and attachments base64 (see `render`), so no relay needs
    to re-encode the body and break the signature.
    """
    check_headers(msg)
    data = msg.as_bytes(policy=POLICY)
    if key is None:
        return data
    signature = dkim.sign(
        data,
        key.selector.encode(),
        domain.encode(),
        key.private_key,
        include_headers=[h for h in SIGNED_HEADERS if msg.get(h.decode()) is not None],
    )
    return bytes(signature) + data


class Relay:
    def __init__(self, settings: SmtpRelay) -> None:
        self.settings = settings

    async def send(self, data: bytes, sender: str, recipients: list[str]) -> None:
        """Hand one mail over; raises `DeliveryError` (permanent or not) when it was not."""
        s = self.settings
        try:
            refused, _response = await aiosmtplib.send(
                data,
                sender=sender,
                recipients=recipients,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.security is RelaySecurity.TLS,
                start_tls=s.security is RelaySecurity.STARTTLS,
                timeout=SEND_TIMEOUT,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            if not all(code >= 500 for code in codes):
                raise Unavailable(f"the relay deferred every recipient ({codes})") from exc
            raise DeliveryError(f"the relay refused every recipient ({codes})",
                                permanent=True) from exc  # fmt: skip
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 500:  # 4xx: "try again later", as a mail server's queue would
                raise Unavailable(f"the relay answered {exc.code} {exc.message}") from exc
            reason = Refusal.TOO_LARGE if exc.code == 552 else Refusal.REFUSED
            raise DeliveryError(f"the relay answered {exc.code} {exc.message}", permanent=True,
                                reason=reason) from exc  # fmt: skip
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise Unavailable(f"the relay {s.host}:{s.port} is unreachable: {exc}") from exc
        for recipient, (code, message) in refused.items():
            log.warning("The relay refused %s: %s %s", recipient, code, message)
