"""A whole small federation-less world: two real Synapse homeservers (``bund.test`` and
``tchap.test``), real users and rooms on each, and the bridge process between them, configured
and registered exactly as an admin would (``passerelle generate-registration``).

Used by the end-to-end tests and by ``make sandbox``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

from tests.harness import BridgeProcess, Homeserver, User, free_port
from tests.harness import world as build

RELAY_PASSWORD = "relay-bot-password-for-tests"
ADMIN_TOKEN = "admin-token-of-the-test-world"
"""The world bridge's ``admin.token`` (its admin API and status page)."""
AUDIT_KEY = "audit-key-of-the-test-world-0123456789"
"""The world bridge's ``audit.key`` (its audit trail's HMACs)."""
GIVE_UP_AFTER = 25
"""Seconds a message waits for a network that is down (``delivery.give_up_after``), short for
the tests; eight attempts of the configured backoff take about 9 s."""
ADMIN_AND_AUDIT = "admin:\n  token: {file: admin-token}\naudit:\n  key: {file: audit-key}\n"
RELAY = """\
mode: relay
relay:
  user_id: "@relaybot:tchap.test"
  password: {file: relay-password}
"""
"""The options of ``tchap-relay``, the Tchap homeserver again, in relay mode."""

PEOPLE_AND_LINKS = """\
people:
  - id: max
    name: Max Mustermann
    org: BMI
    accounts:
      bund: "@max:bund.test"
  - id: anna
    name: Anna Schmidt
    org: AA
    accounts:
      bund: "@anna:bund.test"
      tchap: "@anna.schmidt-auswaertiges-amt.de:tchap.test"
links:
  - id: main
    rooms:
      bund: "#main:bund.test"
      tchap: "#main:tchap.test"
  - id: created
    people: [max]
    rooms:
      bund:
        create:
          name: Created WG
          topic: Made by the bridge
          room_version: "11"
      tchap: "#created:tchap.test"
  - id: restricted
    rooms:
      bund: "#restr:bund.test"
      tchap: "#restr:tchap.test"
  - id: relay
    rooms:
      bund: "#relay:bund.test"
      tchap-relay: "#relay:tchap.test"
"""


@dataclass
class World:
    root: Path
    config_path: Path
    bund: Homeserver
    tchap: Homeserver
    bridge: BridgeProcess
    users: dict[str, User] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    """``"<network>:<link>"`` → room ID, for the rooms the users created."""

    @property
    def config(self) -> dict:
        return YAML(typ="safe").load(self.config_path.read_text())

    def hs_token(self, network: str) -> str:
        return str(self.config["networks"][network]["appservice"]["hs_token"])

    @property
    def bridge_url(self) -> str:
        return f"http://{self.bridge.host}:{self.bridge.port}"

    async def stop(self) -> None:
        await self.bridge.astop()
        for user in self.users.values():
            await user.close()
        await asyncio.gather(self.bund.astop(), self.tchap.astop())


def write_config(root: Path, bund_port: int, tchap_port: int, bridge_port: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "relay-password").write_text(RELAY_PASSWORD + "\n")
    (root / "admin-token").write_text(ADMIN_TOKEN + "\n")
    (root / "audit-key").write_text(AUDIT_KEY + "\n")
    path = root / "config.yaml"
    path.write_text(
        build.head("test world", f"sqlite:{root}/passerelle.db", bridge_port,
             give_up_after=GIVE_UP_AFTER)
        + ADMIN_AND_AUDIT
        + "networks:\n"
        + build.bund(bund_port)
        + build.tchap(tchap_port)
        + build.tchap(tchap_port, RELAY, name="tchap-relay")
        + PEOPLE_AND_LINKS
    )  # fmt: skip
    return path


async def start_world(
    root: Path, password: str | None = None, tchap_ports: tuple[int, int] | None = None
) -> World:
    """Everything up and the bridge ready; rooms exist before the bridge starts, as in real use.

    ``password`` is given to every user (the sandbox prints it so people can log in).
    ``tchap_ports``: the port ``tchap.test`` listens on, and the one the bridge reaches it at
    (a proxy in front of it)."""
    bund_port, bridge_port = free_port(), free_port()
    tchap_real_port, tchap_port = tchap_ports or (free_port(),) * 2
    config_path = write_config(root, bund_port, tchap_port, bridge_port)
    build.generate_registration(config_path)
    bund, tchap = build.homeservers(root, bund_port, tchap_real_port)
    bridge = BridgeProcess(config_path, root, port=bridge_port)
    world = World(root, config_path, bund, tchap, bridge)
    await asyncio.gather(bund.start(), tchap.start())

    u = world.users
    for key, hs, localpart, name in (
        ("max", bund, "max", "Max Mustermann"),
        ("erika", bund, "erika", "Erika Musterfrau"),
        ("anna_bund", bund, "anna", "Anna Schmidt"),
        ("jean", tchap, "jean.dupont-interieur.gouv.fr", "Jean Dupont [Intérieur]"),
        ("anna_tchap", tchap, "anna.schmidt-auswaertiges-amt.de", "Anna Schmidt [AA]"),
    ):
        u[key] = await User.register(hs, localpart, displayname=name, password=password)
    await tchap.register("relaybot", displayname="Passerelle", password=RELAY_PASSWORD)

    r = world.rooms
    for link in ("main", "restr", "relay"):
        r[f"bund:{link}"] = await u["max"].create_room(alias=link, name=link, public=True)
        await u["erika"].join(r[f"bund:{link}"])
    await u["anna_bund"].join(r["bund:main"])
    for link, rule in (("main", build.UNRESTRICTED), ("created", build.UNRESTRICTED),
                       ("restr", build.RESTRICTED), ("relay", build.UNRESTRICTED)):  # fmt: skip
        r[f"tchap:{link}"] = await u["jean"].create_room(
            alias=link, name=link, public=True, initial_state=[rule]
        )
    await u["anna_tchap"].join(r["tchap:main"])
    await bridge.start()
    return world
