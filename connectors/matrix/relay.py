"""Matrix network where the bridge has only one ordinary account (Tchap's relay mode).

The bot posts every bridged message itself, with the sender's name in front as the network's
``format`` says, and receives through ``/sync``. Its sync position is stored after the events of a
batch are, so a restart resumes exactly there; a gap the homeserver reports (``limited``) is
filled from ``/messages`` before the batch's own events, so nothing is skipped.

With encryption allowed, the bot account's login device is the bridge's encryption device: each
batch's to-device events, device list changes and one-time key count go to it before the batch's
room events (a room key usually arrives in the batch of the message it opens).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from mautrix.api import Method, Path
from mautrix.client import Client, ClientAPI
from mautrix.errors import MatrixRequestError
from mautrix.types import LoginType, RoomID, SyncToken, UserID

from bridge.connector import Host, Outgoing
from bridge.tasks import supervise
from connectors.matrix.api import NamedCalls
from connectors.matrix.base import REFUSED_RETRY_SECONDS, MatrixConnector, token_refused
from connectors.matrix.config import MatrixNetwork
from connectors.matrix.http import client_session

JSON = dict[str, Any]
SYNC_TIMEOUT_MS = 30_000
SYNC_FILTER = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": True}},
    "presence": {"types": []},
    "account_data": {"types": []},
}


class RelayConnector(MatrixConnector):
    def __init__(self, network: MatrixNetwork, host: Host) -> None:
        super().__init__(network, host)
        assert network.relay is not None
        self.settings = network.relay
        self._session: aiohttp.ClientSession | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.client: Client

    async def start(self) -> None:
        self._session = client_session()
        self.client = Client(
            UserID(self.settings.user_id),
            api=NamedCalls(
                self.network.homeserver,
                self.settings.access_token or "",
                client_session=self._session,
                log=self.log,  # type: ignore[arg-type]
            ),
        )
        self.bot = self.client
        self._sync_task = supervise(f"sync:{self.name}", self._run, self.log)

    async def stop(self) -> None:
        if self._sync_task:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
        await self.close(self._session)

    @property
    def exclusive(self) -> bool:
        """One ``/sync`` position and one login device: one process reads as the bot."""
        return True

    def is_own(self, user_id: str) -> bool:
        return user_id == self.settings.user_id

    async def poster(self, out: Outgoing) -> tuple[ClientAPI, str | None]:
        return self.bot, self.settings.format

    async def _login(self) -> None:
        if self.settings.access_token:
            return
        await self.bot.login(
            identifier=UserID(self.settings.user_id),
            login_type=LoginType.PASSWORD,
            password=self.settings.password,
            device_id=self.settings.device_id or "PASSERELLE",
            store_access_token=True,
        )

    async def _login_device(self, stored: str | None) -> str:
        """The device the bot is logged in with (a configured access token names its own)."""
        if not self.client.device_id:
            device_id = (await self.client.whoami()).device_id
            if not device_id:
                raise RuntimeError("the access token belongs to no device")
            self.client.device_id = device_id
        return str(self.client.device_id)

    async def _run(self) -> None:
        while True:
            try:
                await self._login()
                break
            except MatrixRequestError as e:
                if e.errcode != "M_FORBIDDEN" and not token_refused(e):
                    self.log.warning("Cannot log in to %s yet: %s", self.network.homeserver, e)
                    await asyncio.sleep(2)
                    continue
                self.set_refused(
                    f"the homeserver refused the login of {self.settings.user_id}: check "
                    "relay.user_id and relay.password"
                )
                await asyncio.sleep(REFUSED_RETRY_SECONDS)
            except Exception as e:
                self.log.warning("Cannot log in to %s yet: %s", self.network.homeserver, e)
                await asyncio.sleep(2)
        if self.e2ee is None:
            await self.start_e2ee(self.client, self._login_device)
        setup = supervise(f"setup:{self.name}", self.setup_rooms, self.log)
        try:
            await self._sync_forever()
        finally:
            setup.cancel()

    async def _sync_forever(self) -> None:
        stored = await self.state.sync_position()
        since = SyncToken(stored) if stored else None
        filter_id = None
        backoff = 1.0
        while True:
            try:
                if filter_id is None:
                    filter_id = (
                        await self.bot.api.request(
                            Method.POST,
                            Path.v3.user[self.bot.mxid].filter,
                            SYNC_FILTER,
                            metrics_method="createFilter",
                        )
                    )["filter_id"]
                batch = await self.bot.sync(
                    since=since, timeout=SYNC_TIMEOUT_MS if since else 0, filter_id=filter_id
                )
                if self.e2ee is not None:
                    await self.e2ee.receive(
                        batch.get("to_device", {}).get("events", []),
                        batch.get("device_lists"),
                        batch.get("device_one_time_keys_count"),
                    )
                await self.rooms_ready.wait()
                if since is not None:
                    await self._process(batch, since)
                since = SyncToken(batch["next_batch"])
                await self.state.save_sync_position(since)
                backoff = 1.0
                self.set_refused(None)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if token_refused(e):
                    self.set_refused(
                        f"the homeserver refused the access token of {self.settings.user_id}: "
                        "log in again and put the new token in relay.access_token"
                    )
                    await asyncio.sleep(REFUSED_RETRY_SECONDS)
                    continue
                self.log.warning("Sync failed, retrying in %.0fs: %s", backoff, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def _process(self, batch: JSON, since: str) -> None:
        rooms = batch.get("rooms", {})
        for room_id in rooms.get("invite", {}):
            await self._on_bot_invited(room_id)
        for room_id, room in rooms.get("join", {}).items():
            timeline = room.get("timeline", {})
            events = list(timeline.get("events", []))
            if timeline.get("limited") and timeline.get("prev_batch"):
                events = await self._gap(room_id, timeline["prev_batch"], since) + events
            for raw in events:
                raw["room_id"] = room_id
                await self.handle_room_event(raw)

    async def _gap(self, room_id: str, prev_batch: str, since: str) -> list[JSON]:
        """Events between the last sync position and a limited timeline, oldest first."""
        missed: list[JSON] = []
        token: str | None = prev_batch
        while token:
            page = await self.bot.api.request(
                Method.GET,
                Path.v3.rooms[RoomID(room_id)].messages,
                query_params={"from": token, "to": since, "dir": "b", "limit": "100"},
                metrics_method="getMessages",
            )
            chunk = page.get("chunk", [])
            missed.extend(chunk)
            token = page.get("end") if chunk else None
        missed.reverse()
        return missed
