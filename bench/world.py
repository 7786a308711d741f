"""The benchmark's world: two real Synapse homeservers (``bund.test``, ``tchap.test``), a real
Prosody (``xmpp.test``, the bridge as its component), a real SMTP server standing in for the
outbound mail relay, the bridge as a subprocess, and the rooms and users every measurement needs.

Built with the tests' world builder (`tests.harness.world`) and clients, with a config of its
own: INFO logging (the tests' DEBUG logging costs the bridge CPU on every event, and Prosody's costs
Prosody CPU on every stanza), one ``main`` link (bund ↔ tchap) for the one-room latency stress
run, ``tp0``…``tp49`` links (bund ↔ tchap) for throughput (the first ten also for latency),
ten ``muc`` links (bund ↔ a MUC each) and ten ``mail`` links (bund ↔ the ``mail`` network,
whose one member's mailbox is on the relay), and unbridged ``local`` rooms on every network for
the baselines (a MUC of its own; for mail, that member's address).
Each link has one target, so a route's cost per message is that of one delivery, as on
``main``. Synapse may return up to `TIMELINE_LIMIT` events per room in one ``/sync``
response, so a receiving client sees every message of a burst without paging.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from bench.mail import Mailbox
from bench.xmpp import Occupant
from tests.harness import User, free_port
from tests.harness import world as build
from tests.harness.dns import dkim_keypair
from tests.harness.prosody import Prosody

TIMELINE_LIMIT = 10_000
THROUGHPUT_LINKS = 50
UNRESTRICTED = build.UNRESTRICTED
Ports = build.Ports

COMPONENT = "passerelle.xmpp.test"
MUC = "muc@conference.xmpp.test"
LOCAL_MUC = "local@conference.xmpp.test"
MAIL_DOMAIN = "lists.passerelle.test"
MAIL_LINK = f"mail@{MAIL_DOMAIN}"
READER = "reader@mailbox.test"
"""The ``mail`` link's one member: every bridged mail goes to this mailbox on the relay."""
WRITER = "writer@mailbox.test"
"""Who sends the baseline's mails straight to the relay."""

SPREAD_LINKS = 10
"""Links per route of the latency phase: its rate is spread over that many rooms, as a busy
working group's messages would be over its rooms."""
MUC_LINKS = ["muc", *(f"muc{i}" for i in range(1, SPREAD_LINKS))]
"""The bund ↔ MUC links (``muc``, ``muc1``…), each with a MUC of its own (`muc_jid`)."""
MAIL_LINKS = ["mail", *(f"mail{i}" for i in range(1, SPREAD_LINKS))]
"""The bund ↔ mail links (``mail``, ``mail1``…), each with an address (`mail_address`)."""


def muc_jid(link: str) -> str:
    return MUC if link == "muc" else f"{link}@conference.xmpp.test"


def mail_address(link: str) -> str:
    return MAIL_LINK if link == "mail" else f"{link}@{MAIL_DOMAIN}"


def other_links() -> str:
    """The links to the MUCs and to mail: every mail link has the relay's mailbox as member."""
    mucs = "".join(build.link(link, {"bund": f"#{link}:bund.test", "xmpp": muc_jid(link)})
                   for link in MUC_LINKS)  # fmt: skip
    mails = "".join(build.link(link, {"bund": f"#{link}:bund.test", "mail": mail_address(link)},
                               people=("reader",)) for link in MAIL_LINKS)  # fmt: skip
    return mucs + mails


def link_names() -> list[str]:
    """The bund ↔ tchap links of the benchmark world: ``main`` and the throughput links (the
    first `SPREAD_LINKS` of which the latency phase spreads its messages over)."""
    return ["main", *(f"tp{i}" for i in range(THROUGHPUT_LINKS))]


@dataclass(frozen=True)
class OtherPorts:
    """Where the bridge reaches Prosody and the relay, and where it listens for mail."""

    component: int
    relay: int
    mail_inbound: int


def new_tokens() -> dict[str, str]:
    """Fresh appservice tokens for both networks (``bund_as``, ``bund_hs``, ``tchap_as``…)."""
    return {
        f"{net}_{kind}": secrets.token_hex(16) for net in ("bund", "tchap") for kind in ("as", "hs")
    }


def _tokens_yaml(tokens: dict[str, str], network: str) -> str:
    return f"as_token: {tokens[network + '_as']}\nhs_token: {tokens[network + '_hs']}\n"


def networks_yaml(ports: Ports, tokens: dict[str, str], tchap_flavour: str = "tchap") -> str:
    """``networks:`` with bund and Tchap, registered with ``tokens`` (`new_tokens`)."""
    return (
        "networks:\n"
        + build.bund(ports.bund, appservice=_tokens_yaml(tokens, "bund"))
        + build.tchap(ports.tchap, appservice=_tokens_yaml(tokens, "tchap"), flavour=tchap_flavour)
    )


def head_yaml(database: Path, ports: Ports) -> str:
    """The config's head, logging at INFO (the tests' DEBUG costs the bridge CPU per event)."""
    return build.head("benchmark world", f"sqlite:{database}", ports.bridge, level="INFO")


def bench_config(root: Path, ports: Ports, tokens: dict[str, str], other: OtherPorts) -> str:
    return (
        head_yaml(root / "passerelle.db", ports)
        + networks_yaml(ports, tokens)
        + build.xmpp(other.component, COMPONENT)
        + build.mail(MAIL_DOMAIN, other.mail_inbound, other.relay, "bench")
        + "people:\n"
        + build.MAX
        + build.person("reader", "Rita Reader", None, {"mail": READER})
        + "links:\n"
        + "".join(build.matrix_link(name) for name in link_names())
        + other_links()
    )


