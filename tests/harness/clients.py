"""Real Matrix clients (mautrix) acting as human users in end-to-end tests.

Events are handled as plain dicts (the JSON the homeserver returns) so that predicates can look at
any field of any event type without depending on mautrix's typed deserialisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from mautrix.api import Method, Path
from mautrix.client import Client
from mautrix.types import RoomCreatePreset, RoomID, UserID

if TYPE_CHECKING:
    from tests.harness.synapse import Homeserver

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class User:
    """A logged-in Matrix user with its own aiohttp session (call ``close()`` when done)."""

    def __init__(self, user_id: str, access_token: str, base_url: str) -> None:
        self.user_id = user_id
        self.access_token = access_token
        self.session = aiohttp.ClientSession()
        self.client = Client(
            UserID(user_id), base_url=base_url, token=access_token, client_session=self.session
        )

    @classmethod
    async def register(
        cls,
        hs: Homeserver,
        localpart: str,
        *,
        admin: bool = False,
        displayname: str | None = None,
        password: str | None = None,
    ) -> User:
        """Register ``localpart`` on ``hs`` via the admin API and return a client for it."""
        user_id, token = await hs.register(
            localpart, admin=admin, displayname=displayname, password=password
        )
        return cls(user_id, token, hs.url)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> User:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- rooms ---------------------------------------------------------------------------------

    async def create_room(
        self,
        *,
        alias: str | None = None,
        name: str | None = None,
        public: bool = False,
        invitees: list[str] | None = None,
        initial_state: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> str:
        """Create a room; ``alias`` is the alias localpart; ``public`` uses preset public_chat."""
        room_id = await self.client.create_room(
            alias_localpart=alias,
            name=name,
            preset=RoomCreatePreset.PUBLIC if public else RoomCreatePreset.PRIVATE,
            invitees=[UserID(u) for u in invitees or []],
            initial_state=initial_state or [],
            **kwargs,
        )
        return str(room_id)

    async def join(self, room_id_or_alias: str) -> str:
        """Join a room by ID or alias; return the room ID."""
        return str(await self.client.join_room(room_id_or_alias))  # type: ignore[arg-type]

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.client.invite_user(RoomID(room_id), UserID(user_id))

    async def leave(self, room_id: str) -> None:
        await self.client.leave_room(RoomID(room_id))

    # -- messages ------------------------------------------------------------------------------

    async def send_text(self, room_id: str, text: str, html: str | None = None) -> str:
        """Send an m.text message (with optional HTML formatted_body); return the event ID."""
        return str(await self.client.send_text(RoomID(room_id), text, html=html))

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send any message-like event given as raw JSON content; return the event ID."""
        path = Path.v3.rooms[room_id].send[event_type][self.client.api.get_txn_id()]
        resp = await self.client.api.request(Method.PUT, path, content)
        return str(resp["event_id"])

    async def _page(self, room_id: str, frm: str | None, limit: int) -> tuple[list[Event], Any]:
        params = {"dir": "b", "limit": str(limit)}
        if frm:
            params["from"] = frm
        resp = await self.client.api.request(
            Method.GET, Path.v3.rooms[room_id].messages, query_params=params
        )
        return list(resp.get("chunk", [])), resp.get("end")

    async def messages(self, room_id: str, limit: int = 50) -> list[Event]:
        """The latest ``limit`` room events (any type, incl. state), oldest first, not cached."""
        events: list[Event] = []
        frm: str | None = None
        while len(events) < limit:
            chunk, end = await self._page(room_id, frm, min(100, limit - len(events)))
            events.extend(chunk)
            if not chunk or not end:
                break
            frm = end
        events.reverse()
        return events

    async def wait_for(
        self,
        room_id: str,
        predicate: Predicate,
        timeout: float = 30,  # noqa: ASYNC109
        *,
        after: str | None = None,
        history: int = 200,
    ) -> Event:
        """Return the earliest of the last ``history`` room events matching ``predicate``.

        Polls ``/messages`` every 0.2 s, so events that arrived before the call are seen as well
        (no race with the sender). ``after`` (an event ID) limits the search to later events,
        for tests that repeat the same message.
        """
        deadline = time.monotonic() + timeout
        last: list[Event] = []
        while True:
            last = await self.messages(room_id, history)
            if after is not None:
                ids = [e.get("event_id") for e in last]
                last = last[ids.index(after) + 1 :] if after in ids else last
            for event in last:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                summary = "\n".join(
                    f"  {e.get('type')} from {e.get('sender')}: {e.get('content')}"
                    for e in last[-15:]
                )
                raise TimeoutError(
                    f"{self.user_id}: no matching event in {room_id} after {timeout}s; "
                    f"latest events:\n{summary}"
                )
            await asyncio.sleep(0.2)

    async def wait_for_text(
        self,
        room_id: str,
        body: str,
        sender: str | None = None,
        timeout: float = 30,  # noqa: ASYNC109
    ) -> Event:
        """Shortcut: wait for an m.room.message whose body equals ``body`` (and from ``sender``)."""

        def pred(e: Event) -> bool:
            return (
                e.get("type") == "m.room.message"
                and e.get("content", {}).get("body") == body
                and (sender is None or e.get("sender") == sender)
            )

        return await self.wait_for(room_id, pred, timeout)
