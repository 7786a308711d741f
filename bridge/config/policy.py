"""Per-link policy: what may cross from one room of a link to another, as the admin sets it.

A network's ``policy`` gives the defaults for its rooms; a link's ``policy`` overrides them for
its own room on a network, key by key. The ``classification`` section says which levels exist,
lowest first, with the marks that mean each (the German and French schemes' equivalents on one
level), and where a message's mark is recognised. `bridge.link_policy` makes the decisions;
this module reads and checks the config (every problem located, nothing raises).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bridge.config.reader import Key, Node, Reader, quote

KEYS = ("direction", "attachments", "classification")
ATTACHMENT_KEYS = ("types", "max_size")
SCHEME_KEYS = ("levels", "marking_line", "subject_tag", "unmarked")
LEVEL_KEYS = ("level", "marks")
MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(?:[a-z0-9][a-z0-9!#$&^_.+-]*|\*)")
SIZE_RE = re.compile(r"([0-9]+)\s*([KMG]?)i?B?", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
MAX_PATTERN = 500
"""Characters a recognising pattern may have: it runs on every message."""
MARKING_LINE = (r"\[?\s*(?P<mark>[^\[\]]+?)\s*\]?",)
"""The default: the message's first non-empty line is a mark alone, or in brackets."""
SUBJECT_TAG = (r"\[\s*(?P<mark>[^\[\]]+?)\s*\]",)
"""The default: a mark in brackets anywhere in a mail's subject ("[VS-NfD] Lagebericht")."""


class Direction(StrEnum):
    """Which way a link's room on a network passes messages."""

    BOTH = "both"
    SEND = "send"
    """The room's messages go out to the link's other rooms; nothing comes into it."""
    RECEIVE = "receive"
    """The link's other rooms' messages come into it; nothing of it goes out."""

    @property
    def sends(self) -> bool:
        return self is not Direction.RECEIVE

    @property
    def receives(self) -> bool:
        return self is not Direction.SEND


@dataclass(frozen=True)
class RoomPolicy:
    """The rules of one room of a link (its network's defaults, with the link's overrides)."""

    direction: Direction = Direction.BOTH
    types: tuple[str, ...] | None = None
    """The media types of files the room receives, as read from the files' bytes (``type/*``
    for a whole family); None: any."""
    max_size: int | None = None
    """The largest file the room receives, in bytes; None: no limit of the bridge's own."""
    ceiling: int = 0
    """The highest classification level (its rank, `Classification.levels`) it may carry."""


def normalise_mark(mark: str) -> str:
    """A mark as compared: case and spacing do not matter ("VS-NfD" is "vs-nfd")."""
    return " ".join(mark.split()).casefold()


@dataclass(frozen=True)
class Level:
    name: str
    """How notices and logs name it."""
    marks: tuple[str, ...]
    """Everything that marks a message at this level (normalised), its name included."""


@dataclass(frozen=True)
class Classification:
    """The levels, lowest first, and where a message's mark is recognised."""

    levels: tuple[Level, ...]
    marking_line: tuple[re.Pattern[str], ...]
    """Matched against the whole first non-empty line of a message; group ``mark``."""
    subject_tag: tuple[re.Pattern[str], ...]
    """Searched for in a mail's subject; group ``mark``."""
    unmarked: int = 0
    """The level (rank) of a message without a mark."""
    _ranks: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for rank, level in enumerate(self.levels):
            self._ranks.update(dict.fromkeys(level.marks, rank))

    def rank(self, mark: str) -> int | None:
        """The rank of the level ``mark`` means, or None when it is no mark of the scheme."""
        return self._ranks.get(normalise_mark(mark))


@dataclass(frozen=True)
class Policy:
    """Every room's rules, and the classification scheme (None: messages are not classified)."""

    networks: Mapping[str, RoomPolicy] = field(default_factory=dict)
    """Network → the defaults of its rooms."""
    links: Mapping[str, Mapping[str, RoomPolicy]] = field(default_factory=dict)
    """Link → network → the rules of its room there, where the link overrides the network's."""
    classification: Classification | None = None

    def room(self, link_id: str, network: str) -> RoomPolicy:
        """The rules of ``link_id``'s room on ``network`` (any link, a direct chat too)."""
        own = self.links.get(link_id)
        if own is not None and network in own:
            return own[network]
        return self.networks.get(network) or DEFAULT


DEFAULT = RoomPolicy()


# -- reading -------------------------------------------------------------------------------------


def read_classification(r: Reader, node: Node) -> Classification | None:
    """The ``classification`` section: ``levels`` (lowest first, each ``level`` and its
    ``marks``), ``marking_line`` and ``subject_tag`` patterns, the ``unmarked`` level."""
    fields = r.fields(node, SCHEME_KEYS)
    if fields is None:
        return None
    levels_node = r.required(node, fields, "levels")
    levels = _levels(r, levels_node) if levels_node is not None else None
    values, ok = r.table(node, fields, (
        Key("marking_line", lambda r, n: _patterns(r, n), None),
        Key("subject_tag", lambda r, n: _patterns(r, n), None),
    ))  # fmt: skip
    if levels is None or not ok:
        return None
    scheme = Classification(
        levels,
        values["marking_line"] if values["marking_line"] is not None else _compiled(MARKING_LINE),
        values["subject_tag"] if values["subject_tag"] is not None else _compiled(SUBJECT_TAG),
    )
    unmarked = r.optional(fields, "unmarked", lambda n: level_rank(r, n, scheme), 0)
    return None if unmarked is None else replace(scheme, unmarked=unmarked)


