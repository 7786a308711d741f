"""Tests of connectors.email.head: a received mail's header block is measured as bytes, before
anything parses it, against the network's limits."""

from __future__ import annotations

import pytest

from connectors.email.head import HeaderLimits, OverLimit, fields, header_end

LIMITS = HeaderLimits(max_bytes=4096, max_fields=20, max_field_bytes=1000)


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"From: a@b.test\r\nSubject: Hi\r\n\r\nHallo\r\n", b"Hallo\r\n"),
        (b"From: a@b.test\nSubject: Hi\n\nHallo\n", b"Hallo\n"),
        # The email package ends lines at a lone CR too.
        (b"From: a@b.test\rSubject: Hi\r\rHallo", b"Hallo"),
        (b"From: a@b.test\r\n\nHallo", b"Hallo"),
        (b"From: a@b.test\r\nSubject: no body\r\n", b""),
        (b"\r\nA body and no header", b"A body and no header"),
    ],
)
def test_the_header_block_ends_at_the_first_empty_line(raw: bytes, body: bytes) -> None:
    assert raw[header_end(raw, LIMITS) :] == body


def test_folded_fields_are_one_field_each() -> None:
    block = b"From: a@b.test\r\nSubject: a\r\n  long\r\n\tsubject\r\nX-Empty:\r\n\r\n"
    assert fields(block) == [
        (b"From", b" a@b.test"),
        (b"Subject", b" a  long\tsubject"),
        (b"X-Empty", b""),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Subject: " + b"x" * 5000 + b"\r\n\r\nHallo", "Header block larger than 4096 bytes"),
        (b"From: a@b.test\r\n" * 300, "Header block larger than 4096 bytes"),
        (b"X-A: b\r\n" * 21 + b"\r\n", "More than 20 header fields"),
        (
            b"From: a@b.test\r\nSubject: " + b"=?utf-8?q?a?=\r\n " * 80 + b"\r\n\r\nHallo",
            "Header field Subject longer than 1000 bytes",
        ),
        (
            b"\x00\r\n" + b"y" * 1200 + b"\r\n\r\n",
            "Header field " + "y" * 40 + " longer than 1000 bytes",
        ),
        (b"\x1b[31m\r\n" + b" z" * 600 + b"\r\n\r\n", "Header field [31m longer than 1000 bytes"),
    ],
)
def test_a_header_block_over_the_limits_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(OverLimit) as refused:
        header_end(raw, LIMITS)
    assert str(refused.value) == reason


def test_only_the_header_block_is_looked_at() -> None:
    """A body as large as the message size allows is no header block."""
    raw = b"From: a@b.test\r\n\r\n" + b"x" * 100_000 + b"\r\n\r\n"
    assert header_end(raw, LIMITS) == 18
