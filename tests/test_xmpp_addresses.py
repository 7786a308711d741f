"""Puppet JIDs (XEP-0106 escaping) and MUC nicknames of people from other networks."""

from __future__ import annotations

import re

import pytest
from slixmpp.jid import JID

from bridge.events import Sender
from connectors.xmpp.addresses import (
    MAX_LOCALPART,
    MAX_NICK,
    describe_puppet,
    escape_node,
    nick_candidates,
    nickname,
    puppet_jid,
    puppet_localpart,
    puppet_owner,
    unescape_node,
)

HASHED = re.compile(r"-[0-9a-f]{32}$")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("bund_@max:bund.test", "bund_\\40max\\3abund.test"),
        ("a b/c&d'e\"f<g>h", "a\\20b\\2fc\\26d\\27e\\22f\\3cg\\3eh"),
        ("back\\slash", "back\\slash"),  # a backslash alone needs no escape ...
        ("\\40 looks escaped", "\\5c40\\20looks\\20escaped"),  # ... unless it looks like one
    ],
)
def test_escape_node_follows_xep_0106(text: str, escaped: str) -> None:
    assert escape_node(text) == escaped
    assert unescape_node(escaped) == text


@pytest.mark.parametrize(
    ("localpart", "text"),
    [
        ("x\\", "x\\"),  # slixmpp's unescape_node panics on these two
        ("x\\5", "x\\5"),
        ("\\", "\\"),
        ("a\\3A", "a\\3A"),  # escapes are lower-case hex
        ("a\\5c40b", "a\\40b"),  # one pass: an escaped backslash does not start an escape
        ("bund_max\\3abund.test", "bund_max:bund.test"),
    ],
)
def test_unescape_node_never_fails(localpart: str, text: str) -> None:
    assert unescape_node(localpart) == text


def test_puppet_jids_are_stable_valid_and_distinct() -> None:
    """Made from an account's local form (a Matrix ID without its ``@``)."""
    jid = puppet_jid("bund", "max:bund.test", "passerelle.xmpp.test")
    assert jid == "bund_max\\3abund.test@passerelle.xmpp.test"
    assert jid == puppet_jid("bund", "max:bund.test", "passerelle.xmpp.test")
    assert JID(jid).bare == jid
    assert jid != puppet_jid("tchap", "max:bund.test", "passerelle.xmpp.test")
    assert describe_puppet(JID(jid).node) == "bund_max:bund.test"
    email = puppet_jid("mail", "jean.dupont@interieur.gouv.fr", "p.test")
    assert email == "mail_jean.dupont\\40interieur.gouv.fr@p.test"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("@Alice:x", "@alice:x"),  # XMPP compares localparts case-folded
        ("@stra\u00dfe:x", "@strasse:x"),  # ... and nodeprep maps ß to ss,
        ("@\ufb01:x", "@fi:x"),  # ﬁ to fi,
        ("@a\u200bb:x", "@ab:x"),  # a zero-width space to nothing
        ("@" + "A" * 300 + ":x", "@" + "a" * 300 + ":x"),  # also once shortened
    ],
)
def test_ids_the_server_would_fold_together_get_distinct_puppets(first: str, second: str) -> None:
    jids = {puppet_jid("bund", first, "p.test"), puppet_jid("bund", second, "p.test")}
    assert len({JID(jid).bare for jid in jids}) == 2
    assert all(JID(jid).bare == jid for jid in jids)
    assert puppet_jid("bund", first, "p.test") == puppet_jid("bund", first, "p.test")
    hashed = puppet_localpart("bund", first)
    assert HASHED.search(hashed) and puppet_owner(hashed, ["bund"]) is None


def test_an_id_cannot_take_the_puppet_of_a_hashed_one() -> None:
    long_id = "@" + "a" * 300 + ":x"
    hashed = puppet_localpart("bund", long_id)
    # Someone registers the ID whose plain localpart would be exactly that hashed one ...
    mimic = "@" + unescape_node(hashed).removeprefix("bund_")
    assert escape_node(f"bund_{mimic[1:]}") == hashed
    # ... and gets a puppet of their own all the same.
    assert puppet_localpart("bund", mimic) != hashed


def test_long_ids_are_shortened_with_a_hash() -> None:
    first = puppet_jid("bund", "@" + "a" * 300 + ":bund.test", "p.test")
    second = puppet_jid("bund", "@" + "a" * 300 + "b:bund.test", "p.test")
    assert len(first.partition("@")[0]) <= MAX_LOCALPART
    assert first != second


@pytest.mark.parametrize(
    ("sender", "nick"),
    [
        (Sender("bund", "@max:bund.test", "Max Mustermann", org="BMI"), "Max Mustermann [BMI]"),
        (Sender("tchap", "@j:tchap.test", "Jean Dupont", org="Intérieur", suffix=" (Tchap)"),
         "Jean Dupont [Intérieur] (Tchap)"),
        (Sender("bund", "@j:bund.test", "Jean Dupont [Intérieur]", org="BMI"),
         "Jean Dupont [BMI]"),
        (Sender("bund", "@e:bund.test", "  Erika\n\tMusterfrau\x00 "), "Erika Musterfrau"),
        (Sender("bund", "@anon:bund.test", ""), "@anon:bund.test"),
    ],
)  # fmt: skip
def test_nicknames_show_name_organisation_and_network(sender: Sender, nick: str) -> None:
    assert nickname(sender) == nick


def test_long_nicknames_are_cut_and_collisions_get_a_suffix() -> None:
    long = nickname(Sender("bund", "@x:bund.test", "x" * 200))
    assert len(long) == MAX_NICK and long.endswith("…")
    assert nick_candidates("Max", 3) == ["Max", "Max (2)", "Max (3)"]


@pytest.mark.parametrize(
    ("network", "user_id", "expected"),
    [
        ("bund", "max:bund.test", ("bund", "max:bund.test")),
        (
            "tchap",
            "jean.dupont-interieur.gouv.fr:tchap.test",
            ("tchap", "jean.dupont-interieur.gouv.fr:tchap.test"),
        ),  # fmt: skip
        ("tchap-relay", "a b:x", ("tchap-relay", "a b:x")),
        ("mail", "claire@anssi.example", ("mail", "claire@anssi.example")),
    ],
)
def test_puppet_owner_inverts_the_localpart(
    network: str, user_id: str, expected: tuple[str, str]
) -> None:
    networks = ["bund", "tchap", "tchap-relay", "mail"]
    assert puppet_owner(puppet_localpart(network, user_id), networks) == expected


def test_puppet_owner_of_strangers_and_hashed_localparts_is_none() -> None:
    assert puppet_owner("someone", ["bund"]) is None
    assert puppet_owner(puppet_localpart("bund", "@" + "x" * 400 + ":bund.test"), ["bund"]) is None


@pytest.mark.parametrize(
    "localpart",
    ["x\\", "x\\5", "bund_", "bund_a\\5cb", "bund_alice\\3ax-" + "0" * 32],
)
def test_puppet_owner_of_addresses_no_puppet_has_is_none(localpart: str) -> None:
    """What an XMPP user may write to: a localpart that no (network, ID) gives, e.g. a
    non-canonical escape (``\\5cb`` for a backslash that needs none)."""
    assert puppet_owner(localpart, ["bund"]) is None
