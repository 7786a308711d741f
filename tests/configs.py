"""What the config tests share: the ``bund`` network most of their configs start with, writing a
config file, and the located errors or the exit code the loader and the CLI give for it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import ConfigError, load_config

TOKEN_LINES = "\n      as_token: as-secret\n      hs_token: hs-secret"
TOKENS_INLINE = " {as_token: a, hs_token: h}"


def networks_with_bund(tokens: str = TOKEN_LINES) -> str:
    """The first lines of a config: ``networks:`` and its appservice network ``bund``, whose
    ``appservice:`` value is ``tokens`` (the line numbers of the errors below it depend on it)."""
    return (
        "networks:\n"
        "  bund:\n"
        "    homeserver: http://127.0.0.1:8008\n"
        "    server_name: bund.test\n"
        f"    appservice:{tokens}\n"
    )


VALID = (
    networks_with_bund()
    + """\
  tchap:
    flavour: tchap
    homeserver: https://tchap.test/
    server_name: tchap.test
    mode: relay
    relay:
      user_id: "@bot:tchap.test"
      access_token: relay-secret
people:
  - id: max
    name: Max Mustermann
    accounts: {bund: "@max:bund.test"}
  - id: jean
    name: Jean Dupont
    accounts: {tchap: "@jean:tchap.test"}
links:
  - id: wg
    people: [max, jean]
    rooms:
      bund: "!abc:bund.test"
      tchap: {create: {name: WG}}
"""
)
"""Two Matrix networks (an appservice and a Tchap relay), two people and a link between them."""


def valid_with(bund: tuple[str, ...] = (), tchap: tuple[str, ...] = ()) -> str:
    """`VALID` with the ``key: value`` lines ``bund`` added to network bund (after its
    server_name) and ``tchap`` to network tchap (after its mode)."""
    text = VALID.replace(
        "    server_name: bund.test\n",
        "    server_name: bund.test\n" + "".join(f"    {line}\n" for line in bund),
    )
    return text.replace(
        "    mode: relay\n", "    mode: relay\n" + "".join(f"    {line}\n" for line in tchap)
    )


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value.errors


def cli(*args: str) -> int:
    """The exit code of ``passerelle ARGS``."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return int(exit_info.value.code or 0)
