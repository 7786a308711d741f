"""A real SMTP server on loopback standing in for the outbound relay: it records every mail the
bridge hands it, for tests to read, and can be stopped and started again on the same port to
play a relay that is down for a while."""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.harness.polling import polled
from tests.harness.synapse import free_port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (``cert.pem``, ``key.pem`` in ``directory``), for
    an SMTP server that offers STARTTLS; clients trust it by using the certificate as their CA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class RelayedMail:
    mail_from: str
    recipients: list[str]
    raw: bytes
    at: float = 0.0
    """Wall-clock time at which the relay had the whole mail (its DATA command ended)."""
    connection: int = 0
    """Which SMTP connection brought it: the relay numbers its connections from 1."""

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Recorder:
    def __init__(self) -> None:
        self.mails: list[RelayedMail] = []
        self.lock = threading.Lock()
        self.sessions: list[Session] = []
        """Each connection's session (aiosmtpd makes one per connection), kept so that they
        are told apart by identity."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            known = [i for i, seen in enumerate(self.sessions) if seen is session]
            if not known:
                self.sessions.append(session)
            connection = (known[0] if known else len(self.sessions) - 1) + 1
        mail = RelayedMail(envelope.mail_from or "", list(envelope.rcpt_tos),
                           envelope.original_content or b"", time.time(),
                           connection)  # fmt: skip
        with self.lock:
            self.mails.append(mail)
        return "250 OK"


class RelayServer:
    """The relay; `mails` is everything received so far, across restarts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._recorder = _Recorder()
        self._controller: Controller | None = None

    @property
    def mails(self) -> list[RelayedMail]:
        with self._recorder.lock:
            return list(self._recorder.mails)

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(
        self,
        predicate: Callable[[RelayedMail], bool],
        timeout: float = 30,  # noqa: ASYNC109
    ) -> RelayedMail:
        """The first received mail matching ``predicate`` (also one that came before the call)."""

        def missing() -> str:
            subjects = [str(m.message["Subject"]) for m in self.mails[-10:]]
            return f"no matching mail at the relay after {timeout}s; latest subjects: {subjects}"

        return await polled(lambda: next(filter(predicate, self.mails), None), timeout, missing)
