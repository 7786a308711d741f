"""A real DNS server on loopback (dnslib) serving the TXT records a test publishes, and the
DKIM keys those records announce.

The bridge's email network is configured to ask this server (``dns: ["127.0.0.1:PORT"]``), so
its DKIM and SPF checks go through the same resolver code as in production, and no lookup ever
leaves the machine.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dns.nameserver
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tests.harness.synapse import free_port


@dataclass(frozen=True)
class DkimKeyPair:
    private_pem: bytes
    """PKCS#1 PEM, as the bridge config and dkimpy take it."""
    record: str
    """The ``v=DKIM1`` TXT record announcing the public key."""


def dkim_keypair(bits: int = 2048) -> DkimKeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKeyPair(private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}")


class _Records(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.failing: set[str] = set()
        self.silent = False
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        with self.lock:
            values = list(self.txt.get(name, []))
            failing = name in self.failing
            if self.silent:
                raise DNSError("silent")  # dnslib's handler then sends no reply at all
        if failing:
            reply.header.rcode = RCODE.SERVFAIL
        elif request.q.qtype == QTYPE.TXT and values:
            for value in values:
                # A TXT string holds at most 255 bytes; DKIM keys are split over several.
                chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        elif not values:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsServer:
    """UDP and TCP on one loopback port; `publish` adds TXT records while it runs."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._records = _Records()
        logger = DNSLogger(logf=lambda _line: None)
        self._servers = [
            DNSServer(self._records, address="127.0.0.1", port=self.port, tcp=tcp, logger=logger)
            for tcp in (False, True)
        ]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, name: str, value: str) -> None:
        with self._records.lock:
            self._records.txt.setdefault(name.lower(), []).append(value)

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for ``name`` from now on, as a broken authoritative server does."""
        with self._records.lock:
            self._records.failing.add(name.lower())

    @contextlib.contextmanager
    def silent(self) -> Iterator[None]:
        """Answer nothing while inside, as a nameserver that is down or out of reach."""
        with self._records.lock:
            self._records.silent = True
        try:
            yield
        finally:
            with self._records.lock:
                self._records.silent = False

    def start(self) -> None:
        for server in self._servers:
            server.start_thread()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()

    def txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """A DKIM ``dnsfunc`` asking this server over the network, for tests that verify what
        the bridge signed."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", self.port)]
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(qname, "TXT", lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(next(iter(answer)).strings)
