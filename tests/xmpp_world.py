"""A world with an XMPP agency: two real Synapse homeservers (``bund.test``, ``tchap.test``), a
real Prosody (``xmpp.test`` with its MUC service, upload service and the bridge's component, plus
``other.test`` whose users the bridge must refuse), people on each, and the bridge linking one
Matrix room, one Tchap room and one MUC.

Used by the XMPP end-to-end tests and by ``make sandbox`` when Prosody is installed.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

from mautrix.types import EventType, RoomID

from tests.harness import world as build
from tests.harness.prosody import Prosody

COMPONENT = "passerelle.xmpp.test"
MUC = "wg@conference.xmpp.test"
AVATAR = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4ae0000000049454e44ae426082"
)
"""A 1×1 PNG: Jean's avatar."""

XMPP_OPTIONS = """\
self_ping_interval: 2
# Prosody's upload service is on loopback here, so it has to be allowed by address too.
file_hosts: ["127.0.0.1:{upload_port}"]
file_private_networks: [127.0.0.1/32]
"""

PEOPLE_AND_LINKS = (
    "people:\n"
    + build.MAX
    + build.ALICE
    + build.person("erika", "Erika Musterfrau", "BSI",
                   {"bund": "@erika:bund.test", "xmpp": "erika@xmpp.test"})
    + build.ANNA
    + "links:\n"
    + build.link("wg", {"bund": "#wg:bund.test", "tchap": "#wg:tchap.test", "xmpp": MUC})
)  # fmt: skip


@dataclass(kw_only=True)
class XmppWorld(build.XmppWorldBase):
    """``rooms``: ``bund`` / ``tchap`` → room ID of the linked room; ``xmpp`` → the MUC JID."""

    password: str = ""


def write_config(
    root: Path, prosody: Prosody, bund_port: int, tchap_port: int, bridge_port: int
) -> Path:
    """The bridge's config, and the component secret in the file it names."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "xmpp-secret").write_text(prosody.components[COMPONENT] + "\n")
    path = root / "config.yaml"
    path.write_text(
        build.head("XMPP test world", f"sqlite:{root}/passerelle.db", bridge_port, max_attempts=40)
        + "networks:\n"
        + build.bund(bund_port)
        + build.tchap(tchap_port)
        + build.xmpp(prosody.component_port, COMPONENT,
               XMPP_OPTIONS.format(upload_port=prosody.http_port))
        + PEOPLE_AND_LINKS
    )  # fmt: skip
    return path


async def start_xmpp_world(root: Path, password: str | None = None) -> XmppWorld:
    """Everything up, the MUC and the Matrix rooms created by people before the bridge starts,
    and the bridge ready. ``password`` is given to every user (the sandbox prints it)."""
    password = password or secrets.token_hex(8)
    prosody = Prosody(root / "prosody", other_domains=("other.test",),
                      components={COMPONENT: secrets.token_hex(16)})  # fmt: skip
    ports = build.Ports()
    config_path = write_config(root, prosody, ports.bund, ports.tchap, ports.bridge)
    world = XmppWorld.registered(root, config_path, ports, prosody=prosody, password=password)
    for localpart, host in (("alice", "xmpp.test"), ("bob", "xmpp.test"), ("erika", "xmpp.test"),
                            ("mallory", "other.test")):  # fmt: skip
        await asyncio.to_thread(prosody.register, localpart, password, host)
    await world.start_servers()

    await world.register("max", "jean", "erika", "anna_bund", "anna_tchap", password=password)
    u = world.users
    avatar = await u["jean"].client.upload_media(AVATAR, mime_type="image/png")
    await u["jean"].client.set_avatar_url(avatar)
    world.rooms["bund"] = await u["max"].create_room(alias="wg", name="WG", public=True)
    await u["erika"].join(world.rooms["bund"])
    await u["anna_bund"].join(world.rooms["bund"])
    world.rooms["tchap"] = await u["jean"].create_room(
        alias="wg", name="WG", public=True, initial_state=[build.UNRESTRICTED]
    )
    await u["anna_tchap"].join(world.rooms["tchap"])
    world.rooms["xmpp"] = MUC
    for localpart, host in (("alice", "xmpp.test"), ("bob", "xmpp.test"),
                            ("mallory", "other.test")):  # fmt: skip
        await world.join_muc(localpart, password, MUC, host)
    await world.bridge.start()
    return world


def banner(world: XmppWorld) -> str:
    """What the sandbox prints about this world: where to connect and who to log in as."""
    return f"""
XMPP sandbox (its own homeservers, Prosody and bridge; files in {world.root})

  bund.test   {world.bund.url}      tchap.test  {world.tchap.url}
  xmpp.test   c2s 127.0.0.1:{world.prosody.c2s_port} (no TLS)  MUC {MUC}
  users (password "{world.password}"): alice@xmpp.test and bob@xmpp.test, max on bund.test,
  jean.dupont-interieur.gouv.fr on tchap.test; linked rooms: #wg on both and the MUC
"""


async def demo(world: XmppWorld, tag: str) -> None:
    """Alice writes in the MUC: both Matrix rooms show it under her name; Max answers and the
    MUC shows the answer under his."""
    text = f"Hallo aus dem XMPP-Raum ({tag})"
    world.xmpp["alice"].say(MUC, text)
    for user, room in (("max", "bund"), ("jean", "tchap")):
        seen = await world.users[user].wait_for(
            world.rooms[room], lambda e: e.get("content", {}).get("body") == text
        )
        member = await world.users[user].client.get_state_event(
            RoomID(world.rooms[room]), EventType.ROOM_MEMBER, seen["sender"]
        )
        print(f"  {'MUC → ' + room:<12} {member.displayname}: {seen['content']['body']}")
    answer = f"Guten Tag, Alice! ({tag})"
    await world.users["max"].send_text(world.rooms["bund"], answer)
    echoed = await world.xmpp["alice"].wait_for_body(MUC, answer)
    print(f"  {'bund → MUC':<12} {echoed['from'].resource}: {echoed['body']}")
