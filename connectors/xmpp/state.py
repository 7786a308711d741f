"""What the XMPP connector keeps in the bridge's database, in tables of its own: who each
MUC said its occupants are (XEP-0421 occupant id → real JID), so that history a room replays
after a restart is attributed to the people it vouched for, even those who have left since; and
the rooms' memories (`connectors.xmpp.rooms.Memory`: message ids, corrections, quotes,
reactions), so that replies, corrections and reactions after a restart still land on the right
message with their context. Memories are written in batches and pruned to the newest entries of
each room and kind."""

from __future__ import annotations

import time

from mautrix.util.async_db import Connection, Database, UpgradeTable

from bridge.database import PATIENCE, retried
from bridge.schema import create_table, migration
from connectors.xmpp.rooms import Remembered

upgrade_table = UpgradeTable(
    version_table_name="passerelle_xmpp_version", database_name="Passerelle XMPP"
)


migration(
    upgrade_table,
    "XMPP occupant identities",
    create_table(
        "xmpp_occupant",
        "network     TEXT NOT NULL",
        "room        TEXT NOT NULL",
        "occupant_id TEXT NOT NULL",
        "real_jid    TEXT NOT NULL",
        "PRIMARY KEY (network, room, occupant_id)",
        if_not_exists=True,
    ),
)


migration(
    upgrade_table,
    "XMPP room memories",
    create_table(
        "xmpp_memory",
        "network TEXT NOT NULL",
        "room    TEXT NOT NULL",
        "memory  TEXT NOT NULL",
        "item    TEXT NOT NULL",
        "value   TEXT NOT NULL",
        "seq     BIGINT NOT NULL",
        "PRIMARY KEY (network, room, memory, item)",
        if_not_exists=True,
    ),
    "CREATE INDEX IF NOT EXISTS xmpp_memory_age ON xmpp_memory (network, room, memory, seq)",
)


class XmppState:
    """One XMPP network's rows."""

    def __init__(self, db: Database, network: str) -> None:
        self.db = db
        self.network = network

    @retried(PATIENCE)
    async def occupant_identities(self) -> list[tuple[str, str, str]]:
        """Every (room, XEP-0421 occupant-id, real bare JID or "" where the room hid it) the
        network's rooms vouched for."""
        rows = await self.db.fetch(
            "SELECT room, occupant_id, real_jid FROM xmpp_occupant WHERE network=$1",
            self.network,
        )
        return [(row["room"], row["occupant_id"], row["real_jid"]) for row in rows]

    @retried(PATIENCE)
    async def save_occupant_identity(self, room: str, occupant_id: str, real_jid: str) -> None:
        await self.db.execute(
            "INSERT INTO xmpp_occupant (network, room, occupant_id, real_jid)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (network, room, occupant_id)"
            " DO UPDATE SET real_jid=excluded.real_jid",
            self.network,
            room,
            occupant_id,
            real_jid,
        )

    @retried(PATIENCE)
    async def memories(self) -> list[Remembered]:
        """Every stored memory entry of the network's rooms, oldest write first."""
        rows = await self.db.fetch(
            "SELECT room, memory, item, value FROM xmpp_memory WHERE network=$1 ORDER BY seq",
            self.network,
        )
        return [Remembered(row["room"], row["memory"], row["item"], row["value"]) for row in rows]

    @retried(PATIENCE)
    async def save_memories(self, entries: list[Remembered]) -> None:
        """Store a batch of memory writes (in one transaction), the later ones newer."""
        first = time.time_ns()
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO xmpp_memory (network, room, memory, item, value, seq)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (network, room, memory, item)"
                " DO UPDATE SET value=excluded.value, seq=excluded.seq",
                [
                    (self.network, e.room, e.memory, e.key, e.value, first + i)
                    for i, e in enumerate(entries)
                ],
            )

    @retried(PATIENCE)
    async def prune_memories(self, keep: int) -> None:
        """Forget all but the ``keep`` newest entries of each room's memory of each kind."""
        kinds = await self.db.fetch(
            "SELECT DISTINCT room, memory FROM xmpp_memory WHERE network=$1", self.network
        )
        for row in kinds:
            await self.db.execute(
                "DELETE FROM xmpp_memory WHERE network=$1 AND room=$2 AND memory=$3 AND seq < ("
                "SELECT seq FROM xmpp_memory WHERE network=$1 AND room=$2 AND memory=$3"
                " ORDER BY seq DESC LIMIT 1 OFFSET $4)",
                self.network,
                row["room"],
                row["memory"],
                keep - 1,
            )
