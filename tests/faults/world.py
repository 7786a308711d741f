"""The fault suite's world: every kind of network on one link, the bridge's store on a
PostgreSQL database of its own, and a reverse proxy in front of one or two bridge instances.

- ``bund.test`` and ``tchap.test``: real Synapse homeservers; Max writes in ``#wg`` on bund,
  Jean in ``#wg`` on Tchap;
- ``xmpp.test``: a real Prosody with the MUC ``wg@conference.xmpp.test`` (archived), Alice in
  it, and the bridge's component;
- mail: the bridge's own SMTP server (one port per instance, like two MX hosts) for
  ``wg@lists.passerelle.test``, and the outbound relay (`RelayServer`), which records the mails
  for Rita (``rita@bmi.test``, the link's one mail member; her domain's SPF record, served by a
  DNS server on loopback, authorises 127.0.0.1, so her mails in pass the bridge's check);
- the bridge: instance ``a`` and, for the failover scenario, instance ``b``, with one config
  each (same networks and tokens, different ``listen.port`` and SMTP port) on the same
  database; the homeservers reach them through `FailoverProxy`, the registration URL.

Every message a person writes on one network goes to the three others, so four writers
exercise all twelve routes.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from tests.harness import BridgeProcess, Homeserver, User, free_port
from tests.harness import world as build
from tests.harness.dns import DnsServer, dkim_keypair
from tests.harness.postgres import fresh_database
from tests.harness.prosody import Prosody
from tests.harness.proxy import FailoverProxy
from tests.harness.smtp import RelayServer
from tests.harness.xmpp_clients import XmppUser

NETWORKS = ("bund", "tchap", "xmpp", "mail")
COMPONENT = "passerelle.xmpp.test"
MUC = "wg@conference.xmpp.test"
MAIL_DOMAIN = "lists.passerelle.test"
LINK_ADDRESS = f"wg@{MAIL_DOMAIN}"
RITA = "rita@bmi.test"
DATABASE_PREFIX = "passerelle_faults"
PROBLEM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")
"""A bridge log line (`bridge.logs.TEXT_FORMAT`) of a warning or worse."""

RITA_PERSON = """\
people:
  - id: rita
    name: Rita Reader
    org: BMI
    accounts:
      mail: {rita}
"""
LINK = """\
links:
  - id: wg
    rooms:
      bund: "#wg:bund.test"
      tchap: "#wg:tchap.test"
"""


@dataclass
class Instance:
    """One bridge process and the ports only it has."""

    name: str
    bridge: BridgeProcess
    inbound_port: int
    """The bridge's SMTP server for mail in."""

    @property
    def url(self) -> str:
        return f"http://{self.bridge.host}:{self.bridge.port}"


@dataclass
class FaultWorld:
    root: Path
    database: str
    """The bridge's PostgreSQL URL."""
    bund: Homeserver
    tchap: Homeserver
    prosody: Prosody | None
    relay: RelayServer | None
    dns: DnsServer | None
    proxy: FailoverProxy
    instances: list[Instance]
    users: dict[str, User] = field(default_factory=dict)
    """``bund`` (Max) and ``tchap`` (Jean): who writes and reads on each homeserver."""
    alice: XmppUser | None = None
    rooms: dict[str, str] = field(default_factory=dict)
    """Network → the link's room there (room ID, MUC JID or the link's address)."""

    @property
    def networks(self) -> tuple[str, ...]:
        """The networks this world runs (the short subset runs the two homeservers alone)."""
        return tuple(n for n in NETWORKS if n in self.rooms)

    @property
    def active(self) -> Instance:
        """The first instance that runs (the one the proxy prefers)."""
        return next(i for i in self.instances if i.bridge.running)

    def homeserver(self, network: str) -> Homeserver:
        return self.bund if network == "bund" else self.tchap

    async def stop(self) -> None:
        for instance in self.instances:
            await instance.bridge.astop()
        await self.proxy.stop()
        if self.alice is not None:
            await self.alice.close()
        for user in self.users.values():
            await user.close()
        servers = [self.bund.astop(), self.tchap.astop()]
        if self.prosody is not None:
            servers.append(self.prosody.astop())
        await asyncio.gather(*servers)
        if self.relay is not None:
            self.relay.stop()
        if self.dns is not None:
            self.dns.stop()


def write_configs(
    root: Path,
    *,
    networks: tuple[str, ...],
    database: str,
    ports: dict[str, int],
    proxy_url: str,
    give_up_after: float,
    prosody: Prosody | None,
    dns: DnsServer | None,
) -> list[Path]:
    """Instance ``a``'s config with its registrations (tokens generated into it), then
    instance ``b``'s: the same but for its own HTTP and SMTP ports."""
    root.mkdir(parents=True, exist_ok=True)
    text = build.head("fault-suite world", database, ports["a"], give_up_after=give_up_after)
    text += "networks:\n" + build.bund(ports["bund"], appservice=f"url: {proxy_url}/as/bund\n")
    text += build.tchap(ports["tchap"], appservice=f"url: {proxy_url}/as/tchap\n")
    link = LINK
    if "xmpp" in networks:
        assert prosody is not None
        (root / "xmpp-secret").write_text(prosody.components[COMPONENT] + "\n")
        text += build.xmpp(prosody.component_port, COMPONENT, "self_ping_interval: 2\n")
        link += f"      xmpp: {MUC}\n"
    if "mail" in networks:
        assert dns is not None
        (root / "dkim-mail.key").write_bytes(dkim_keypair().private_pem)
        text += build.mail(MAIL_DOMAIN, ports["a-smtp"], ports["relay"], "faults",
                     options=f'dns: ["{dns.address}"]\n')  # fmt: skip
        text += RITA_PERSON.format(rita=RITA)
        link += f"      mail: {LINK_ADDRESS}\n    people: [rita]\n"
    path_a = root / "config.yaml"
    path_a.write_text(text + link)
    build.generate_registration(path_a)
    yaml = YAML()
    doc = yaml.load(path_a.read_text())
    doc["listen"]["port"] = ports["b"]
    if "mail" in networks:
        doc["networks"]["mail"]["inbound"]["port"] = ports["b-smtp"]
    path_b = root / "config-b.yaml"
    with path_b.open("w") as out:
        yaml.dump(doc, out)
    return [path_a, path_b]


