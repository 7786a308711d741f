"""Counting what each route lost, doubled and reordered, and the table that shows it (Markdown,
aligned like the benchmark's, so the README can show it as printed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from tests.faults.traffic import Arrival, Route


@dataclass(frozen=True)
class Tally:
    route: Route
    sent: int
    delivered: int
    """Messages that arrived at least once."""
    lost: list[int]
    doubled: list[int]
    """Numbers that arrived more than once (once per extra copy)."""
    reordered: list[int]
    """Numbers whose first copy arrived after that of a later message of the route."""
    caught_up: list[int] = field(default_factory=list)
    """Numbers that arrived after later ones because the homeserver's push of them was lost
    on its way (`tests.faults.scenario.lost_pushes`): the bridge can only read them from the
    room later (its catch-up), which the README says; not counted as out of order."""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.reordered)

    @property
    def name(self) -> str:
        return f"{self.route[0]} → {self.route[1]}"


def tally(
    route: Route, sent: Iterable[int], arrived: list[Arrival], pushes_lost: Collection[int] = ()
) -> Tally:
    """What ``route`` did with the numbers ``sent``, given every copy that ``arrived`` in the
    target's order. A number that arrived but was never confirmed as sent does not count;
    one in ``pushes_lost`` (its homeserver's push never reached the bridge) that arrives late
    is counted as caught up, not as out of order."""
    sent_set = set(sent)
    copies = Counter(a.seq for a in arrived if a.seq in sent_set)
    firsts: list[int] = []
    seen: set[int] = set()
    for a in arrived:
        if a.seq in sent_set and a.seq not in seen:
            seen.add(a.seq)
            firsts.append(a.seq)
    reordered, caught_up, highest = [], [], 0
    for seq in firsts:
        if seq < highest:
            (caught_up if seq in pushes_lost else reordered).append(seq)
        highest = max(highest, seq)
    return Tally(
        route,
        sent=len(sent_set),
        delivered=len(copies),
        lost=sorted(sent_set - set(copies)),
        doubled=sorted(seq for seq, n in copies.items() for _ in range(n - 1)),
        reordered=reordered,
        caught_up=caught_up,
    )


def _few(numbers: list[int], limit: int = 8) -> str:
    if not numbers:
        return ""
    shown = ", ".join(f"#{n}" for n in numbers[:limit])
    return shown + (f" … ({len(numbers) - limit} more)" if len(numbers) > limit else "")


def table(tallies: list[Tally], notes: list[str]) -> str:
    """The notes, then one row per route."""
    head = ("route", "sent", "delivered", "lost", "doubled", "out of order", "verdict")
    cells = [head] + [
        (t.name, str(t.sent), str(t.delivered), str(len(t.lost)), str(len(t.doubled)),
         str(len(t.reordered)), "PASS" if t.ok else "FAIL")
        for t in tallies
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [*notes, ""] if notes else []
    out += [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    details = [
        f"{t.name}: {what} {_few(nums)}"
        for t in tallies
        for what, nums in (
            ("lost", t.lost),
            ("doubled", t.doubled),
            ("out of order", t.reordered),
            ("caught up after its push was lost", t.caught_up),
        )
        if nums
    ]
    return "\n".join(out + ([""] + details if details else []))


def window_note(target: str, windows: list[float]) -> str:
    """How long a delivery to ``target`` was on the target but not yet recorded by the bridge:
    a crash then sends it again, and a target that cannot recognise the resend shows it twice."""
    if not windows:
        return f"{target}: no send-to-record window observed"
    ordered = sorted(windows)
    median = ordered[len(ordered) // 2]
    return (
        f"{target}: a crash between the target taking a message and the bridge recording it "
        f"doubles it there; that window was {median * 1000:.0f} ms (median), "
        f"{ordered[-1] * 1000:.0f} ms (max) over {len(ordered)} deliveries"
    )
