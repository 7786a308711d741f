"""``passerelle federation-list``: what operators do with signed federation lists.

- ``verify FILE --key KEY`` (or ``-c config.yaml --network NAME``, the key and, without FILE,
  the list from that network's ``federation_list``): the version, expiry and domains of a
  list, or exactly why the bridge would refuse it (exit status 1). Whether it is newer than
  the list a running bridge has in force, the bridge itself says (its log and metrics).
- ``sign DOCUMENT --key PRIVATE_KEY``: a JSON list document signed as the bridge reads it
  (EdDSA with an Ed25519 key, ES256 with a P-256 key), for tests and for operators who keep
  their own list.
- ``keygen --private FILE --public FILE``: a new key pair, as PEM files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.config.load import ConfigError, load_config
from bridge.config.model import FederationListSource
from bridge.federation.document import (
    MAX_BYTES,
    BadKey,
    Curve,
    ListRefused,
    PublicKey,
    admit,
    generate_key_pair,
    public_key,
    read,
    sign,
)
from bridge.federation.source import fetch, read_file

MAX_KEY_BYTES = 64 * 1024
MAX_DOCUMENT_BYTES = 16 * MAX_BYTES


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    group = commands.add_parser(
        "federation-list", help="check, sign and make keys for signed federation lists"
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="print a signed list's version, expiry and domains, or why it is refused (exit 1)",
    )
    verify.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="the signed list; with -c, by default the network's own source",
    )
    verify.add_argument("--key", metavar="KEY", help="the public key: a PEM or JWK file")
    verify.add_argument("-c", "--config", metavar="CONFIG")
    verify.add_argument("--network", metavar="NAME", help="with -c: whose federation_list")
    verify.set_defaults(handler=_verify)
    signing = actions.add_parser("sign", help="sign a list document (JSON) with a private key")
    signing.add_argument("document", metavar="DOCUMENT")
    signing.add_argument(
        "--key",
        required=True,
        metavar="PRIVATE_KEY",
        help="PEM or JWK file of an Ed25519 (EdDSA) or P-256 (ES256) key",
    )
    signing.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    signing.set_defaults(handler=_sign)
    keygen = actions.add_parser("keygen", help="make a key pair for signing lists")
    keygen.add_argument("--private", required=True, metavar="FILE")
    keygen.add_argument("--public", required=True, metavar="FILE")
    keygen.add_argument(
        "--curve",
        choices=["Ed25519", "P-256"],
        default="Ed25519",
        help="Ed25519 (EdDSA, the default) or P-256 (ES256)",
    )
    keygen.set_defaults(handler=_keygen)  # fmt: skip


class Failed(Exception):
    """A command that cannot go on; the message is the error line."""


def _verify(args: argparse.Namespace) -> int:
    try:
        key, source = _verify_key(args)
        max_bytes = source.max_bytes if source is not None else MAX_BYTES
        if args.file is not None:
            token = read_file(Path(args.file), max_bytes)
        elif source is not None:
            token = asyncio.run(fetch(source))
        else:
            raise Failed("give the signed list FILE (or -c and --network)")
        listed = read(token, key, max_bytes)
        admit(listed, now=datetime.now(UTC), last=None, floor=0)
    except Failed as e:
        return _error(str(e))
    except ListRefused as e:
        return _error(f"refused ({e.problem.value}): {e.detail}")
    print(f"version: {listed.version}")
    print(f"expires: {listed.expires.isoformat()}")
    print(f"domains ({len(listed.domains)}):")
    for domain in sorted(listed.domains):
        print(f"  {domain}")
    return 0


def _verify_key(args: argparse.Namespace) -> tuple[PublicKey, FederationListSource | None]:
    """The key to verify with, and the network's list settings when a config names them."""
    if (args.key is None) == (args.config is None):
        raise Failed("give either --key KEY or -c CONFIG --network NAME")
    if args.key is not None:
        if args.network is not None:
            raise Failed("--network needs -c CONFIG")
        return _public_key(_text(Path(args.key), MAX_KEY_BYTES), args.key), None
    if args.network is None:
        raise Failed("-c needs --network NAME")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise Failed("\n".join(e.errors)) from None
    source = config.federation_lists.get(args.network)
    if source is None:
        raise Failed(f"network {args.network!r} of {args.config} has no federation_list")
    return _public_key(source.public_key, args.config), source


def _public_key(text: str, where: str) -> PublicKey:
    try:
        return public_key(text)
    except BadKey as e:
        raise Failed(f"{where}: the key {e}") from None


def _sign(args: argparse.Namespace) -> int:
    try:
        document = read_file(Path(args.document), MAX_DOCUMENT_BYTES)
        signed = sign(document, _text(Path(args.key), MAX_KEY_BYTES))
    except Failed as e:
        return _error(str(e))
    except BadKey as e:
        return _error(f"{args.key}: the key {e}")
    except ListRefused as e:
        return _error(f"{args.document}: not signed ({e.problem.value}): {e.detail}")
    if args.output is None:
        print(signed)
        return 0
    try:
        Path(args.output).write_text(signed + "\n")
    except OSError as e:
        return _error(f"cannot write {args.output}: {e.strerror}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    curve: Curve = args.curve
    private, public = generate_key_pair(curve)
    try:
        fd = os.open(args.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _error(f"{args.private} exists already: a private key is never overwritten")
    except OSError as e:
        return _error(f"cannot write {args.private}: {e.strerror}")
    with os.fdopen(fd, "w") as out:
        out.write(private)
    try:
        Path(args.public).write_text(public)
    except OSError as e:
        return _error(f"cannot write {args.public}: {e.strerror}")
    print(f"{curve} key pair: {args.private} (private: keep it off the bridge), "
          f"{args.public} (public: the bridge's federation_list.public_key)")  # fmt: skip
    return 0


def _text(path: Path, limit: int) -> str:
    try:
        return read_file(path, limit).decode("utf-8")
    except ListRefused as e:
        raise Failed(e.detail) from None
    except UnicodeDecodeError:
        raise Failed(f"{path} is not UTF-8 text") from None


def _error(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
