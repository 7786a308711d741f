"""Read markers are batched per reader and room: the first goes out at once, what follows
within the window only as its latest, and nothing is kept once it went out."""

from __future__ import annotations

import asyncio

from bridge.events import Sender
from bridge.read_markers import Read, ReadMarkers

WINDOW = 0.2
MAX = Sender("bund", "@max:bund.test", "Max")
ERIKA = Sender("bund", "@erika:bund.test", "Erika")


def read(sender: Sender, event: str, room: str = "!wg:bund.test") -> Read:
    return Read("bund", room, sender, event)


async def test_a_readers_markers_go_out_once_per_window_the_latest_last() -> None:
    passed: list[tuple[str, str, str]] = []

    async def pass_on(marker: Read) -> None:
        passed.append((marker.sender.user_id, marker.room_id, marker.remote_id))

    markers = ReadMarkers(pass_on, WINDOW)
    markers.take(read(MAX, "$1"))
    markers.take(read(MAX, "$2"))
    markers.take(read(MAX, "$3"))
    markers.take(read(ERIKA, "$1"))  # another reader: a window of her own
    markers.take(read(MAX, "$1", room="!other:bund.test"))  # another room: one of its own
    await asyncio.sleep(0)
    assert passed == [
        ("@max:bund.test", "!wg:bund.test", "$1"),
        ("@erika:bund.test", "!wg:bund.test", "$1"),
        ("@max:bund.test", "!other:bund.test", "$1"),
    ]
    await asyncio.sleep(WINDOW * 1.5)
    assert passed[3:] == [("@max:bund.test", "!wg:bund.test", "$3")]  # $2 never went out
    await asyncio.sleep(WINDOW * 1.5)
    assert len(passed) == 4  # nothing waited: the window closed without a marker
    markers.take(read(MAX, "$4"))
    await asyncio.sleep(0)
    assert passed[4:] == [("@max:bund.test", "!wg:bund.test", "$4")]  # at once again
    await markers.stop()


async def test_a_failing_marker_costs_nothing_else_and_stop_drops_what_waits() -> None:
    passed: list[str] = []

    async def pass_on(marker: Read) -> None:
        if marker.remote_id == "$bad":
            raise RuntimeError("the target is down")
        passed.append(marker.remote_id)

    markers = ReadMarkers(pass_on, WINDOW)
    markers.take(read(MAX, "$bad"))
    markers.take(read(ERIKA, "$1"))
    markers.take(read(ERIKA, "$2"))
    await asyncio.sleep(0)
    assert passed == ["$1"]
    await markers.stop()
    await asyncio.sleep(WINDOW * 1.5)
    assert passed == ["$1"]  # Erika's $2 waited and was dropped, not kept
