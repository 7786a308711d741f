"""mautrix's request log through `connectors.matrix.api`: written at DEBUG as mautrix writes it,
not even formatted at any other level; requests made against a real HTTP server on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from mautrix.api import Method, Path
from mautrix.types import RoomID

from connectors.matrix.api import NamedCalls
from connectors.matrix.http import client_session

LOGGER = "test.matrix.requests"


@pytest.fixture
async def homeserver() -> AsyncIterator[str]:
    async def send(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"event_id": "$e1:tchap.test"})

    app = web.Application()
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", send)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _send(base_url: str) -> object:
    session = client_session()
    try:
        api = NamedCalls(base_url, "token", client_session=session, log=logging.getLogger(LOGGER))
        path = Path.v3.rooms[RoomID("!r:tchap.test")].send["m.room.message"]["txn1"]
        return await api.request(Method.PUT, path, {"msgtype": "m.text", "body": "Hallo"})
    finally:
        await session.close()


@pytest.mark.parametrize(
    ("level", "lines"),
    [
        (logging.DEBUG, ["PUT", "completed in"]),
        (logging.INFO, []),
    ],
)
async def test_request_log_only_at_debug(
    homeserver: str, caplog: pytest.LogCaptureFixture, level: int, lines: list[str]
) -> None:
    caplog.set_level(level, logger=LOGGER)
    assert await _send(homeserver) == {"event_id": "$e1:tchap.test"}
    records = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(records) == len(lines)
    for record, words in zip(records, lines, strict=True):
        assert record.startswith("req #") and words in record
