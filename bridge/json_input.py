"""JSON from a network, read so that no single value in it can stop the stream it came with.

A homeserver relays what its users (and other servers' users) put into events, and it retries a
transaction the bridge could not take, forever and in order: one event that makes the parser
fail would hold up every later event of that homeserver. So `loads` never fails on what the
standard library would choke on inside otherwise valid JSON:

- bytes that are not UTF-8 become U+FFFD;
- ``\\ud800``-style escapes of lone surrogates (which no UTF-8 encoder accepts later, when the
  text is stored or sent) become U+FFFD;
- integers longer than `MAX_INT_DIGITS` digits (Python refuses to convert those beyond 4,300
  digits, and Matrix allows 53 bits), ``NaN``/``Infinity`` and floats that overflow become null;
- arrays and objects nested deeper than `MAX_DEPTH` become null (``json`` recurses per level,
  and so would anything that walks the value later).

Text that is not JSON at all still raises `Unreadable`.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 48
"""Deepest nesting kept: a transaction or ``/sync`` envelope needs about eight levels, event
content a few more."""
MAX_INT_DIGITS = 20

_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STRUCTURE = re.compile(_STRING.pattern + r"|[\[\]{}]", re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class Unreadable(json.JSONDecodeError):
    """The text is not JSON; the message says where. A `json.JSONDecodeError`, so that code
    expecting the standard library's error (mautrix's, aiohttp's) handles it alike."""


def _int(text: str) -> int | None:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else None


def _float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _constant(_: str) -> None:
    return None


def _decode(text: str) -> Any:
    return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)


def loads(data: bytes | bytearray | str) -> Any:
    """The value of a JSON document from a network (see the module docstring for what is
    replaced); raises `Unreadable` when it is not JSON."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else data
    if "\\u" in text:
        text = _LONE_SURROGATE.sub(r"\\ufffd", text)
    try:
        try:
            return _limited(_decode(text), text)
        except RecursionError:
            return _decode(_flatten(text))
    except json.JSONDecodeError as e:
        raise Unreadable(f"not JSON: {e.msg}", e.doc, e.pos) from None
    except RecursionError:
        raise Unreadable("not JSON: nested too deeply", text, 0) from None


def _limited(value: Any, text: str) -> Any:
    """``value``, or the text decoded again with its deep parts cut when it nests deeper than
    `MAX_DEPTH` (told by counting brackets only when there are enough of them)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH or not _deeper_than(text, MAX_DEPTH):
        return value
    return _decode(_flatten(text))


def _deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit``: the brackets outside strings,
    summed up at C speed (this runs on every large document)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _flatten(text: str) -> str:
    """``text`` with every array or object that opens deeper than `MAX_DEPTH` replaced by
    ``null``: one linear pass over its brackets, strings skipped whole."""
    out: list[str] = []
    depth = 0
    cut_from: int | None = None
    kept_until = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH and cut_from is None:
                cut_from = match.start()
        elif token in "]}":
            if cut_from is not None and depth == MAX_DEPTH + 1:
                out.append(text[kept_until:cut_from])
                out.append("null")
                kept_until = match.end()
                cut_from = None
            depth -= 1
    out.append(text[kept_until:] if cut_from is None else text[kept_until:cut_from] + "null")
    return "".join(out)
