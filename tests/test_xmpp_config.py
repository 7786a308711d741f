"""The ``kind: xmpp`` network in the config: defaults, located errors, secrets kept out."""

from __future__ import annotations

from pathlib import Path

from bridge.config import load_config
from connectors.xmpp.config import XmppNetwork
from tests import configs
from tests.configs import errors_of, networks_with_bund

BASE = (
    networks_with_bund()
    + """\
  xmpp-bsi:
    kind: xmpp
{xmpp}
people:
  - id: alice
    name: Alice Arnaud
    accounts: {{xmpp-bsi: Alice@XMPP.bsi.example}}
links:
  - id: wg
    rooms:
      bund: "!abc:bund.test"
      xmpp-bsi: {room}
"""
)

MINIMAL = """\
    component: passerelle.xmpp.bsi.example
    secret: {env: XMPP_SECRET}
    domain: xmpp.bsi.example"""


def write(tmp_path: Path, xmpp: str, room: str = "wg@conference.xmpp.bsi.example") -> Path:
    return configs.write(tmp_path, BASE.format(xmpp=xmpp, room=room))


def test_minimal_network_gets_its_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {"XMPP_SECRET": "s3cret"})
    network = config.networks["xmpp-bsi"]
    assert isinstance(network, XmppNetwork)
    assert (network.kind, network.server_host, network.server_port) == ("xmpp", "127.0.0.1", 5347)
    assert network.secret == "s3cret"
    assert network.allowed_domains == network.domains == ("xmpp.bsi.example",)
    assert network.nick == "Passerelle" and network.upload_service is None
    assert network.file_hosts == (("xmpp.bsi.example", None), ("*.xmpp.bsi.example", None))
    assert network.file_private_networks == ()
    assert config.link("wg").rooms["xmpp-bsi"].room == "wg@conference.xmpp.bsi.example"
    assert config.person_by_account("xmpp-bsi", "alice@xmpp.bsi.example") is not None
    assert "s3cret" not in repr(network)


def test_every_option(tmp_path: Path) -> None:
    xmpp = """\
    server: {host: xmpp.internal, port: 5275}
    component: passerelle.xmpp.bsi.example
    secret: literal-secret
    domain: xmpp.bsi.example
    allowed_domains: [xmpp.bsi.example, partner.example]
    org_label: BSI
    name_suffix: " (XMPP)"
    nick: Brücke
    upload_service: upload.xmpp.bsi.example
    max_file_bytes: 1000
    self_ping_interval: 60
    file_hosts: [upload.xmpp.bsi.example, "*.Files.Example:443", "10.0.0.7:5281", "[fd00::7]"]
    file_private_networks: [10.0.0.0/8, "fd00::/8", 127.0.0.1]"""
    network = load_config(write(tmp_path, xmpp, room="{room: wg@conference.xmpp.bsi.example}"),
                          {}).networks["xmpp-bsi"]  # fmt: skip
    assert isinstance(network, XmppNetwork)
    assert (network.server_host, network.server_port) == ("xmpp.internal", 5275)
    assert network.allowed_domains == ("xmpp.bsi.example", "partner.example")
    assert (network.org_label, network.name_suffix, network.nick) == ("BSI", " (XMPP)", "Brücke")
    assert network.upload_service == "upload.xmpp.bsi.example"
    assert (network.max_file_bytes, network.self_ping_interval) == (1000, 60.0)
    assert network.file_hosts == (
        ("upload.xmpp.bsi.example", None), ("*.files.example", 443), ("10.0.0.7", 5281),
        ("fd00::7", None),
    )  # fmt: skip
    assert [str(n) for n in network.file_private_networks] == [
        "10.0.0.0/8", "fd00::/8", "127.0.0.1/32"
    ]  # fmt: skip


def test_file_hosts_may_be_none_at_all(tmp_path: Path) -> None:
    network = load_config(write(tmp_path, MINIMAL + "\n    file_hosts: []"),
                          {"XMPP_SECRET": "s"}).networks["xmpp-bsi"]  # fmt: skip
    assert isinstance(network, XmppNetwork) and network.file_hosts == ()


def test_errors_are_located_and_all_reported(tmp_path: Path) -> None:
    xmpp = """\
    server: {port: 99999}
    component: xmpp.bsi.example
    domain: xmpp.bsi.example
    max_file_bytes: lots
    file_hosts: ["upload.example:99999", "http://upload.example/", "999.0.0.1"]
    file_private_networks: [10.0.0.0/33, loopback]
    colour: blue"""
    path = write(tmp_path, xmpp)
    errors = errors_of(path)
    assert f"{path}:10:20: networks.xmpp-bsi.server.port: must be at least 1 and at most 65535" in (
        errors
    )
    assert any("networks.xmpp-bsi.secret: is required" in e for e in errors)
    assert any("networks.xmpp-bsi.component: must differ from domain" in e for e in errors)
    assert any("networks.xmpp-bsi.max_file_bytes: expected an integer" in e for e in errors)
    assert any("unknown key 'colour'" in e for e in errors)
    for value in ("upload.example:99999", "http://upload.example/", "999.0.0.1"):
        assert any("file_hosts[" in e and f'"{value}" is not a host[:port]' in e for e in errors)
    for value in ("10.0.0.0/33", "loopback"):
        assert any(f'"{value}" is not an IP network' in e for e in errors)


def test_a_links_room_must_be_a_muc_jid(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, room='"#room:bund.test"')
    assert errors_of(path, {"XMPP_SECRET": "s"}) == [
        f'{path}:21:17: links[0].rooms.xmpp-bsi: "#room:bund.test" is not a MUC JID (room@service)'
    ]


def test_secret_from_a_missing_variable_is_named_not_leaked(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, MINIMAL))
    assert any("environment variable 'XMPP_SECRET' is not set" in e for e in errors)
