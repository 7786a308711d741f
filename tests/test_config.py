"""Loading and validating the config: every error reported at once, at the right place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.config import check_config, load_config
from bridge.config.model import LogFormat, Logging
from connectors.matrix.config import Flavour, MatrixMode
from connectors.matrix.registration import generate_registrations
from tests.configs import (
    TOKENS_INLINE,
    VALID,
    cli,
    errors_of,
    networks_with_bund,
    valid_with,
    write,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def generated_example(directory: Path) -> Path:
    """A copy of the example config in ``directory``, its tokens generated as the README says
    (``passerelle generate-registration``)."""
    path = directory / "config.yaml"
    shutil.copyfile(EXAMPLE, path)
    generate_registrations(path, env={})
    return path


def test_the_example_config_passes_check_config_once_its_tokens_are_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's steps on a fresh copy: check-config names the empty tokens and the command
    that fills them; after generate-registration it passes."""
    path = tmp_path / "config.yaml"
    shutil.copyfile(EXAMPLE, path)
    assert cli("check-config", "-c", str(path)) == 1
    missing = f"is missing; run 'passerelle generate-registration -c {path}' to generate it"
    assert [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines()] == [
        f"networks.{network}.appservice.{token}: {missing}"
        for network in ("bund", "tchap")
        for token in ("as_token", "hs_token")
    ]
    assert cli("generate-registration", "-c", str(path)) == 0
    capsys.readouterr()
    assert cli("check-config", "-c", str(path)) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{path}: OK (4 networks, 4 people, 2 links)\n"
    assert captured.err == ""


def test_example_config_content(tmp_path: Path) -> None:
    config = load_config(generated_example(tmp_path), {})
    tchap = config.networks["tchap"]
    assert tchap.flavour is Flavour.TCHAP and tchap.mode is MatrixMode.APPSERVICE
    assert tchap.restricted_rooms_allow == ("bund.test",)
    assert config.database == f"sqlite:{tmp_path / 'passerelle.db'}"
    assert config.link("cloud-wg").rooms["tchap"].create is not None
    assert config.person_by_account("bund", "@max:bund.test").id == "max"  # type: ignore[union-attr]
    assert config.admin is not None


def test_valid_config_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {})
    bund = config.networks["bund"]
    assert bund.appservice is not None
    assert bund.appservice.id == "passerelle-bund"
    assert bund.appservice.url == "http://127.0.0.1:29340/as/bund"
    assert (bund.appservice.bot, bund.appservice.ghost_prefix) == ("passerelle", "passerelle_")
    tchap = config.networks["tchap"]
    assert tchap.homeserver == "https://tchap.test"
    assert tchap.relay is not None and tchap.relay.format == "**{name}**: {message}"
    assert config.listen.port == 29340 and config.logging.level == "INFO"
    assert config.database == f"sqlite:{tmp_path / 'passerelle.db'}"
    assert config.links[0].people == ("max", "jean")
    assert config.admin is None


def test_database_forms(tmp_path: Path) -> None:
    absolute = load_config(write(tmp_path, "database: sqlite:///var/db.sqlite\n" + VALID), {})
    assert absolute.database == "sqlite:///var/db.sqlite"
    relative = load_config(write(tmp_path, "database: sqlite:data/p.db\n" + VALID), {})
    assert relative.database == f"sqlite:{tmp_path / 'data/p.db'}"


def test_logging_to_a_file_as_json(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "logging: {level: debug, file: logs/p.log, format: json}\n"
                               + VALID), {})  # fmt: skip
    assert config.logging == Logging("DEBUG", tmp_path / "logs/p.log", LogFormat.JSON)
    absolute = load_config(write(tmp_path, "logging: {file: /var/log/p.log}\n" + VALID), {})
    assert absolute.logging == Logging("INFO", Path("/var/log/p.log"), LogFormat.TEXT)
    assert load_config(write(tmp_path, VALID), {}).logging == Logging()