@asynccontextmanager
async def fault_world(
    root: Path, networks: tuple[str, ...] = NETWORKS, give_up_after: float = 3600
) -> AsyncIterator[FaultWorld]:
    """Everything up (a fresh PostgreSQL database, the servers, people and rooms, the proxy)
    and instance ``a`` ready; instance ``b`` is configured but not started. Stopped and the
    database dropped afterwards."""
    async with fresh_database(DATABASE_PREFIX) as database:
        world = await _start(root, networks, database, give_up_after)
        try:
            yield world
        finally:
            await world.stop()


async def _start(
    root: Path, networks: tuple[str, ...], database: str, give_up_after: float
) -> FaultWorld:
    ports = {name: free_port() for name in ("bund", "tchap", "a", "b", "a-smtp", "b-smtp")}
    prosody = relay = dns = None
    if "xmpp" in networks:
        prosody = Prosody(root / "prosody", components={COMPONENT: secrets.token_hex(16)})
    if "mail" in networks:
        relay, dns = RelayServer(), DnsServer()
        ports["relay"] = relay.port
        dns.publish("bmi.test", "v=spf1 ip4:127.0.0.1 -all")
        dns.start()
        relay.start()
    ports["proxy"] = free_port()
    proxy = FailoverProxy([f"http://127.0.0.1:{ports[i]}" for i in ("a", "b")], port=ports["proxy"])
    paths = await asyncio.to_thread(
        write_configs, root, networks=networks, database=database, ports=ports,
        proxy_url=f"http://127.0.0.1:{ports['proxy']}", give_up_after=give_up_after,
        prosody=prosody, dns=dns,
    )  # fmt: skip
    bund, tchap = build.homeservers(root, ports["bund"], ports["tchap"])
    instances = [
        Instance(name, BridgeProcess(path, root / name, port=ports[name]), ports[f"{name}-smtp"])
        for name, path in zip(("a", "b"), paths, strict=True)
    ]
    world = FaultWorld(root, database, bund, tchap, prosody, relay, dns, proxy, instances)
    try:
        await _populate(world, networks)
    except BaseException:
        await world.stop()
        raise
    return world


async def _populate(world: FaultWorld, networks: tuple[str, ...]) -> None:
    await world.proxy.start()
    servers = [world.bund.start(), world.tchap.start()]
    password = secrets.token_hex(8)
    if world.prosody is not None:
        await asyncio.to_thread(world.prosody.register, "alice", password)
        servers.append(world.prosody.start())
    await asyncio.gather(*servers)
    u = world.users
    u["bund"] = await User.register(world.bund, "max", displayname="Max Mustermann")
    u["tchap"] = await User.register(world.tchap, "jean.dupont-interieur.gouv.fr",
                                     displayname="Jean Dupont [Intérieur]")  # fmt: skip
    world.rooms["bund"] = await u["bund"].create_room(alias="wg", name="WG", public=True)
    world.rooms["tchap"] = await u["tchap"].create_room(
        alias="wg", name="WG", public=True, initial_state=[build.UNRESTRICTED]
    )
    if world.prosody is not None:
        world.alice = XmppUser("alice@xmpp.test", password, world.prosody.c2s_port)
        await world.alice.connect()
        await world.alice.join(MUC, "Alice")
        world.rooms["xmpp"] = MUC
    if "mail" in networks:
        world.rooms["mail"] = LINK_ADDRESS
    await world.instances[0].bridge.start()


def bridge_problems(world: FaultWorld, lines: int = 40) -> str:
    """The bridge instances' last warnings and errors (with their tracebacks), for a failed
    run's report: CI keeps the report, not the log files."""
    kept: list[str] = []
    for instance in world.instances:
        try:
            text = instance.bridge.log_path.read_text(errors="replace")
        except OSError:
            continue
        keep = False
        for line in text.splitlines():
            if PROBLEM.search(line):
                keep = True
            elif not line.startswith((" ", "Traceback", "=====")) and line[:1].isdigit():
                keep = False
            if keep or line.startswith("====="):
                kept.append(f"{instance.name}| {line}")
    return "\n".join(kept[-lines:])


def keep_logs(world: FaultWorld, into: Path) -> None:
    """Copy the bridge's and the servers' logs next to the report, for a run worth a look."""
    into.mkdir(parents=True, exist_ok=True)
    for instance in world.instances:
        if instance.bridge.log_path.exists():
            shutil.copy(instance.bridge.log_path, into / f"bridge-{instance.name}.log")
    for hs in (world.bund, world.tchap):
        if hs.log_path.exists():
            shutil.copy(hs.log_path, into / f"{hs.server_name}.log")
    if world.prosody is not None and world.prosody.log_path.exists():
        shutil.copy(world.prosody.log_path, into / "prosody.log")
