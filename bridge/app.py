"""The running bridge: builds the store, the connectors and the router from a config, serves the
HTTP listener (appservice endpoints, readiness, metrics, the admin API and status page), and
stops cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

import uvloop
from aiohttp import web
from mautrix.util.async_db import Database
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge import metrics
from bridge.admin import AdminSite
from bridge.claims import Claims, LocalClaims
from bridge.config.model import Config
from bridge.connector import Connector, DirectChatRefused, DirectChats, ServesHttp
from bridge.directory import RoomDirectory
from bridge.events import Event, Sender
from bridge.kinds import kinds
from bridge.links import DirectChat, Links, direct_link_id
from bridge.notices import notice
from bridge.pg_claims import PostgresClaims
from bridge.router import Router, known_sender
from bridge.status import Status, snapshot
from bridge.store import Store
from bridge.tasks import supervise

log = logging.getLogger("passerelle")

TAKEOVER_INTERVAL = 2.0
"""Seconds between two looks for networks and queues no instance serves (several instances)."""

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Largest request body the listener reads. Only a homeserver that presented its token gets
that far; a Synapse transaction carries up to 50 events and 100 ephemeral and 100 to-device
events of at most 64 KiB each, so this is well above the largest it sends (aiohttp's default,
1 MiB, made a burst of long messages a transaction refused forever)."""
STORE_STATUS_TIMEOUT = 5.0
"""Seconds the status waits for the queue sizes before it says the database did not answer."""


def build_connector(name: str, gateway: Gateway) -> Connector:
    """The connector for one configured network, as its kind builds it (`bridge.kinds`)."""
    network = gateway.config.networks[name]
    return kinds()[network.kind].build(network, gateway)


