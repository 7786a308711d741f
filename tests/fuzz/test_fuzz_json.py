"""`bridge.json_input.loads`: whatever bytes a homeserver sends, the result is either a value
every later step can store and send (UTF-8 encodable, bounded depth and numbers) or
`Unreadable`, never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.json_input import MAX_DEPTH, MAX_INT_DIGITS, Unreadable, loads

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    """Nesting depth, without recursion (the value may be deep if `loads` failed)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def check(data: bytes) -> None:
    try:
        value = loads(data)
    except Unreadable:
        return
    assert depth(value) <= MAX_DEPTH + 1
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    for number in (v for v in _leaves(value) if isinstance(v, int) and not isinstance(v, bool)):
        assert len(str(abs(number))) <= MAX_INT_DIGITS


def _leaves(value: Any) -> list[Any]:
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            out.append(item)
    return out


@given(st.binary(max_size=2000))
@example(b"\xff\xfe{}")
@example(b'{"a": "\\ud800"}')
@example(b'{"a": "\\udc00\\ud83d\\ude00\\ud83d"}')
@example(b'{"n": ' + b"9" * 5000 + b"}")
@example(b'{"f": 1e999, "g": NaN, "h": -Infinity}')
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b', {"ok": 1}]}')
@example(b'["\\"[[[[", ' + b"{" * 3000 + b"}" * 3000 + b"]")
@example(b"[" * 5000)
def test_any_bytes(data: bytes) -> None:
    check(data)


@given(JSON_VALUES, st.integers(min_value=0, max_value=200))
def test_valid_json_survives_wrapping_in_depth(value: Any, levels: int) -> None:
    data = ("[" * levels + json.dumps(value) + "]" * levels).encode()
    check(data)
    if levels + depth(value) <= MAX_DEPTH:
        assert loads(data) == json.loads(data, parse_constant=lambda _: None) or _has_odd(value)


def _has_odd(value: Any) -> bool:
    """NaN, infinities and long integers are read differently on purpose."""
    return any(
        (isinstance(v, float) and v != v) or v in (float("inf"), float("-inf"))
        or (isinstance(v, int) and len(str(abs(v))) > MAX_INT_DIGITS)
        for v in _leaves(value)
    )  # fmt: skip
