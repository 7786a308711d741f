"""Tests of connectors.email.headers: what the bridge writes into a mail header is one clean
line with no encoded word left for a parser to decode into a line break."""

from __future__ import annotations

import pytest

from connectors.email.headers import header_text, one_line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Max Mustermann", "Max Mustermann"),
        (
            "=?utf-8?q?Erika=0D=0AReply-To:_attacker=40evil=2Eexample?=",
            "Erika Reply-To: attacker@evil.example",
        ),
        ("Jürgen =?utf-8?q?M=C3=BCller?= [BMI]", "Jürgen Müller [BMI]"),
        ("=?iso-8859-1?q?J=FCrgen?= =?utf-8?b?TcO8bGxlcg==?=", "Jürgen Müller"),
        # An encoded word holding an encoded word of a line break: decoded to the end.
        ("=?utf-8?q?=3D=3Futf-8=3Fq=3FA=3D0D=3D0AB=3F=3D?=", "A B"),
        # What does not decode is broken up, so that no later parser decodes it either.
        ("=?x-unknown?q?a=0Db?=", "= ?x-unknown?q?a=0Db?="),
        ("Is 1 =? 2", "Is 1 = ? 2"),
        ("a\r\nb\x00c\x1bd\x7fe\x85f", "a b c d e f"),
        ("line\u2028separator\u2029paragraph", "line separator paragraph"),
        ("\u202eevil\u202c \u2066isolated\u2069 \u200fmark", "evil isolated mark"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("  spaced \t out  ", "spaced out"),
        ("👩\u200d👩\u200d👧 Familie", "👩\u200d👩\u200d👧 Familie"),
    ],
)
def test_header_text(text: str, expected: str) -> None:
    assert header_text(text) == expected


def test_one_line_keeps_encoded_words_as_text() -> None:
    """SMTP replies and log lines are not headers: only line breaks and controls go."""
    assert one_line("=?utf-8?q?a?=\r\n\tb") == "=?utf-8?q?a?= b"
