"""Generated messages and member names against the in-room commands: any text is either a
command or an ordinary message (never an error), and an answer listing names someone chose is
one line per network, with nothing a client would read as a control or direction change."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bridge.events import Event, Kind, Sender
from bridge.naming import MAX_NAME
from bridge.room_commands import PREFIX, SHOWN_NAMES, Command, Roster, command_of, who_text

SENDER = Sender(network="bund", user_id="@max:bund.example", display_name="Max")
MESSAGE = st.one_of(
    st.text(),
    st.builds(lambda pad, word, rest: f"{pad}{PREFIX}{word}{rest}",
              st.sampled_from(["", " ", "\n", "\t "]),
              st.sampled_from(["", " ", " who", " STATUS", " help", " wer", "\u00a0who", "x"]),
              st.text(max_size=20)),
)  # fmt: skip
NAME = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["Jean\u202eDupont", "\u2028", "Max\r\nBcc: x", "\x00", "[AA]", " "]),
)
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


@given(MESSAGE)
def test_any_text_is_a_command_or_a_message(text: str) -> None:
    event = Event(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id="!r:bund.example",
                  remote_id="$1", sender=SENDER, text=text)  # fmt: skip
    command = command_of(event)
    assert command is None or isinstance(command, Command)
    if PREFIX not in text.lower():
        assert command is None


@given(st.lists(st.lists(NAME, max_size=40), min_size=1, max_size=4),
       st.sampled_from(["de", "fr", "en"]))  # fmt: skip
def test_who_is_one_safe_bounded_line_per_network(names: list[list[str]], language: str) -> None:
    rosters = [Roster(f"net{i}", listed) for i, listed in enumerate(names)]
    lines = who_text(language, rosters).split("\n")
    assert len(lines) == 1 + len(rosters)
    assert not any(UNSAFE.search(line) for line in lines)
    assert all(len(line) <= 100 + SHOWN_NAMES * (MAX_NAME + 2) for line in lines)
