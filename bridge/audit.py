"""The audit trail: who sent what kind of event across which border, and what the bridge decided,
without what it said.

One record per event and target network, written where the decision is made (the outbox and the
router, `bridge.router`), in the same transaction that takes the item out of the outbox: time,
link, source network and sender, target network, kind, size, a keyed hash of the content, the
decision (``delivered`` or ``refused``) and its reason. The content itself is never stored.

**Tamper evidence.** Every record carries the hash of the one before it (``prev``) and its own
``hash``, an HMAC-SHA256 under ``audit.key`` over ``prev`` and its fields, so nobody can edit,
remove or reorder a record and write matching hashes without the key (which lives in the config,
not the database). One head row holds the number and hash of the last record; appending locks it
(``SELECT … FOR UPDATE`` on PostgreSQL, the single connection on SQLite), so two instances on one
database extend one chain, never two. `AuditTrail.verify` walks the chain and says which record
was changed, which are missing and which are out of order; the head catches records cut off the
end, and the checkpoints the bridge logs (``Audit checkpoint: record N, hash H``) catch a rewritten
head (``passerelle audit verify --checkpoint N:H``).

**The right to be forgotten.** The chain does not cover the sender, but a keyed hash of the sender
with a random salt of the record's own (``sender_hash``). Forgetting a person replaces the sender
with a pseudonym and deletes the salt: the record still verifies, and the hash left behind
cannot be tied to anyone again, even with the key. Each forgetting appends a ``forgotten`` record
saying how many records took that pseudonym, so a pseudonym set behind the bridge's back shows.

**Retention** deletes the oldest records; the head keeps where the chain now starts
(``first_seq`` and the hash before it, ``first_prev``), so the rest still verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.database import PATIENCE, retried
from bridge.events import Event
from bridge.schema import create_table, migration

log = logging.getLogger("passerelle.audit")

upgrade_table = UpgradeTable(
    version_table_name="passerelle_audit_version", database_name="Passerelle audit trail"
)

PSEUDONYM_PREFIX = "forgotten-"
REORDER_WINDOW = 10_000
"""Records back that `AuditTrail.verify` looks for where a record out of order belongs."""
MAX_PROBLEMS = 50
"""Problems `AuditTrail.verify` lists at most (it counts them all)."""


migration(
    upgrade_table,
    "Audit trail",
    create_table(
        "audit_record",
        "seq          BIGINT PRIMARY KEY",
        "at_ms        BIGINT NOT NULL",
        "link_id      TEXT NOT NULL",
        "source       TEXT NOT NULL",
        "sender       TEXT NOT NULL",
        "sender_salt  TEXT",
        "sender_hash  TEXT NOT NULL",
        "target       TEXT NOT NULL",
        "kind         TEXT NOT NULL",
        "size         BIGINT NOT NULL",
        "content_hash TEXT NOT NULL",
        "decision     TEXT NOT NULL",
        "reason       TEXT NOT NULL",
        "prev         TEXT NOT NULL",
        "hash         TEXT NOT NULL",
    ),
    "CREATE INDEX audit_record_at ON audit_record (at_ms)",
    "CREATE INDEX audit_record_sender ON audit_record (sender)",
    create_table(
        "audit_head",
        "id         INTEGER PRIMARY KEY",
        "seq        BIGINT NOT NULL",
        "hash       TEXT NOT NULL",
        "first_seq  BIGINT NOT NULL",
        "first_prev TEXT NOT NULL",
    ),
    "INSERT INTO audit_head (id, seq, hash, first_seq, first_prev) VALUES (1, 0, '', 1, '')",
)


class Decision(StrEnum):
    DELIVERED = "delivered"
    REFUSED = "refused"
    """Not delivered to that target; the reason says why (the sender was told)."""
    FORGOTTEN = "forgotten"
    """Not an event: a person's records were pseudonymised (``size`` of them)."""


Note = Callable[[Connection], Awaitable[None]]
"""Writes a record within a transaction of the store's (`bridge.store.Store.delivered`)."""


