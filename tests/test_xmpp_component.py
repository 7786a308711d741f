"""The component connection on a real Prosody, in-process: the bridge starts (and is ready) while
the XMPP server is down, connects and joins when it comes up, and a wrong component secret is
reported without holding anything else up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.app import Gateway
from bridge.config import load_config
from bridge.store import Store
from connectors.xmpp.connector import XmppConnector
from tests.harness import free_port, require_server
from tests.harness.prosody import Prosody, prosody_available

CONFIG = """\
database: sqlite:{root}/passerelle.db
listen: {{host: 127.0.0.1, port: {port}}}
networks:
  good:
    kind: xmpp
    server: {{host: 127.0.0.1, port: {component_port}}}
    component: good.xmpp.test
    secret: s3cret-good-7f
    domain: xmpp.test
  bad:
    kind: xmpp
    server: {{host: 127.0.0.1, port: {component_port}}}
    component: bad.xmpp.test
    secret: s3cret-bad-9c
    domain: xmpp.test
links:
  - id: wg
    rooms:
      good: a@conference.xmpp.test
      bad: b@conference.xmpp.test
"""


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout}s")
        await asyncio.sleep(0.1)


async def test_bridge_outlives_a_missing_server_and_a_wrong_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = prosody_available()
    if reason:
        require_server("prosody", reason)
    caplog.set_level(logging.INFO)
    prosody = Prosody(
        tmp_path / "prosody",
        components={"good.xmpp.test": "s3cret-good-7f", "bad.xmpp.test": "s3cret-other-1a"},
    )
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(root=tmp_path, port=free_port(),
                                  component_port=prosody.component_port))  # fmt: skip
    store = await Store.open(f"sqlite:{tmp_path}/passerelle.db")
    gateway = Gateway(load_config(path, {}), store)
    good, bad = gateway.connectors["good"], gateway.connectors["bad"]
    assert isinstance(good, XmppConnector) and isinstance(bad, XmppConnector)
    await gateway.start()
    try:
        await eventually(gateway.is_ready, "ready without its XMPP server")
        assert not good.component.online
        await prosody.start()
        await eventually(lambda: good.rooms["a@conference.xmpp.test"].joined, "joined")
        await eventually(lambda: "not-authorized" in caplog.text, "told of the wrong secret")
        assert not bad.component.online
        assert "s3cret" not in caplog.text
    finally:
        await gateway.stop()
        await store.close()
        await prosody.astop()
