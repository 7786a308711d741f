"""A world with mail: two real Synapse homeservers (``bund.test``, ``tchap.test``), a real SMTP
relay and a real DNS server on loopback, and the bridge with three email networks that differ
only in what they do with a sender DKIM and SPF cannot confirm:

- ``mail``: ``wg@lists.passerelle.test``, policy ``reject``, linked with bund #wg and tchap #wg;
- ``mail-lax``: ``lax@lax.passerelle.test``, policy ``mark``, linked with bund #lax; its SMTP
  server offers STARTTLS (a self-signed certificate for 127.0.0.1);
- ``mail-held``: ``held@held.passerelle.test``, policy ``quarantine``, linked with bund #held.

Claire (ANSSI) has only a mailbox, on ``anssi.test``, whose DKIM key the DNS server publishes
(its SPF record authorises no one, so only her signature vouches for her). Max (BMI) is on
``bund.test`` and has a mailbox on ``bmi.test``, whose SPF record authorises 127.0.0.1. Jean is
on Tchap. Used by ``tests/test_e2e_email.py`` and by ``make sandbox``.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import dkim

from tests.harness import free_port
from tests.harness import world as build
from tests.harness.dns import DkimKeyPair, DnsServer, dkim_keypair
from tests.harness.smtp import RelayServer, self_signed_certificate

MAX_MESSAGE_BYTES = 1024 * 1024
PARSE_TIMEOUT = 5
"""Seconds the bridge's mail worker may spend on one step of reading a mail (default 10)."""
DNS_TIMEOUT = "2s"
"""How long the bridge's sender check waits for the DNS server (default 5 s)."""
CLAIRE = "claire.martin@anssi.test"
MAX = "max@bmi.test"
NETWORKS = {
    "mail": ("lists.passerelle.test", "reject", "wg"),
    "mail-lax": ("lax.passerelle.test", "mark", "lax"),
    "mail-held": ("held.passerelle.test", "quarantine", "held"),
}
TLS_NETWORK = "mail-lax"
"""The email network whose SMTP server offers STARTTLS (the others speak plain SMTP)."""

PEOPLE_AND_LINKS = (
    "people:\n"
    + build.person("max", "Max Mustermann", "BMI", {"bund": "@max:bund.test", "mail": MAX})
    + build.person("claire", "Claire Martin", "ANSSI", dict.fromkeys(NETWORKS, CLAIRE))
    + "links:\n"
    + build.link("wg", {"bund": "#wg:bund.test", "tchap": "#wg:tchap.test",
                        "mail": "wg@lists.passerelle.test"}, people=("max", "claire"))
    + build.link("lax", {"bund": "#lax:bund.test", "mail-lax": "lax@lax.passerelle.test"},
                 people=("claire",))
    + build.link("held", {"bund": "#held:bund.test", "mail-held": "held@held.passerelle.test"},
                 people=("claire",))
)  # fmt: skip

MAIL_OPTIONS = """\
auth_policy: {policy}
dns: ["{dns}"]
dns_timeout: {dns_timeout}
"""
INBOUND_OPTIONS = f"max_message_bytes: {MAX_MESSAGE_BYTES}\nparse_timeout: {PARSE_TIMEOUT}\n"
TLS = "tls_cert: tls/cert.pem\ntls_key: tls/key.pem\n"


@dataclass(kw_only=True)
class EmailWorld(build.BaseWorld):
    relay: RelayServer
    dns: DnsServer
    claire_key: DkimKeyPair
    inbound: dict[str, int]
    """Email network → the bridge's SMTP port for it."""

    def address(self, network: str) -> str:
        domain, _policy, link = NETWORKS[network]
        return f"{link}@{domain}"

    def in_process(self) -> list[build.LocalServer]:
        return [self.relay, self.dns]


def publish_claire(dns: DnsServer) -> DkimKeyPair:
    """Claire's domain in DNS: her mail server's DKIM key (the key pair it signs with) and an
    SPF record that authorises no one, so only her signature vouches for her."""
    claire_key = dkim_keypair()
    dns.publish("mail._domainkey.anssi.test", claire_key.record)
    dns.publish("anssi.test", "v=spf1 -all")
    return claire_key