def keyed(key: bytes, label: str, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` under ``key``, separated by ``label`` from every other use."""
    return hmac.new(key, label.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def content_of(event: Event) -> bytes:
    """What the content hash covers: the text, its HTML, a reaction, a redaction's reason and an
    attachment's name, type and size (the bytes stay with the networks)."""
    attachment = event.attachment
    return json.dumps(
        [
            event.text,
            event.html,
            event.reaction,
            event.reason,
            [attachment.name, attachment.mimetype, attachment.size] if attachment else None,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def size_of(event: Event) -> int:
    """Bytes the event carries: its text (UTF-8) and its attachment."""
    attachment = event.attachment
    return len(event.text.encode()) + ((attachment.size or 0) if attachment else 0)


@dataclass(frozen=True)
class Entry:
    """One decision, as recorded (the sender in clear until the person is forgotten)."""

    at_ms: int
    link_id: str
    source: str
    sender: str
    target: str
    kind: str
    size: int
    content_hash: str
    decision: Decision
    reason: str

    @classmethod
    def of(cls, key: bytes, event: Event, target: str, decision: Decision, reason: str) -> Entry:
        return cls(
            int(time.time() * 1000),
            event.link_id,
            event.network,
            event.sender.user_id,
            target,
            event.kind.value,
            size_of(event),
            keyed(key, "content", content_of(event)),
            decision,
            reason,
        )


def record_hash(key: bytes, prev: str, row: Any) -> str:
    """A record's link in the chain: its predecessor's hash and every field but the sender
    itself (its salted hash stands in for it) and the sequence number (the chain orders)."""
    fields = [
        row["at_ms"],
        row["link_id"],
        row["source"],
        row["sender_hash"],
        row["target"],
        row["kind"],
        row["size"],
        row["content_hash"],
        row["decision"],
        row["reason"],
    ]
    data = json.dumps([prev, *fields], ensure_ascii=False, separators=(",", ":"))
    return keyed(key, "record", data.encode())


def sender_hash(key: bytes, salt: str, sender: str) -> str:
    return keyed(key, "sender", f"{salt}\0{sender}".encode())


@dataclass
class Verdict:
    """What `AuditTrail.verify` found."""

    records: int = 0
    first: int = 1
    """The first record kept (older ones were removed by retention)."""
    last: int = 0
    head: str = ""
    """The last record's hash, as the head row has it."""
    forgotten: int = 0
    """Records whose sender was replaced by a pseudonym."""
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    @property
    def intact(self) -> bool:
        return self.problem_count == 0


class AuditTrail:
    """The audit tables of the bridge's database (opened with `bridge.store.Store.open_state`)
    and the key their hashes are made with."""

    def __init__(self, db: Database, key: bytes) -> None:
        self.db = db
        self.key = key

    def entry(self, event: Event, target: str, decision: Decision, reason: str = "") -> Entry:
        return Entry.of(self.key, event, target, decision, reason)

    def note(self, event: Event, target: str, decision: Decision, reason: str = "") -> Note:
        """The record of a decision on ``event`` for ``target``, to write in the transaction
        that acts on it (taken now: the time is the decision's)."""
        return self.notes(event, [(target, decision, reason)])

    def notes(self, event: Event, decisions: Sequence[tuple[str, Decision, str]]) -> Note:
        """The records of decisions on ``event``, each (target, decision, reason)."""
        entries = [self.entry(event, *decision) for decision in decisions]

        async def write(conn: Connection) -> None:
            await self.append(conn, entries)

        return write

    async def append(self, conn: Connection, entries: Sequence[Entry]) -> None:
        """Chain ``entries`` onto the trail, within the caller's transaction on ``conn``."""
        lock = " FOR UPDATE" if self.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else ""
        head: Any = await conn.fetchrow(f"SELECT seq, hash FROM audit_head WHERE id=1{lock}")
        seq, prev = int(head["seq"]), str(head["hash"])
        rows = []
        for entry in entries:
            seq += 1
            salt = secrets.token_hex(16)
            row = {
                **vars(entry),
                "decision": entry.decision.value,
                "sender_hash": sender_hash(self.key, salt, entry.sender),
            }
            digest = record_hash(self.key, prev, row)
            rows.append(
                (
                    seq,
                    entry.at_ms,
                    entry.link_id,
                    entry.source,
                    entry.sender,
                    salt,
                    row["sender_hash"],
                    entry.target,
                    entry.kind,
                    entry.size,
                    entry.content_hash,
                    row["decision"],
                    entry.reason,
                    prev,
                    digest,
                )
            )
            prev = digest
        await conn.executemany(
            "INSERT INTO audit_record (seq, at_ms, link_id, source, sender, sender_salt,"
            " sender_hash, target, kind, size, content_hash, decision, reason, prev, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            rows,
        )
        await conn.execute("UPDATE audit_head SET seq=$1, hash=$2 WHERE id=1", seq, prev)

    @retried(None)
    async def record(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` in a transaction of their own."""
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            await self.append(conn, entries)

    @retried(PATIENCE)
    async def head(self) -> tuple[int, str]:
        """The last record's number and hash (0 and "" for an empty trail)."""
        row: Any = await self.db.fetchrow("SELECT seq, hash FROM audit_head WHERE id=1")
        return int(row["seq"]), str(row["hash"])

    async def verify(self, checkpoints: Collection[tuple[int, str]] = ()) -> Verdict:
        """Walk the whole chain; every record changed, missing or out of order is a problem,
        and so is a checkpoint (a record number and hash the bridge logged) that does not hold.
        A running bridge may append meanwhile: the walk follows the head until it stays put,
        and whatever lies beyond it then was not written by the bridge."""
        head: Any = await self.db.fetchrow(
            "SELECT seq, hash, first_seq, first_prev FROM audit_head"
        )
        walk = _Walk(self.key, Verdict(first=int(head["first_seq"])), str(head["first_prev"]),
                     dict(checkpoints))  # fmt: skip
        walked = beyond = 0
        while True:
            async for row in self._rows("seq > $1 AND seq <= $2", walked, int(head["seq"])):
                walk.step(row)
            walked = int(head["seq"])
            beyond = int(await self.db.fetchval("SELECT COUNT(*) FROM audit_record WHERE seq > $1",
                                                walked))  # fmt: skip
            moved: Any = await self.db.fetchrow("SELECT seq, hash FROM audit_head")
            if int(moved["seq"]) == walked:
                break
            head = moved
        walk.verdict.head = str(head["hash"])
        walk.finish(walked, str(head["hash"]), beyond)
        return walk.verdict

    async def _rows(self, where: str, *args: Any) -> AsyncIterator[Any]:
        """The records matching ``where`` (over ``$1``… = ``args``), oldest first, a page at a
        time."""
        after, query = (
            -1,
            (
                f"SELECT * FROM audit_record WHERE {where} AND seq > ${len(args) + 1}"
                " ORDER BY seq LIMIT 1000"
            ),
        )
        while True:
            page = await self.db.fetch(query, *args, after)
            for row in page:
                yield row
            if len(page) < 1000:
                return
            after = int(page[-1]["seq"])

    async def export(self, since_ms: int = 0, link: str | None = None) -> AsyncIterator[Any]:
        """Records from ``since_ms`` on (of one link), oldest first."""
        rows = (
            self._rows("at_ms >= $1", since_ms)
            if link is None
            else self._rows("at_ms >= $1 AND link_id = $2", since_ms, link)
        )
        async for row in rows:
            yield row

    async def records_of(self, senders: Collection[str]) -> list[dict[str, Any]]:
        """Every record whose sender is one of ``senders`` (a person's accounts)."""
        if not senders:
            return []
        marks = ", ".join(f"${i}" for i in range(1, len(senders) + 1))
        rows = await self.db.fetch(
            f"SELECT * FROM audit_record WHERE sender IN ({marks}) ORDER BY seq", *senders
        )
        return [public(row) for row in rows]

    @retried(None)
    async def pseudonymise(self, senders: Collection[str]) -> tuple[str, int]:
        """Replace ``senders`` (a person's accounts) by one new pseudonym in every record, drop
        their salts, and record the forgetting; the pseudonym and how many records took it."""
        pseudonym = PSEUDONYM_PREFIX + secrets.token_hex(8)
        if not senders:
            return pseudonym, 0
        marks = ", ".join(f"${i}" for i in range(2, len(senders) + 2))
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            count = int(
                await conn.fetchval(
                    f"SELECT COUNT(*) FROM audit_record WHERE sender IN ({marks})"
                    " AND decision <> $1",
                    Decision.FORGOTTEN.value,
                    *senders,
                )
            )
            if count == 0:
                return pseudonym, 0
            await conn.execute(
                f"UPDATE audit_record SET sender=$1, sender_salt=NULL WHERE sender IN ({marks})",
                pseudonym,
                *senders,
            )
            forgot = Entry(
                int(time.time() * 1000),
                "",
                "",
                pseudonym,
                "",
                "person",
                count,
                "",
                Decision.FORGOTTEN,
                "right to erasure",
            )
            await self.append(conn, [forgot])
        return pseudonym, count

    @retried(None)
    async def purge(self, before_ms: int) -> int:
        """Delete the records older than ``before_ms``; the chain then starts at the first one
        kept. How many were deleted."""
        conn: Connection
        async with self.db.acquire() as conn, conn.transaction():
            lock = " FOR UPDATE" if self.db.scheme in (Scheme.POSTGRES, Scheme.COCKROACH) else ""
            head: Any = await conn.fetchrow(f"SELECT seq, hash FROM audit_head WHERE id=1{lock}")
            cut = await conn.fetchrow(
                "SELECT seq, prev FROM audit_record WHERE at_ms >= $1 ORDER BY seq LIMIT 1",
                before_ms,
            )
            first_seq, first_prev = (
                (int(cut["seq"]), str(cut["prev"]))
                if cut is not None
                else (int(head["seq"]) + 1, str(head["hash"]))
            )
            count = int(
                await conn.fetchval("SELECT COUNT(*) FROM audit_record WHERE seq < $1", first_seq)
            )
            if count:
                await conn.execute("DELETE FROM audit_record WHERE seq < $1", first_seq)
                await conn.execute(
                    "UPDATE audit_head SET first_seq=$1, first_prev=$2 WHERE id=1",
                    first_seq,
                    first_prev,
                )
        return count


class _Walk:
    """One walk along the chain, record by record (`AuditTrail.verify`)."""

    def __init__(self, key: bytes, verdict: Verdict, prev: str, wanted: dict[int, str]) -> None:
        self.key = key
        self.verdict = verdict
        self.expected = verdict.first
        self.prev = prev
        self.wanted = wanted
        """Checkpoints not met yet: record → hash."""
        self.seen: dict[str, int] = {}
        """Hash → the record that has it, for the last `REORDER_WINDOW` records (where a record
        out of order belongs)."""
        self.pseudonyms: dict[str, int] = {}
        """Pseudonym → records carrying it before any forgetting that made it."""
        self.forgets: dict[str, int] = {}
        """Pseudonym → how many records its forgetting pseudonymised."""

    def step(self, row: Any) -> None:
        verdict, seq = self.verdict, int(row["seq"])
        verdict.records += 1
        if seq > self.expected:
            missing = (
                f"{self.expected}" if seq == self.expected + 1 else f"{self.expected}–{seq - 1}"
            )
            verdict.problem(f"record {missing} removed (the chain goes from record "
                            f"{self.expected - 1} to record {seq})")  # fmt: skip
        elif row["prev"] != self.prev and row["prev"] in self.seen:
            verdict.problem(f"record {seq} is out of order: it follows record "
                            f"{self.seen[row['prev']]}, not record {seq - 1}")  # fmt: skip
        elif row["prev"] != self.prev:
            verdict.problem(f"record {seq} does not follow record {seq - 1}: records between them "
                            f"were removed, records were reordered, or record {seq - 1} was "
                            "changed")  # fmt: skip
        if record_hash(self.key, row["prev"], row) != row["hash"]:
            verdict.problem(f"record {seq} was changed (its hash does not match its fields)")
        self._sender(row, seq)
        if seq in self.wanted and self.wanted.pop(seq) != row["hash"]:
            verdict.problem(f"record {seq} does not have the hash of the checkpoint")
        self.seen[row["hash"]] = seq
        if len(self.seen) > REORDER_WINDOW:
            del self.seen[next(iter(self.seen))]
        self.prev, self.expected, verdict.last = row["hash"], seq + 1, seq

    def _sender(self, row: Any, seq: int) -> None:
        """A sender in clear must match its hash; a pseudonymised one must have been forgotten
        by the bridge (its ``forgotten`` record, later in the chain, counts it)."""
        sender, salt = str(row["sender"]), row["sender_salt"]
        if row["decision"] == Decision.FORGOTTEN.value:
            self.forgets[sender] = int(row["size"])
        elif salt is None and sender.startswith(PSEUDONYM_PREFIX) and sender not in self.forgets:
            self.verdict.forgotten += 1
            self.pseudonyms[sender] = self.pseudonyms.get(sender, 0) + 1
        elif salt is None:
            self.verdict.problem(f"record {seq} has lost its sender's salt (changed)")
        if salt is not None and sender_hash(self.key, str(salt), sender) != row["sender_hash"]:
            self.verdict.problem(f"record {seq}'s sender was changed")

    def finish(self, head_seq: int, head_hash: str, beyond: int) -> None:
        verdict = self.verdict
        if head_seq != self.expected - 1 or (verdict.records and head_hash != self.prev):
            verdict.problem(f"the trail ends at record {self.expected - 1}, but its head says "
                            f"record {head_seq}: the last records were removed")  # fmt: skip
        if beyond:
            verdict.problem(f"{beyond} record(s) after the head (record {head_seq}): not "
                            "written by the bridge")  # fmt: skip
        for seq in sorted(self.wanted):
            verdict.problem(
                f"checkpoint record {seq} is not in the trail"
                + (" (removed by retention)" if seq < verdict.first else "")
            )
        for pseudonym, count in self.pseudonyms.items():
            if count > self.forgets.get(pseudonym, 0):
                verdict.problem(f"{count} record(s) carry the pseudonym {pseudonym}, but no "
                                "forgetting in the trail made them")  # fmt: skip


EXPORT_FIELDS = (
    "seq",
    "time",
    "link",
    "source",
    "sender",
    "target",
    "kind",
    "size",
    "content_hash",
    "decision",
    "reason",
    "hash",
)


def public(row: Any) -> dict[str, Any]:
    """A record as officers read it (the salt and the sender's hash left out)."""
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(row["at_ms"]) / 1000))
    return {
        "seq": int(row["seq"]),
        "time": f"{at}.{int(row['at_ms']) % 1000:03d}Z",
        "link": row["link_id"],
        "source": row["source"],
        "sender": row["sender"],
        "target": row["target"],
        "kind": row["kind"],
        "size": int(row["size"]),
        "content_hash": row["content_hash"],
        "decision": row["decision"],
        "reason": row["reason"],
        "hash": row["hash"],
    }


async def checkpoints(audit: AuditTrail, interval: Callable[[], float]) -> None:
    """Log the audit trail's last record and hash every ``interval()`` seconds when it grew:
    what `passerelle audit verify --checkpoint` later compares the trail with."""
    logged = -1
    while True:
        seq, digest = await audit.head()
        if seq != logged:
            log.info("Audit checkpoint: record %d, hash %s", seq, digest or "(empty trail)")
            logged = seq
        await asyncio.sleep(interval())
