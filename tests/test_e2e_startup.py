"""Start-up at scale, on the real homeservers of the test world: a restart reads what it knows
of its rooms from the store, not with a request per room, and still lets nothing into a room it
may not bridge."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from ruamel.yaml import YAML

from tests.harness import User
from tests.harness.bridge import BridgeProcess
from tests.harness.expect import bodies, body_is, unique
from tests.world import World

pytestmark = pytest.mark.e2e

LINKS = 12
"""Links with a room the bridge creates on each homeserver: far more than any request the
bridge makes once per network at start."""
CALL = re.compile(r'^bridge_matrix_api_calls_total\{method="([^"]*)"\} ([0-9.e+]+)$', re.M)


def startup_config(world: World, root: Path) -> Path:
    """The world's two appservice networks with ``LINKS`` created rooms, one restricted Tchap
    room (the world's, given by ID) and a store of their own."""
    config = world.config
    config["database"] = f"sqlite:{root / 'startup.db'}"
    config["networks"] = {name: config["networks"][name] for name in ("bund", "tchap")}
    config["people"] = [
        {"id": "lina", "name": "Lina Berg", "org": "BMI",
         "accounts": {"bund": "@lina:bund.test"}},
        {"id": "luc", "name": "Luc Martin", "org": "DINUM",
         "accounts": {"tchap": "@luc.martin-numerique.gouv.fr:tchap.test"}},
    ]  # fmt: skip
    config["links"] = [
        {"id": f"wg{i}", "people": ["lina", "luc"],
         "rooms": {"bund": {"create": {"name": f"WG {i}"}},
                   "tchap": {"create": {"name": f"GT {i}"}}}}
        for i in range(LINKS)
    ] + [{"id": "restricted", "people": ["lina"],
          "rooms": {"bund": {"create": {"name": "Restricted"}},
                    "tchap": world.rooms["tchap:restr"]}}]  # fmt: skip
    path = root / "startup.yaml"
    for secret in ("relay-password", "admin-token", "audit-key"):
        (root / secret).write_text((world.root / secret).read_text())
    with path.open("w") as out:
        YAML(typ="safe").dump(config, out)
    return path


async def calls(bridge: BridgeProcess) -> dict[str, int]:
    """The bridge's homeserver requests so far, by name."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{bridge.host}:{bridge.port}/metrics") as resp:
            text = await resp.text()
    return {name: int(float(count)) for name, count in CALL.findall(text) if float(count)}


def created_rooms(root: Path, network: str) -> dict[str, str]:
    with sqlite3.connect(root / "startup.db") as db:
        rows = db.execute(
            "SELECT link_id, room_id FROM created_room WHERE network=?", (network,)
        ).fetchall()
    return dict(rows)


async def test_a_restart_makes_no_request_per_room_before_ready(
    world: World, tmp_path: Path
) -> None:
    lina = await User.register(world.bund, "lina", displayname="Lina Berg")
    luc = await User.register(world.tchap, "luc.martin-numerique.gouv.fr",
                              displayname="Luc Martin [DINUM]")  # fmt: skip
    bridge = BridgeProcess(startup_config(world, tmp_path), tmp_path, port=world.bridge.port)
    await world.bridge.astop()
    try:
        await bridge.start()  # the first run creates the rooms
        await bridge.astop()
        await bridge.start(timeout=120)
        # The catch-up, which reads the rooms' timelines (getMessages), begins at ready, and an
        # event pushed right then may cost a request or two (a sender's profile): none is per
        # room (the code before issue 16 made 40 state requests here for 26 rooms).
        at_ready = {name: n for name, n in (await calls(bridge)).items() if name != "getMessages"}
        assert max(at_ready.values()) <= 2, f"a request per room before ready: {at_ready}"

        bund_rooms, tchap_rooms = created_rooms(tmp_path, "bund"), created_rooms(tmp_path, "tchap")
        await lina.join(bund_rooms["wg3"])
        await luc.join(tchap_rooms["wg3"])
        text = unique("Nach dem Neustart")
        await lina.send_text(bund_rooms["wg3"], text)
        await luc.wait_for(tchap_rooms["wg3"], body_is(text))
        answer = unique("Bien reçu")
        await luc.send_text(tchap_rooms["wg3"], answer)
        await lina.wait_for(bund_rooms["wg3"], body_is(answer))

        # A room never checked is checked on its first event: nothing enters a restricted one.
        await lina.join(bund_rooms["restricted"])
        outward = unique("bleibt draußen")
        await lina.send_text(bund_rooms["restricted"], outward)
        marker = unique("marker")
        await lina.send_text(bund_rooms["wg3"], marker)
        await luc.wait_for(tchap_rooms["wg3"], body_is(marker))
        await asyncio.sleep(1)
        assert outward not in await bodies(world.users["jean"], world.rooms["tchap:restr"])
    finally:
        await bridge.astop()
        await lina.close()
        await luc.close()
        await world.bridge.start()