ALL_AT_ONCE = (
    "listen: {host: 127.0.0.1, port: 0}\nlogging: {level: LOUD}\n"
    + networks_with_bund(TOKENS_INLINE)
    + """\
  tchap:
    flavour: tchap
    homeserver: http://127.0.0.1:8009
    server_name: tchap.test
    appservice: {as_token: a, hs_token: h}
links:
  - id: wg
    rooms:
      bund: "!abc:bund.test"
      tchap: abc
"""
)
LOCATED = {
    "logging": (
        "logging:\n  file: ''\n  format: xml\n  colour: yes\n" + VALID,
        [
            "2:9: logging.file: must not be empty",
            "3:11: logging.format: must be one of: text, json",
            "4:3: logging.colour: unknown key 'colour'",
        ],
    ),
    "all-reported": (
        ALL_AT_ONCE,
        [
            "1:33: listen.port: must be at least 1 and at most 65535",
            "2:18: logging.level: must be one of: DEBUG, INFO, WARNING, ERROR",
            '17:14: links[0].rooms.tchap: "abc" is neither a room ID (!…) nor an alias (#…)',
        ],
    ),
    "unknown-key-did-you-mean": (
        VALID.replace("server_name: bund.test", "servername: bund.test"),
        ["4:5: networks.bund.servername: unknown key 'servername' (did you mean 'server_name'?)"],
    ),
    # Every account and room names a network: a misspelt ``networks:`` is one error, not one
    # "unknown network" per reference.
    "misspelt-networks": (
        VALID.replace("networks:", "netwroks:"),
        ["1:1: netwroks: unknown key 'netwroks' (did you mean 'networks'?)"],
    ),
    "misspelt-people": (
        VALID.replace("people:", "peopel:", 1),
        ["16:1: peopel: unknown key 'peopel' (did you mean 'people'?)"],
    ),
    "unknown-key": (
        VALID + "colour: blue\n",
        ["29:1: colour: unknown key 'colour'"],
    ),
    "duplicate-link-id": (
        VALID + '  - id: wg\n    rooms: {bund: "!other:bund.test", tchap: "#x:tchap.test"}\n',
        ["29:9: links[1].id: duplicate link id 'wg' (first defined at line 24)"],
    ),
    "undefined-network-and-person-in-link": (
        VALID.replace("tchap: {create: {name: WG}}", 'xmpp: "#wg:xmpp.test"').replace(
            "people: [max, jean]", "people: [max, jaen]"
        ),
        [
            "25:19: links[0].people[1]: unknown person 'jaen' (did you mean 'jean'?)",
            "28:7: links[0].rooms.xmpp: unknown network 'xmpp'; defined networks: bund, tchap",
        ],
    ),
    "undefined-network-in-person": (
        VALID.replace('{tchap: "@jean', '{tchp: "@jean'),
        [
            "22:16: people[1].accounts.tchp: unknown network 'tchp' (did you mean 'tchap'?); "
            "defined networks: bund, tchap"
        ],
    ),
    "account-listed-for-two-people": (
        VALID.replace('{tchap: "@jean:tchap.test"}', '{bund: "@max:bund.test"}'),
        ["22:22: people[1].accounts.bund: \"@max:bund.test\" is already listed for person 'max'"],
    ),
    "wrong-types": (
        VALID.replace("people: [max, jean]", "people: max") + "listen: []\n",
        [
            "25:13: links[0].people: expected a list, got a string",
            "29:9: listen: expected a mapping, got a list",
        ],
    ),
    "admin-token-too-short": (
        "admin:\n  token: geheim\n" + VALID,
        [
            "2:10: admin.token: must be at least 16 characters long "
            "(e.g. the output of: openssl rand -hex 32)"
        ],
    ),
    "admin-token-missing": (
        "admin: {}\n" + VALID,
        ["1:8: admin.token: is required"],
    ),
    "admin-token-misspelt": (
        "admin:\n  tokn: 0123456789abcdef0123\n" + VALID,
        ["2:3: admin.tokn: unknown key 'tokn' (did you mean 'token'?)"],
    ),
    "admin-token-env-unset": (
        "admin:\n  token: {env: NOPE}\n" + VALID,
        ["2:16: admin.token.env: environment variable 'NOPE' is not set"],
    ),
    "relay-requires-access-token-or-password": (
        VALID.replace("      access_token: relay-secret\n", ""),
        ["14:7: networks.tchap.relay: one of access_token or password is required"],
    ),
    "relay-format-and-mode-blocks": (
        valid_with(tchap=("appservice: {}",)).replace(
            "access_token: relay-secret", 'password: pw\n      format: "{who}: {message}"'
        ),
        [
            "13:17: networks.tchap.appservice: only allowed when mode is appservice",
            "17:15: networks.tchap.relay.format: "
            "may only use the placeholders {name} and {message}, as written",
        ],
    ),
    "restricted-rooms-allow-only-for-tchap": (
        valid_with(("restricted_rooms_allow: [x]",)),
        ["5:29: networks.bund.restricted_rooms_allow: only allowed when flavour is tchap"],
    ),
    "link-needs-two-rooms": (
        VALID.replace("      tchap: {create: {name: WG}}\n", ""),
        ["27:7: links[0].rooms: a link needs rooms on at least two networks"],
    ),
}
"""Configs that fail, and all their errors, each after the ``PATH:`` its location starts with."""


