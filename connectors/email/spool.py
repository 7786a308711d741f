"""The email network's files: attachments waiting for delivery, and quarantined mail.

The store keeps IDs, not content, so a received attachment's bytes wait here until the outbox
has delivered its event to every target, possibly after a restart. Layout under the network's
``spool`` directory::

    attachments/<key>/<n>        attachment n of the mail whose spool key is <key>
    quarantine/<stamp>-<key>.eml  a mail kept out of the rooms by the quarantine policy
    quarantine/<stamp>-<key>.json why, from whom, to which link addresses

Cleaning up: `Spool.sweep` (run at start and every hour) removes attachment directories once
the outbox is empty and they are older than a grace period (so a mail being received right now
keeps its files), and in any case after ``spool_days``; an event whose attachment was swept
before it could be delivered fails permanently, and its sender is told. Quarantined mail stays
until an admin removes it.

Files are written to a temporary name, flushed to disk and renamed, so a crash never leaves a
half-written attachment that a later delivery would send.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from connectors.email.parse import MailAttachment

SWEEP_GRACE_SECONDS = 600.0
_REF = re.compile(r"([0-9a-f]{32})/([0-9]{1,3})")


def spool_key(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@dataclass(frozen=True)
class QuarantineEntry:
    file: str
    received: float
    message_id: str
    sender: str
    recipients: list[str]
    reason: str


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.attachments = root / "attachments"
        self.quarantine_dir = root / "quarantine"

    # Attachments

    def put(self, key: str, attachments: tuple[MailAttachment, ...]) -> None:
        """Keep a mail's attachments under ``key``; an earlier copy (a redelivered mail) is
        replaced, which also restarts its grace period."""
        for att in attachments:
            _write(self.attachments / key / str(att.index), att.data)
        if attachments:
            os.utime(self.attachments / key)

    def get(self, ref: str) -> bytes:
        """The bytes of ``<key>/<n>``; `FileNotFoundError` once swept, `ValueError` for a
        reference this spool never made."""
        match = _REF.fullmatch(ref)
        if match is None:
            raise ValueError(f"not an attachment reference of the mail spool: {ref!r}")
        return (self.attachments / match.group(1) / match.group(2)).read_bytes()

    def sweep(self, outbox_empty: bool, max_age: float, now: float | None = None) -> int:
        """Remove attachment directories nothing can need any more; returns how many."""
        now = time.time() if now is None else now
        limit = min(SWEEP_GRACE_SECONDS, max_age) if outbox_empty else max_age
        removed = 0
        if not self.attachments.is_dir():
            return 0
        for entry in self.attachments.iterdir():
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > limit:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    # Quarantine

    def quarantine(
        self, raw: bytes, message_id: str, sender: str, recipients: list[str], reason: str
    ) -> Path:
        received = time.time()
        stem = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(received))}-{spool_key(message_id)}"
        path = self.quarantine_dir / f"{stem}.eml"
        _write(path, raw)
        entry = QuarantineEntry(path.name, received, message_id, sender, recipients, reason)
        _write(path.with_suffix(".json"), json.dumps(asdict(entry), ensure_ascii=False).encode())
        return path

    def release(self, entry: QuarantineEntry) -> None:
        """Delete a quarantined mail and what was noted about it."""
        path = self.quarantine_dir / entry.file
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def quarantined(self) -> list[QuarantineEntry]:
        """Every quarantined mail, oldest first."""
        if not self.quarantine_dir.is_dir():
            return []
        entries = []
        for meta in sorted(self.quarantine_dir.glob("*.json")):
            try:
                entries.append(QuarantineEntry(**json.loads(meta.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return entries
