"""``passerelle audit`` and ``passerelle person``: what data-protection officers ask for.

- ``audit verify -c config.yaml [--checkpoint N:HASH…]``: walks the audit trail and says whether it
  is intact, or which records were changed, removed or reordered (exit status 1).
- ``audit export -c config.yaml [--since WHEN] [--link ID] [--format jsonl|csv]``: the records,
  oldest first, one per line (no content: the trail holds none).
- ``person export -c config.yaml ID``: all the bridge holds about a person (a person ID of the
  ``people`` mapping, or an account), as JSON (GDPR Art. 15).
- ``person forget -c config.yaml ID``: deletes it, and pseudonymises their audit records without
  breaking the chain (Art. 17).

They work on the bridge's database directly, with the running bridge or without it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from bridge import personal
from bridge.audit import EXPORT_FIELDS, AuditTrail, public
from bridge.audit import upgrade_table as audit_tables
from bridge.config.load import ConfigError, load_config
from bridge.config.model import Config
from bridge.store import Store

CHECKPOINT_RE = re.compile(r"([0-9]+):([0-9a-f]{64})")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    audit = commands.add_parser("audit", help="verify and export the audit trail")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="check that no record was changed, removed or reordered (exit 1 if so)"
    )
    verify.add_argument("-c", "--config", required=True, metavar="FILE")
    verify.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="N:HASH",
        help="a checkpoint from the bridge's log (Audit checkpoint: record N, hash HASH)",
    )
    verify.set_defaults(handler=_verify)
    export = actions.add_parser("export", help="print the records, oldest first")
    export.add_argument("-c", "--config", required=True, metavar="FILE")
    export.add_argument(
        "--since", metavar="WHEN", help="a date or time (ISO 8601, UTC unless it says)"
    )
    export.add_argument("--link", metavar="ID", help="only this link's records")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.set_defaults(handler=_export)
    person = commands.add_parser("person", help="what the bridge holds about one person")
    actions = person.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text, handler in (
        ("export", "print all the bridge holds about them, as JSON", _person_export),
        ("forget", "delete it, and pseudonymise their audit records", _person_forget),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("-c", "--config", required=True, metavar="FILE")
        action.add_argument("id", metavar="ID", help="a person ID of people, or an account")
        action.set_defaults(handler=handler)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _config(path: str) -> Config | int:
    try:
        return load_config(path)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1


Work = Callable[[Config, Store, AuditTrail | None], Awaitable[int]]


def _with_store(path: str, work: Work, *, audit: bool) -> int:
    """Run ``work`` on the bridge's database (and its audit trail, which ``audit`` needs)."""
    config = _config(path)
    if isinstance(config, int):
        return config
    if audit and config.audit is None:
        return _fail(f"{path}: no audit section: this bridge keeps no audit trail")

    async def run() -> int:
        store = await Store.open(config.database)
        try:
            trail = None
            if config.audit is not None:
                trail = AuditTrail(await store.open_state(audit_tables), config.audit.key)
            return await work(config, store, trail)
        finally:
            await store.close()

    return asyncio.run(run())


def _verify(args: argparse.Namespace) -> int:
    checkpoints = []
    for given in args.checkpoint:
        match = CHECKPOINT_RE.fullmatch(given.strip())
        if match is None:
            return _fail(f"--checkpoint {given}: expected N:HASH (a record number and its hash)")
        checkpoints.append((int(match.group(1)), match.group(2)))

    async def verify(config: Config, store: Store, trail: AuditTrail | None) -> int:
        assert trail is not None
        verdict = await trail.verify(checkpoints)
        span = f"records {verdict.first}–{verdict.last}" if verdict.records else "no records"
        if verdict.first > 1:
            span += " (older ones removed by retention)"
        if verdict.intact:
            print(
                f"Audit trail intact: {span}, {verdict.records} records, "
                f"{verdict.forgotten} pseudonymised; last hash {verdict.head or '-'}"
            )
            return 0
        print(f"Audit trail NOT intact ({verdict.problem_count} problems; {span}):")
        for problem in verdict.problems:
            print(f"  {problem}")
        if verdict.problem_count > len(verdict.problems):
            print(f"  … and {verdict.problem_count - len(verdict.problems)} more")
        return 1

    return _with_store(args.config, verify, audit=True)


def since_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an ISO 8601 date or time (UTC unless it says)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _export(args: argparse.Namespace) -> int:
    since = 0
    if args.since is not None:
        parsed = since_ms(args.since)
        if parsed is None:
            return _fail(f"--since {args.since}: not a date or time (e.g. 2026-11-01 or "
                         "2026-11-01T08:00:00+01:00)")  # fmt: skip
        since = parsed

    async def export(config: Config, store: Store, trail: AuditTrail | None) -> int:
        assert trail is not None
        write = _writer(sys.stdout, args.format)
        async for row in trail.export(since, args.link):
            write(public(row))
        return 0

    return _with_store(args.config, export, audit=True)


def _writer(out: TextIO, form: str) -> Callable[[dict[str, Any]], None]:
    if form == "jsonl":
        return lambda record: print(json.dumps(record, ensure_ascii=False), file=out)
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    return lambda record: writer.writerow({k: _inert(v) for k, v in record.items()})


FORMULA_STARTS = ("=", "+", "-", "\t", "\r")
"""How a spreadsheet tells a formula: a sender's address made to start so (a mail address may)
is written with a leading ``'`` so that an officer opening the export runs nothing."""


def _inert(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


PersonWork = Callable[[personal.Holdings, personal.Subject], Awaitable[int]]


def _about_person(args: argparse.Namespace, work: PersonWork) -> int:
    """Run ``work`` on all the bridge holds and on the person or account ``args.id`` names
    (failing when it names neither)."""

    async def run(config: Config, store: Store, trail: AuditTrail | None) -> int:
        who = personal.subject(config, args.id)
        if who is None:
            return _fail(f"{args.id}: neither a person ID of people nor an account")
        return await work(await personal.Holdings.open(config, store, trail), who)

    return _with_store(args.config, run, audit=False)


def _person_export(args: argparse.Namespace) -> int:
    async def export(held: personal.Holdings, who: personal.Subject) -> int:
        data = await personal.export(held, who)
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return 0

    return _about_person(args, export)


def _person_forget(args: argparse.Namespace) -> int:
    async def forget(held: personal.Holdings, who: personal.Subject) -> int:
        done = await personal.forget(held, who)
        print(f"Forgot {args.id}:")
        for what, value in done.items():
            print(f"  {what}: {value}")
        if who.person is not None:
            print(f"Their entry in people ({who.person.id}) is the config's: remove it there.")
        return 0

    return _about_person(args, forget)
