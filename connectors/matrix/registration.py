"""Appservice registrations for the homeservers, and the tokens they share with the config.

``passerelle generate-registration`` is run once when a network is set up (and again whenever
the admin wants the registration files back). Tokens missing from the config are generated and
written into the config file itself, round-trip, so the admin's comments, key order and quoting
survive. Tokens already present, literal or ``{env: …}``/``{file: …}``, are never changed: the
command is idempotent, and the homeserver and the bridge always agree on them.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import io
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.tokens import CommentToken

from bridge.cli import fail
from bridge.config.load import ConfigError, read_document, render, round_trip_yaml, validate
from bridge.config.model import Config
from connectors.matrix.config import Encryption, MatrixMode, MatrixNetwork

TOKEN_KEYS = ("as_token", "hs_token")
EPHEMERAL = {"receive_ephemeral": True, "de.sorunome.msc2409.push_ephemeral": True}
"""Ephemeral events (typing notifications, and to-device events for encryption) in
transactions: MSC2409, with both the stable flag and the unstable one older Synapses read."""
ENCRYPTION_EXTENSIONS = {"org.matrix.msc3202": True, "io.element.msc4190": True}
"""What end-to-bridge encryption needs besides: device list changes and one-time key counts
(MSC3202), and creating the bot's device without a login (MSC4190)."""
INDENT_STYLES = ((2, 2, 0), (2, 4, 2), (4, 4, 0), (4, 6, 4), (4, 4, 2), (2, 3, 1))
"""(mapping indent, sequence indent, dash offset) styles admins commonly write YAML in."""


@dataclass(frozen=True)
class GeneratedRegistrations:
    """What `generate_registrations` did, for the CLI to report."""

    config: Config
    written: tuple[Path, ...]
    """Registration files written, one per appservice network."""
    new_tokens: tuple[str, ...]
    """Key paths of the tokens generated and stored in the config file (empty if none)."""
    was_shared: int | None = None
    """The config file's former mode when it was readable by others and, now holding tokens,
    was made readable by its owner only."""


def registration(network: MatrixNetwork) -> dict[str, Any]:
    """The registration document the homeserver loads for this network's appservice."""
    settings = network.appservice
    if settings is None:
        raise ValueError(f"network {network.name!r} is not in appservice mode")
    server = re.escape(network.server_name)
    document: dict[str, Any] = {
        "id": settings.id,
        "url": settings.url,
        "as_token": settings.as_token,
        "hs_token": settings.hs_token,
        "sender_localpart": settings.bot,
        "rate_limited": False,
        "namespaces": {
            "users": [
                {"regex": f"@{re.escape(settings.ghost_prefix)}.*:{server}$", "exclusive": True},
                {"regex": f"@{re.escape(settings.bot)}:{server}$", "exclusive": True},
            ],
            "aliases": [],
            "rooms": [],
        },
        **EPHEMERAL,
    }
    if network.encryption is not Encryption.OFF:
        document.update(ENCRYPTION_EXTENSIONS)
    return document


def fill_missing_tokens(doc: Any) -> list[str]:
    """Generate the tokens an appservice network lacks, in place; returns their key paths.

    Only the round-trip document is touched, and only where the shape is already as expected:
    anything malformed is left for the validator to report.
    """
    networks = doc.get("networks") if isinstance(doc, CommentedMap) else None
    if not isinstance(networks, CommentedMap):
        return []
    filled = []
    for name, network in networks.items():
        if not isinstance(network, CommentedMap) or network.get("kind", "matrix") != "matrix":
            continue
        if (network.get("mode") or MatrixMode.APPSERVICE) != MatrixMode.APPSERVICE:
            continue
        settings = network.get("appservice")
        new_block = settings is None
        if new_block:
            settings = CommentedMap()
        if not isinstance(settings, CommentedMap):
            continue
        for key in TOKEN_KEYS:
            if settings.get(key) in (None, ""):
                _set(settings, key, secrets.token_urlsafe(32))
                filled.append(f"networks.{name}.appservice.{key}")
        if new_block:
            _set(network, "appservice", settings)
    return filled