class BenchProsody(Prosody):
    """The harness's Prosody, logging at INFO like the bridge here (its DEBUG log would cost
    Prosody CPU on every stanza, in the baseline as in the bridged runs)."""

    DEBUG = 'levels = { min = "debug" }'

    def config(self) -> str:
        text = super().config()
        if self.DEBUG not in text:
            raise RuntimeError("the harness's Prosody config no longer sets its log level here")
        return text.replace(self.DEBUG, 'levels = { min = "info" }')


@dataclass(kw_only=True)
class BenchWorld(build.BaseWorld):
    """``rooms``: ``"<network>:<room>"`` → room ID (``bund:main``, ``tchap:tp7``, ``bund:local``…),
    MUC JID (``xmpp:muc``, ``xmpp:local``) or address (``mail:mail``, the link's; ``mail:local``,
    the mailbox the baseline writes to). ``tokens``: the appservice tokens (`new_tokens`)."""

    ports: Ports
    tokens: dict[str, str]
    prosody: Prosody
    mailbox: Mailbox
    occupants: dict[str, Occupant] = field(default_factory=dict)
    """``alice`` (who sends in the MUCs) and ``bob`` (who watches them)."""

    def servers(self) -> list[build.Server]:
        return [*super().servers(), self.prosody]

    def clients(self) -> list[build.Client]:
        return [*super().clients(), *self.occupants.values()]

    def in_process(self) -> list[build.LocalServer]:
        return [self.mailbox]


def write_world_files(
    root: Path, ports: Ports, tokens: dict[str, str], other: OtherPorts, xmpp_secret: str
) -> Path:
    """The bridge config and the secrets it names; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "xmpp-secret").write_text(xmpp_secret + "\n")
    (root / "dkim-mail.key").write_bytes(dkim_keypair().private_pem)
    config_path = root / "config.yaml"
    config_path.write_text(bench_config(root, ports, tokens, other))
    return config_path


async def _rooms_for(owner: User, members: list[User], names: list[str], tchap: bool) -> dict:
    """Create public rooms ``#name`` owned by ``owner`` and joined by ``members``, a few at once
    (Synapse serialises most of the work anyway)."""
    rooms: dict[str, str] = {}
    gate = asyncio.Semaphore(4)

    async def one(name: str) -> None:
        async with gate:
            state = [UNRESTRICTED] if tchap else []
            room_id = await owner.create_room(alias=name, name=name, public=True,
                                              initial_state=state)  # fmt: skip
            for member in members:
                await member.join(room_id)
            rooms[name] = room_id

    await asyncio.gather(*(one(name) for name in names))
    return rooms


async def _occupants(world: BenchWorld) -> None:
    """Alice and Bob logged in, both in the bridged MUC and the local one (which their joining
    creates, before the bridge starts, as people do)."""
    password = secrets.token_hex(8)
    for name in ("alice", "bob"):
        jid = await asyncio.to_thread(world.prosody.register, name, password)
        occupant = world.occupants[name] = Occupant(jid, password, world.prosody.c2s_port)
        await occupant.connect()
        for room in (*(muc_jid(link) for link in MUC_LINKS), LOCAL_MUC):
            await occupant.join(room, name.title())


async def start_bench_world(root: Path) -> BenchWorld:
    """Servers, users and rooms up, then the bridge, ready (every link room set up)."""
    ports, tokens = Ports(), new_tokens()
    secret = secrets.token_hex(16)
    prosody = BenchProsody(root / "prosody", components={COMPONENT: secret})
    mailbox = Mailbox()
    other = OtherPorts(prosody.component_port, mailbox.port, free_port())
    config_path = write_world_files(root, ports, tokens, other, secret)
    world = await asyncio.to_thread(
        BenchWorld.registered, root, config_path, ports, ports=ports, tokens=tokens,
        homeserver_config={"filter_timeline_limit": TIMELINE_LIMIT}, prosody=prosody,
        mailbox=mailbox,
    )  # fmt: skip
    try:
        await _populate(world)
    except BaseException:
        await world.stop()
        raise
    return world


async def _populate(world: BenchWorld) -> None:
    """Start the servers, then the people and rooms, then the bridge."""
    world.mailbox.start()
    await world.start_servers()
    await _occupants(world)
    world.rooms.update({"xmpp:local": LOCAL_MUC, "mail:local": READER})
    world.rooms.update({f"xmpp:{link}": muc_jid(link) for link in MUC_LINKS})
    world.rooms.update({f"mail:{link}": mail_address(link) for link in MAIL_LINKS})
    await world.register("max", "erika", "jean", "marie")
    u = world.users
    names = [*link_names(), "local"]
    bund_rooms, tchap_rooms = await asyncio.gather(
        _rooms_for(u["max"], [u["erika"]], [*names, *MUC_LINKS, *MAIL_LINKS], tchap=False),
        _rooms_for(u["jean"], [u["marie"]], names, tchap=True),
    )
    world.rooms.update({f"bund:{n}": r for n, r in bund_rooms.items()})
    world.rooms.update({f"tchap:{n}": r for n, r in tchap_rooms.items()})
    await world.bridge.start()
