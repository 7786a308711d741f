"""The encryption settings of a Matrix network, and what they put in the registration."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from bridge.config import load_config
from connectors.matrix.config import Encryption, MatrixNetwork
from connectors.matrix.registration import generate_registrations
from tests.configs import VALID, errors_of, valid_with, write


def network(path: Path, name: str) -> MatrixNetwork:
    found = load_config(path, {}).networks[name]
    assert isinstance(found, MatrixNetwork)
    return found


def test_encryption_is_off_unless_asked_for(tmp_path: Path) -> None:
    bund = network(write(tmp_path, VALID), "bund")
    assert bund.encryption is Encryption.OFF
    assert bund.room_key_wait == 60.0


def test_encryption_modes_and_key_wait(tmp_path: Path) -> None:
    path = write(
        tmp_path, valid_with(("encryption: require", "room_key_wait: 12.5"), ("encryption: allow",))
    )
    assert network(path, "bund").encryption is Encryption.REQUIRE
    assert network(path, "bund").room_key_wait == 12.5
    assert network(path, "tchap").encryption is Encryption.ALLOW


def test_bad_encryption_settings_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, valid_with(("encryption: yes please",), ("room_key_wait: 5",)))
    assert errors_of(path) == [
        f"{path}:5:17: networks.bund.encryption: must be one of: off, allow, require",
        f"{path}:14:20: networks.tchap.room_key_wait: "
        "only allowed when encryption is allow or require",
    ]


def test_created_room_may_ask_for_encryption(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("{create: {name: WG}}", "{create: {name: WG, encrypted: true}}")
    )
    create = load_config(path, {}).link("wg").rooms["tchap"].create
    assert create is not None and create.encrypted is True
    path = write(
        tmp_path, VALID.replace("{create: {name: WG}}", "{create: {name: WG, encrypted: 1}}")
    )
    assert errors_of(path) == [
        f"{path}:28:45: links[0].rooms.tchap.create.encrypted: expected true or false, "
        "got an integer"
    ]


def test_registration_asks_for_the_encryption_extensions_only_when_needed(
    tmp_path: Path,
) -> None:
    off = write(tmp_path, VALID, "off.yaml")
    generate_registrations(off, tmp_path / "off")
    plain = YAML(typ="safe").load(tmp_path / "off" / "bund-registration.yaml")
    assert not {"org.matrix.msc3202", "io.element.msc4190"} & set(plain)

    on = write(tmp_path, valid_with(("encryption: allow",)), "on.yaml")
    generate_registrations(on, tmp_path / "on")
    encrypting = YAML(typ="safe").load(tmp_path / "on" / "bund-registration.yaml")
    assert {k: v for k, v in encrypting.items() if k not in plain} == {
        "org.matrix.msc3202": True,
        "io.element.msc4190": True,
    }
    assert encrypting["receive_ephemeral"] is plain["receive_ephemeral"] is True
