"""Handing mail to the configured SMTP relay (aiosmtplib), DKIM-signed on the way
(`connectors.email.signing`).

A relay that cannot be reached or answers 4xx is unavailable (`Unavailable`: the mail waits,
in order, and no attempt is counted); a 5xx answer means the relay will never take this mail,
which `DeliveryError` with ``permanent=True`` tells the outbox.

Connections to the relay stay open between mails (`Relay`): a new one costs a TCP handshake,
the greeting, EHLO, and where configured TLS and a login, more than the mail itself.
"""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from bridge.connector import DeliveryError, Refusal, Unavailable
from connectors.email.config import DkimKey, RelaySecurity, SmtpRelay
from connectors.email.folding import POLICY, MailPolicy
from connectors.email.signing import sign

log = logging.getLogger(__name__)

SEND_TIMEOUT = 60.0
KEPT_OPEN = 4
"""Idle connections kept at most: one per queue sending at the same moment, as many as the
outbox's queues to this network hand mail over at once."""
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


class _CheckedPolicy(MailPolicy):
    """`POLICY` that refuses a header as it writes it (`check_headers`): one folding of each
    header instead of a second one just to check it (every header was folded twice per mail)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = super().fold_binary(name, value)
        check_headers(name, folded)
        return folded


_CHECKED = _CheckedPolicy(linesep=POLICY.linesep)


def check_headers(name: str, folded: bytes) -> None:
    """Raise a permanent `DeliveryError` when a header of any part of the mail, as the
    generator folds it, would hold a line break, NUL or other control character outside
    folding.

    `render` cleans every value it writes (`connectors.email.headers`); this is the last word
    before the mail is signed, whatever the email package of this Python does with a value.
    """
    if _CONTROL.search(_FOLD.sub(b" ", folded.removesuffix(b"\r\n"))):
        raise DeliveryError(
            f"not sent: its {name} header would hold a line break or control character",
            permanent=True,
        )


def wire_bytes(msg: EmailMessage, domain: str, key: DkimKey | None) -> bytes:
    """The mail as sent: CRLF lines, people's words in its headers written by
    `connectors.email.folding`, with a ``DKIM-Signature`` of ``domain`` when a key is set;
    every header checked by `check_headers` as it is written.

    Text parts are quoted-printable and attachments base64 (see `render`), so no relay needs
    to re-encode the body and break the signature.
    """
    data = msg.as_bytes(policy=_CHECKED)
    if key is None:
        return data
    present = {name.lower().encode() for name in msg.keys()}
    signed = [h for h in SIGNED_HEADERS if h in present]
    return sign(data, key.selector.encode(), domain.encode(), key.private_key, signed) + data


class Relay:
    """The SMTP relay, with the connections to it kept open: a mail goes over an idle one when
    there is one (each queue sending at a time takes its own), else over a new one, which is
    kept afterwards. A kept connection the relay closed meanwhile (its idle timeout, a restart)
    is replaced by a new one for the same mail."""

    def __init__(self, settings: SmtpRelay) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []

    async def send(self, data: bytes, sender: str, recipients: list[str]) -> None:
        """Hand one mail over; raises `DeliveryError` (permanent or not) when it was not."""
        s = self.settings
        try:
            refused, _response = await self._sendmail(data, sender, recipients)
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

    async def _sendmail(
        self, data: bytes, sender: str, recipients: list[str]
    ) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        while self._idle:
            smtp = self._idle.pop()
            if not smtp.is_connected:
                smtp.close()
                continue
            try:
                return await self._over(smtp, data, sender, recipients)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                log.debug("The relay closed a kept connection (%s); opening another", exc)
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.security is RelaySecurity.TLS,
            start_tls=s.security is RelaySecurity.STARTTLS,
            timeout=SEND_TIMEOUT,
        )
        await smtp.connect()
        return await self._over(smtp, data, sender, recipients)

    async def _over(
        self, smtp: aiosmtplib.SMTP, data: bytes, sender: str, recipients: list[str]
    ) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        """One mail over ``smtp``, which is kept afterwards when it is still usable (a refusal
        leaves it so: the envelope was reset) and closed otherwise."""
        try:
            result = await smtp.sendmail(sender, recipients, data)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            self._keep(smtp)
            raise
        except BaseException:
            smtp.close()
            raise
        self._keep(smtp)
        return result

    def _keep(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected and len(self._idle) < KEPT_OPEN:
            self._idle.append(smtp)
        else:
            smtp.close()

    async def close(self) -> None:
        """Say goodbye on every kept connection (the bridge stops)."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()
