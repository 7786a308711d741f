"""The reaction line the relay bot keeps under a message: who reacted with what, in order."""

from __future__ import annotations

from connectors.matrix.relayed_reactions import (
    added,
    dump,
    line,
    load,
    parse_reaction_ref,
    reaction_ref,
    withdrawn,
)


def test_reactions_keep_the_order_they_came_in() -> None:
    r = added(added(added({}, "👍", "Max"), "🎉", "Erika"), "👍", "Erika")
    assert line(r, "de") == "Reaktionen: 👍 Max, Erika; 🎉 Erika"
    assert line(withdrawn(r, "👍", "Max"), "fr") == "Réactions : 👍 Erika; 🎉 Erika"
    assert withdrawn(withdrawn(r, "👍", "Max"), "👍", "Erika") == {"🎉": ["Erika"]}


def test_the_same_reaction_twice_is_listed_once() -> None:
    assert added({"👍": ["Max"]}, "👍", "Max") == {"👍": ["Max"]}


def test_withdrawing_what_is_not_there_changes_nothing() -> None:
    assert withdrawn({"👍": ["Max"]}, "🎉", "Max") == {"👍": ["Max"]}


def test_reference_names_message_person_and_key() -> None:
    ref = reaction_ref("$event", "Max Mustermann [BMI]", "a\nkey")
    assert parse_reaction_ref(ref) == ("$event", "Max Mustermann [BMI]", "a\nkey")
    assert parse_reaction_ref("$event") is None
    assert parse_reaction_ref("relayed-reaction\n$event") is None


def test_stored_form_round_trips_and_tolerates_garbage() -> None:
    r = {"👍": ["Max", "Jean Dupont [Intérieur]"]}
    assert load(dump(r)) == r
    assert load("[1, 2]") == {}
