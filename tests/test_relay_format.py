"""Tests for connectors.matrix.relay_format (Tchap relay mode)."""

from __future__ import annotations

import pytest

from connectors.matrix.relay_format import DEFAULT_RELAY_TEMPLATE, render_relay


def test_default_template_with_text() -> None:
    body, html = render_relay(DEFAULT_RELAY_TEMPLATE, "Max Mustermann [BMI]", "Guten Tag", None)
    assert body == "Max Mustermann [BMI]: Guten Tag"
    assert html == "<strong>Max Mustermann [BMI]</strong>: Guten Tag"


def test_default_template_with_html() -> None:
    body, html = render_relay(
        DEFAULT_RELAY_TEMPLATE,
        "Max Mustermann [BMI]",
        "Treffen um **10**",
        "Treffen um <strong>10</strong>",
    )
    assert body == "Max Mustermann [BMI]: Treffen um **10**"
    assert html == "<strong>Max Mustermann [BMI]</strong>: Treffen um <strong>10</strong>"


def test_name_and_text_escaped() -> None:
    body, html = render_relay(
        DEFAULT_RELAY_TEMPLATE, "<img src=x> **{message}**", "a < b\nzweite Zeile", None
    )
    assert body == "<img src=x> **{message}**: a < b\nzweite Zeile"
    assert html == ("<strong>&lt;img src=x&gt; **{message}**</strong>: a &lt; b<br>zweite Zeile")


def test_template_without_bold() -> None:
    body, html = render_relay("{name} a écrit : {message}", "Jean & Co", "salut", None)
    assert body == "Jean & Co a écrit : salut"
    assert html == "Jean &amp; Co a écrit : salut"


def test_unpaired_marker_stays_literal() -> None:
    body, html = render_relay("**{name}** ** {message}", "Max", "hi", None)
    assert body == "Max ** hi"
    assert html == "<strong>Max</strong> ** hi"


def test_other_braces_literal() -> None:
    body, html = render_relay("[{name}] {x} {message}", "Max", "hi", None)
    assert body == "[Max] {x} hi"
    assert html == "[Max] {x} hi"


def test_template_must_contain_message() -> None:
    with pytest.raises(ValueError):
        render_relay("**{name}**", "Max", "hi", None)
