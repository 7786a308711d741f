"""What anyone who reaches the listen address sends the status page: an ``Accept-Language``
header and a session cookie. Whatever they hold, the page picks one of its languages and a
session is valid only when the bridge made it."""

from __future__ import annotations

import time

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.admin import session_value, valid_session
from bridge.notices import LANGUAGES
from bridge.status_page import language

TOKEN = "the-admin-token-of-this-bridge"
RANGES = st.from_regex(r"[a-zA-Z*]{0,8}(-[a-zA-Z0-9]{0,8})?(;\s*q=[0-9.eE+-]{0,6})?",
                       fullmatch=True)  # fmt: skip


@given(st.text() | st.lists(RANGES, max_size=40).map(", ".join))
@example("de;q=nan, fr;q=inf")
@example("de;q=1e999")
@example(";;;,,,=;q=;")
@example("de;q=0.5;q=0.9")
def test_any_accept_language_picks_one_of_the_languages(header: str) -> None:
    assert language(header) in LANGUAGES


@given(st.text(max_size=200))
@example(f"{10**13}.{'0' * 64}")
@example("9" * 12 + ".x")
@example("-1." + "0" * 64)
@example("١٢٣.abc")
def test_a_cookie_the_bridge_did_not_make_is_no_session(cookie: str) -> None:
    now = time.time()
    made = {session_value(TOKEN, int(now) + delta) for delta in (60, 3600)}
    assert valid_session(cookie, TOKEN, now) == (cookie in made)
