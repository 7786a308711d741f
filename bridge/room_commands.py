"""In-room commands: what people in a linked room can ask the bridge, and its answers.

``!passerelle help``, ``!passerelle status`` (which networks the room reaches, and whether they
answer) and ``!passerelle who`` (who is in the link's rooms on the other networks: a
cross-border group wants to know who reads along). A message whose first word is
``!passerelle`` is a command and is never passed on; the answer is a notice in that room only,
in its network's language, from the catalogues of `bridge.notices`.

Pure functions: recognising a command and writing an answer from what the core gathered (see
`bridge.room_answers`, which asks the connectors and posts the answer). `Throttle` bounds how
often the bridge answers in one room, so that no one can make it flood a room.
"""

from __future__ import annotations

import time
import unicodedata
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bridge.events import Event, Kind, MsgType
from bridge.naming import clean
from bridge.notices import Notice, notice

PREFIX = "!passerelle"
SCANNED = 64
"""Characters of a message looked at to recognise a command (a command is a few words; the
rest of a long message is never read here)."""
SHOWN_NAMES = 25
"""Names ``who`` lists per network; the others are counted ("and 12 more")."""


class Command(StrEnum):
    HELP = "help"
    STATUS = "status"
    WHO = "who"
    UNKNOWN = "unknown"
    """``!passerelle`` and a word that is no command: answered with the help."""


def command_of(event: Event) -> Command | None:
    """The command ``event`` gives, or None when it is an ordinary message to pass on: a plain
    text message (no notice, emote or file) whose first word is ``!passerelle`` (any case).
    The word after it names the command; what follows that is ignored."""
    if event.kind is not Kind.MESSAGE or event.msgtype is not MsgType.TEXT:
        return None
    if event.attachment is not None:
        return None
    words = event.text[:SCANNED].split(maxsplit=2)
    if not words or words[0].lower() != PREFIX:
        return None
    if len(words) == 1:
        return Command.HELP
    try:
        return Command(words[1].lower())
    except ValueError:
        return Command.UNKNOWN


class Reach(StrEnum):
    """How ``status`` describes one other network of the link."""

    UP = "up"
    DOWN = "down"
    """The bridge's last attempt found it unreachable (`bridge.health`)."""
    REFUSED = "refused"
    """It refuses the bridge's credentials: nothing passes until an admin acts."""
    OFF = "off"
    """Its room of this link is not bridged (its access rule or encryption forbids it)."""
    PENDING = "pending"
    """Its room of this link is not set up yet."""


@dataclass(frozen=True)
class NetworkState:
    label: str
    reach: Reach
    down_for: float = 0.0
    """Seconds it has been unreachable (`Reach.DOWN` only)."""


@dataclass(frozen=True)
class Roster:
    """Who is in the link's room on one network, as that network shows them."""

    label: str
    names: Sequence[str] | None
    """Shown names (the bridge's own users left out); None when the network could not be
    asked."""
    off: bool = False
    """The room is not bridged: who is in it is not told."""


def help_text(language: str, labels: Sequence[str], *, unknown: bool = False) -> str:
    """The help: which networks the room is linked with, and the commands."""
    text = notice("command.help", networks=", ".join(labels)).render(language)
    return f"{notice('command.unknown').render(language)} {text}" if unknown else text


def status_text(language: str, states: Sequence[NetworkState]) -> str:
    lines = [_state_line(state).render(language) for state in states]
    return _lines(notice("command.status").render(language), lines)


def _state_line(state: NetworkState) -> Notice:
    if state.reach is not Reach.DOWN:
        return notice(f"command.status.{state.reach.value}", network=state.label)
    if state.down_for < 2 * 3600:
        return notice("command.status.down_minutes", network=state.label,
                      minutes=max(1, round(state.down_for / 60)))  # fmt: skip
    if state.down_for < 2 * 86400:
        return notice("command.status.down_hours", network=state.label,
                      hours=round(state.down_for / 3600))  # fmt: skip
    return notice("command.status.down_days", network=state.label,
                  days=round(state.down_for / 86400))  # fmt: skip


def who_text(language: str, rosters: Sequence[Roster]) -> str:
    lines = [_roster_line(roster).render(language) for roster in rosters]
    return _lines(notice("command.who").render(language), lines)


def _roster_line(roster: Roster) -> Notice:
    if roster.off:
        return notice("command.who.off", network=roster.label)
    if roster.names is None:
        return notice("command.who.unavailable", network=roster.label)
    # Names come from the networks: made safe to show (no control characters, bounded length).
    names = sorted((n for n in (clean(name) for name in roster.names) if n), key=_alphabetical)
    if not names:
        return notice("command.who.nobody", network=roster.label)
    shown: str | Notice = ", ".join(names[:SHOWN_NAMES])
    if len(names) > SHOWN_NAMES:
        shown = notice("command.who.more", names=shown, count=len(names) - SHOWN_NAMES)
    return notice("command.who.names", network=roster.label, names=shown)


def _alphabetical(name: str) -> str:
    """A sort key that puts "Émile" among the Es, whatever the case."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _lines(title: str, lines: Sequence[str]) -> str:
    return "\n".join([title, *(f"• {line}" for line in lines)])


class Throttle:
    """At most ``burst`` answers per key (a room) within any ``window`` seconds; what is asked
    beyond that gets no answer."""

    def __init__(
        self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.window = window
        self._clock = clock
        self._answered: dict[Hashable, deque[float]] = {}

    def allow(self, key: Hashable) -> bool:
        """Whether an answer may go to ``key`` now (counting it when it may)."""
        now = self._clock()
        answered = self._answered.setdefault(key, deque())
        while answered and answered[0] <= now - self.window:
            answered.popleft()
        if len(answered) >= self.burst:
            return False
        answered.append(now)
        return True
