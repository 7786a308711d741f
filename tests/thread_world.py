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
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib

from tests.email_world import CLAIRE, INBOUND_OPTIONS, MAIL_OPTIONS, compose, sign
from tests.harness import BridgeProcess, Homeserver, User, free_port
from tests.harness import world as build
from tests.harness.dns import DkimKeyPair, DnsServer, dkim_keypair
from tests.harness.prosody import Prosody
from tests.harness.smtp import RelayServer
from tests.harness.xmpp_clients import XmppUser
from tests.xmpp_world import COMPONENT, MUC

MAIL_DOMAIN = "lists.passerelle.test"
ADDRESS = f"wg@{MAIL_DOMAIN}"

PEOPLE_AND_LINKS = """\
people:
  - id: max
    name: Max Mustermann
    org: BMI
    accounts: {{bund: "@max:bund.test"}}
  - id: alice
    name: Alice Arnaud
    org: BSI
    accounts: {{xmpp: alice@xmpp.test}}
  - id: claire
    name: Claire Martin
    org: ANSSI
    accounts: {{mail: {claire}}}
links:
  - id: wg
    people: [claire]
    rooms: {{bund: "#wg:bund.test", tchap: "#wg:tchap.test", xmpp: {muc}, mail: {address}}}
"""


@dataclass
class ThreadWorld:
    root: Path
    bund: Homeserver
    tchap: Homeserver
    prosody: Prosody
    relay: RelayServer
    dns: DnsServer
    bridge: BridgeProcess
    claire_key: DkimKeyPair
    inbound_port: int
    users: dict[str, User] = field(default_factory=dict)
    xmpp: dict[str, XmppUser] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    """``bund`` / ``tchap`` → room ID of the linked room."""

    async def claire_writes(self, subject: str, text: str, in_reply_to: str) -> str:
        """Claire answers a mail from her signing mail server; her Message-ID."""
        msg = compose(CLAIRE, ADDRESS, subject, text, name="Claire Martin",
                      in_reply_to=in_reply_to)  # fmt: skip
        await aiosmtplib.send(sign(msg, self.claire_key.private_pem), sender=CLAIRE,
                              recipients=[ADDRESS], hostname="127.0.0.1",
                              port=self.inbound_port, timeout=30)  # fmt: skip
        return str(msg["Message-ID"])

    async def stop(self) -> None:
        await self.bridge.astop()
        for xmpp_user in self.xmpp.values():
            await xmpp_user.close()
        for user in self.users.values():
            await user.close()
        await asyncio.gather(self.bund.astop(), self.tchap.astop(), self.prosody.astop())
        self.relay.stop()
        self.dns.stop()


def write_config(
    root: Path, prosody: Prosody, ports: tuple[int, int, int, int], relay: RelayServer,
    dns: DnsServer, own_key: DkimKeyPair,
) -> Path:  # fmt: skip
    """The bridge's config, with the component secret and the DKIM key in the files it names;
    ``ports`` are the bund, Tchap, bridge and inbound SMTP ports."""
    bund_port, tchap_port, bridge_port, inbound_port = ports
    root.mkdir(parents=True, exist_ok=True)
    (root / "xmpp-secret").write_text(prosody.components[COMPONENT] + "\n")
    (root / "dkim-mail.key").write_bytes(own_key.private_pem)
    mail_options = MAIL_OPTIONS.format(policy="reject", dns=dns.address, dns_timeout="2s")
    path = root / "config.yaml"
    path.write_text(
        build.head("test world with all kinds of network", f"sqlite:{root}/passerelle.db",
             bridge_port, max_attempts=40)
        + "networks:\n"
        + build.bund(bund_port)
        + build.tchap(tchap_port)
        + build.xmpp(prosody.component_port, COMPONENT)
        + build.mail(MAIL_DOMAIN, inbound_port, relay.port, "pass1", options=mail_options,
               inbound=INBOUND_OPTIONS)
        + PEOPLE_AND_LINKS.format(claire=CLAIRE, muc=MUC, address=ADDRESS)
    )  # fmt: skip
    return path


async def start_thread_world(root: Path) -> ThreadWorld:
    """Everything up, the rooms made by their people before the bridge starts, the bridge
    ready."""
    prosody = Prosody(root / "prosody", components={COMPONENT: secrets.token_hex(16)})
    ports = (free_port(), free_port(), free_port(), free_port())
    bund_port, tchap_port, bridge_port, inbound_port = ports
    relay, dns = RelayServer(), DnsServer()
    claire_key, own_key = dkim_keypair(), dkim_keypair()
    dns.publish("mail._domainkey.anssi.test", claire_key.record)
    dns.publish("anssi.test", "v=spf1 -all")
    dns.publish(f"pass1._domainkey.{MAIL_DOMAIN}", own_key.record)
    config_path = write_config(root, prosody, ports, relay, dns, own_key)
    dns.start()
    relay.start()
    build.generate_registration(config_path)
    bund, tchap = build.homeservers(root, bund_port, tchap_port)
    bridge = BridgeProcess(config_path, root, port=bridge_port)
    world = ThreadWorld(root, bund, tchap, prosody, relay, dns, bridge, claire_key, inbound_port)
    password = secrets.token_hex(8)
    await asyncio.to_thread(prosody.register, "alice", password, "xmpp.test")
    await asyncio.gather(bund.start(), tchap.start(), prosody.start())
    u = world.users
    u["max"] = await User.register(bund, "max", displayname="Max Mustermann")
    u["jean"] = await User.register(tchap, "jean.dupont-interieur.gouv.fr",
                                    displayname="Jean Dupont [Intérieur]")  # fmt: skip
    world.rooms["bund"] = await u["max"].create_room(alias="wg", name="WG", public=True)
    world.rooms["tchap"] = await u["jean"].create_room(
        alias="wg", name="WG", public=True, initial_state=[build.UNRESTRICTED]
    )
    alice = XmppUser("alice@xmpp.test", password, prosody.c2s_port)
    await alice.connect()
    await alice.join(MUC, "Alice")
    world.xmpp["alice"] = alice
    await bridge.start()
    return world