@pytest.mark.parametrize(("text", "errors"), list(LOCATED.values()), ids=list(LOCATED))
def test_errors_are_located(tmp_path: Path, text: str, errors: list[str]) -> None:
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:{error}" for error in errors]


def test_missing_section_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.split("people:")[0].replace("networks:", "colour: blue\nx:"))
    errors = errors_of(path)
    assert [e for e in errors if "networks" in e] == [f"{path}:1:1: networks: is required"]
    assert not [e for e in errors if "unknown network" in e]


def test_account_on_another_server_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Federated users exist, so the config is used; but an account on the server of another
    network is named as such."""
    text = VALID.replace('{tchap: "@jean:tchap.test"}',
                         '{tchap: "@jean:tchap.test", bund: "@jean:tchap.test"}')  # fmt: skip
    text = text.replace('{bund: "@max:bund.test"}', '{bund: "@max:federated.example"}')
    path = write(tmp_path, text)
    assert cli("check-config", "-c", str(path)) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (2 networks, 2 people, 1 links)\n"
    assert err.splitlines() == [
        f'{path}:19:22: warning: people[0].accounts.bund: "@max:federated.example" is on '
        "federated.example, not on bund.test; right for a user of a federated server, "
        "else a typo",
        f'{path}:22:49: warning: people[1].accounts.bund: "@jean:tchap.test" is on '
        "tchap.test, not on bund.test; it is an account of network 'tchap': list it there",
    ]
    assert len(load_config(path, {}).warnings) == 2


def test_duplicate_person_id(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: jean", "id: max"))
    errors = errors_of(path)
    assert (
        errors[0] == f"{path}:20:9: people[1].id: duplicate person id 'max' (first defined "
        "at line 17)"
    )


def test_env_and_file_secrets(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hs").write_text("from-file\n")
    text = VALID.replace("as_token: as-secret", "as_token: {env: AS_TOKEN}")
    text = text.replace("hs_token: hs-secret", "hs_token: {file: secrets/hs}")
    config = load_config(write(tmp_path, text), {"AS_TOKEN": "from-env"})
    settings = config.networks["bund"].appservice
    assert settings is not None
    assert (settings.as_token, settings.hs_token) == ("from-env", "from-file")


def test_missing_secrets_are_located_and_not_leaked(tmp_path: Path) -> None:
    text = VALID.replace("as_token: as-secret", "as_token: {env: AS_TOKEN}")
    text = text.replace("hs_token: hs-secret", "hs_token: {file: nope}")
    path = write(tmp_path, text)
    assert errors_of(path, {"OTHER": "x"}) == [
        f"{path}:6:23: networks.bund.appservice.as_token.env: "
        "environment variable 'AS_TOKEN' is not set",
        f"{path}:7:24: networks.bund.appservice.hs_token.file: cannot read secret file "
        f"'{tmp_path / 'nope'}': No such file or directory",
    ]


def test_secret_values_never_in_errors(tmp_path: Path) -> None:
    text = VALID.replace("hs_token: hs-secret", "hs_token: [hs-secret]")
    text = "database: mysql://user:dbsecret@host/db\n" + text
    errors = "\n".join(errors_of(write(tmp_path, text)))
    assert "hs-secret" not in errors and "dbsecret" not in errors
    assert "database: must be sqlite:PATH or postgres://" in errors


def test_admin_token_literal_env_or_file(tmp_path: Path) -> None:
    token = "0123456789abcdef0123"
    (tmp_path / "admin-token").write_text(token + "\n")
    for given, env in ((token, {}), ("{env: ADMIN}", {"ADMIN": token}),
                       ("{file: admin-token}", {})):  # fmt: skip
        config = load_config(write(tmp_path, f"admin:\n  token: {given}\n" + VALID), env)
        assert config.admin is not None and config.admin.token == token
        assert token not in repr(config)


def test_missing_tokens_hint_generate_registration(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("      hs_token: hs-secret\n", ""))
    assert errors_of(path) == [
        f"{path}:6:7: networks.bund.appservice.hs_token: is missing; "
        f"run 'passerelle generate-registration -c {path}' to generate it"
    ]


def test_yaml_syntax_error_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "networks: [1\nlinks: 2\n")
    assert cli("check-config", "-c", str(path)) == 1
    err = capsys.readouterr().err
    assert err == f"{path}:2:6: YAML syntax error: expected ',' or ']', but got ':'\n"


def test_empty_and_missing_file(tmp_path: Path) -> None:
    empty = write(tmp_path, "# nothing yet\n")
    assert errors_of(empty) == [f"{empty}:1:1: config file is empty"]
    missing = tmp_path / "missing.yaml"
    assert check_config(missing, {}) == (
        None,
        [f"{missing}: cannot read config file: No such file or directory"],
    )


def test_run_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "networks: {}\n")
    assert cli("run", "-c", str(path)) == 1
    assert capsys.readouterr().err == f"{path}:1:11: networks: define at least one network\n"


def test_created_room_version(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("{create: {name: WG}}", "{create: {name: WG, room_version: 11}}")
    )
    link_room = load_config(path, {}).links[0].rooms["tchap"]
    assert link_room.create is not None and link_room.create.room_version == "11"
    path = write(
        tmp_path,
        VALID.replace("{create: {name: WG}}", '{create: {name: WG, room_version: "v 11"}}'),
    )
    assert errors_of(path) == [
        f"{path}:28:48: links[0].rooms.tchap.create.room_version: expected a room version "
        "(e.g. \"11\": digits, a-z, '.' and '-')"
    ]


def test_read_markers_are_on_unless_a_network_turns_them_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {})
    assert config.networks["bund"].read_markers is True  # type: ignore[attr-defined]
    off = valid_with(("read_markers: false",))
    config = load_config(write(tmp_path, off), {})
    assert config.networks["bund"].read_markers is False  # type: ignore[attr-defined]
    wrong = off.replace("read_markers: false", "read_markers: nein")
    path = write(tmp_path, wrong)
    assert errors_of(path) == [
        f"{path}:5:19: networks.bund.read_markers: expected true or false, got a string"
    ]


def test_mirror_members_is_per_link_and_checked(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), {})
    assert config.links[0].mirror_members is None  # by the room's size
    people = "    people: [max, jean]\n"
    path = write(tmp_path, VALID.replace(people, people + "    mirror_members: false\n"))
    assert load_config(path, {}).links[0].mirror_members is False
    path = write(tmp_path, VALID.replace(people, people + "    mirror_members: 12\n"))
    assert errors_of(path) == [
        f"{path}:26:21: links[0].mirror_members: expected true or false, got an integer"
    ]
