"""When the bridge recorded each delivery, read from its own database.

A trigger on the outbox notes the moment each item leaves it (the statement's clock; the commit
follows within the same transaction). Set against the moment the target took the message, that
is the window in which a crash makes the bridge send it again: on a target that cannot
recognise the resend, the message shows twice. Test instrumentation only: it adds a table and a
trigger to the fault suite's throw-away database, nothing to the bridge.
"""

from __future__ import annotations

import asyncpg

from tests.faults.report import window_note
from tests.faults.traffic import Arrival, Route, read_marker

INSTALL = """
CREATE TABLE IF NOT EXISTS faults_recorded (target TEXT, event TEXT, at DOUBLE PRECISION);
CREATE OR REPLACE FUNCTION faults_note() RETURNS trigger AS $$
BEGIN
  INSERT INTO faults_recorded VALUES (OLD.target, OLD.event,
                                      extract(epoch FROM clock_timestamp()));
  RETURN OLD;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS faults_note ON outbox;
CREATE TRIGGER faults_note AFTER DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION faults_note();
"""
UNDEDUPLICATED = ("xmpp", "mail")
"""Targets that cannot recognise a resend by themselves (Matrix drops a repeated transaction
ID; a MUC and a mail relay take whatever they get)."""


async def install(database: str) -> None:
    """Start noting deliveries (once the bridge has created its tables)."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(INSTALL)
    finally:
        await conn.close()


async def windows(
    database: str, run: str, arrived: dict[Route, list[Arrival]]
) -> dict[str, list[float]]:
    """Target → for each of this run's deliveries there, seconds from the target taking it to
    the bridge recording it."""
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT target, event, at FROM faults_recorded WHERE target = ANY($1::text[])",
            list(UNDEDUPLICATED),
        )
    finally:
        await conn.close()
    found: dict[str, list[float]] = {target: [] for target in UNDEDUPLICATED}
    for target, event, at in rows:
        mark = read_marker(event, run)
        if mark is None:
            continue
        copies = arrived.get((mark[0], target), [])
        first = next((a.at for a in copies if a.seq == mark[1] and a.at), None)
        if first is not None:
            found[target].append(at - first)
    return found


def notes(found: dict[str, list[float]], targets: tuple[str, ...]) -> list[str]:
    return [window_note(t, found.get(t, [])) for t in UNDEDUPLICATED if t in targets]