class Gateway:
    """Implements `bridge.connector.Host` for the connectors."""

    def __init__(self, config: Config, store: Store, claims: Claims | None = None) -> None:
        self.config = config
        self.store = store
        self.claims = claims = claims or LocalClaims()
        self._running: set[str] = set()
        """Connectors started on this instance (an exclusive one only while it leads)."""
        self.directory = RoomDirectory()
        self.links = Links(config)
        self.connectors: dict[str, Connector] = {
            name: build_connector(name, self) for name in config.networks
        }
        self.router = Router(config, self.links, store, self.directory, self.connectors, claims,
                             serves=lambda network: network in self._running)  # fmt: skip
        self._direct_lock = asyncio.Lock()
        self.web = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.web.router.add_get("/_passerelle/ready", self._ready)
        self.web.router.add_get("/metrics", self._metrics)
        AdminSite(lambda: self.config.admin, self.status).add_routes(self.web)
        for name, connector in self.connectors.items():
            if isinstance(connector, ServesHttp):
                self.web.add_subapp(f"/as/{name}", connector.routes)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._states: dict[str, Database] = {}
        claims.on_lost(self._claims_lost)

    def leads(self, network: str) -> bool:
        return self.claims.leads(network)

    def state(self, kind: str) -> Database:
        return self._states[kind]

    async def idle(self) -> bool:
        return await self.store.outbox_size() == 0

    async def _open_states(self) -> None:
        """The tables of every kind in use, migrated (one after the other: they share the
        database)."""
        for name in sorted({network.kind for network in self.config.networks.values()}):
            table = kinds()[name].state
            if table is not None and name not in self._states:
                self._states[name] = await self.store.open_state(table)

    async def ingest(self, event: Event) -> bool:
        return await self.router.ingest(event)

    async def typing(self, network: str, room: str, sender: Sender, typing: bool) -> None:
        await self.router.typing(network, room, sender, typing)

    async def direct_chat(
        self, network: str, room: str, sender: Sender, peer_network: str, peer_user: str
    ) -> str:
        link_id = direct_link_id(network, room, peer_network, peer_user)
        async with self._direct_lock:
            if self.links.is_direct(link_id):
                return link_id
            peer = self.connectors.get(peer_network)
            if not isinstance(peer, DirectChats):
                label = self.config.networks[peer_network].label
                raise DirectChatRefused(notice("direct_refused.unsupported", network=label))
            peer_room = await peer.open_direct(
                link_id, peer_user, known_sender(self.config, sender)
            )
            chat = DirectChat(link_id, network, room, peer_network, peer_user, peer_room)
            await self.store.save_direct_chat(chat)
            self._bind_direct(chat)
            log.info("Opened direct chat %s: %s in %s ↔ %s", link_id, sender.user_id, network,
                     peer_user)  # fmt: skip
        return link_id

    def _bind_direct(self, chat: DirectChat) -> None:
        self.links.add_direct(chat)
        self.directory.bind(chat.link_id, chat.origin_network, chat.origin_room)
        self.directory.bind(chat.link_id, chat.peer_network, chat.peer_room)

    async def start(self) -> None:
        await self._open_states()
        await self._bind_direct_chats()
        self._runner = web.AppRunner(self.web, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.listen.host, self.config.listen.port)
        await site.start()
        for name, connector in self.connectors.items():
            await self.claims.lead(name)
            if not connector.exclusive or self.claims.leads(name):
                await connector.start()
                self._running.add(name)
        await self.router.outbox.start()
        if not isinstance(self.claims, LocalClaims):
            self._tasks.append(supervise("takeover", self._take_over, log))
        log.info(
            "Passerelle listening on %s:%d with %d network(s) and %d link(s)%s",
            self.config.listen.host,
            self.config.listen.port,
            len(self.connectors),
            len(self.config.links),
            ""
            if not self.connectors.keys() - self._running
            else f"; standing by for {', '.join(sorted(self.connectors.keys() - self._running))}",
        )

    async def _take_over(self) -> None:
        """With several instances: regularly lead the networks no instance leads (an instance
        died, or this one lost and regained its database connection), starting the exclusive
        ones here, and take the queues no instance works."""
        while True:
            await asyncio.sleep(TAKEOVER_INTERVAL)
            for name, connector in self.connectors.items():
                if self.claims.leads(name) or not await self.claims.lead(name):
                    continue
                log.info("This instance now leads %s", name)
                if connector.exclusive and name not in self._running:
                    await connector.start()
                    self._running.add(name)
            await self._bind_direct_chats()
            await self.router.outbox.resume()

    def _claims_lost(self) -> None:
        """The database connection that held this instance's claims dropped: another instance
        may lead its networks now, so the exclusive ones stop here at once."""
        for name in [n for n in self._running if self.connectors[n].exclusive]:
            self._running.discard(name)
            log.warning("Standing by for %s until this instance leads it again", name)
            self._tasks.append(asyncio.create_task(self.connectors[name].stop()))

    async def _bind_direct_chats(self) -> None:
        """Direct chats opened so far (by this instance or another)."""
        for chat in await self.store.direct_chats():
            if not self.links.is_direct(chat.link_id):
                self._bind_direct(chat)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.router.outbox.stop()
        for name in self._running:
            await self.connectors[name].stop()
        if self._runner:
            await self._runner.cleanup()

    def is_ready(self) -> bool:
        """Every link room that can be set up is, on every network this instance runs: the
        bridge is passing messages."""
        return all(c.is_ready() for name, c in self.connectors.items() if name in self._running)

    async def status(self, *, queues: bool = True, rooms: bool = True) -> Status:
        """What the bridge is doing now (`bridge.status`): with ``queues``, what waits in the
        store (one query); with ``rooms``, each link's rooms."""
        stats, error = None, None
        if queues:
            try:
                stats = await asyncio.wait_for(self.store.queue_stats(), STORE_STATUS_TIMEOUT)
            except Exception as e:
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                log.warning("The status could not read the queues from the database: %s", error)
        direct = sorted({q.link_id for q in stats or () if self.links.is_direct(q.link_id)})
        return snapshot(
            config=self.config,
            links=[*self.config.links, *(self.links.get(link_id) for link_id in direct)],
            connectors=self.connectors,
            running=lambda network: network in self._running,
            health=self.router.health,
            directory=self.directory,
            queues=stats,
            failures=self.router.outbox.failures,
            at=time.time(),
            store_error=error,
            rooms=rooms,
        )

    async def _ready(self, _: web.Request) -> web.Response:
        """200 when ready, else 503; for each network that is not ready or has rooms not set
        up, what is missing: what an admin must fix (``problem``; None while it is only
        starting or retrying), whether it is down, which links' rooms are not set up yet."""
        answer = (await self.status(queues=False, rooms=False)).readiness()
        return web.json_response(answer, status=200 if answer["ready"] else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        metrics.observe(await self.status(rooms=False))
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _unobserved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What asyncio would print for an exception nobody awaited, as a log line: the bridge
    goes on (the task's work is supervised, see `bridge.tasks`)."""
    exc = context.get("exception")
    log.error("Unhandled in the event loop: %s", context.get("message"), exc_info=exc)


async def open_claims(database: str) -> Claims:
    """`LocalClaims` for SQLite (one instance); on PostgreSQL, claims shared with every other
    instance on the same database."""
    if not database.startswith(("postgres://", "postgresql://")):
        return LocalClaims()
    claims = PostgresClaims(database)
    await claims.start()
    return claims


async def serve(config: Config) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_unobserved)
    store = await Store.open(config.database)
    claims = await open_claims(config.database)
    gateway = Gateway(config, store, claims)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.start()
        await stop.wait()
        log.info("Stopping")
    finally:
        await gateway.stop()
        if isinstance(claims, PostgresClaims):
            await claims.stop()
        await store.close()


def run(config: Config) -> int:
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for warning in config.warnings:
        log.warning("%s", warning.render(str(config.path)))
    # uvloop's event loop: a fifth less CPU per HTTP request than asyncio's own (measured on the
    # appservice transaction path), and the bridge is mostly HTTP requests.
    uvloop.run(serve(config))
    return 0
