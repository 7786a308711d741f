"""What may cross from one room of a link to another: pure decisions on the admin's per-link
policy (`bridge.config.policy`), no I/O.

The router asks, for every event and every target: whether the source room sends and the target
room receives (``direction``); whether the message is marked above the highest classification
level the target may carry; and, with a file's bytes in hand, whether the target takes files
of that type (read from the bytes, never from the name) and that size. A file refused passes as
a line saying it was withheld, the text with it; a message marked too high does not pass at all.
"""

from __future__ import annotations

import dataclasses
import html
from enum import StrEnum

import magic

from bridge.config.policy import Classification, Level, Policy, RoomPolicy
from bridge.events import Event
from bridge.media import HEAD_BYTES
from bridge.notices import Notice, notice

MAX_MARKED_TEXT = 300
"""Characters of a first line or a subject looked at for a mark: a marking is short, and the
patterns are the admin's, run on strangers' text."""


def crosses(policy: Policy, link_id: str, source: str, target: str) -> bool:
    """Whether ``source``'s room of the link sends and ``target``'s receives."""
    return (
        policy.room(link_id, source).direction.sends
        and policy.room(link_id, target).direction.receives
    )


def marked_level(scheme: Classification, event: Event) -> int:
    """The rank of the highest level ``event`` is marked with (its leading marking line, a
    mail's subject tag), or that of unmarked messages when it bears no mark of the scheme."""
    found = []
    head = event.text.lstrip()[: MAX_MARKED_TEXT + 1]  # the first line, if it is not too long
    line = head.splitlines()[0].strip() if head else ""
    if line and len(line) <= MAX_MARKED_TEXT:
        for pattern in scheme.marking_line:
            match = pattern.fullmatch(line)
            if match is not None and match.group("mark") is not None:
                found.append(scheme.rank(match.group("mark")))
    subject = event.extra.get("subject")
    if isinstance(subject, str) and subject:
        for pattern in scheme.subject_tag:
            for match in pattern.finditer(subject[:MAX_MARKED_TEXT]):
                if match.group("mark") is not None:
                    found.append(scheme.rank(match.group("mark")))
    # What a pattern took that is no mark of the scheme is the message's own words.
    ranks = [rank for rank in found if rank is not None]
    return max(ranks) if ranks else scheme.unmarked


def held_back(policy: Policy, event: Event, target: str) -> Level | None:
    """The level ``event`` is marked with when that is above what ``target``'s room of its link
    may carry (then it is not delivered there); None when it may go."""
    scheme = policy.classification
    if scheme is None:
        return None
    rank = marked_level(scheme, event)
    if rank <= policy.room(event.link_id, target).ceiling:
        return None
    return scheme.levels[rank]


class FileRefusal(StrEnum):
    """Why a file is withheld from a room."""

    TYPE = "type"
    """Files of its type (as its bytes show it) are not allowed there."""
    SIZE = "size"
    """It is larger than the room takes."""


def sniffed_type(data: bytes) -> str:
    """The media type of a file as its bytes show it (libmagic, from its first bytes only)."""
    return str(magic.from_buffer(data[:HEAD_BYTES], mime=True)).lower()


def declared_too_large(room: RoomPolicy, size: int | None) -> bool:
    """Whether the size the source announced is already above the room's limit (the file is
    then not fetched at all)."""
    return room.max_size is not None and size is not None and size > room.max_size


def file_refusal(room: RoomPolicy, mimetype: str, size: int) -> FileRefusal | None:
    """Why a file of ``mimetype`` (read from its bytes) and ``size`` bytes may not enter the
    room, if it may not."""
    if room.max_size is not None and size > room.max_size:
        return FileRefusal.SIZE
    if room.types is None:
        return None
    family = mimetype.split("/", 1)[0] + "/*"
    return None if mimetype in room.types or family in room.types else FileRefusal.TYPE


def withheld(event: Event, refusal: FileRefusal, language: str) -> Event:
    """``event`` without its file: its text, then a line saying the file was withheld and why,
    in the target room's ``language``."""
    line = notice(f"withheld.{refusal.value}").render(language)
    text = f"{event.text}\n{line}" if event.text.strip() else line
    shown = None
    if event.html is not None:
        shown = f"{event.html}<br><em>{html.escape(line)}</em>"
    return dataclasses.replace(event, attachment=None, text=text, html=shown)


def file_withheld_notice(
    event: Event, refusal: FileRefusal, network: str, mimetype: str, limit: int | None
) -> Notice:
    """What the sender is told in their room about a file of theirs that ``network`` did not
    get (``network`` as notices name it)."""
    name = event.attachment.name if event.attachment is not None else ""
    if refusal is FileRefusal.SIZE:
        return notice("file_withheld.size", name=name, network=network,
                      size=_megabytes(limit or 0))  # fmt: skip
    return notice("file_withheld.type", name=name, network=network, type=mimetype)


def _megabytes(size: int) -> str:
    """A size limit as people read it ("25 MB", "0.5 MB")."""
    megabytes = size / 1024**2
    return f"{megabytes:.0f} MB" if megabytes >= 10 else f"{megabytes:.2g} MB"
