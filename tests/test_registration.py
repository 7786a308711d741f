"""generate-registration: tokens written back round-trip, registration files for Synapse."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bridge.config import load_config
from connectors.matrix.registration import generate_registrations
from tests.configs import cli

CONFIG = """\
# Passerelle test config
networks:
  bund:
    homeserver: http://127.0.0.1:8008
    server_name: bund.test   # the German side
    appservice:
      id: passerelle-bund
      ghost_prefix: "ghost_"
      as_token: ""   # filled in by generate-registration

  # the French side, via a relay bot
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:8009
    server_name: tchap.test
    mode: relay
    relay:
      user_id: "@bot:tchap.test"
      password: {env: TCHAP_PASSWORD}
links:
  - id: wg
    rooms:
      bund: "!abc:bund.test"
      tchap: "#wg:tchap.test"
"""

ENV = {"TCHAP_PASSWORD": "pw"}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def tchap_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay password CONFIG reads from the environment, for the CLI."""
    monkeypatch.setenv("TCHAP_PASSWORD", ENV["TCHAP_PASSWORD"])


def test_tokens_written_back_preserving_comments_and_order(config_path: Path) -> None:
    result = generate_registrations(config_path, env=ENV)
    assert result.new_tokens == (
        "networks.bund.appservice.as_token",
        "networks.bund.appservice.hs_token",
    )
    text = config_path.read_text()
    settings = load_config(config_path, ENV).networks["bund"].appservice
    assert settings is not None
    assert len(settings.as_token) >= 40 and settings.as_token != settings.hs_token
    expected = CONFIG.replace('as_token: ""   #', 'as_token: "AS" #').replace(
        "generate-registration\n", "generate-registration\n      hs_token: HS\n"
    )
    assert text.replace(settings.as_token, "AS").replace(settings.hs_token, "HS") == expected
    assert "  # the French side, via a relay bot\n" in text
    assert 'ghost_prefix: "ghost_"' in text


def test_idempotent(config_path: Path, tmp_path: Path) -> None:
    generate_registrations(config_path, env=ENV)
    first_config = config_path.read_text()
    first_registration = (tmp_path / "bund-registration.yaml").read_text()
    again = generate_registrations(config_path, env=ENV)
    assert again.new_tokens == ()
    assert config_path.read_text() == first_config
    assert (tmp_path / "bund-registration.yaml").read_text() == first_registration


def test_env_token_kept_and_used(config_path: Path, tmp_path: Path) -> None:
    config_path.write_text(CONFIG.replace('as_token: ""', "as_token: {env: AS}"))
    result = generate_registrations(config_path, tmp_path / "out", env={**ENV, "AS": "env-tok"})
    assert result.new_tokens == ("networks.bund.appservice.hs_token",)
    assert "as_token: {env: AS}" in config_path.read_text()
    registration = YAML(typ="safe").load(tmp_path / "out" / "bund-registration.yaml")
    assert registration["as_token"] == "env-tok"


def test_registration_content(config_path: Path, tmp_path: Path) -> None:
    result = generate_registrations(config_path, env=ENV)
    assert result.written == (tmp_path / "bund-registration.yaml",)
    file = result.written[0]
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    registration = YAML(typ="safe").load(file)
    settings = result.config.networks["bund"].appservice
    assert settings is not None
    namespaces = registration.pop("namespaces")
    assert registration == {
        "id": "passerelle-bund",
        "url": "http://127.0.0.1:29340/as/bund",
        "as_token": settings.as_token,
        "hs_token": settings.hs_token,
        "sender_localpart": "passerelle",
        "rate_limited": False,
        "receive_ephemeral": True,
        "de.sorunome.msc2409.push_ephemeral": True,
    }
    assert namespaces["aliases"] == [] and namespaces["rooms"] == []
    users = namespaces["users"]
    assert all(entry["exclusive"] is True for entry in users)
    regexes = [re.compile(entry["regex"]) for entry in users]

    def claimed(user_id: str) -> bool:
        # Synapse anchors namespace regexes at the start only (re.match).
        return any(regex.match(user_id) for regex in regexes)

    assert claimed("@ghost_jean:bund.test")
    assert claimed("@passerelle:bund.test")
    assert not claimed("@max:bund.test")
    assert not claimed("@ghost_jean:bundxtest")
    assert not claimed("@ghost_jean:bund.test.evil")
    assert not claimed("@passerelle2:bund.test")
    assert not claimed("@ghost_jean:tchap.test")


def test_existing_registration_file_made_private(config_path: Path, tmp_path: Path) -> None:
    stale = tmp_path / "bund-registration.yaml"
    stale.write_text("old")
    stale.chmod(0o644)
    generate_registrations(config_path, env=ENV)
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600


@pytest.mark.usefixtures("tchap_password")
def test_other_errors_write_nothing(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path.write_text(CONFIG.replace('"#wg:tchap.test"', "wg"))
    before = config_path.read_text()
    assert cli("generate-registration", "-c", str(config_path)) == 1
    assert capsys.readouterr().err == (
        f'{config_path}:24:14: links[0].rooms.tchap: "wg" is neither a room ID (!…) '
        "nor an alias (#…)\n"
    )
    assert config_path.read_text() == before
    assert not (tmp_path / "bund-registration.yaml").exists()


@pytest.mark.usefixtures("tchap_password")
def test_cli_prints_paths_and_hint(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("generate-registration", "-c", str(config_path), "-o", str(tmp_path / "reg")) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'reg' / 'bund-registration.yaml'}\n" in out
    assert "app_service_config_files" in out
    assert cli("check-config", "-c", str(config_path)) == 0


def test_missing_appservice_block_is_created(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "networks:\n"
        "  bund:\n"
        "    homeserver: http://127.0.0.1:8008\n"
        "    server_name: bund.test  # here\n"
        "\n"
        "# no people yet\n"
    )
    generate_registrations(path, env={})
    lines = path.read_text().splitlines()
    assert lines[3:5] == ["    server_name: bund.test  # here", "    appservice:"]
    assert lines[5].startswith("      as_token: ") and lines[6].startswith("      hs_token: ")
    assert lines[7:] == ["", "# no people yet"]


@pytest.mark.usefixtures("tchap_password")
def test_config_that_gets_tokens_is_made_private(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tokens written into a world-readable config would be anyone's on the machine."""
    config_path.chmod(0o644)
    assert cli("generate-registration", "-c", str(config_path)) == 0
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert (
        f"{config_path}: now readable by its owner only (was 0644), since it holds the tokens;"
        in capsys.readouterr().out
    )


def test_private_config_stays_as_it_was(config_path: Path) -> None:
    config_path.chmod(0o400 | 0o200)
    result = generate_registrations(config_path, env=ENV)
    assert result.was_shared is None
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
