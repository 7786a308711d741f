"""The ``passerelle`` command line: check a config, generate registrations, run the bridge.

Every failure an admin can cause (bad YAML, bad values, unwritable files) ends in plain error
lines on stderr and exit status 1, never in a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from bridge.config.load import ConfigError, check_config, load_config
from bridge.config.registration import generate_registrations


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passerelle",
        description="Gateway between government Matrix, Tchap, XMPP and email.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check-config", help="validate the config file and exit")
    check.add_argument("-c", "--config", required=True, metavar="FILE")
    generate = commands.add_parser(
        "generate-registration",
        help="fill in missing appservice tokens and write the homeserver registration files",
    )
    generate.add_argument("-c", "--config", required=True, metavar="FILE")
    generate.add_argument(
        "-o", "--output-dir", metavar="DIR", help="where to write them (default: config's dir)"
    )
    run = commands.add_parser("run", help="run the bridge")
    run.add_argument("-c", "--config", required=True, metavar="FILE")
    return parser


def _fail(errors: Sequence[str]) -> int:
    for error in errors:
        print(error, file=sys.stderr)
    return 1


def _check_config(path: str) -> int:
    config, errors = check_config(path)
    if config is None:
        return _fail(errors)
    print(
        f"{path}: OK ({len(config.networks)} networks, {len(config.people)} people, "
        f"{len(config.links)} links)"
    )
    return 0


def _generate_registration(path: str, outdir: str | None) -> int:
    try:
        result = generate_registrations(path, outdir)
    except ConfigError as exc:
        return _fail(exc.errors)
    except OSError as exc:
        return _fail([f"{exc.filename or path}: {exc.strerror or exc}"])
    if result.new_tokens:
        print(f"{path}: generated {', '.join(result.new_tokens)}")
    if not result.written:
        print(f"{path}: no network is in appservice mode; no registration to write")
        return 0
    for file in result.written:
        print(f"wrote {file}")
    print(
        "Add each file to app_service_config_files in its homeserver's config "
        "(homeserver.yaml), then restart the homeserver."
    )
    return 0


def _run(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _fail(exc.errors)
    from bridge.app import run  # imported late: check-config must not need the runtime

    raise SystemExit(run(config))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``passerelle`` and ``python -m bridge``; always exits via SystemExit."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        raise SystemExit(_check_config(args.config))
    if args.command == "generate-registration":
        raise SystemExit(_generate_registration(args.config, args.output_dir))
    raise SystemExit(_run(args.config))
