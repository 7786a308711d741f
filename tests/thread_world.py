"""A world with every kind of network on one link: two real Synapse homeservers (``bund.test``,
``tchap.test``), a real Prosody (``xmpp.test`` with its MUC service and the bridge's component),
a real SMTP relay and a real DNS server, and the bridge linking the bund room, the Tchap room,
the MUC and the mail address ``wg@lists.passerelle.test``.

Max is on bund, Jean on Tchap, Alice in the MUC, Claire (ANSSI) has only a mailbox, whose DKIM
key the DNS server publishes. Used by ``tests/test_e2e_threads.py``.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from tests.email_world import CLAIRE, INBOUND_OPTIONS, MAIL_OPTIONS, compose, publish_claire, sign
from tests.harness import free_port
from tests.harness import world as build
from tests.harness.dns import DkimKeyPair, DnsServer, dkim_keypair
from tests.harness.prosody import Prosody
from tests.harness.smtp import RelayServer
from tests.xmpp_world import COMPONENT, MUC

MAIL_DOMAIN = "lists.passerelle.test"
ADDRESS = f"wg@{MAIL_DOMAIN}"

PEOPLE_AND_LINKS = (
    "people:\n"
    + build.MAX
    + build.ALICE
    + build.person("claire", "Claire Martin", "ANSSI", {"mail": CLAIRE})
    + "links:\n"
    + build.link("wg", {"bund": "#wg:bund.test", "tchap": "#wg:tchap.test", "xmpp": MUC,
                        "mail": ADDRESS}, people=("claire",))
)  # fmt: skip


@dataclass(kw_only=True)
class ThreadWorld(build.XmppWorldBase):
    """``rooms``: ``bund`` / ``tchap`` → room ID of the linked room."""

    relay: RelayServer
    dns: DnsServer
    claire_key: DkimKeyPair
    inbound_port: int

    async def claire_writes(self, subject: str, text: str, in_reply_to: str) -> str:
        """Claire answers a mail from her signing mail server; her Message-ID."""
        msg = compose(CLAIRE, ADDRESS, subject, text, name="Claire Martin",
                      in_reply_to=in_reply_to)  # fmt: skip
        await aiosmtplib.send(sign(msg, self.claire_key.private_pem), sender=CLAIRE,
                              recipients=[ADDRESS], hostname="127.0.0.1",
                              port=self.inbound_port, timeout=30)  # fmt: skip
        return str(msg["Message-ID"])

    def in_process(self) -> list[build.LocalServer]:
        return [self.relay, self.dns]


def write_config(
    root: Path, prosody: Prosody, ports: build.Ports, inbound_port: int, relay: RelayServer,
    dns: DnsServer, own_key: DkimKeyPair,
) -> Path:  # fmt: skip
    """The bridge's config, with the component secret and the DKIM key in the files it names;
    ``inbound_port``: the bridge's SMTP port."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "xmpp-secret").write_text(prosody.components[COMPONENT] + "\n")
    (root / "dkim-mail.key").write_bytes(own_key.private_pem)
    mail_options = MAIL_OPTIONS.format(policy="reject", dns=dns.address, dns_timeout="2s")
    path = root / "config.yaml"
    path.write_text(
        build.head("test world with all kinds of network", f"sqlite:{root}/passerelle.db",
             ports.bridge, max_attempts=40)
        + "networks:\n"
        + build.bund(ports.bund)
        + build.tchap(ports.tchap)
        + build.xmpp(prosody.component_port, COMPONENT)
        + build.mail(MAIL_DOMAIN, inbound_port, relay.port, "pass1", options=mail_options,
               inbound=INBOUND_OPTIONS)
        + PEOPLE_AND_LINKS
    )  # fmt: skip
    return path


async def start_thread_world(root: Path) -> ThreadWorld:
    """Everything up, the rooms made by their people before the bridge starts, the bridge
    ready."""
    prosody = Prosody(root / "prosody", components={COMPONENT: secrets.token_hex(16)})
    ports, inbound_port = build.Ports(), free_port()
    relay, dns = RelayServer(), DnsServer()
    claire_key, own_key = publish_claire(dns), dkim_keypair()
    dns.publish(f"pass1._domainkey.{MAIL_DOMAIN}", own_key.record)
    config_path = write_config(root, prosody, ports, inbound_port, relay, dns, own_key)
    dns.start()
    relay.start()
    world = ThreadWorld.registered(root, config_path, ports, prosody=prosody, relay=relay, dns=dns,
                                   claire_key=claire_key, inbound_port=inbound_port)  # fmt: skip
    password = secrets.token_hex(8)
    await asyncio.to_thread(prosody.register, "alice", password, "xmpp.test")
    await world.start_servers()
    await world.register("max", "jean")
    u = world.users
    world.rooms["bund"] = await u["max"].create_room(alias="wg", name="WG", public=True)
    world.rooms["tchap"] = await u["jean"].create_room(
        alias="wg", name="WG", public=True, initial_state=[build.UNRESTRICTED]
    )
    await world.join_muc("alice", password, MUC)
    await world.bridge.start()
    return world
