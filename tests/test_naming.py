"""How people from one network are named on the others (`bridge.naming`): one rule everywhere,
and no name from elsewhere can pose as a local person or carry anything unsafe."""

from __future__ import annotations

import pytest

from bridge.events import Sender
from bridge.naming import MAX_NAME, clean, shown_name


def sender(name: str, org: str | None = None, suffix: str = "", user: str = "@u:x") -> Sender:
    return Sender(network="n", user_id=user, display_name=name, org=org, suffix=suffix)


def test_name_organisation_then_suffix() -> None:
    assert shown_name(sender("Max Mustermann", "BMI")) == "Max Mustermann [BMI]"
    assert shown_name(sender("Jean Dupont", "Intérieur", " (Tchap)")) == (
        "Jean Dupont [Intérieur] (Tchap)"
    )
    assert shown_name(sender("Bob", None, " (XMPP)")) == "Bob (XMPP)"
    assert shown_name(sender("Bob")) == "Bob"


def test_a_name_cannot_borrow_someone_elses_organisation() -> None:
    """A German user calling themselves after a French colleague shows their own org."""
    assert shown_name(sender("Jean Dupont [Intérieur]", "BMI")) == "Jean Dupont [BMI]"
    assert shown_name(sender("Jean Dupont [Intérieur]")) == "Jean Dupont"
    assert shown_name(sender("Jean [a] [b]", "BMI", " (X)")) == "Jean [BMI] (X)"
    assert shown_name(sender("Jean", "Org] [Intérieur")) == "Jean [Org) (Intérieur]"


def test_unsafe_characters_never_reach_a_name() -> None:
    hostile = "Erika\r\nReply-To: x@evil.example\u202e\u2028\x00\tMusterfrau"
    shown = shown_name(sender(hostile, "BMI\n"))
    assert shown == "Erika Reply-To: x@evil.example Musterfrau [BMI]"
    assert not any(ord(c) < 32 for c in shown)


def test_names_are_bounded() -> None:
    assert len(clean("x" * 10_000)) == MAX_NAME
    assert clean("x" * 10_000).endswith("…")


@pytest.mark.parametrize("name", ["", "   ", "[Intérieur]", "\u202e"])
def test_an_empty_name_falls_back_to_the_id(name: str) -> None:
    assert shown_name(sender(name, "BMI", user="@max:bund.example")) == "@max:bund.example [BMI]"
