"""Persistent state: IDs, not content.

What is kept: which event on which network is which message (so edits, replies, redactions and
reactions find their target), appservice transactions that carried to-device messages, the outbox
(the only place that holds message content, and only until delivered), rooms the bridge created,
sync positions, ghost profiles and who XMPP rooms said their occupants are. SQLite by default,
PostgreSQL when the URL says ``postgres://``; both behind mautrix's ``util.async_db`` interface
(`bridge.database` opens them), which also runs the versioned migrations below.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.database import open_database, unreachable
from bridge.events import Event
from bridge.links import DirectChat

log = logging.getLogger(__name__)
upgrade_table = UpgradeTable()


@upgrade_table.register(description="Initial schema")  # type: ignore[call-arg,arg-type]
async def _upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    serial = "BIGSERIAL" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "INTEGER"
    await conn.execute(
        """CREATE TABLE message (
            network        TEXT NOT NULL,
            remote_id      TEXT NOT NULL,
            link_id        TEXT NOT NULL,
            room_id        TEXT NOT NULL,
            origin_network TEXT NOT NULL,
            origin_id      TEXT NOT NULL,
            PRIMARY KEY (network, remote_id)
        )"""
    )
    await conn.execute("CREATE INDEX message_origin ON message (origin_network, origin_id)")
    await conn.execute(
        """CREATE TABLE handled_txn (
            network TEXT NOT NULL,
            txn_id  TEXT NOT NULL,
            digest  TEXT NOT NULL,
            PRIMARY KEY (network, txn_id)
        )"""
    )
    await conn.execute(
        f"""CREATE TABLE outbox (
            id           {serial} PRIMARY KEY,
            link_id      TEXT NOT NULL,
            target       TEXT NOT NULL,
            event        TEXT NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
            last_error   TEXT
        )"""
    )
    await conn.execute("CREATE INDEX outbox_queue ON outbox (link_id, target, id)")
    await conn.execute(
        """CREATE TABLE created_room (
            link_id TEXT NOT NULL,
            network TEXT NOT NULL,
            room_id TEXT NOT NULL,
            PRIMARY KEY (link_id, network)
        )"""
    )
    await conn.execute(
        """CREATE TABLE sync_position (
            network    TEXT PRIMARY KEY,
            next_batch TEXT NOT NULL
        )"""
    )
    await conn.execute(
        """CREATE TABLE ghost_profile (
            network     TEXT NOT NULL,
            user_id     TEXT NOT NULL,
            displayname TEXT NOT NULL,
            avatar      TEXT,
            PRIMARY KEY (network, user_id)
        )"""
    )


@upgrade_table.register(description="Direct chats opened at run time")  # type: ignore[call-arg,arg-type]
async def _upgrade_v2(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE direct_chat (
            link_id        TEXT PRIMARY KEY,
            origin_network TEXT NOT NULL,
            origin_room    TEXT NOT NULL,
            peer_network   TEXT NOT NULL,
            peer_user      TEXT NOT NULL,
            peer_room      TEXT NOT NULL
        )"""
    )


@upgrade_table.register(description="XMPP occupant identities")  # type: ignore[call-arg,arg-type]
async def _upgrade_v3(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE xmpp_occupant (
            network     TEXT NOT NULL,
            room        TEXT NOT NULL,
            occupant_id TEXT NOT NULL,
            real_jid    TEXT NOT NULL,
            PRIMARY KEY (network, room, occupant_id)
        )"""
    )


@upgrade_table.register(description="When each outbox item was queued")  # type: ignore[call-arg,arg-type]
async def _upgrade_v4(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("ALTER TABLE outbox ADD COLUMN queued DOUBLE PRECISION NOT NULL DEFAULT 0")
    await conn.execute("UPDATE outbox SET queued=$1", time.time())


@upgrade_table.register(description="How far each room's timeline was caught up")  # type: ignore[call-arg,arg-type]
async def _upgrade_v5(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE room_position (
            network TEXT NOT NULL,
            room_id TEXT NOT NULL,
            token   TEXT NOT NULL,
            PRIMARY KEY (network, room_id)
        )"""
    )


