"""A whole small federation-less world: two real Synapse homeservers (``bund.test`` and
``tchap.test``), real users and rooms on each, and the bridge process between them, configured
and registered exactly as an admin would (``passerelle generate-registration``).

Used by the end-to-end tests and by ``make sandbox``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

PEOPLE_AND_LINKS = (
    "people:\n"
    + build.MAX
    + build.ANNA
    + "links:\n"
    + build.matrix_link("main")
    + """\
  - id: created
    people: [max]
    rooms:
      bund:
        create:
          name: Created WG
          topic: Made by the bridge
          room_version: "11"
      tchap: "#created:tchap.test"
"""
    + build.link("restricted", {"bund": "#restr:bund.test", "tchap": "#restr:tchap.test"})
    + build.RELAY_LINK
)


@dataclass(kw_only=True)
class World(build.BaseWorld):
    """``rooms``: ``"<network>:<link>"`` → room ID, for the rooms the users created."""

    def hs_token(self, network: str) -> str:
        return str(self.config["networks"][network]["appservice"]["hs_token"])


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
        + build.tchap_relay(tchap_port)
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
    ports = build.Ports(**({"tchap": tchap_ports[1]} if tchap_ports else {}))
    config_path = write_config(root, ports.bund, ports.tchap, ports.bridge)
    world = World.registered(root, config_path, ports,
                             tchap_port=tchap_ports[0] if tchap_ports else None)  # fmt: skip
    await world.start_servers()
    await world.register("max", "erika", "anna_bund", "jean", "anna_tchap", password=password)
    await build.register_relay_bot(world.tchap, RELAY_PASSWORD)

    u = world.users
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
    await world.bridge.start()
    return world