def _set(mapping: CommentedMap, key: str, value: Any) -> None:
    """Set `key`; a new key goes right below the last one, not below the comments after it.

    ruamel keeps the comment lines (and blank lines) that follow a mapping's last entry on
    that entry, so a plainly appended key would land after them, e.g. after the next section's
    heading comment. Those lines are moved below the new key (below its last nested key when
    the value is a mapping); a same-line comment stays where it was.
    """
    last = next(reversed(mapping), None) if key not in mapping else None
    mapping[key] = value
    entry = mapping.ca.items.get(last) if last is not None else None
    if not entry or len(entry) < 3 or entry[2] is None:
        return
    token = entry[2]
    same_line, _, following = token.value.partition("\n")
    if not following:
        return
    if same_line.strip():
        token.value = same_line + "\n"
    else:
        entry[2] = None
    holder, holder_key = mapping, key
    while isinstance(holder[holder_key], CommentedMap) and holder[holder_key]:
        holder = holder[holder_key]
        holder_key = next(reversed(holder))
    holder.ca.items[holder_key] = [
        None,
        None,
        CommentToken("\n" + following, token.start_mark),
        None,
    ]


def add_command(subcommands: argparse._SubParsersAction[Any]) -> None:
    """``passerelle generate-registration -c CONFIG [-o DIR]``."""
    generate = subcommands.add_parser(
        "generate-registration",
        help="fill in missing appservice tokens and write the homeserver registration files",
    )
    generate.add_argument("-c", "--config", required=True, metavar="FILE")
    generate.add_argument(
        "-o", "--output-dir", metavar="DIR", help="where to write them (default: config's dir)"
    )
    generate.set_defaults(handler=lambda args: command(args.config, args.output_dir))


def command(path: str, outdir: str | None) -> int:
    """What ``generate-registration`` prints and its exit status; errors an admin can cause
    are lines on stderr, never a traceback."""
    try:
        result = generate_registrations(path, outdir)
    except ConfigError as exc:
        return fail(exc.errors)
    except OSError as exc:
        return fail([f"{exc.filename or path}: {exc.strerror or exc}"])
    if result.new_tokens:
        print(f"{path}: generated {', '.join(result.new_tokens)}")
    if result.was_shared is not None:
        print(
            f"{path}: now readable by its owner only (was {result.was_shared:04o}), since it "
            "holds the tokens; if the bridge runs as another user, give the file to that user"
        )
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


def generate_registrations(
    path: str | Path, outdir: str | Path | None = None, env: Mapping[str, str] | None = None
) -> GeneratedRegistrations:
    """Fill missing tokens into the config file and write ``<network>-registration.yaml``.

    Nothing is written unless the whole config (with the new tokens) is valid; otherwise
    `ConfigError` lists every problem.
    """
    path = Path(path)
    doc, text, problems = read_document(path)
    if problems:
        raise ConfigError(render(problems, path))
    original_doc = copy.deepcopy(doc)
    new_tokens = fill_missing_tokens(doc)
    config, problems = validate(doc, path, os.environ if env is None else env)
    if config is None:
        raise ConfigError(render(problems, path))
    was_shared = None
    if new_tokens:
        was_shared = _replace_file(path, _dump_like(doc, text, original_doc))
    target = path.absolute().parent if outdir is None else Path(outdir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for network in config.networks.values():
        if isinstance(network, MatrixNetwork) and network.mode == MatrixMode.APPSERVICE:
            file = target / f"{network.name}-registration.yaml"
            _write_private(file, _dump_plain(registration(network)))
            written.append(file)
    return GeneratedRegistrations(config, tuple(written), tuple(new_tokens), was_shared)


def _dump_like(doc: Any, original: str, original_doc: Any) -> str:
    """`doc` serialized with the indentation style that reproduces `original` most closely.

    ruamel cannot tell the admin's mapping and list indentation apart on load, so each common
    style is tried on the unmodified document and the one changing the fewest lines wins.
    """
    original_lines = original.splitlines()

    def changed_lines(style: tuple[int, int, int]) -> int:
        dumped = _dump(original_doc, style).splitlines()
        diff = difflib.SequenceMatcher(a=original_lines, b=dumped, autojunk=False)
        return len(original_lines) - sum(block.size for block in diff.get_matching_blocks())

    best = min(INDENT_STYLES, key=changed_lines)
    return _dump(doc, best)


def _dump(doc: Any, style: tuple[int, int, int]) -> str:
    mapping, sequence, offset = style
    yaml = round_trip_yaml()
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _dump_plain(data: dict[str, Any]) -> str:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _replace_file(path: Path, text: str) -> int | None:
    """Atomically replace `path` with text that holds secrets: its owner keeps their
    permissions, group and others lose theirs. The former mode when they had any."""
    former = path.stat().st_mode & 0o7777
    mode = former & ~0o077
    fd, tmp = tempfile.mkstemp(dir=path.absolute().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return former if former != mode else None


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only: registrations carry both tokens."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
