"""A message the target homeserver stored without the bridge hearing so, then a restart of that
homeserver (which forgets the appservice's transaction IDs): the resend must not post it twice.
Its own world, since the bridge reaches ``tchap.test`` through a proxy that loses the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness.expect import bodies, body_is, unique
from tests.harness.proxy import HomeserverProxy
from tests.harness.synapse import free_port
from tests.world import World, start_world

pytestmark = pytest.mark.e2e


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[World, HomeserverProxy]]:
    tchap_port, proxy_port = free_port(), free_port()
    proxy = HomeserverProxy(f"http://127.0.0.1:{tchap_port}", port=proxy_port)
    await proxy.start()
    world = await start_world(tmp_path, tchap_ports=(tchap_port, proxy_port))
    try:
        yield world, proxy
    finally:
        await world.stop()
        await proxy.stop()


async def test_a_lost_answer_and_a_homeserver_restart_do_not_double_a_message(
    proxied: tuple[World, HomeserverProxy],
) -> None:
    world, proxy = proxied
    max_, jean = world.users["max"], world.users["jean"]
    room = world.rooms["tchap:main"]
    proxy.lose_next_send()
    text = unique("Nur einmal, bitte")
    await max_.send_text(world.rooms["bund:main"], text)
    await jean.wait_for(room, body_is(text))
    assert proxy.lost, "the homeserver stored the message, and the bridge never heard so"
    await world.tchap.restart()
    proxy.resume()
    after = unique("Danach")
    await max_.send_text(world.rooms["bund:main"], after)
    await jean.wait_for(room, body_is(after), timeout=60)
    seen = [body for body in await bodies(jean, room, 30) if body in (text, after)]
    assert seen == [text, after]
