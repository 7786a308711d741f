"""What the XMPP networks keep about a person (`bridge.personal.KindData`): which occupant of
which MUC they were (XEP-0421 occupant id → their real JID)."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Database

from bridge.config.model import Config, Network
from bridge.personal import Subject


def _bare(jids: set[str]) -> list[str]:
    return sorted({jid.partition("/")[0].lower() for jid in jids})


class XmppData:
    async def export(self, config: Config, state: Database | None, who: Subject) -> dict[str, Any]:
        found = []
        for jid in _bare(who.addresses) if state is not None else []:
            assert state is not None
            rows = await state.fetch(
                "SELECT network, room, occupant_id, real_jid FROM xmpp_occupant"
                " WHERE real_jid=$1 OR real_jid LIKE $2",
                jid,
                f"{jid}/%",
            )
            found += [dict(row) for row in rows]
        return {"occupant_identities": found}

    async def forget(self, config: Config, state: Database | None, who: Subject) -> dict[str, int]:
        found = (await self.export(config, state, who))["occupant_identities"]
        for row in found:
            assert state is not None
            await state.execute(
                "DELETE FROM xmpp_occupant WHERE network=$1 AND room=$2 AND occupant_id=$3",
                row["network"],
                row["room"],
                row["occupant_id"],
            )
        return {"occupant_identities": len(found)}

    async def purge(self, config: Config, network: Network, before: float) -> int:
        return 0  # nothing on disk
