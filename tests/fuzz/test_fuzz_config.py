"""Generated configs against the loader: every problem is a located line, never an exception,
and a secret's value is never repeated in one."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.config import check_config
from tests.test_config import VALID

SECRET = "S3cr3tT0ken"
YAML_SCALARS = st.sampled_from([
    "~", "true", "0", "-1", "1e999", ".nan", "-.inf", "0x1F", "0o17", "'quoted'", '"dq\\n"',
    "!!int x", "!!float y", "!!bool maybe", "!!set {a}", "!!omap [a: 1]", "!!binary aGk=",
    "!!timestamp 2001-12-14", "!!python/object:os.system {}", "&a [1]", "*a", "[1, [2, [3]]]",
    "{a: {b: {c: d}}}", "2001-12-14", "9" * 400, "'" + "x" * 500 + "'", "|\n  block", "? x",
    "{name:>900000000}", "{file: /proc/self/environ}", "{file: /dev/zero}", "{env: NOPE}",
    "@a:b", "!r:b", "#a:b", "[" * 300 + "]" * 300, "<<: *a", "%TAG ! x", "---", "...",
])  # fmt: skip
FIELDS = [
    "http://127.0.0.1:8008", "bund.test", "tchap", "relay",
    '"@bot:tchap.test"', "max", "Max Mustermann", '{bund: "@max:bund.test"}',
    "wg", "[max, jean]", '"!abc:bund.test"', "{create: {name: WG}}",
]  # fmt: skip


def check(text: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        config, errors = check_config(path, {})
    assert (config is None) == bool(errors)
    assert all(isinstance(e, str) and e.startswith(str(path)) for e in errors)
    return errors


@given(st.lists(st.tuples(st.sampled_from(FIELDS), YAML_SCALARS), max_size=3))
@example([("http://127.0.0.1:8008", "[" * 300 + "]" * 300)])
@example([("http://127.0.0.1:8008", "!!bool maybe")])
def test_values_replaced_by_odd_yaml(replacements: list[tuple[str, str]]) -> None:
    text = VALID
    for field, value in replacements:
        text = text.replace(field, value, 1)
    check(text)


SECRET_FORMS = st.sampled_from([
    "!!int {}", "!!float {}", "!!bool {}", "!!timestamp {}", "!!binary {}", "!!null {}",
    "!!set {{{}}}", "!!omap [{}: 1]", "!!seq [{}]", "!!map {{{}: 1}}", "[{}]", "{{{}: 1}}",
    "{{env: x, {}: 1}}", "{{file: x, {}: y}}", "{{{}: [1]}}", "? {}", "!!python/name:{}",
    "{{env: [{}]}}", "{{file: {{{}: 1}}}}",
])  # fmt: skip


@given(SECRET_FORMS, st.sampled_from(["as_token", "hs_token", "access_token"]))
@example("!!int {}", "as_token")
@example("!!timestamp {}", "as_token")
def test_a_secret_written_wrongly_is_never_repeated(form: str, key: str) -> None:
    text = VALID.replace(
        {"as_token": "as-secret", "hs_token": "hs-secret", "access_token": "relay-secret"}[key],
        form.format(SECRET),
    )
    for error in check(text):
        assert SECRET not in error


@given(st.text(max_size=300), st.integers(min_value=0, max_value=len(VALID)))
@example("\x00", 10)
@example("\ufeff", 0)
@example(" =", 5)
@example("\n  ? *x\n  : 1\n", 9)
@example("[", VALID.index("8008"))
def test_text_inserted_anywhere(insert: str, at: int) -> None:
    check(VALID[:at] + insert + VALID[at:])


@given(st.binary(max_size=200))
def test_bytes_that_are_not_text(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(data)
        config, errors = check_config(path, {})
    assert config is None or not errors
