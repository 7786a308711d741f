"""The audit trail (`bridge.audit`) on real databases, SQLite and PostgreSQL: records chained by
HMACs, `verify` finding an edited, a removed and a reordered record and saying which, senders
pseudonymised without breaking the chain, retention cutting the start, concurrent appends."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.audit import AuditTrail, Decision, checkpoints, public, upgrade_table
from bridge.events import Attachment, AttachmentKind, Event, Sender
from bridge.store import Store
from tests import samples
from tests.harness.postgres import Opener

KEY = b"k" * 40
SECRET_TEXT = "Streng vertraulich: Treffen um 9 Uhr"


def message(n: int, *, user: str = "@max:bund.example", link: str = "wg") -> Event:
    max_ = Sender("bund", user, "Max")
    return samples.message(max_, link, "!room:bund.example", f"$event{n}", f"{SECRET_TEXT} #{n}")


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


@pytest.fixture
async def trail(store: Store) -> AuditTrail:
    return AuditTrail(await store.open_state(upgrade_table), KEY)


async def fill(trail: AuditTrail, count: int, **kwargs: str) -> None:
    for n in range(1, count + 1):
        await trail.record([trail.entry(message(n, **kwargs), "tchap", Decision.DELIVERED)])


async def problems(
    trail: AuditTrail, checkpoints: list[tuple[int, str]] | None = None
) -> list[str]:
    return (await trail.verify(checkpoints or [])).problems


async def test_records_have_the_fields_and_no_content(store: Store, trail: AuditTrail) -> None:
    pdf = Attachment(AttachmentKind.FILE, "plan.pdf", "application/pdf", 1000, "mxc://x/y")
    event = samples.message(Sender("bund", "@max:bund.example", "Max"), "wg", "!r:bund.example",
                            "$e", "Hallo ü", attachment=pdf)  # fmt: skip
    before = time.time()
    await trail.record([trail.entry(event, "tchap", Decision.REFUSED, "not_listed")])
    (row,) = [public(r) async for r in trail.export()]
    assert row["link"] == "wg" and row["source"] == "bund" and row["target"] == "tchap"
    assert row["sender"] == "@max:bund.example" and row["kind"] == "message"
    assert row["size"] == len("Hallo ü".encode()) + 1000
    assert row["decision"] == "refused" and row["reason"] == "not_listed"
    assert len(row["content_hash"]) == 64
    at = time.mktime(time.strptime(row["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 1 <= at <= time.time() + 1
    dump = repr([tuple(r) for r in await store.db.fetch("SELECT * FROM audit_record")])
    assert "Hallo" not in dump and "plan.pdf" not in dump
    # The same content under another key hashes otherwise: it cannot be confirmed without it.
    other = AuditTrail(trail.db, b"o" * 40).entry(event, "tchap", Decision.REFUSED, "")
    assert other.content_hash != row["content_hash"]


async def test_an_intact_trail_verifies(trail: AuditTrail) -> None:
    await fill(trail, 5)
    verdict = await trail.verify()
    assert verdict.intact and (verdict.records, verdict.first, verdict.last) == (5, 1, 5)


TAMPERED = {
    "edited-record": (
        5,
        "UPDATE audit_record SET target='xmpp' WHERE seq=3",
        "record 3 was changed (its hash does not match its fields)",
    ),
    "edited-sender": (
        3,
        "UPDATE audit_record SET sender='@erika:bund.example' WHERE seq=2",
        "record 2's sender was changed",
    ),
    "removed-record": (
        5,
        "DELETE FROM audit_record WHERE seq=3",
        "record 3 removed (the chain goes from record 2 to record 4)",
    ),
}
"""A trail of so many records, one statement tampering with it, and the one problem found."""


@pytest.mark.parametrize(("records", "tampering", "problem"), TAMPERED.values(), ids=TAMPERED)
async def test_a_tampered_record_is_found(
    store: Store, trail: AuditTrail, records: int, tampering: str, problem: str
) -> None:
    await fill(trail, records)
    await store.db.execute(tampering)
    assert await problems(trail) == [problem]


async def test_removed_and_renumbered_records_are_found(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 5)
    await store.db.execute("DELETE FROM audit_record WHERE seq=3")
    await store.db.execute("UPDATE audit_record SET seq=seq-1 WHERE seq>3")
    await store.db.execute("UPDATE audit_head SET seq=4")
    found = await problems(trail)
    assert found[0].startswith("record 3 does not follow record 2")


async def test_a_reordered_record_is_found(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 5)
    for old, new in ((3, -1), (4, 3), (-1, 4)):
        await store.db.execute("UPDATE audit_record SET seq=$1 WHERE seq=$2", new, old)
    found = await problems(trail)
    assert "record 4 is out of order: it follows record 2, not record 3" in found


async def test_records_cut_off_the_end_are_found(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 5)
    seq, digest = await trail.head()
    await store.db.execute("DELETE FROM audit_record WHERE seq>=4")
    assert await problems(trail) == [
        "the trail ends at record 3, but its head says record 5: the last records were removed"
    ]
    # A head rewritten to match is caught by a logged checkpoint.
    third = await store.db.fetchval("SELECT hash FROM audit_record WHERE seq=3")
    await store.db.execute("UPDATE audit_head SET seq=3, hash=$1", third)
    assert await problems(trail) == []
    assert await problems(trail, [(seq, digest)]) == ["checkpoint record 5 is not in the trail"]


async def test_forgetting_keeps_the_chain(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 2, user="@max:bund.example")
    await fill(trail, 2, user="@erika:bund.example")
    pseudonym, count = await trail.pseudonymise({"@max:bund.example"})
    assert count == 2 and pseudonym.startswith("forgotten-")
    rows = [public(r) async for r in trail.export()]
    assert [r["sender"] for r in rows] == [pseudonym, pseudonym, "@erika:bund.example",
                                           "@erika:bund.example", pseudonym]  # fmt: skip
    assert rows[-1]["decision"] == "forgotten" and rows[-1]["size"] == 2
    assert not await store.db.fetchval(
        "SELECT COUNT(*) FROM audit_record WHERE sender=$1 AND sender_salt IS NOT NULL"
        " AND decision='delivered'",
        pseudonym,
    )
    verdict = await trail.verify()
    assert verdict.intact and verdict.forgotten == 2
    assert await trail.records_of({"@max:bund.example"}) == []


async def test_a_pseudonym_set_behind_the_bridge_is_found(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 3)
    await store.db.execute(
        "UPDATE audit_record SET sender='forgotten-0000', sender_salt=NULL WHERE seq=2"
    )
    assert await problems(trail) == [
        "1 record(s) carry the pseudonym forgotten-0000, but no forgetting in the trail made them"
    ]


async def test_retention_cuts_the_start_and_the_rest_verifies(
    store: Store, trail: AuditTrail
) -> None:
    await fill(trail, 5)
    await store.db.execute("UPDATE audit_record SET at_ms=1000 WHERE seq<=2")
    assert await trail.purge(2000) == 2
    verdict = await trail.verify()
    assert verdict.intact and (verdict.first, verdict.records) == (3, 3)
    # Deleting a kept record is still found.
    await store.db.execute("DELETE FROM audit_record WHERE seq=3")
    assert await problems(trail) == ["record 3 removed (the chain goes from record 2 to record 4)"]


async def test_everything_purged_then_appended(trail: AuditTrail) -> None:
    await fill(trail, 2)
    assert await trail.purge(int(time.time() * 1000) + 10_000) == 2
    await fill(trail, 1)
    verdict = await trail.verify()
    assert verdict.intact and (verdict.first, verdict.last) == (3, 3)


async def test_concurrent_appends_make_one_chain(open_store: Opener) -> None:
    """Two stores on one database (two instances) appending at once extend one chain."""
    first, second = await open_store(), await open_store()
    trails = [AuditTrail(await s.open_state(upgrade_table), KEY) for s in (first, second)]

    async def write(trail: AuditTrail, base: int) -> None:
        for n in range(10):
            await trail.record([trail.entry(message(base + n), "tchap", Decision.DELIVERED)])

    await asyncio.gather(write(trails[0], 0), write(trails[1], 100))
    verdict = await trails[0].verify()
    assert verdict.intact and verdict.records == 20


async def test_a_record_is_written_with_the_delivery(store: Store, trail: AuditTrail) -> None:
    event = message(1)
    assert await store.accept(event, ["tchap"])
    (item,) = await store.queue_head("wg", "tchap", 1)
    await store.delivered(item, "$t1", "!t:tchap.example",
                          also=trail.note(event, "tchap", Decision.DELIVERED))  # fmt: skip
    (row,) = [public(r) async for r in trail.export(link="wg")]
    assert (row["decision"], row["target"]) == ("delivered", "tchap")
    assert [r async for r in trail.export(link="other")] == []


async def test_checkpoints_are_logged_when_the_trail_grew(
    trail: AuditTrail, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="passerelle.audit")
    rounds: asyncio.Queue[None] = asyncio.Queue()

    def interval() -> float:  # called once a round has logged what it had to
        rounds.put_nowait(None)
        return 0.01

    task = asyncio.create_task(checkpoints(trail, interval))
    try:
        await rounds.get()
        await trail.record([trail.entry(message(n), "tchap", Decision.DELIVERED) for n in (1, 2)])
        seq, digest = await trail.head()
        while not rounds.empty():
            rounds.get_nowait()
        await rounds.get()
        await rounds.get()  # a whole round after the records were committed
    finally:
        task.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "passerelle.audit"]
    assert lines == [
        "Audit checkpoint: record 0, hash (empty trail)",
        f"Audit checkpoint: record 2, hash {digest}",
    ]
    assert seq == 2 and (await trail.verify([(2, digest)])).intact


async def test_a_record_added_after_the_head_is_found(store: Store, trail: AuditTrail) -> None:
    await fill(trail, 2)
    await store.db.execute(
        "INSERT INTO audit_record SELECT seq+1, at_ms, link_id, source, sender, sender_salt,"
        " sender_hash, target, kind, size, content_hash, decision, reason, hash, hash"
        " FROM audit_record WHERE seq=2"
    )
    assert await problems(trail) == [
        "1 record(s) after the head (record 2): not written by the bridge"
    ]


async def test_records_appended_while_verifying_are_walked_too(trail: AuditTrail) -> None:
    await fill(trail, 3)
    verifying = asyncio.create_task(trail.verify())
    await fill(trail, 3)
    verdict = await verifying
    assert verdict.intact and verdict.records >= 3
    assert (await trail.verify()).records == 6
