"""End to end with federation: the German homeserver federates with a server of strangers, whose
users can join its public rooms. A network brings more than its own server's users, so Tchap's
rule for restricted rooms must hold for every sender, wherever their server is.

Three real Synapse homeservers: the German one and ``evil``'s, federating over TLS on loopback
(IP-literal server names, see `Homeserver.federating`), and a Tchap one that federates with
nobody; the bridge links a public German room with a restricted Tchap room that admits the
German server's people (``restricted_rooms_allow``) and no one else.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import (
    BridgeProcess,
    Homeserver,
    User,
    free_port,
)
from tests.harness import world as build
from tests.harness.expect import bodies, body_is, unique

pytestmark = pytest.mark.e2e


def config(root: Path, bridge_port: int, bund_port: int, tchap_port: int, bund_name: str) -> str:
    """Bund lets nobody of another server out (``allowed_domains: []``); Tchap's restricted
    rooms let bund's own people in."""
    return (
        build.head("federation test world", f"sqlite:{root}/passerelle.db", bridge_port)
        + "networks:\n"
        + build.matrix_network("bund", bund_port, server_name=f'"{bund_name}"',
                         options="org_label: BMI\nallowed_domains: []\n")
        + build.tchap(tchap_port, f'restricted_rooms_allow: ["{bund_name}"]\n')
        + "links:\n"
        + build.matrix_link("wg", bund=bund_name)
    )  # fmt: skip


@dataclass(kw_only=True)
class FederationWorld(build.BaseWorld):
    evil: Homeserver

    def servers(self) -> list[build.Server]:
        return [self.bund, self.evil, self.tchap]


async def start_federation_world(root: Path) -> FederationWorld:
    bund = Homeserver.federating(root / "bund", appservice_files=[root / "bund-registration.yaml"])
    evil = Homeserver.federating(root / "evil")
    tchap = Homeserver("tchap.test", root / "tchap",
                       appservice_files=[root / "tchap-registration.yaml"])  # fmt: skip
    bridge_port = free_port()
    path = root / "config.yaml"
    path.write_text(config(root, bridge_port, bund.port, tchap.port, bund.server_name))
    build.generate_registration(path)
    world = FederationWorld(root=root, config_path=path, bund=bund, evil=evil, tchap=tchap,
                            bridge=BridgeProcess(path, root, port=bridge_port))  # fmt: skip
    await world.start_servers()
    await world.register("max", "jean")
    world.users["evil"] = await User.register(evil, "evil", displayname="Jean Dupont [Intérieur]")
    u = world.users
    world.rooms["bund"] = await u["max"].create_room(alias="wg", name="WG", public=True)
    world.rooms["tchap"] = await u["jean"].create_room(
        alias="wg", name="WG", public=True, initial_state=[build.RESTRICTED]
    )
    await world.bridge.start()
    return world


@pytest.fixture(scope="module")
async def fw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FederationWorld]:
    started = await build.started(
        start_federation_world, tmp_path_factory.mktemp("federation-world")
    )
    yield started
    await started.stop()


async def test_a_federated_stranger_never_enters_a_restricted_tchap_room(
    fw: FederationWorld,
) -> None:
    max_, evil, jean = fw.users["max"], fw.users["evil"], fw.users["jean"]
    await evil.client.join_room(fw.rooms["bund"], servers=[fw.bund.server_name])  # type: ignore[arg-type]
    await max_.wait_for(
        fw.rooms["bund"], lambda e: e.get("type") == "m.room.member" and e["sender"] == evil.user_id
    )
    secret = unique(f"Nachricht von außen {secrets.token_hex(4)}")
    await evil.send_text(fw.rooms["bund"], secret)
    # The sender's room is told, in a notice from the bridge, that it did not cross.
    notice = await max_.wait_for(fw.rooms["bund"], lambda e: secret in e["content"].get("body", "")
                                 and e["content"].get("msgtype") == "m.notice")  # fmt: skip
    assert "evil" not in notice["sender"]
    assert notice["content"]["body"] == (
        f"⚠️ Nachricht „{secret}“ von Jean Dupont [Intérieur] konnte nicht an Tchap zugestellt "
        f"werden (der Raum dort nimmt niemanden von {fw.evil.server_name} auf)."
    )

    marker = unique("Hallo aus Berlin")
    await max_.send_text(fw.rooms["bund"], marker)
    await jean.wait_for(fw.rooms["tchap"], body_is(marker))
    seen = await bodies(jean, fw.rooms["tchap"])
    assert not any(secret in (body or "") for body in seen)
    members = await jean.client.get_joined_members(fw.rooms["tchap"])  # type: ignore[arg-type]
    assert not any("evil" in str(user) for user in members)


async def test_a_stranger_typing_is_not_shown_in_a_restricted_room(fw: FederationWorld) -> None:
    evil, jean = fw.users["evil"], fw.users["jean"]
    await evil.client.set_typing(fw.rooms["bund"], timeout=30000)  # type: ignore[arg-type]
    marker = unique("Noch da?")
    await fw.users["max"].send_text(fw.rooms["bund"], marker)
    await jean.wait_for(fw.rooms["tchap"], body_is(marker))
    members = await jean.client.get_joined_members(fw.rooms["tchap"])  # type: ignore[arg-type]
    assert not any("evil" in str(user) for user in members)
