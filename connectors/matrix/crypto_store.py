"""Where a Matrix network's end-to-end encryption state lives: in the bridge's own database.

mautrix's `PgCryptoStore` (SQLite or PostgreSQL, despite its name) keeps the Olm account, the
Olm and Megolm sessions, known devices and message indices; its tables carry their own version
table (``crypto_version``), so they migrate independently of the bridge's schema. One account
per network (``account_id`` is the network name), so several Matrix networks share the tables
without sharing identities; known devices are shared, which is harmless since they are public
facts of each homeserver.

Next to it, `PendingEvents` keeps the encrypted events whose room key had not arrived yet, so that
waiting for a key survives a restart (the homeserver was already told the event was handled).

Both run on the bridge store's connection pool (`Database.override_pool`): one database, one
pool, and the store stays the only owner of that pool's lifetime.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from mautrix.crypto import PgCryptoStore
from mautrix.util.async_db import Database, UpgradeTable

from bridge.database import database_view
from bridge.schema import create_table, migration

PICKLE_KEY = "passerelle.e2ee"
"""Olm pickles are encrypted with this key; the database itself is what must be protected (it
holds the outbox and the appservice tokens' effects too), as for mautrix's bridges."""

upgrade_table = UpgradeTable(
    version_table_name="passerelle_e2ee_version", database_name="Passerelle encryption"
)


migration(
    upgrade_table,
    "Encrypted events waiting for their room key",
    create_table(
        "e2ee_pending_event",
        "network     TEXT NOT NULL",
        "event_id    TEXT NOT NULL",
        "event       TEXT NOT NULL",
        "received_at DOUBLE PRECISION NOT NULL",
        "PRIMARY KEY (network, event_id)",
    ),
)


_migrating = asyncio.Lock()


async def crypto_databases(db: Database) -> tuple[Database, Database]:
    """The crypto store's and the pending events' views of the bridge database ``db``, migrated.

    Matrix networks start concurrently, and two migrations of the same tables must not
    interleave: the lock makes the second one find the tables up to date."""
    views = []
    async with _migrating:
        for table in (PgCryptoStore.upgrade_table, upgrade_table):
            view = database_view(db, table)
            await view.start()
            views.append(view)
    return views[0], views[1]


@dataclass(frozen=True)
class PendingEvent:
    raw: dict[str, Any]
    received_at: float


class PendingEvents:
    """One network's encrypted events that wait for their room key."""

    def __init__(self, db: Database, network: str) -> None:
        self.db = db
        self.network = network

    async def add(self, raw: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO e2ee_pending_event (network, event_id, event, received_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (network, event_id) DO NOTHING",
            self.network,
            str(raw.get("event_id")),
            json.dumps(raw, separators=(",", ":")),
            time.time(),
        )

    async def remove(self, event_id: str) -> None:
        await self.db.execute(
            "DELETE FROM e2ee_pending_event WHERE network=$1 AND event_id=$2",
            self.network,
            event_id,
        )

    async def all(self) -> list[PendingEvent]:
        rows = await self.db.fetch(
            "SELECT event, received_at FROM e2ee_pending_event WHERE network=$1"
            " ORDER BY received_at",
            self.network,
        )
        return [PendingEvent(json.loads(row["event"]), row["received_at"]) for row in rows]
