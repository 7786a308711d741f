"""Generated hostile messages and files against the per-link policy's decisions
(bridge.link_policy): any text, subject or bytes give a level of the scheme or a media type,
never an error, within a bounded time, and a text that starts with a mark is never read lower
than that mark whatever follows it."""

from __future__ import annotations

import re
import time

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.config.policy import MARKING_LINE, SUBJECT_TAG, Classification, Level
from bridge.events import Event, Kind, Sender
from bridge.link_policy import marked_level, sniffed_type

SCHEME = Classification(
    levels=(
        Level("OFFEN", ("offen", "non protégé")),
        Level("VS-NfD", ("vs-nfd", "vs-nur für den dienstgebrauch", "diffusion restreinte")),
    ),
    marking_line=tuple(re.compile(p) for p in MARKING_LINE),
    subject_tag=tuple(re.compile(p) for p in SUBJECT_TAG),
)
MARKS = ["VS-NfD", "[VS-NUR FÜR DEN DIENSTGEBRAUCH]", " diffusion  restreinte ", "OFFEN"]


def event(text: str, subject: object = None) -> Event:
    sender = Sender(network="bund", user_id="@max:bund.test", display_name="Max")
    extra = {} if subject is None else {"subject": subject}
    return Event(kind=Kind.MESSAGE, link_id="wg", network="bund", room_id="!r:bund.test",
                 remote_id="$1", sender=sender, text=text, extra=extra)  # fmt: skip


@given(st.text(max_size=5000), st.one_of(st.none(), st.text(max_size=2000), st.integers()))
@example("[" * 300 + "\n", "[" * 2000)
@example(" " * 200 + "VS-NfD" + "]" * 100, "[VS-NfD" * 300)
def test_any_text_and_subject_give_a_level(text: str, subject: object) -> None:
    start = time.perf_counter()
    assert marked_level(SCHEME, event(text, subject)) in (0, 1)
    assert time.perf_counter() - start < 0.5


@given(st.sampled_from(MARKS), st.text(max_size=500))
def test_a_leading_mark_counts_whatever_follows(mark: str, rest: str) -> None:
    expected = 0 if mark == "OFFEN" else 1
    assert marked_level(SCHEME, event(f"{mark}\n{rest}")) >= expected


@given(st.binary(max_size=70_000))
@example(b"MZ" + bytes(62))
@example(b"%PDF-" + b"\xff" * 1000)
def test_any_bytes_give_a_media_type(data: bytes) -> None:
    mimetype = sniffed_type(data)
    assert re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", mimetype), mimetype
