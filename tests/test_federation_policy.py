"""Who a federation list lets out (`bridge.policy`), and its config (``federation_list`` under
a network): pure decisions on a loaded config."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config.load import check_config
from bridge.config.model import Config
from bridge.naming import PERSON
from bridge.policy import SenderRefusal, ghost_refused, sender_refusal
from tests.federation_keys import key_pair
from tests.offline import networks

BUND = """\
    allowed_domains: [bund.example, land.example]
    federation_list:
{federation_list}
"""
CONFIG = (
    networks(BUND)
    + """\
people:
  - id: anna
    name: Anna Schmidt
    accounts: {{bund: "@anna:land.example", tchap: "@anna:tchap.example"}}
  - id: max
    name: Max Mustermann
    accounts: {{bund: "@max:bund.example"}}
links:
  - id: wg
    rooms: {{bund: "!wg:bund.example", tchap: "!wg:tchap.example"}}
"""
)
SOURCE = """\
      file: list.jws
      public_key: {file: public.pem}
      refresh: 10m
"""


def load(tmp_path: Path, federation_list: str = SOURCE) -> tuple[Config | None, list[str]]:
    (tmp_path / "public.pem").write_text(key_pair()[1])
    (tmp_path / "private.pem").write_text(key_pair()[0])
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(federation_list=federation_list))
    return check_config(path, {})


def test_a_network_takes_its_federation_list_settings(tmp_path: Path) -> None:
    config, errors = load(tmp_path)
    assert errors == [] and config is not None
    source = config.federation_lists["bund"]
    assert (source.file, source.url, source.refresh, source.timeout, source.max_bytes) == (
        tmp_path / "list.jws",
        None,
        600.0,
        30.0,
        1024 * 1024,
    )
    assert "tchap" not in config.federation_lists


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ("      public_key: {file: public.pem}\n",
         "networks.bund.federation_list: give either url (HTTPS) or file: where the list is "
         "read from"),
        ("      url: http://lists.example/list.jws\n      public_key: {file: public.pem}\n",
         'networks.bund.federation_list.url: "http://lists.example/list.jws" is not an '
         "https:// URL (lists are read over HTTPS only)"),
        ("      file: list.jws\n      url: https://lists.example/l\n"
         "      public_key: {file: public.pem}\n",
         "networks.bund.federation_list.file: give either url or file, not both"),
        ("      file: list.jws\n      public_key: {file: private.pem}\n",
         "networks.bund.federation_list.public_key: is a private key: give the public key "
         "that goes with it"),
        ("      file: list.jws\n      public_key: {file: public.pem}\n      ca_file: ca.pem\n",
         "networks.bund.federation_list.ca_file: only allowed with url"),
        ("      url: https://lists.example/l\n      public_key: {file: public.pem}\n"
         "      ca_file: nowhere.pem\n",
         "networks.bund.federation_list.ca_file: "),
        ("      file: list.jws\n", "networks.bund.federation_list.public_key: is required"),
        ("      file: list.jws\n      public_key: {file: public.pem}\n      max_bytes: 10\n",
         "networks.bund.federation_list.max_bytes: must be at least 1024"),
        ("      file: list.jws\n      public_key: {file: public.pem}\n      refresh: soon\n",
         "networks.bund.federation_list.refresh: \"soon\" is not a duration"),
    ],
)  # fmt: skip
def test_federation_list_mistakes_are_located(tmp_path: Path, settings: str, error: str) -> None:
    config, errors = load(tmp_path, settings)
    assert config is None
    assert any(error in line for line in errors), errors


def test_the_list_and_allowed_domains_must_both_let_a_sender_out(tmp_path: Path) -> None:
    config, _ = load(tmp_path)
    assert config is not None
    listed = {"bund": frozenset({"bund.example", "other.example"})}
    assert sender_refusal(config, listed, "bund", "@max:bund.example") is None
    assert sender_refusal(config, listed, "bund", "@anna:land.example") is (
        SenderRefusal.NOT_ON_FEDERATION_LIST
    )
    assert sender_refusal(config, listed, "bund", "@eve:other.example") is (
        SenderRefusal.DOMAIN_NOT_ALLOWED
    )
    assert sender_refusal(config, {"bund": None}, "bund", "@max:bund.example") is (
        SenderRefusal.NO_FEDERATION_LIST
    )
    assert sender_refusal(config, listed, "tchap", "@jean:tchap.example") is None


def test_a_ghost_leaves_when_no_account_it_stands_for_is_let_out(tmp_path: Path) -> None:
    config, _ = load(tmp_path)
    assert config is not None
    link = config.link("wg")
    listed = {"bund": frozenset({"bund.example"})}
    assert ghost_refused(config, listed, link, "bund", "eve:land.example", "tchap")
    assert not ghost_refused(config, listed, link, "bund", "max:bund.example", "tchap")
    assert not ghost_refused(config, listed, link, "tchap", "jean:tchap.example", "bund")
    # Anna writes from land.example (no longer listed) and from Tchap (no list): her one
    # ghost on Tchap stands for her bund account alone and leaves; on bund she stays.
    assert ghost_refused(config, listed, link, PERSON, "anna", "tchap")
    assert not ghost_refused(config, listed, link, PERSON, "anna", "bund")
    assert not ghost_refused(config, listed, link, PERSON, "nobody", "tchap")
    # allowed_domains alone leaves a ghost alone (the connectors apply them as messages come).
    assert not ghost_refused(config, {}, link, "bund", "eve:elsewhere.example", "tchap")
