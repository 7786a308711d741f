"""The Matrix connector's HTTP client sessions.

Everything a homeserver answers (``/sync`` batches, room state, members) carries what users
wrote. mautrix reads response bodies with aiohttp's ``ClientResponse.json``, which fails on
bytes that are not UTF-8 and on JSON nested deeper than Python recurses; a ``/sync`` batch
holding one such event would then fail for ever and stop the network. Sessions made here read
every response with `bridge.json_input.loads` instead: a thin subclass, since aiohttp lets a
session choose its response class and mautrix offers no other hook.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bridge import json_input


class _NetworkJSONResponse(aiohttp.ClientResponse):
    async def json(self, **_: Any) -> Any:
        body = await self.read()
        return json_input.loads(body) if body.strip() else None


def client_session() -> aiohttp.ClientSession:
    """An aiohttp session for talking to a homeserver."""
    return aiohttp.ClientSession(response_class=_NetworkJSONResponse)
