"""The gateway in the test process with no server at all: configs whose two Matrix networks point
at closed ports on this machine, and the bund network's appservice endpoint served on a real
store, for tests of what the gateway does before (or without) talking to a homeserver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bridge.app import Gateway
from bridge.config.load import load_config
from bridge.store import Store
from connectors.matrix.appservice import AppserviceConnector

ROOM = "!wg:bund.example"
HS_TOKEN = "b"
"""The token bund's homeserver would send with its transactions."""


def networks(bund: str = "") -> str:
    """``networks:`` with bund (Matrix) and tchap (Tchap), whose homeservers are closed ports;
    ``bund``: more lines for the bund network. No braces, so the text can go into a template
    that is filled with `str.format`."""
    return f"""\
networks:
  bund:
    homeserver: http://127.0.0.1:1
    server_name: bund.example
{bund}    appservice:
      as_token: a
      hs_token: {HS_TOKEN}
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:2
    server_name: tchap.example
    appservice:
      as_token: c
      hs_token: d
"""


def appservice_config(root: Path) -> str:
    """A config with a SQLite store in ``root`` and one link, ``wg``, between bund's `ROOM` and
    a Tchap room."""
    return (
        f"database: sqlite:{root}/passerelle.db\n{networks()}"
        f'links:\n  - id: wg\n    rooms: {{bund: "{ROOM}", tchap: "!wg:tchap.example"}}\n'
    )


@dataclass
class Appservice:
    """bund's transaction endpoint served by ``client``, and what stands behind it."""

    client: TestClient[Any, Any]
    bund: AppserviceConnector
    store: Store

    async def put(self, txn_id: str | int, body: bytes) -> int:
        """The status of a transaction pushed as bund's homeserver pushes it."""
        response = await self.client.put(
            f"/as/bund/_matrix/app/v1/transactions/{txn_id}",
            data=body,
            headers={"Authorization": f"Bearer {HS_TOKEN}"},
        )
        return response.status

    async def close(self) -> None:
        await self.client.close()
        await self.bund.stop()
        await self.store.close()


async def serve_appservice(root: Path, *, wary: bool) -> Appservice:
    """bund's appservice endpoint for `appservice_config`: its rooms bound by hand, Max known as a
    member of `ROOM`, the first catch-up pass done. ``wary``: whether pushed events still wait
    for their room to be read, as they do for a while after a start (`CatchUp.wary`)."""
    (root / "config.yaml").write_text(appservice_config(root))
    config = load_config(root / "config.yaml", {})
    store = await Store.open(config.database)
    gateway = Gateway(config, store)
    await gateway._open_states()
    bund = gateway.connectors["bund"]
    assert isinstance(bund, AppserviceConnector)
    await bund.start()
    assert bund._setup_task is not None
    bund._setup_task.cancel()
    bund.rooms_ready.set()
    bund.catch_up.first_pass.set()
    if not wary:
        bund.catch_up._wary_until = 0.0
    gateway.directory.bind("wg", "bund", ROOM)
    gateway.directory.bind("wg", "tchap", "!wg:tchap.example")
    bund._members[(ROOM, "@max:bund.example")] = ("Max", None)
    client = TestClient(TestServer(gateway.web))
    await client.start_server()
    return Appservice(client, bund, store)
