"""Retention: what the bridge stores is deleted once older than the config's ``retention`` says.

Every `INTERVAL` (and once at start) the job deletes ID map entries, queued messages, audit
records and the files networks keep (through their kind's `bridge.personal.KindData.purge`)
older than their retention. With several instances each runs it; deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bridge.audit import AuditTrail
from bridge.config.model import Config
from bridge.kinds import kinds
from bridge.store import Store

log = logging.getLogger("passerelle.retention")

INTERVAL = 3600.0
"""Seconds between two runs of the retention job."""


async def enforce(
    config: Config, store: Store, audit: AuditTrail | None, now: float | None = None
) -> dict[str, int]:
    """Delete what is older than its retention, once; how much of each was deleted."""
    now = time.time() if now is None else now
    keep, deleted = config.retention, {}
    if keep.id_map is not None:
        deleted["id_map"] = await store.purge_id_map(now - keep.id_map)
    if keep.outbox is not None:
        deleted["outbox"] = await store.purge_outbox(now - keep.outbox)
    if keep.audit is not None and audit is not None:
        deleted["audit"] = await audit.purge(int((now - keep.audit) * 1000))
    if keep.spool is not None:
        deleted["spool"] = 0
        for network in config.networks.values():
            hook = kinds()[network.kind].personal
            if hook is not None:
                deleted["spool"] += await hook.purge(config, network, now - keep.spool)
    return deleted


async def run(config: Callable[[], Config], store: Store, audit: AuditTrail | None) -> None:
    """The periodic job (the config of the moment: a reload changes the retention)."""
    while True:
        deleted = await enforce(config(), store, audit)
        if any(deleted.values()):
            log.info(
                "Retention: deleted %s",
                ", ".join(f"{n} {what}" for what, n in deleted.items() if n),
            )
        await asyncio.sleep(INTERVAL)
