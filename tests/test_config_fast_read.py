"""The config loader's two readers agree: a valid config read by the fast parser gives the same
`Config` as ruamel's round-trip loader, and whatever the fast parser could read differently is
left to the round-trip loader, whose judgement (and located errors) stands."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config
from bridge.config.fastread import fast_document
from bridge.config.load import read_document, validate
from tests.configs import TOKENS_INLINE, errors_of, networks_with_bund, write
from tests.test_config import generated_example


def test_example_config_reads_the_same_both_ways(tmp_path: Path) -> None:
    path = generated_example(tmp_path)
    plain = fast_document(path.read_text(encoding="utf-8"))
    assert plain is not None
    fast, fast_problems = validate(plain, path, {})
    doc, _, _ = read_document(path)
    slow, slow_problems = validate(doc, path, {})
    assert fast_problems == slow_problems == []
    assert fast is not None and fast == slow
    assert fast.person("max") == slow.person("max")


def test_accounts_are_normalised_the_same_both_ways(tmp_path: Path) -> None:
    """People entries of the fast reader take a shortcut (`plain_person`); what it stores must
    be what the full check stores, normalisation of JIDs and addresses included."""
    text = generated_example(tmp_path).read_text(encoding="utf-8")
    text = text.replace("erika@xmpp.bsi.example", "Erika@XMPP.bsi.example")
    text = text.replace("claire.martin@anssi.example", "Claire.Martin@ANSSI.example")
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    plain = fast_document(text)
    assert plain is not None
    fast, fast_problems = validate(plain, path, {})
    doc, _, _ = read_document(path)
    slow, slow_problems = validate(doc, path, {})
    assert fast_problems == slow_problems == []
    assert fast is not None and slow is not None
    assert fast.people == slow.people
    erika = fast.person("erika")
    assert erika is not None and erika.accounts["xmpp-bsi"] == "erika@xmpp.bsi.example"
    assert fast.person_by_account("mail", "claire.martin@anssi.example") == slow.person("claire")


@pytest.mark.parametrize(
    "text",
    [
        "a: !!str 1\n",
        "a: !env HOME\n",
        "x: &anchor 1\ny: *anchor\n",
        "a:\n  <<: {b: 1}\n",
        "%YAML 1.1\n---\na: yes\n",
        "a: 1\n---\nb: 2\n",
        "a: =\n",
        "\ufeffa: 1\n",
        "a: [1,\n",
    ],
)
def test_what_the_readers_could_disagree_on_is_left_to_round_trip(text: str) -> None:
    assert fast_document(text) is None


def test_a_tagged_value_is_judged_by_the_round_trip_loader(tmp_path: Path) -> None:
    people = 'people:\n  - id: max\n    name: !!str 123\n    accounts: {bund: "@max:bund.test"}\n'
    path = write(tmp_path, networks_with_bund(TOKENS_INLINE) + people)
    assert errors_of(path) == [f"{path}:8:11: people[0].name: expected a string, got TaggedScalar"]


def test_links_read_the_same_both_ways_and_conflicts_are_still_located(tmp_path: Path) -> None:
    """Link entries of the fast reader take a shortcut too (`plain_link`): the same links as
    the full check, and a room two links share or an unknown person still gets its located
    error (from the round-trip loader)."""
    text = generated_example(tmp_path).read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    plain = fast_document(text)
    assert plain is not None
    fast, _ = validate(plain, path, {})
    doc, _, _ = read_document(generated_example(tmp_path))
    slow, _ = validate(doc, path, {})
    assert fast is not None and slow is not None
    assert fast.links == slow.links
    assert len(fast.links) > 1

    shared = text.replace("links:\n", textwrap.dedent("""\
        links:
          - id: first
            people: [max]
            rooms: {bund: "!shared:bund.test", tchap: "!a:tchap.test"}
          - id: second
            people: [max, nobody]
            rooms: {bund: "!shared:bund.test", tchap: "!b:tchap.test"}
        """), 1)  # fmt: skip
    path.write_text(shared, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path, {})
    errors = "\n".join(refused.value.errors)
    assert "links[1].people[1]: unknown person 'nobody'" in errors
    assert "links[1].rooms.bund: \"!shared:bund.test\" is already used by link 'first'" in errors
    assert errors.startswith(f"{path}:")
