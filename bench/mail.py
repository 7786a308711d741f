"""The email ends of a measured path: the relay mailbox, a real SMTP server on loopback (the
test harness's `RelayServer`, aiosmtpd) to which the bridge hands outgoing mail and which records
when each marked mail reached it; and a mail client that submits straight to that server, the
baseline.

A mail has arrived when the server has all of it: the moment its DATA command ends, taken in the
server's own thread before the mail is read (its text part carries the marker; the bridge puts
the Matrix body there unchanged).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, localtime

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.clients import ArrivalLog, body
from tests.harness.smtp import RelayServer, _Recorder

SEND_TIMEOUT = 30.0


class _TimedRecorder(_Recorder):
    """The relay's recorder, also reporting each mail with the moment its DATA ended."""

    def __init__(self, report: Callable[[bytes, float], None]) -> None:
        super().__init__()
        self.report = report

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.perf_counter()
        answer = await super().handle_DATA(server, session, envelope)
        self.report(envelope.original_content or b"", at)
        return answer


class TimedRelay(RelayServer):
    """`RelayServer` that calls ``report(raw mail, perf_counter at arrival)`` for every mail,
    from the server's thread."""

    def __init__(self, report: Callable[[bytes, float], None], port: int | None = None) -> None:
        super().__init__(port)
        self._recorder = _TimedRecorder(report)


class Mailbox(ArrivalLog):
    """The relay mailbox as a watcher. Create it in the benchmark's event loop, which the
    server's thread hands every arrival to."""

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self.relay = TimedRelay(self._arrived)

    @property
    def port(self) -> int:
        return self.relay.port

    def _arrived(self, raw: bytes, at: float) -> None:
        self._loop.call_soon_threadsafe(self._read, raw, at)

    def _read(self, raw: bytes, at: float) -> None:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(("plain",))
        self.note(part.get_content() if part is not None else None, at)

    def start(self) -> None:
        self.relay.start()

    def stop(self) -> None:
        self.relay.stop()


class SmtpSender:
    """A mail client submitting straight to the SMTP server on ``port``, keeping its
    connections open between mails as the bridge's relay client does (a new one only while
    the others are busy); the room is the recipient's address."""

    def __init__(self, port: int, mail_from: str) -> None:
        self.port = port
        self.mail_from = mail_from
        self._idle: list[aiosmtplib.SMTP] = []

    async def close(self) -> None:
        """Say goodbye on every kept connection; one the relay closed meanwhile is just
        dropped (the relay restarts between phases)."""
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    async def send(self, room: str, marker: str) -> float:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = room
        msg["Subject"] = f"Benchmark {marker}"
        msg["Date"] = format_datetime(localtime())
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@{self.mail_from.partition('@')[2]}>"
        msg.set_content(body(marker))
        started = time.perf_counter()
        smtp = self._idle.pop() if self._idle else None
        if smtp is None or not smtp.is_connected:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=SEND_TIMEOUT)
            await smtp.connect()
        await smtp.send_message(msg)
        self._idle.append(smtp)
        return started
