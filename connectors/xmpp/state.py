"""What the XMPP connector keeps in the bridge's database, in a table of its own: who each
MUC said its occupants are (XEP-0421 occupant id → real JID), so that history a room replays
after a restart is attributed to the people it vouched for, even those who have left since."""

from __future__ import annotations

from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.database import PATIENCE, retried

upgrade_table = UpgradeTable(
    version_table_name="passerelle_xmpp_version", database_name="Passerelle XMPP"
)


@upgrade_table.register(description="XMPP occupant identities")  # type: ignore[call-arg,arg-type]
async def _upgrade_v1(conn: Connection, scheme: Scheme) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS xmpp_occupant (
            network     TEXT NOT NULL,
            room        TEXT NOT NULL,
            occupant_id TEXT NOT NULL,
            real_jid    TEXT NOT NULL,
            PRIMARY KEY (network, room, occupant_id)
        )"""
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