def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


def _levels(r: Reader, node: Node) -> tuple[Level, ...] | None:
    items = r.items(node)
    if items is None:
        return None
    if not items:
        r.error(node, "list at least one level, the lowest first")
        return None
    seen: dict[str, str] = {}
    levels: list[Level] = []
    for item in items:
        fields = r.fields(item, LEVEL_KEYS)
        if fields is None:
            return None
        values, ok = r.table(item, fields, (
            Key("level", Reader.nonempty),
            Key("marks", Reader.string_list, ()),
        ))  # fmt: skip
        if not ok:
            return None
        name = values["level"].strip()
        if any(level.name == name for level in levels):
            r.error(item, f"level {quote(name)} is listed twice")
            return None
        marks = tuple(dict.fromkeys(normalise_mark(m) for m in (name, *values["marks"])))
        for mark in marks:
            other = seen.setdefault(mark, name)
            if other != name:
                r.error(item, f"the mark {quote(mark)} already means level {quote(other)}")
                return None
        levels.append(Level(name, marks))
    return tuple(levels)


def _patterns(r: Reader, node: Node) -> tuple[re.Pattern[str], ...] | None:
    return r.each(node, lambda item: _pattern(r, item))


def _pattern(r: Reader, item: Node) -> re.Pattern[str] | None:
    text = r.nonempty(item)
    if text is None:
        return None
    if len(text) > MAX_PATTERN:
        r.error(item, f"a pattern may have at most {MAX_PATTERN} characters")
        return None
    try:
        pattern = re.compile(text)
    except re.error as e:
        r.error(item, f"not a regular expression: {e}")
        return None
    if "mark" not in pattern.groupindex:
        r.error(item, "needs a group named mark, (?P<mark>…), around the mark")
        return None
    return pattern


def level_rank(r: Reader, node: Node, scheme: Classification | None) -> int | None:
    """A level named by its name or one of its marks, as its rank."""
    value = r.nonempty(node)
    if value is None:
        return None
    if scheme is None:
        r.error(node, "define the levels first, in the top-level classification section")
        return None
    rank = scheme.rank(value)
    if rank is None:
        names = ", ".join(quote(level.name) for level in scheme.levels)
        r.error(node, f"{quote(value)} is not a level of the classification section ({names})")
        return None
    return rank


def read_policy(
    r: Reader, node: Node, scheme: Classification | None, base: RoomPolicy = DEFAULT
) -> RoomPolicy | None:
    """A network's or a link room's ``policy``: the keys it gives replace those of ``base``."""
    fields = r.fields(node, KEYS)
    if fields is None:
        return None
    given: dict[str, Any] = {}
    before = len(r.problems)
    if "direction" in fields:
        direction = r.choice(fields["direction"], [d.value for d in Direction])
        if direction is not None:
            given["direction"] = Direction(direction)
    if "attachments" in fields:
        given.update(_attachments(r, fields["attachments"]) or {})
    if "classification" in fields:
        given["ceiling"] = level_rank(r, fields["classification"], scheme)
    return replace(base, **given) if len(r.problems) == before else None


def _attachments(r: Reader, node: Node) -> dict[str, Any] | None:
    """The ``types`` and ``max_size`` given (those not given stay as they were)."""
    fields = r.fields(node, ATTACHMENT_KEYS)
    if fields is None:
        return None
    values, ok = r.table(node, fields, (
        Key("types", lambda r, n: _media_types(r, n), None),
        Key("max_size", lambda r, n: _size(r, n), None),
    ))  # fmt: skip
    given = {key: value for key, value in values.items() if fields.get(key) is not None}
    return given if ok else None


def _media_types(r: Reader, node: Node) -> tuple[str, ...] | None:
    return r.each(node, lambda item: _media_type(r, item))


def _media_type(r: Reader, item: Node) -> str | None:
    value = r.string(item)
    if value is None:
        return None
    if not MEDIA_TYPE_RE.fullmatch(value.strip().lower()):
        r.error(item, f"{quote(value)} is not a media type (type/subtype or type/*)")
        return None
    return value.strip().lower()


def _size(r: Reader, node: Node) -> int | None:
    """Bytes, as a number or as text with a binary unit: ``512K``, ``25M``, ``1G``."""
    size = r.with_unit(
        node,
        SIZE_RE,
        lambda match: int(match.group(1)) * SIZE_UNITS[match.group(2).upper()],
        "a size (bytes, or e.g. 512K, 25M, 1G)",
    )
    return None if size is None else r.integer(size, 1)
