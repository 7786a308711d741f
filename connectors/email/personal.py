"""What the mail networks keep about a person (`bridge.personal.KindData`), all of it in their
spool: mail they sent that was quarantined. Retention empties the spool of attachments and
quarantined mail older than ``retention.spool``."""

from __future__ import annotations

from typing import Any

from mautrix.util.async_db import Database

from bridge.config.model import Config, Network
from bridge.personal import Subject
from connectors.email.config import EmailNetwork
from connectors.email.spool import QuarantineEntry, Spool


def _theirs(config: Config, who: Subject) -> list[tuple[Spool, QuarantineEntry]]:
    addresses = {address.lower() for address in who.addresses}
    return [
        (spool, entry)
        for network in config.networks.values()
        if isinstance(network, EmailNetwork)
        for spool in [Spool(network.spool)]
        for entry in spool.quarantined()
        if entry.sender.lower() in addresses
    ]


class EmailData:
    async def export(self, config: Config, state: Database | None, who: Subject) -> dict[str, Any]:
        return {
            "quarantined_mail": [
                {**vars(entry), "path": str(spool.quarantine_dir / entry.file)}
                for spool, entry in _theirs(config, who)
            ]
        }

    async def forget(self, config: Config, state: Database | None, who: Subject) -> dict[str, int]:
        found = _theirs(config, who)
        for spool, entry in found:
            spool.release(entry)
        return {"quarantined_mail": len(found)}

    async def purge(self, config: Config, network: Network, before: float) -> int:
        if not isinstance(network, EmailNetwork):
            return 0
        spool = Spool(network.spool)
        # Seen from ``before``, whatever is older than nothing is older than ``before``.
        removed = spool.sweep(outbox_empty=False, max_age=0.0, now=before)
        for entry in spool.quarantined():
            if entry.received < before:
                spool.release(entry)
                removed += 1
        return removed
