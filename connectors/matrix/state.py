"""What the Matrix connectors keep in the bridge's database, in tables of their own.

Appservice transactions that carried to-device messages (a replay must not use up a one-time
key twice), relay mode's sync positions, the profile each ghost was last given (so an unchanged
one costs no request), how far each room's timeline was caught up, and the reaction lines the
bot keeps for people it posts for (`connectors.matrix.relayed_reactions`), and the rooms' facts
the bridge checks before bridging a room (its encryption, its Tchap access rule), so that a
restart reads them here rather than with a request per room. Keyed by network: one set
of tables serves every Matrix network. The encryption state has its own tables
(`connectors.matrix.crypto_store`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mautrix.util.async_db import Database, UpgradeTable

from bridge.database import PATIENCE, retried
from bridge.schema import create_table, migration

upgrade_table = UpgradeTable(
    version_table_name="passerelle_matrix_version", database_name="Passerelle Matrix"
)


# Databases made before the kinds had tables of their own have the first three already.
migration(
    upgrade_table,
    "Matrix tables",
    create_table(
        "handled_txn",
        "network TEXT NOT NULL",
        "txn_id  TEXT NOT NULL",
        "digest  TEXT NOT NULL",
        "PRIMARY KEY (network, txn_id)",
        if_not_exists=True,
    ),
    create_table(
        "sync_position",
        "network    TEXT PRIMARY KEY",
        "next_batch TEXT NOT NULL",
        if_not_exists=True,
    ),
    create_table(
        "ghost_profile",
        "network     TEXT NOT NULL",
        "user_id     TEXT NOT NULL",
        "displayname TEXT NOT NULL",
        "avatar      TEXT",
        "PRIMARY KEY (network, user_id)",
        if_not_exists=True,
    ),
    create_table(
        "room_position",
        "network TEXT NOT NULL",
        "room_id TEXT NOT NULL",
        "token   TEXT NOT NULL",
        "PRIMARY KEY (network, room_id)",
        if_not_exists=True,
    ),
)


migration(
    upgrade_table,
    "Reactions the bot posted for others",
    create_table(
        "relayed_reaction",
        "network   TEXT NOT NULL",
        "room_id   TEXT NOT NULL",
        "target    TEXT NOT NULL",
        "notice_id TEXT NOT NULL",
        "reactions TEXT NOT NULL",
        "PRIMARY KEY (network, room_id, target)",
    ),
)


migration(
    upgrade_table,
    "Rooms' encryption and access rules",
    create_table(
        "room_fact",
        "network    TEXT NOT NULL",
        "room_id    TEXT NOT NULL",
        "event_type TEXT NOT NULL",
        "content    TEXT NOT NULL",
        "PRIMARY KEY (network, room_id, event_type)",
    ),
)


@dataclass(frozen=True)
class GhostProfile:
    """What a ghost was last set to: its name, and the *source* avatar reference it shows
    (so an unchanged avatar is not downloaded and uploaded again)."""

    name: str
    avatar: str | None


class MatrixState:
    """One Matrix network's rows of the Matrix tables."""

    def __init__(self, db: Database, network: str) -> None:
        self.db = db
        self.network = network

    @retried(PATIENCE)
    async def txn_handled(self, txn_id: str, digest: str) -> bool:
        """Whether this very transaction (same ID *and* same content) was handled before.

        The content digest matters because Synapse on SQLite numbers its transactions from 1
        again after a restart: a reused ID with new events must not be taken for a replay.
        """
        return bool(
            await self.db.fetchval(
                "SELECT 1 FROM handled_txn WHERE network=$1 AND txn_id=$2 AND digest=$3",
                self.network,
                txn_id,
                digest,
            )
        )

    @retried(PATIENCE)
    async def mark_txn_handled(self, txn_id: str, digest: str) -> None:
        await self.db.execute(
            "INSERT INTO handled_txn (network, txn_id, digest) VALUES ($1, $2, $3)"
            " ON CONFLICT (network, txn_id) DO UPDATE SET digest=excluded.digest",
            self.network,
            txn_id,
            digest,
        )

    @retried(PATIENCE)
    async def sync_position(self) -> str | None:
        return await self.db.fetchval(
            "SELECT next_batch FROM sync_position WHERE network=$1", self.network
        )

    @retried(PATIENCE)
    async def save_sync_position(self, next_batch: str) -> None:
        await self.db.execute(
            "INSERT INTO sync_position (network, next_batch) VALUES ($1, $2)"
            " ON CONFLICT (network) DO UPDATE SET next_batch=excluded.next_batch",
            self.network,
            next_batch,
        )

    @retried(PATIENCE)
    async def ghost_profile(self, user_id: str) -> GhostProfile | None:
        row = await self.db.fetchrow(
            "SELECT displayname, avatar FROM ghost_profile WHERE network=$1 AND user_id=$2",
            self.network,
            user_id,
        )
        return GhostProfile(row["displayname"], row["avatar"]) if row else None

    @retried(PATIENCE)
    async def save_ghost_profile(self, user_id: str, profile: GhostProfile) -> None:
        await self.db.execute(
            "INSERT INTO ghost_profile (network, user_id, displayname, avatar)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (network, user_id)"
            " DO UPDATE SET displayname=excluded.displayname, avatar=excluded.avatar",
            self.network,
            user_id,
            profile.name,
            profile.avatar,
        )

    @retried(PATIENCE)
    async def room_positions(self) -> dict[str, str]:
        """Room → the timeline token up to which its events were caught up."""
        rows = await self.db.fetch(
            "SELECT room_id, token FROM room_position WHERE network=$1", self.network
        )
        return {row["room_id"]: row["token"] for row in rows}

    @retried(PATIENCE)
    async def save_room_position(self, room_id: str, token: str) -> None:
        await self.db.execute(
            "INSERT INTO room_position (network, room_id, token) VALUES ($1, $2, $3)"
            " ON CONFLICT (network, room_id) DO UPDATE SET token=excluded.token",
            self.network,
            room_id,
            token,
        )

    @retried(PATIENCE)
    async def room_facts(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(room, state event type, its content or None when the room has none) of every room
        whose facts were stored: one query at start instead of a request per room."""
        rows = await self.db.fetch(
            "SELECT room_id, event_type, content FROM room_fact WHERE network=$1", self.network
        )
        facts = []
        for row in rows:
            content = json.loads(row["content"])
            facts.append((row["room_id"], row["event_type"],
                          content if isinstance(content, dict) else None))  # fmt: skip
        return facts

    @retried(PATIENCE)
    async def save_room_fact(
        self, room_id: str, event_type: str, content: dict[str, Any] | None
    ) -> None:
        """Remember a room's state event content (None: the room has no such event)."""
        await self.db.execute(
            "INSERT INTO room_fact (network, room_id, event_type, content) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (network, room_id, event_type) DO UPDATE SET content=excluded.content",
            self.network,
            room_id,
            event_type,
            json.dumps(content),
        )

    @retried(PATIENCE)
    async def relayed_reactions(self, room_id: str, target: str) -> tuple[str, str] | None:
        """(notice event, reactions as JSON) of the bot's reaction line under ``target``."""
        row = await self.db.fetchrow(
            "SELECT notice_id, reactions FROM relayed_reaction"
            " WHERE network=$1 AND room_id=$2 AND target=$3",
            self.network,
            room_id,
            target,
        )
        return (row["notice_id"], row["reactions"]) if row else None

    @retried(PATIENCE)
    async def save_relayed_reactions(
        self, room_id: str, target: str, notice_id: str, reactions: str | None
    ) -> None:
        """Remember the line (``reactions`` None: it is gone)."""
        if reactions is None:
            await self.db.execute(
                "DELETE FROM relayed_reaction WHERE network=$1 AND room_id=$2 AND target=$3",
                self.network,
                room_id,
                target,
            )
            return
        await self.db.execute(
            "INSERT INTO relayed_reaction (network, room_id, target, notice_id, reactions)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (network, room_id, target)"
            " DO UPDATE SET notice_id=excluded.notice_id, reactions=excluded.reactions",
            self.network,
            room_id,
            target,
            notice_id,
            reactions,
        )