@dataclass(frozen=True)
class OutboxItem:
    id: int
    link_id: str
    target: str
    event: Event
    attempts: int
    """Failed attempts this item itself caused (a network that was down counts none)."""
    next_attempt: float
    queued: float = 0.0
    """When it was queued (wall clock): it expires after ``delivery.give_up_after``."""

    @property
    def delivery_id(self) -> str:
        """The same for every attempt at this item, across restarts and instances, and never
        the same for two items: made from the event's own identity (row IDs are reused once a
        table empties, and a homeserver would take a reused transaction ID for a resend)."""
        key = "\0".join((self.link_id, self.event.network, self.event.remote_id, self.target))
        return "passerelle-" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class GhostProfile:
    """What a ghost was last set to: its name, and the *source* avatar reference it shows
    (so an unchanged avatar is not downloaded and uploaded again)."""

    name: str
    avatar: str | None


def _rows_changed(result: object) -> int:
    """Rows an INSERT, UPDATE or DELETE changed: a cursor's count (SQLite) or the last number
    of the command tag (PostgreSQL, ``INSERT 0 1``)."""
    if isinstance(result, str):
        return int(result.rsplit(" ", 1)[-1])
    return int(getattr(result, "rowcount", 0))


R = TypeVar("R")
PATIENCE = 10.0
"""Seconds a store call on the way in (storing a received event, looking an ID up) waits for an
unreachable database before it fails, so that the source is answered "try again later"."""


