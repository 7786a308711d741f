"""The fast reader of the config: a large mapping (10,000 links, 100,000 people) read in about a
second, where ruamel's pure-Python round-trip loader takes a minute.

yaml-rs (a YAML 1.2 parser in Rust) turns the text into plain dicts and lists. The document
carries no positions, so it is only good for a config that turns out valid: `check_config`
reports every problem from the round-trip document instead. Two rules keep the readers in
agreement:

- text using a construct they could read differently (tags, anchors and aliases, merge keys,
  directives, several documents, ruamel's ``=`` value token, a byte-order mark) is left to the
  round-trip loader (`fast_document` returns None);
- the long top-level lists (``people``, ``links``) are parsed a few thousand items at a time
  while validation drains them (`LazyItems`), so the mapping never exists in memory both as
  YAML values and as config objects. A piece that does not parse as exactly those items stops
  the fast reader (`FastReadFailed`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml_rs

from bridge.config.reader import LazyItems

LONG_SECTIONS = ("people", "links")
CHUNK_ITEMS = 2_000
_NODE_START_CHARS = "!&*="
_BEFORE_NODE = " \t\r\n[{,:"
_NOT_PLAIN_TEXT = ("<<", "\n%", "\n---", "\n...", "\ufeff")
_TOP_LEVEL_KEY = re.compile(r"\n(?=[^\s#-])")
"""A line starting in column 0 with no space, comment or list item: the next top-level key."""
_FIRST_ITEM = re.compile(r"\n( *)-(?=[ \n])")


class FastReadFailed(Exception):
    """The fast reader cannot tell what this text means; the round-trip loader will."""


def _node_starts_with_indicator(text: str) -> bool:
    """Whether a node starts with ``!&*=`` (the character follows a separator): a loop over the
    few occurrences, many times faster than a regular expression over a large file."""
    for char in _NODE_START_CHARS:
        i = text.find(char)
        while i != -1:
            if i == 0 or text[i - 1] in _BEFORE_NODE:
                return True
            i = text.find(char, i + 1)
    return False


def plain(text: str) -> bool:
    """Whether `text` avoids every construct the two readers could read differently.
    Over-matching (such a character inside quotes or a comment) only costs the slow path."""
    if text.startswith(("%", "---", "...")):
        return False
    return not any(s in text for s in _NOT_PLAIN_TEXT) and not _node_starts_with_indicator(text)


def fast_document(text: str) -> Any:
    """The document as plain dicts and lists (long sections as `LazyItems`), or None when the
    round-trip loader must read it: a construct it could read differently, or a parse error
    (which the round-trip loader reports with its position)."""
    if not plain(text):
        return None
    try:
        return _document(text)
    except Exception:
        return None


def _document(text: str) -> dict[str, Any] | None:
    """Each top-level key's block parsed on its own, the long lists lazily."""
    starts = [0, *(m.start() + 1 for m in _TOP_LEVEL_KEY.finditer(text)), len(text)]
    doc: dict[str, Any] = {}
    for start, end in zip(starts, starts[1:], strict=False):
        block = text[start:end]
        key = block.split(":", 1)[0]
        lazy = _lazy_section(key, block) if key in LONG_SECTIONS else None
        value: Any
        if lazy is not None:
            value = {key: lazy}
        else:
            value = yaml_rs.loads(block)
            if value is None:  # comments only
                continue
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) in doc:
            raise FastReadFailed("a top-level block is not one new key")
        doc.update(value)
    return doc or None


def _lazy_section(key: str, block: str) -> LazyItems | None:
    """``key:`` followed by a block sequence, as pieces of `CHUNK_ITEMS` items parsed on
    demand; None when the block is anything else (it is then parsed whole)."""
    head_end = block.find("\n")
    if head_end == -1 or block[:head_end].split("#", 1)[0].strip() != f"{key}:":
        return None
    first = _FIRST_ITEM.search(block, head_end)
    if first is None or not _comments_only(block[head_end : first.start()]):
        return None
    item = re.compile("\n" + first.group(1) + r"-(?=[ \n])")
    starts = [m.start() for m in item.finditer(block, first.start())]
    return LazyItems(_chunks(key, block[:head_end], block, starts))


def _comments_only(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.split("\n"))


def _chunks(key: str, head: str, block: str, starts: list[int]) -> Iterator[list[Any]]:
    for i in range(0, len(starts), CHUNK_ITEMS):
        end = starts[i + CHUNK_ITEMS] if i + CHUNK_ITEMS < len(starts) else len(block)
        try:
            piece = yaml_rs.loads(head + block[starts[i] : end])
        except Exception as e:
            raise FastReadFailed(f"{key}: a piece does not parse") from e
        items = piece.get(key) if isinstance(piece, dict) and len(piece) == 1 else None
        if not isinstance(items, list) or len(items) != min(CHUNK_ITEMS, len(starts) - i):
            raise FastReadFailed(f"{key}: a piece is not the expected items")
        yield items
