"""The bridge's own SMTP server (aiosmtpd), in the bridge's event loop.

The SMTP dialogue is where a mail is refused without ever bouncing: a recipient that is no link
address, a sender that may not post, a loop, a forged sender under the ``reject`` policy or a
malformed mail get their 5xx here, and the sending server tells its user. `MailGate` (the
connector) makes those decisions; this module only speaks SMTP. The final reply to ``DATA`` is
sent only once `MailGate.data` returned, which is after the mail's events are in the outbox.

aiosmtpd logs the dialogue (every command, every connection) at INFO on its logger
``mail.log``; `DialogueAtDebug` moves those lines to DEBUG, so that the log at INFO holds one
line per mail (`connectors.email.connector`), while aiosmtpd's warnings stay as they are.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from connectors.email.config import InboundSettings
from connectors.email.headers import one_line

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 120
AIOSMTPD_LOGGER = "mail.log"


class DialogueAtDebug(logging.Filter):
    """Logs aiosmtpd's INFO records at DEBUG (and drops them where DEBUG is off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_DIALOGUE_AT_DEBUG = DialogueAtDebug()


@dataclass(frozen=True)
class Received:
    """One mail as the SMTP dialogue delivered it."""

    raw: bytes
    mail_from: str
    """Envelope sender; empty for bounces (``MAIL FROM:<>``)."""
    recipients: list[str]
    """Accepted link addresses, lower-cased, each once."""
    peer_ip: str
    helo: str


class MailGate(Protocol):
    """The decisions the SMTP server asks for; each returns an SMTP reply line to refuse, or
    None to go on (`data` always returns the final reply)."""

    def mail(self, sender: str) -> str | None: ...

    def rcpt(self, sender: str, recipient: str) -> str | None: ...

    async def data(self, mail: Received) -> str: ...


class _Handler:
    """aiosmtpd's hook object: hands each SMTP step to the gate."""

    def __init__(self, gate: MailGate) -> None:
        self.gate = gate

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.gate.mail(address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        recipient = address.strip().lower()
        refusal = self.gate.rcpt(envelope.mail_from or "", recipient)
        if refusal is not None:
            return refusal
        if recipient not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(recipient)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = session.peer
        peer_ip = peer[0] if isinstance(peer, tuple) else str(peer)
        received = Received(
            raw=envelope.original_content or b"",
            mail_from=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos),
            peer_ip=peer_ip,
            helo=session.host_name or "",
        )
        try:
            # A reason may quote the mail (a From address): one line, or it would be two replies.
            return one_line(await self.gate.data(received))
        except Exception:
            log.exception("Could not handle a mail from %s", received.mail_from or "<>")
            return "451 4.3.0 Temporary failure, please try again later"


def tls_context(settings: InboundSettings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


class InboundServer:
    """Listens on the configured address until `stop`."""

    def __init__(self, settings: InboundSettings, hostname: str, gate: MailGate) -> None:
        self.settings = settings
        self.hostname = hostname
        self.handler = _Handler(gate)
        self.tls = tls_context(settings)
        self._server: asyncio.Server | None = None
        logging.getLogger(AIOSMTPD_LOGGER).addFilter(_DIALOGUE_AT_DEBUG)  # added once

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            ident="Passerelle",
            tls_context=self.tls,
            timeout=IDLE_TIMEOUT,
        )

    async def start(self) -> None:
        """Bind the listening socket; raises `OSError` when the address is not available."""
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol, self.settings.host, self.settings.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
