"""The ``audit`` and ``retention`` config sections, the retention job, and ``passerelle audit`` and
``passerelle person`` as an officer or an admin runs them, on real databases (a SQLite file, and a
database of its own on the PostgreSQL server)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bridge import retention
from bridge.audit import AuditTrail, Decision
from bridge.audit import upgrade_table as audit_tables
from bridge.cli import main
from bridge.config import ConfigError, load_config
from bridge.config.model import DAY, Config
from bridge.events import Event, Kind, Sender
from bridge.links import DirectChat
from bridge.personal import open_states
from bridge.store import Store
from connectors.email.spool import Spool
from connectors.matrix.state import GhostProfile, MatrixState
from connectors.xmpp.state import XmppState
from tests.harness.postgres import postgres_url
from tests.offline import networks

KEY = "0123456789abcdef0123456789abcdef"
MAX_GHOST = "@passerelle_=people_max:tchap.example"
ERIKA = "@erika:bund.example"

CONFIG = (
    """\
database: {database}
audit: {{key: {key}}}
retention: {{id_map: 30, outbox: 10, audit: 365, spool: 7}}
"""
    + networks()
    + """\
  xmpp:
    kind: xmpp
    component: passerelle.xmpp.example
    secret: s
    domain: xmpp.example
  mail:
    kind: email
    domain: lists.example
    relay: {{host: smtp.example}}
    spool: spool
people:
  - id: max
    name: Max Mustermann
    accounts: {{bund: "@max:bund.example", xmpp: max@xmpp.example, mail: max@bund.example}}
links:
  - id: wg
    rooms:
      bund: "!wg:bund.example"
      tchap: "!wg:tchap.example"
      xmpp: {{room: wg@conference.xmpp.example}}
      mail: wg@lists.example
  - id: board
    rooms:
      bund: "!board:bund.example"
      tchap: "!board:tchap.example"