def compose(
    sender: str,
    to: str,
    subject: str,
    text: str,
    *,
    name: str = "",
    in_reply_to: str | None = None,
    attachment: tuple[str, str, bytes] | None = None,
) -> EmailMessage:
    """A mail as a person's client writes it; ``attachment`` is (file name, MIME type, bytes)."""
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.partition('@')[2]}>"
    msg["Date"] = "Tue, 12 Mar 2024 10:00:00 +0100"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(text)
    if attachment is not None:
        filename, mimetype, data = attachment
        maintype, _, subtype = mimetype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def wire(msg: EmailMessage) -> bytes:
    """The mail as a mail server sends it (CRLF line ends)."""
    return msg.as_bytes(policy=policy.SMTP)


def sign(msg: EmailMessage | bytes, key: bytes, domain: str = "anssi.test") -> bytes:
    """The mail as Claire's server sends it: DKIM-signed with ``key`` for ``domain``."""
    raw = msg if isinstance(msg, bytes) else wire(msg)
    return bytes(dkim.sign(raw, b"mail", domain.encode(), key)) + raw


async def send_mail(
    world: EmailWorld, network: str, raw: bytes, mail_from: str, to: str | None = None
) -> None:
    """Hand a mail to the bridge's SMTP server as a sending mail server does (with STARTTLS
    where the bridge offers it); raises `aiosmtplib.SMTPResponseException` subclasses with the
    bridge's refusal."""
    tls = network == TLS_NETWORK
    await aiosmtplib.send(
        raw,
        sender=mail_from,
        recipients=[to or world.address(network)],
        hostname="127.0.0.1",
        port=world.inbound[network],
        start_tls=tls,
        tls_context=ssl.create_default_context(cafile=world.root / "tls" / "cert.pem")
        if tls
        else None,
        timeout=30,
    )


def write_config(
    root: Path,
    *,
    bridge_port: int,
    bund_port: int,
    tchap_port: int,
    relay_port: int,
    dns: str,
    inbound: dict[str, int],
    keys: dict[str, DkimKeyPair],
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    self_signed_certificate(root / "tls")
    networks = build.bund(bund_port) + build.tchap(tchap_port)
    for name, (domain, auth_policy, _link) in NETWORKS.items():
        (root / f"dkim-{name}.key").write_bytes(keys[name].private_pem)
        options = MAIL_OPTIONS.format(policy=auth_policy, dns=dns, dns_timeout=DNS_TIMEOUT)
        inbound_options = INBOUND_OPTIONS + (TLS if name == TLS_NETWORK else "")
        networks += build.mail(domain, inbound[name], relay_port, "pass1", name=name,
                         options=options, inbound=inbound_options)  # fmt: skip
    path = root / "config.yaml"
    path.write_text(
        build.head("test world with email", f"sqlite:{root}/passerelle.db", bridge_port,
             max_attempts=10, max_backoff=1.0)
        + "networks:\n"
        + networks
        + PEOPLE_AND_LINKS
    )  # fmt: skip
    return path


async def start_email_world(root: Path, password: str | None = None) -> EmailWorld:
    """Everything up and the bridge ready, rooms created before the bridge starts."""
    ports = build.Ports()
    inbound = {name: free_port() for name in NETWORKS}
    relay, dns = RelayServer(), DnsServer()
    claire_key = publish_claire(dns)
    dns.publish("bmi.test", "v=spf1 ip4:127.0.0.1 -all")
    # What an admin publishes for each mail domain: the public half of its signing key.
    keys = {name: dkim_keypair() for name in NETWORKS}
    for name, (domain, _policy, _link) in NETWORKS.items():
        dns.publish(f"pass1._domainkey.{domain}", keys[name].record)
    config_path = write_config(
        root,
        bridge_port=ports.bridge,
        bund_port=ports.bund,
        tchap_port=ports.tchap,
        relay_port=relay.port,
        dns=dns.address,
        inbound=inbound,
        keys=keys,
    )
    dns.start()
    relay.start()
    world = EmailWorld.registered(root, config_path, ports, relay=relay, dns=dns,
                                  claire_key=claire_key, inbound=inbound)  # fmt: skip
    await world.start_servers()
    await world.register("max", "jean", password=password)
    u = world.users
    for link in ("wg", "lax", "held"):
        world.rooms[f"bund:{link}"] = await u["max"].create_room(alias=link, name=link, public=True)
    world.rooms["tchap:wg"] = await u["jean"].create_room(
        alias="wg", name="wg", public=True, initial_state=[build.UNRESTRICTED]
    )
    await world.bridge.start()
    return world
