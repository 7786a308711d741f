"""Persistent state every network kind shares: IDs, not content.

What is kept: which event on which network is which message (so edits, replies, redactions and
reactions find their target) and in which thread it was posted, the outbox (the only place that
holds message content, and only until delivered), rooms the bridge created and direct chats. A
kind keeps what only it needs in tables of its own (`bridge.kinds.Kind.state`, opened by
`open_state`). SQLite by default, PostgreSQL when the URL says ``postgres://``; both behind
mautrix's ``util.async_db`` interface (`bridge.database` opens them), which also runs the
versioned migrations below.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.database import PATIENCE, database_view, open_database, retried
from bridge.events import Event
from bridge.links import DirectChat
from bridge.schema import create_table, migration

log = logging.getLogger(__name__)
upgrade_table = UpgradeTable()


@upgrade_table.register(description="Initial schema")  # type: ignore[call-arg,arg-type]
async def _upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    serial = "BIGSERIAL" if scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else "INTEGER"
    await conn.execute(
        create_table(
            "message",
            "network        TEXT NOT NULL",
            "remote_id      TEXT NOT NULL",
            "link_id        TEXT NOT NULL",
            "room_id        TEXT NOT NULL",
            "origin_network TEXT NOT NULL",
            "origin_id      TEXT NOT NULL",
            "PRIMARY KEY (network, remote_id)",
        )
    )
    await conn.execute("CREATE INDEX message_origin ON message (origin_network, origin_id)")
    await conn.execute(
        create_table(
            "outbox",
            f"id           {serial} PRIMARY KEY",
            "link_id      TEXT NOT NULL",
            "target       TEXT NOT NULL",
            "event        TEXT NOT NULL",
            "attempts     INTEGER NOT NULL DEFAULT 0",
            "next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0",
            "last_error   TEXT",
        )
    )
    await conn.execute("CREATE INDEX outbox_queue ON outbox (link_id, target, id)")
    await conn.execute(
        create_table(
            "created_room",
            "link_id TEXT NOT NULL",
            "network TEXT NOT NULL",
            "room_id TEXT NOT NULL",
            "PRIMARY KEY (link_id, network)",
        )
    )


migration(
    upgrade_table,
    "Direct chats opened at run time",
    create_table(
        "direct_chat",
        "link_id        TEXT PRIMARY KEY",
        "origin_network TEXT NOT NULL",
        "origin_room    TEXT NOT NULL",
        "peer_network   TEXT NOT NULL",
        "peer_user      TEXT NOT NULL",
        "peer_room      TEXT NOT NULL",
    ),
)


def _dated_column(description: str, table: str, column: str, *then: str) -> None:
    """Register a migration that adds a wall-clock time ``column`` to ``table`` (and runs
    ``then``): the rows already there count from the upgrade, so what ages them (expiry,
    retention) takes them that much later."""

    async def upgrade(conn: Connection, scheme: Scheme) -> None:
        await conn.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} DOUBLE PRECISION NOT NULL DEFAULT 0"
        )
        await conn.execute(f"UPDATE {table} SET {column}=$1", time.time())
        for statement in then:
            await conn.execute(statement)

    upgrade_table.register(upgrade, description=description)


_dated_column("When each outbox item was queued", "outbox", "queued")


migration(
    upgrade_table,
    "The last federation list taken per network",
    create_table(
        "federation_list",
        "network  TEXT PRIMARY KEY",
        "version  BIGINT NOT NULL",
        "token    TEXT NOT NULL",
        "taken    DOUBLE PRECISION NOT NULL",
    ),
)


migration(
    upgrade_table,
    "The thread each bridged message was posted in",
    "ALTER TABLE message ADD COLUMN thread TEXT",
)


_dated_column(
    "When each ID map entry was made",
    "message",
    "created",
    "CREATE INDEX message_created ON message (created)",
)


Note = Callable[[Connection], Awaitable[None]]
"""More to write in the transaction that takes an item out of the outbox (its audit record)."""


@dataclass(frozen=True)
class StoredList:
    """The last federation list a network took: its version (no later list may be older) and
    the signed token itself (checked again when read back)."""

    version: int
    token: str


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
class QueueStats:
    """What waits in one queue (a link's deliveries to one target network)."""

    link_id: str
    target: str
    size: int
    oldest: float
    """When its oldest item was queued (wall clock)."""


def _rows_changed(result: object) -> int:
    """Rows an INSERT, UPDATE or DELETE changed: a cursor's count (SQLite) or the last number
    of the command tag (PostgreSQL, ``INSERT 0 1``)."""
    if isinstance(result, str):
        return int(result.rsplit(" ", 1)[-1])
    return int(getattr(result, "rowcount", 0))


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

    @retried(PATIENCE)
    async def accept(self, event: Event, targets: list[str], also: Note | None = None) -> bool:
        """Store an incoming event and its deliveries atomically (and write ``also`` with
        them); False if it was seen before.

        This is the point after which the source may be acknowledged: the event is either fully
        queued for every target or not at all.
        """
        async with self._transaction() as conn:
            now = time.time()
            inserted = await conn.execute(
                "INSERT INTO message (network, remote_id, link_id, room_id, origin_network,"
                " origin_id, thread, created) VALUES ($1, $2, $3, $4, $1, $2, $5, $6)"
                " ON CONFLICT DO NOTHING",
                event.network,
                event.remote_id,
                event.link_id,
                event.room_id,
                event.thread,
                now,
            )
            if not _rows_changed(inserted):
                return False
            payload = event.to_json()
            await conn.executemany(
                "INSERT INTO outbox (link_id, target, event, queued) VALUES ($1, $2, $3, $4)",
                [(event.link_id, target, payload, now) for target in targets],
            )
            if also is not None:
                await also(conn)
        return True

    @retried(None)
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

    @retried(None)
    async def queues(self) -> list[tuple[str, str]]:
        """Every (link, target) with something waiting: the work to resume after a restart."""
        rows = await self.db.fetch("SELECT DISTINCT link_id, target FROM outbox")
        return [(row["link_id"], row["target"]) for row in rows]

    @retried(None)
    async def delivered(
        self, item: OutboxItem, remote_id: str | None, room_id: str, also: Note | None = None
    ) -> None:
        """Drop the item from the outbox and remember what it became on the target (and write
        ``also`` in the same transaction)."""
        async with self._transaction() as conn:
            if remote_id:
                await conn.execute(
                    "INSERT INTO message (network, remote_id, link_id, room_id, origin_network,"
                    " origin_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT DO NOTHING",
                    item.target,
                    remote_id,
                    item.link_id,
                    room_id,
                    item.event.network,
                    item.event.remote_id,
                    time.time(),
                )
            await conn.execute("DELETE FROM outbox WHERE id=$1", item.id)
            if also is not None:
                await also(conn)

    @retried(None)
    async def retry_later(self, item: OutboxItem, delay: float, error: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET attempts=attempts+1, next_attempt=$2, last_error=$3 WHERE id=$1",
            item.id,
            time.time() + delay,
            error[:500],
        )

    @retried(None)
    async def drop_queue(self, link_id: str, target: str) -> int:
        """Empty a queue whose room a reload removed; how many items it held."""
        async with self._transaction() as conn:
            count = await conn.fetchval(
                "SELECT COUNT(*) FROM outbox WHERE link_id=$1 AND target=$2", link_id, target
            )
            await conn.execute("DELETE FROM outbox WHERE link_id=$1 AND target=$2", link_id, target)
        return int(count)

    @retried(None)
    async def give_up(self, item: OutboxItem, also: Note | None = None) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM outbox WHERE id=$1", item.id)
            if also is not None:
                await also(conn)

    async def open_state(self, upgrade_table: UpgradeTable) -> Database:
        """A kind's own tables in this database (`bridge.kinds.Kind.state`), migrated: over the
        store's connections, with their own version table."""
        view = database_view(self.db, upgrade_table)
        await view.start()
        return view

    @retried(PATIENCE)
    async def outbox_size(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM outbox"))

    async def queue_stats(self) -> list[QueueStats]:
        """Every queue with something waiting, for the status and the metrics. Not retried: an
        admin asking while the database is unreachable is better told so at once."""
        rows = await self.db.fetch(
            "SELECT link_id, target, COUNT(*) AS size, MIN(queued) AS oldest FROM outbox"
            " GROUP BY link_id, target"
        )
        return [QueueStats(row["link_id"], row["target"], int(row["size"]), float(row["oldest"]))
                for row in rows]  # fmt: skip

    # Federation lists

    @retried(PATIENCE)
    async def federation_list(self, network: str) -> StoredList | None:
        row = await self.db.fetchrow(
            "SELECT version, token FROM federation_list WHERE network=$1", network
        )
        return StoredList(int(row["version"]), row["token"]) if row is not None else None

    @retried(PATIENCE)
    async def save_federation_list(self, network: str, version: int, token: str) -> bool:
        """Keep a list just taken, unless a list of a version at least as high is kept already
        (another instance took it); whether it was kept."""
        result = await self.db.execute(
            "INSERT INTO federation_list (network, version, token, taken) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (network) DO UPDATE SET version=excluded.version,"
            " token=excluded.token, taken=excluded.taken"
            " WHERE federation_list.version < excluded.version",
            network,
            version,
            token,
            time.time(),
        )
        return _rows_changed(result) > 0

    # The ID map

    @retried(PATIENCE)
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

    @retried(PATIENCE)
    async def thread_root(
        self, network: str, remote_id: str, target: str, link_id: str
    ) -> str | None:
        """The ID on ``target`` of a thread's root known as ``remote_id`` on ``network``, when
        it is a message of ``link_id``: a thread names its root in the sender's own words (an
        XMPP ``<thread>``), and a thread never reaches into another link's rooms."""
        return await self.db.fetchval(
            "SELECT copy.remote_id FROM message AS named JOIN message AS copy"
            " ON copy.origin_network=named.origin_network AND copy.origin_id=named.origin_id"
            " WHERE named.network=$1 AND named.remote_id=$2 AND named.link_id=$4"
            " AND copy.network=$3 AND copy.link_id=$4 LIMIT 1",
            network,
            remote_id,
            target,
            link_id,
        )

    @retried(PATIENCE)
    async def thread_of(self, network: str, remote_id: str) -> str | None:
        """The ID on ``network`` of the root of the thread that the message known there as
        ``remote_id`` was posted in (None when it was not, or when the root never reached
        ``network``): what a reply to it inherits, so that replies inside a thread stay there."""
        row = await self.db.fetchrow(
            "SELECT origin.origin_network, origin.thread FROM message AS copy"
            " JOIN message AS origin ON origin.network=copy.origin_network"
            " AND origin.remote_id=copy.origin_id"
            " WHERE copy.network=$1 AND copy.remote_id=$2",
            network,
            remote_id,
        )
        if row is None or row["thread"] is None:
            return None
        if row["origin_network"] == network:
            return str(row["thread"])
        return await self.counterpart(row["origin_network"], row["thread"], network)

    @retried(PATIENCE)
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

    @retried(PATIENCE)
    async def is_known(self, network: str, remote_id: str) -> bool:
        return bool(
            await self.db.fetchval(
                "SELECT 1 FROM message WHERE network=$1 AND remote_id=$2", network, remote_id
            )
        )

    # Rooms and direct chats

    @retried(PATIENCE)
    async def created_rooms(self, network: str) -> dict[str, str]:
        """Every room the bridge created on ``network``, by link: one query at start-up."""
        rows = await self.db.fetch(
            "SELECT link_id, room_id FROM created_room WHERE network=$1", network
        )
        return {row["link_id"]: row["room_id"] for row in rows}

    @retried(PATIENCE)
    async def save_created_room(self, link_id: str, network: str, room_id: str) -> None:
        await self.db.execute(
            "INSERT INTO created_room (link_id, network, room_id) VALUES ($1, $2, $3)",
            link_id,
            network,
            room_id,
        )

    @retried(PATIENCE)
    async def direct_chats(self) -> list[DirectChat]:
        rows = await self.db.fetch(
            "SELECT link_id, origin_network, origin_room, peer_network, peer_user, peer_room"
            " FROM direct_chat"
        )
        return [DirectChat(**dict(row)) for row in rows]

    @retried(PATIENCE)
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

    # Retention and people's rights (`bridge.retention`, `bridge.personal`)

    @retried(None)
    async def purge_id_map(self, before: float) -> int:
        """Forget which message was which for entries made before ``before`` (wall clock)."""
        return _rows_changed(await self.db.execute("DELETE FROM message WHERE created < $1",
                                                   before))  # fmt: skip

    @retried(None)
    async def purge_outbox(self, before: float) -> int:
        """Delete what is still queued since before ``before``, undelivered."""
        return _rows_changed(await self.db.execute("DELETE FROM outbox WHERE queued < $1",
                                                   before))  # fmt: skip

    @retried(PATIENCE)
    async def queued_from(self, accounts: Collection[tuple[str, str]]) -> list[OutboxItem]:
        """What waits in the outbox from any of ``accounts`` (network, account)."""
        found = []
        for row in await self.db.fetch(
            "SELECT id, link_id, target, event, attempts, next_attempt, queued FROM outbox"
            " ORDER BY id"
        ):
            event = Event.from_json(row["event"])
            if (event.sender.network, event.sender.user_id) in accounts:
                found.append(OutboxItem(row["id"], row["link_id"], row["target"], event,
                                        row["attempts"], row["next_attempt"],
                                        row["queued"]))  # fmt: skip
        return found

    @retried(PATIENCE)
    async def direct_chats_with(self, accounts: Collection[tuple[str, str]]) -> list[DirectChat]:
        """The direct chats opened with any of ``accounts`` (network, account) as the peer."""
        return [chat for chat in await self.direct_chats()
                if (chat.peer_network, chat.peer_user) in accounts]  # fmt: skip

    @retried(PATIENCE)
    async def forget_direct_chats(self, link_ids: Collection[str]) -> None:
        for link_id in link_ids:
            await self.db.execute("DELETE FROM direct_chat WHERE link_id=$1", link_id)
