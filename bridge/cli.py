"""The ``passerelle`` command line: check a config, run the bridge, show what the running bridge
is doing (``status``), check and sign federation lists (``federation-list``), verify and export
the audit trail (``audit``), export or forget what it holds about a person (``person``), and
the commands each network kind adds (``generate-registration`` for Matrix, ``quarantine`` for
email).

Every failure an admin can cause (bad YAML, bad values, unwritable files) ends in plain error
lines on stderr and exit status 1, never in a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from bridge.compliance_commands import add_commands as compliance_commands
from bridge.config.load import ConfigError, check_config, load_config
from bridge.federation.commands import add_commands as federation_list_commands
from bridge.kinds import kinds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passerelle",
        description="Gateway between government Matrix, Tchap, XMPP and email.",
    )
    parser.add_argument("--version", action="version", version=f"passerelle {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check-config", help="validate the config file and exit")
    check.add_argument("-c", "--config", required=True, metavar="FILE")
    check.set_defaults(handler=lambda args: _check_config(args.config))
    run = commands.add_parser("run", help="run the bridge")
    run.add_argument("-c", "--config", required=True, metavar="FILE")
    run.set_defaults(handler=lambda args: _run(args.config))
    status = commands.add_parser(
        "status", help="show what the running bridge is doing (networks, links, failures)"
    )
    status.add_argument("-c", "--config", required=True, metavar="FILE")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=lambda args: _status(args.config, args.json))
    reload = commands.add_parser(
        "reload", help="check the config and have the running bridge apply it (as SIGHUP does)"
    )
    reload.add_argument("-c", "--config", required=True, metavar="FILE")
    reload.set_defaults(handler=lambda args: _reload(args.config))
    federation_list_commands(commands)
    compliance_commands(commands)
    for kind in kinds().values():
        if kind.commands is not None:
            kind.commands(commands)
    return parser


def _version() -> str:
    try:
        return version("passerelle")
    except PackageNotFoundError:
        return "unknown"


def fail(errors: Sequence[str]) -> int:
    """Print errors an admin can fix, one per line on stderr; the exit status 1."""
    for error in errors:
        print(error, file=sys.stderr)
    return 1


def _check_config(path: str) -> int:
    config, errors = check_config(path)
    if config is None:
        return fail(errors)
    for warning in config.warnings:
        print(warning.render(path), file=sys.stderr)
    print(
        f"{path}: OK ({len(config.networks)} networks, {len(config.people)} people, "
        f"{len(config.links)} links)"
    )
    return 0


def _run(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return fail(exc.errors)
    from bridge.app import run  # imported late: check-config must not need the runtime

    raise SystemExit(run(config))


def _status(path: str, as_json: bool) -> int:
    """Ask the bridge running with this config for its status (its admin API)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return fail(exc.errors)
    from bridge.admin_client import AdminUnavailable, bridge_url
    from bridge.status_report import fetch_status, report

    try:
        answer = fetch_status(config)
    except AdminUnavailable as exc:
        return fail([f"passerelle status: {exc}"])
    if as_json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(report(answer, bridge_url(config)))
    return 0


def _reload(path: str) -> int:
    """Check the config file, then have the bridge running with it read it again (its admin
    API, as SIGHUP does): the located errors and exit 1 when it is not valid."""
    config, errors = check_config(path)
    if config is None:
        return fail(errors)
    from bridge.admin import RELOAD_PATH
    from bridge.admin_client import AdminUnavailable, ask

    try:
        answer, url = ask(config, RELOAD_PATH, post=True)
    except AdminUnavailable as exc:
        return fail([f"passerelle reload: {exc} (or send the bridge SIGHUP)"])
    if answer.get("errors"):
        return fail([str(error) for error in answer["errors"]])
    print(f"{path}: reloaded ({answer.get('summary') or 'unchanged'})")
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``passerelle`` and ``python -m bridge``; always exits via SystemExit."""
    args = _parser().parse_args(argv)
    raise SystemExit(args.handler(args))