def _retried(patience: float | None) -> Callable[[Callable[..., Awaitable[R]]],
                                                 Callable[..., Awaitable[R]]]:  # fmt: skip
    """Retry a store call while the database is unreachable (`bridge.database.unreachable`),
    with backoff up to 30 s, for ``patience`` seconds (None: until it answers; the outbox's
    bookkeeping waits rather than send anything twice). A failed transaction was rolled back,
    and every call here can be made again."""

    def wrap(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(method)
        async def retrying(*args: Any, **kwargs: Any) -> R:
            started, delay, warned = time.monotonic(), 0.5, False
            while True:
                try:
                    result = await method(*args, **kwargs)
                except Exception as exc:
                    waited = time.monotonic() - started
                    if not unreachable(exc) or (patience is not None and waited >= patience):
                        raise
                    if not warned:
                        log.warning("The database is unreachable (%s: %s); retrying",
                                    type(exc).__name__, exc)  # fmt: skip
                        warned = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if warned:
                    log.info("The database answers again")
                return result

        return retrying

    return wrap


class Store:
    """All reads and writes of the bridge's database; nothing else issues SQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, url: str, db_args: dict[str, Any] | None = None) -> Store:
        """Open (and migrate) the database at ``url``; ``db_args`` go to the driver's pool."""
        db = open_database(url, upgrade_table, db_args)
        await db.start()
        return cls(db)

    async def close(self) -> None:
        await self.db.stop()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            yield conn

    # Incoming events and the outbox

    @_retried(PATIENCE)
    async def accept(self, event: Event, targets: list[str]) -> bool:
        """Store an incoming event and its deliveries atomically; False if it was seen before.

        This is the point after which the source may be acknowledged: the event is either fully
        queued for every target or not at all.
        """
        async with self._transaction() as conn:
            inserted = await conn.execute(
                "INSERT INTO message (network, remote_id, link_id, room_id, origin_network,"
                " origin_id) VALUES ($1, $2, $3, $4, $1, $2) ON CONFLICT DO NOTHING",
                event.network,
                event.remote_id,
                event.link_id,
                event.room_id,
            )
            if not _rows_changed(inserted):
                return False
            payload, now = event.to_json(), time.time()
            await conn.executemany(
                "INSERT INTO outbox (link_id, target, event, queued) VALUES ($1, $2, $3, $4)",
                [(event.link_id, target, payload, now) for target in targets],
            )
        return True

    @_retried(None)
    async def queue_head(self, link_id: str, target: str, limit: int) -> list[OutboxItem]:
        """The first ``limit`` items of a queue, oldest first."""
        rows = await self.db.fetch(
            "SELECT id, event, attempts, next_attempt, queued FROM outbox"
            " WHERE link_id=$1 AND target=$2 ORDER BY id LIMIT $3",
            link_id,
            target,
            limit,
        )
        return [
            OutboxItem(
                id=row["id"],
                link_id=link_id,
                target=target,
                event=Event.from_json(row["event"]),
                attempts=row["attempts"],
                next_attempt=row["next_attempt"],
                queued=row["queued"],
            )
            for row in rows
        ]

    @_retried(None)
    async def queues(self) -> list[tuple[str, str]]:
        """Every (link, target) with something waiting: the work to resume after a restart."""
        rows = await self.db.fetch("SELECT DISTINCT link_id, target FROM outbox")
        return [(row["link_id"], row["target"]) for row in rows]

    @_retried(None)
    async def delivered(self, item: OutboxItem, remote_id: str | None, room_id: str) -> None:
        """Drop the item from the outbox and remember what it became on the target."""
        async with self._transaction() as conn:
            if remote_id:
                await conn.execute(
                    "INSERT INTO message (network, remote_id, link_id, room_id, origin_network,"
                    " origin_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    item.target,
                    remote_id,
                    item.link_id,
                    room_id,
                    item.event.network,
                    item.event.remote_id,
                )
            await conn.execute("DELETE FROM outbox WHERE id=$1", item.id)

    @_retried(None)
    async def retry_later(self, item: OutboxItem, delay: float, error: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET attempts=attempts+1, next_attempt=$2, last_error=$3 WHERE id=$1",
            item.id,
            time.time() + delay,
            error[:500],
        )

    @_retried(None)
    async def give_up(self, item: OutboxItem) -> None:
        await self.db.execute("DELETE FROM outbox WHERE id=$1", item.id)

    @_retried(PATIENCE)
    async def outbox_size(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM outbox"))

    # The ID map

    @_retried(PATIENCE)
    async def counterpart(self, network: str, remote_id: str, target: str) -> str | None:
        """The ID on ``target`` of the message known as ``remote_id`` on ``network``."""
        row = await self.db.fetchrow(
            "SELECT origin_network, origin_id FROM message WHERE network=$1 AND remote_id=$2",
            network,
            remote_id,
        )
        if row is None:
            return None
        return await self.db.fetchval(
            "SELECT remote_id FROM message WHERE origin_network=$1 AND origin_id=$2"
            " AND network=$3 LIMIT 1",
            row["origin_network"],
            row["origin_id"],
            target,
        )

    @_retried(PATIENCE)
    async def known_among(self, network: str, remote_ids: list[str]) -> set[str]:
        """Which of ``remote_ids`` the store knows on ``network`` (bridged from there, or
        delivered there): one query for a page of a room's timeline."""
        if not remote_ids:
            return set()
        marks = ", ".join(f"${i}" for i in range(2, len(remote_ids) + 2))
        rows = await self.db.fetch(
            f"SELECT remote_id FROM message WHERE network=$1 AND remote_id IN ({marks})",
            network,
            *remote_ids,
        )
        return {row["remote_id"] for row in rows}

    @_retried(PATIENCE)
    async def room_positions(self, network: str) -> dict[str, str]:
        """Room → the timeline token up to which its events were caught up (`room_position`)."""
        rows = await self.db.fetch(
            "SELECT room_id, token FROM room_position WHERE network=$1", network
        )
        return {row["room_id"]: row["token"] for row in rows}

    @_retried(PATIENCE)
    async def save_room_position(self, network: str, room_id: str, token: str) -> None:
        await self.db.execute(
            "INSERT INTO room_position (network, room_id, token) VALUES ($1, $2, $3)"
            " ON CONFLICT (network, room_id) DO UPDATE SET token=excluded.token",
            network,
            room_id,
            token,
        )

    @_retried(PATIENCE)
    async def is_known(self, network: str, remote_id: str) -> bool:
        return bool(
            await self.db.fetchval(
                "SELECT 1 FROM message WHERE network=$1 AND remote_id=$2", network, remote_id
            )
        )

    # Appservice transactions

    @_retried(PATIENCE)
    async def txn_handled(self, network: str, txn_id: str, digest: str) -> bool:
        """Whether this very transaction (same ID *and* same content) was handled before.

        The content digest matters because Synapse on SQLite numbers its transactions from 1
        again after a restart: a reused ID with new events must not be taken for a replay.
        """
        return bool(
            await self.db.fetchval(
                "SELECT 1 FROM handled_txn WHERE network=$1 AND txn_id=$2 AND digest=$3",
                network,
                txn_id,
                digest,
            )
        )

    @_retried(PATIENCE)
    async def mark_txn_handled(self, network: str, txn_id: str, digest: str) -> None:
        await self.db.execute(
            "INSERT INTO handled_txn (network, txn_id, digest) VALUES ($1, $2, $3)"
            " ON CONFLICT (network, txn_id) DO UPDATE SET digest=excluded.digest",
            network,
            txn_id,
            digest,
        )

    # Rooms, sync positions, ghost profiles

    @_retried(PATIENCE)
    async def created_rooms(self, network: str) -> dict[str, str]:
        """Every room the bridge created on ``network``, by link: one query at start-up."""
        rows = await self.db.fetch(
            "SELECT link_id, room_id FROM created_room WHERE network=$1", network
        )
        return {row["link_id"]: row["room_id"] for row in rows}

    @_retried(PATIENCE)
    async def save_created_room(self, link_id: str, network: str, room_id: str) -> None:
        await self.db.execute(
            "INSERT INTO created_room (link_id, network, room_id) VALUES ($1, $2, $3)",
            link_id,
            network,
            room_id,
        )

    @_retried(PATIENCE)
    async def direct_chats(self) -> list[DirectChat]:
        rows = await self.db.fetch(
            "SELECT link_id, origin_network, origin_room, peer_network, peer_user, peer_room"
            " FROM direct_chat"
        )
        return [DirectChat(**dict(row)) for row in rows]

    @_retried(PATIENCE)
    async def save_direct_chat(self, chat: DirectChat) -> None:
        await self.db.execute(
            "INSERT INTO direct_chat (link_id, origin_network, origin_room, peer_network,"
            " peer_user, peer_room) VALUES ($1, $2, $3, $4, $5, $6)",
            chat.link_id,
            chat.origin_network,
            chat.origin_room,
            chat.peer_network,
            chat.peer_user,
            chat.peer_room,
        )

    @_retried(PATIENCE)
    async def sync_position(self, network: str) -> str | None:
        return await self.db.fetchval(
            "SELECT next_batch FROM sync_position WHERE network=$1", network
        )

    @_retried(PATIENCE)
    async def save_sync_position(self, network: str, next_batch: str) -> None:
        await self.db.execute(
            "INSERT INTO sync_position (network, next_batch) VALUES ($1, $2)"
            " ON CONFLICT (network) DO UPDATE SET next_batch=excluded.next_batch",
            network,
            next_batch,
        )

    @_retried(PATIENCE)
    async def ghost_profile(self, network: str, user_id: str) -> GhostProfile | None:
        row = await self.db.fetchrow(
            "SELECT displayname, avatar FROM ghost_profile WHERE network=$1 AND user_id=$2",
            network,
            user_id,
        )
        return GhostProfile(row["displayname"], row["avatar"]) if row else None

    @_retried(PATIENCE)
    async def save_ghost_profile(self, network: str, user_id: str, profile: GhostProfile) -> None:
        await self.db.execute(
            "INSERT INTO ghost_profile (network, user_id, displayname, avatar)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (network, user_id)"
            " DO UPDATE SET displayname=excluded.displayname, avatar=excluded.avatar",
            network,
            user_id,
            profile.name,
            profile.avatar,
        )

    # XMPP occupants

    @_retried(PATIENCE)
    async def occupant_identities(self, network: str) -> list[tuple[str, str, str]]:
        """Every (room, XEP-0421 occupant-id, real bare JID or "" where the room hid it) an
        XMPP network's rooms vouched for: who wrote the history a room replays, even of people
        who have left since."""
        rows = await self.db.fetch(
            "SELECT room, occupant_id, real_jid FROM xmpp_occupant WHERE network=$1", network
        )
        return [(row["room"], row["occupant_id"], row["real_jid"]) for row in rows]

    @_retried(PATIENCE)
    async def save_occupant_identity(
        self, network: str, room: str, occupant_id: str, real_jid: str
    ) -> None:
        await self.db.execute(
            "INSERT INTO xmpp_occupant (network, room, occupant_id, real_jid)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (network, room, occupant_id)"
            " DO UPDATE SET real_jid=excluded.real_jid",
            network,
            room,
            occupant_id,
            real_jid,
        )
