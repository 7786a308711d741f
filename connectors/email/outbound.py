"""Handing mail to the configured SMTP relay (aiosmtplib), DKIM-signed (dkimpy) on the way.

A relay that cannot be reached or answers 4xx is "try again later" (the outbox retries, in
order); a 5xx answer means the relay will never take this mail, which `DeliveryError` with
``permanent=True`` tells the outbox.
"""

from __future__ import annotations

import logging
from email import policy
from email.message import EmailMessage

import aiosmtplib
import dkim

from bridge.config.kinds.email import DkimKey, RelaySecurity, SmtpRelay
from bridge.connector import DeliveryError

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


def wire_bytes(msg: EmailMessage, domain: str, key: DkimKey | None) -> bytes:
    """The mail as sent: CRLF lines, with a ``DKIM-Signature`` of ``domain`` when a key is set.

    Text parts are quoted-printable and attachments base64 (see `render`), so no relay needs
    to re-encode the body and break the signature.
    """
    data = msg.as_bytes(policy=policy.SMTP)
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
            permanent = all(code >= 500 for code in codes)
            raise DeliveryError(
                f"the relay refused every recipient ({codes})", permanent=permanent
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"the relay answered {exc.code} {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"the relay {s.host}:{s.port} is unreachable: {exc}") from exc
        for recipient, (code, message) in refused.items():
            log.warning("The relay refused %s: %s %s", recipient, code, message)
