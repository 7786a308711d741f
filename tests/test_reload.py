"""What a reload does, decided from the old and the new config (pure)."""

from __future__ import annotations

from pathlib import Path

from bridge.config import load_config
from bridge.reload import diff
from tests.test_config import VALID, write

MORE = """\
  - id: more
    rooms:
      bund: "!more:bund.test"
      tchap: "#more:tchap.test"
"""


def configs(tmp_path: Path, before: str, after: str) -> tuple:
    return (load_config(write(tmp_path, before, "before.yaml"), {}),
            load_config(write(tmp_path, after, "after.yaml"), {}))  # fmt: skip


def test_the_same_file_changes_nothing(tmp_path: Path) -> None:
    old, new = configs(tmp_path, VALID, VALID)
    change = diff(old, new)
    assert change.empty and change.summary() == "nothing to do"


def test_links_added_and_removed_are_rooms_set_up_and_unbridged(tmp_path: Path) -> None:
    old, new = configs(tmp_path, VALID, VALID + MORE)
    added = diff(old, new)
    assert [(n, link.id) for n, link in added.rooms_added] == [("bund", "more"), ("tchap", "more")]
    assert not added.rooms_removed and added.summary() == "2 room(s) set up"
    removed = diff(new, old)
    assert [(n, link.id) for n, link in removed.rooms_removed] == [
        ("bund", "more"),
        ("tchap", "more"),
    ]


def test_a_moved_room_is_unbridged_and_set_up_on_its_network_only(tmp_path: Path) -> None:
    old, new = configs(tmp_path, VALID, VALID.replace('"!abc:bund.test"', '"!xyz:bund.test"'))
    change = diff(old, new)
    assert [(n, link.rooms[n].room) for n, link in change.rooms_removed] == [
        ("bund", "!abc:bund.test")
    ]
    assert [(n, link.rooms[n].room) for n, link in change.rooms_added] == [
        ("bund", "!xyz:bund.test")
    ]


def test_a_changed_network_is_reconnected_and_sets_its_own_rooms_up(tmp_path: Path) -> None:
    after = VALID.replace("server_name: bund.test", "server_name: bund.test\n    org_label: BMI")
    old, new = configs(tmp_path, VALID, after + MORE)
    change = diff(old, new)
    assert change.networks_changed == ("bund",)
    assert [(n, link.id) for n, link in change.rooms_added] == [("tchap", "more")]


def test_renamed_people_and_restart_only_settings(tmp_path: Path) -> None:
    after = VALID.replace("name: Max Mustermann", "name: Max Schulz").replace(
        "networks:", "database: sqlite:other.db\ndelivery: {max_attempts: 3}\nnetworks:"
    )
    old, new = configs(tmp_path, VALID, after)
    change = diff(old, new)
    assert [p.name for p in change.people_changed] == ["Max Schulz"]
    assert change.restart_only == ("database",)
    assert change.other == ("delivery",)
    assert change.summary() == "1 person(s) renamed, delivery changed"


def test_a_links_mirror_members_applies_at_once(tmp_path: Path) -> None:
    people = "    people: [max, jean]\n"
    after = VALID.replace(people, people + "    mirror_members: false\n")
    old, new = configs(tmp_path, VALID, after + MORE)
    change = diff(old, new)
    assert change.other == ("mirror_members",)
    assert change.summary() == "2 room(s) set up, mirror_members changed"
    assert diff(new, new).empty