"""
)


def write_config(tmp_path: Path, database: str, key: str = KEY, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(database=database, key=key) + extra, encoding="utf-8")
    return path


def message(n: int, user: str = ERIKA, link: str = "wg") -> Event:
    return Event(
        kind=Kind.MESSAGE,
        link_id=link,
        network="bund",
        room_id=f"!{link}:bund.example",
        remote_id=f"$e{n}",
        sender=Sender("bund", user, "Someone"),
        text=f"geheim {n}",
    )


# Config


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return info.value.errors


def test_audit_and_retention_are_read(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sqlite:x.db"), {})
    assert config.audit is not None and config.audit.key == KEY.encode()
    assert config.audit.checkpoint_interval == 3600
    keep = config.retention
    assert (keep.id_map, keep.outbox, keep.audit, keep.spool) == (30 * DAY, 10 * DAY, 365 * DAY,
                                                                  7 * DAY)  # fmt: skip
    assert KEY not in repr(config)


def test_without_the_sections_nothing_is_audited_nor_deleted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = CONFIG.format(database="sqlite:x.db", key=KEY).splitlines(keepends=True)
    path.write_text("".join(text[:1] + text[3:]))
    config = load_config(path, {})
    assert config.audit is None
    assert config.retention == type(config.retention)()


@pytest.mark.parametrize(
    ("audit", "retention", "error"),
    [
        ("{key: short}", "{}",
         "2:14: audit.key: must be at least 32 characters long (e.g. the output of: openssl rand "
         "-hex 32)"),
        ("{kee: x}", "{}", "2:9: audit.kee: unknown key 'kee' (did you mean 'key'?)"),
        (f"{{key: {KEY}}}", "{id_map: 0}", "3:21: retention.id_map: must be a positive number"),
        (f"{{key: {KEY}}}", "{outbox: 2}",
         "3:21: retention.outbox: must not be less than delivery.give_up_after (5 days): queued "
         "messages are given up, and their senders told, before they are deleted"),
        (f"{{key: {KEY}}}", "{mail: 2}", "3:13: retention.mail: unknown key 'mail'"),
    ],
)  # fmt: skip
def test_mistakes_are_located(tmp_path: Path, audit: str, retention: str, error: str) -> None:
    path = tmp_path / "c.yaml"
    text = CONFIG.format(database="sqlite:x.db", key=KEY).splitlines(keepends=True)
    text[1], text[2] = f"audit: {audit}\n", f"retention: {retention}\n"
    path.write_text("".join(text))
    found = errors_of(path)
    assert any(e.startswith(f"{path}:") and error in e for e in found), found


# The retention job


async def test_retention_deletes_what_is_older(open_store: object, tmp_path: Path) -> None:
    store: Store = await open_store()  # type: ignore[operator]
    config = load_config(write_config(tmp_path, "sqlite:unused.db"), {})
    trail = AuditTrail(await store.open_state(audit_tables), KEY.encode())
    now = time.time()
    for n in range(4):
        assert await store.accept(message(n), ["tchap"])
        await trail.record([trail.entry(message(n), "tchap", Decision.DELIVERED)])
    old = now - 400 * DAY
    await store.db.execute("UPDATE message SET created=$1 WHERE remote_id IN ('$e0', '$e1')", old)
    await store.db.execute("UPDATE outbox SET queued=$1", now - 11 * DAY)
    await store.db.execute("UPDATE audit_record SET at_ms=$1 WHERE seq<=3", int(old * 1000))
    spool = Spool(tmp_path / "spool")
    (spool.attachments / ("a" * 32)).mkdir(parents=True)
    (spool.attachments / ("b" * 32)).mkdir()
    stale = spool.quarantine(b"Subject: x\r\n\r\nx", "<old@x>", "max@bund.example", [], "spf")
    spool.quarantine(b"Subject: y\r\n\r\ny", "<new@x>", "max@bund.example", [], "spf")
    for entry in spool.quarantined():
        if entry.file == stale.name:
            meta = json.loads(stale.with_suffix(".json").read_text())
            stale.with_suffix(".json").write_text(json.dumps({**meta, "received": old}))
    os.utime(spool.attachments / ("b" * 32), (old, old))

    deleted = await retention.enforce(config, store, trail, now)

    assert deleted == {"id_map": 2, "outbox": 4, "audit": 3, "spool": 2}
    assert await store.known_among("bund", ["$e0", "$e1", "$e2", "$e3"]) == {"$e2", "$e3"}
    assert await store.outbox_size() == 0
    verdict = await trail.verify()
    assert verdict.intact and (verdict.first, verdict.records) == (4, 1)
    assert [e.sender for e in spool.quarantined()] == ["max@bund.example"]
    assert [p.name for p in spool.attachments.iterdir()] == ["a" * 32]
    assert await retention.enforce(config, store, trail, now) == {
        "id_map": 0, "outbox": 0, "audit": 0, "spool": 0}  # fmt: skip


# The commands, on a database of either kind


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path}/bridge.db"
        return
    admin = asyncio.run(postgres_url())
    name = f"passerelle_audit_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


async def _fill(config: Config, records: int) -> None:
    """What a running bridge leaves behind: audit records of Max's and Erika's messages, a
    ghost profile and an occupant identity of Max's, a direct chat with him, a queued message
    of his, and a quarantined mail from him."""
    store = await Store.open(config.database)
    try:
        assert config.audit is not None
        trail = AuditTrail(await store.open_state(audit_tables), config.audit.key)
        for n in range(records):
            user = "@max:bund.example" if n % 2 else ERIKA
            link = "board" if n == records - 1 else "wg"
            await trail.record([trail.entry(message(n, user, link), "tchap", Decision.DELIVERED)])
        states = await open_states(config, store)
        tchap = MatrixState(states["matrix"], "tchap")
        await tchap.save_ghost_profile(MAX_GHOST, GhostProfile("Max Mustermann [BMI]", "mxc://b/a"))
        await tchap.save_ghost_profile("@passerelle_bund_erika=3abund.example:tchap.example",
                                       GhostProfile("Erika", None))  # fmt: skip
        await XmppState(states["xmpp"], "xmpp").save_occupant_identity(
            "wg@conference.xmpp.example", "occ-1", "max@xmpp.example"
        )
        chat = DirectChat("direct-1", "tchap", "!dm:tchap.example", "bund", "@max:bund.example",
                          "!dm:bund.example")  # fmt: skip
        await store.save_direct_chat(chat)
        assert await store.accept(message(99, "@max:bund.example"), ["tchap"])
    finally:
        await store.close()
    Spool(config.networks["mail"].spool).quarantine(  # type: ignore[attr-defined]
        b"Subject: hi\r\n\r\nhi", "<q@x>", "max@bund.example", ["wg@lists.example"], "dkim"
    )


async def _sql(url: str, *statements: str) -> None:
    store = await Store.open(url)
    try:
        for statement in statements:
            await store.db.execute(statement)
    finally:
        await store.close()


TAMPERING = {
    "edited": (["UPDATE audit_record SET size=size+1 WHERE seq=2"],
               ["record 2 was changed (its hash does not match its fields)"]),
    "removed": (["DELETE FROM audit_record WHERE seq=2"],
                ["record 2 removed (the chain goes from record 1 to record 3)"]),
    "reordered": (["UPDATE audit_record SET seq=-1 WHERE seq=2",
                   "UPDATE audit_record SET seq=2 WHERE seq=3",
                   "UPDATE audit_record SET seq=3 WHERE seq=-1"],
                  ["record 2 does not follow record 1: records between them were removed, "
                   "records were reordered, or record 1 was changed",
                   "record 3 is out of order: it follows record 1, not record 2",
                   "record 4 is out of order: it follows record 2, not record 3"]),
}  # fmt: skip


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_audit_verify_finds_tampering(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str], tampering: str
) -> None:
    path = write_config(tmp_path, database)
    asyncio.run(_fill(load_config(path, {}), 4))
    code, out, err = run(capsys, "audit", "verify", "-c", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("Audit trail intact: records 1–4, 4 records, 0 pseudonymised; last hash")
    statements, problems = TAMPERING[tampering]
    asyncio.run(_sql(load_config(path, {}).database, *statements))
    code, out, err = run(capsys, "audit", "verify", "-c", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"Audit trail NOT intact ({len(problems)} problems; records 1–4):",
        *(f"  {p}" for p in problems),
    ]


def test_audit_verify_checks_a_logged_checkpoint_and_the_key(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, database)
    asyncio.run(_fill(load_config(path, {}), 3))
    out = run(capsys, "audit", "verify", "-c", str(path))[1]
    last = out.rsplit(" ", 1)[1].strip()
    assert run(capsys, "audit", "verify", "-c", str(path), "--checkpoint", f"3:{last}")[0] == 0
    code, out, _ = run(capsys, "audit", "verify", "-c", str(path), "--checkpoint", f"2:{last}")
    assert code == 1 and "  record 2 does not have the hash of the checkpoint" in out
    code, _, err = run(capsys, "audit", "verify", "-c", str(path), "--checkpoint", "x")
    assert (code, err) == (1, "--checkpoint x: expected N:HASH (a record number and its hash)\n")
    other = write_config(tmp_path, database, key="f" * 32)
    code, out, _ = run(capsys, "audit", "verify", "-c", str(other))
    assert code == 1 and "record 1 was changed" in out  # another key verifies nothing


def test_audit_export(tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, database)
    asyncio.run(_fill(load_config(path, {}), 3))
    code, out, _ = run(capsys, "audit", "export", "-c", str(path), "--link", "wg")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seq"] for r in records] == [1, 2]
    assert set(records[0]) == {"seq", "time", "link", "source", "sender", "target", "kind",
                               "size", "content_hash", "decision", "reason", "hash"}  # fmt: skip
    assert (records[1]["sender"], records[1]["size"]) == ("@max:bund.example", len("geheim 1"))
    assert "geheim" not in out
    code, out, _ = run(capsys, "audit", "export", "-c", str(path), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["seq"], r["link"], r["decision"]) for r in rows] == [
        ("1", "wg", "delivered"),
        ("2", "wg", "delivered"),
        ("3", "board", "delivered"),
    ]
    assert run(capsys, "audit", "export", "-c", str(path), "--since", "2999-01-01")[1] == ""
    code, _, err = run(capsys, "audit", "export", "-c", str(path), "--since", "yesterday")
    assert code == 1 and err.startswith("--since yesterday: not a date or time")


def test_person_export_and_forget(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, database)
    config = load_config(path, {})
    asyncio.run(_fill(config, 4))

    code, out, _ = run(capsys, "person", "export", "-c", str(path), "max")
    data = json.loads(out)
    assert code == 0
    assert data["people_entry"]["name"] == "Max Mustermann"
    assert [r["seq"] for r in data["audit_records"]] == [2, 4]
    assert [m["text"] for m in data["queued_messages"]] == ["geheim 99"]
    assert [c["link_id"] for c in data["direct_chats"]] == ["direct-1"]
    assert data["matrix"]["ghost_profiles"] == [{"network": "tchap", "ghost": MAX_GHOST,
                                                 "name": "Max Mustermann [BMI]",
                                                 "avatar": "mxc://b/a"}]  # fmt: skip
    assert [o["occupant_id"] for o in data["xmpp"]["occupant_identities"]] == ["occ-1"]
    assert [m["sender"] for m in data["email"]["quarantined_mail"]] == ["max@bund.example"]

    code, out, _ = run(capsys, "person", "forget", "-c", str(path), "max")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Forgot max:" and "  audit_records: 2" in lines
    assert "  matrix.ghost_profiles: 1" in lines and "  xmpp.occupant_identities: 1" in lines
    assert "  email.quarantined_mail: 1" in lines and "  direct_chats: 1" in lines

    data = json.loads(run(capsys, "person", "export", "-c", str(path), "max")[1])
    assert data["audit_records"] == [] and data["direct_chats"] == []
    assert data["matrix"]["ghost_profiles"] == [] and data["xmpp"]["occupant_identities"] == []
    assert data["email"]["quarantined_mail"] == []
    by_account = json.loads(run(capsys, "person", "export", "-c", str(path), "max@xmpp.example")[1])
    assert by_account["subject"] == "max" and len(by_account["accounts"]) == 3
    erika = json.loads(run(capsys, "person", "export", "-c", str(path), ERIKA)[1])
    assert [r["seq"] for r in erika["audit_records"]] == [1, 3]
    assert len(erika["matrix"]["ghost_profiles"]) == 1
    code, out, _ = run(capsys, "audit", "verify", "-c", str(path))
    assert code == 0 and "5 records, 2 pseudonymised" in out
    code, _, err = run(capsys, "person", "export", "-c", str(path), "nobody")
    assert (code, err) == (1, "nobody: neither a person ID of people nor an account\n")


def test_csv_export_runs_no_formula(
    tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, database)

    async def hostile() -> None:
        store = await Store.open(load_config(path, {}).database)
        try:
            trail = AuditTrail(await store.open_state(audit_tables), KEY.encode())
            event = message(1, user='=HYPERLINK("http://evil.example")@mail.example')
            await trail.record([trail.entry(event, "tchap", Decision.DELIVERED)])
        finally:
            await store.close()

    asyncio.run(hostile())
    out = run(capsys, "audit", "export", "-c", str(path), "--format", "csv")[1]
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["sender"] == '\'=HYPERLINK("http://evil.example")@mail.example'
    out = run(capsys, "audit", "export", "-c", str(path))[1]
    assert json.loads(out)["sender"] == '=HYPERLINK("http://evil.example")@mail.example'
