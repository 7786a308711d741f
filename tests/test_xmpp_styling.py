"""XEP-0393 message styling ↔ Matrix HTML."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.xmpp.styling import MAX_QUOTE_DEPTH, html_to_styled, styled_to_html

STYLED = [
    ("*bold* _it_ ~gone~ `code`",
     "<strong>bold</strong> <em>it</em> <del>gone</del> <code>code</code>"),
    ("a *b _c_*", "a <strong>b <em>c</em></strong>"),
    ("`no *bold* in code`", "<code>no *bold* in code</code>"),
    ("> quoted *b*\n> more\nafter", "<blockquote>quoted <strong>b</strong><br>more"
     "</blockquote>after"),
    (">> nested\n> outer", "<blockquote><blockquote>nested</blockquote>outer</blockquote>"),
    ("```py\ndef f():\n  *x*\n```\nend", "<pre><code>def f():\n  *x*</code></pre>end"),
    ("```\nnever closed", "<pre><code>never closed</code></pre>"),
    ("line one *b*\nline two", "line one <strong>b</strong><br>line two"),
    ("<b>not html</b> *x*", "&lt;b&gt;not html&lt;/b&gt; <strong>x</strong>"),
    # Text without styling has no HTML:
    ("plain text", None),
    ("2*3*4 and snake_case_name", None),  # directives inside words are text
    ("* not a span*", None),  # an opening directive followed by whitespace
    ("*not a span *", None),  # a closing directive preceded by whitespace
    ("**", None),  # empty spans do not exist
    ("*spans never\ncross lines*", None),
]  # fmt: skip
"""XEP-0393 bodies and the HTML they become (None: they are plain text)."""
FROM_HTML = [
    ("<b>bold</b> and <i> it </i> <code>x</code>", "*bold* and _it_ `x`"),
    ("<strong>s</strong><em>e</em><del>d</del><s>s</s>", "*s*_e_~d~~s~"),
    ('<pre><code class="language-py">def f():\n  return 1\n</code></pre>',
     "```\ndef f():\n  return 1\n```"),
    ("<blockquote>quote <b>b</b></blockquote>after", "> quote *b*\n\nafter"),
    ('<p>para</p><ul><li>one</li><li>two</li></ul><a href="https://x.example">link</a>',
     "para\n\n- one\n- two\n\nlink (https://x.example)"),
    ("a<br>b &lt;c&gt;", "a\nb <c>"),
    ("<b> </b>x", "x"),
    ("<u>underline</u> has no XEP-0393 form", "underline has no XEP-0393 form"),
]  # fmt: skip
"""HTML and the XEP-0393 body it becomes."""


@pytest.mark.parametrize(
    ("convert", "given", "expected"),
    [
        *((styled_to_html, body, html) for body, html in STYLED),
        *((html_to_styled, html, body) for html, body in FROM_HTML),
    ],
)
def test_conversion(convert: Callable[[str], str | None], given: str, expected: str | None) -> None:
    assert convert(given) == expected


def test_round_trip_of_the_common_styles() -> None:
    body = "*bold* _it_ ~del~ `code`"
    html = styled_to_html(body)
    assert html is not None and html_to_styled(html) == body


def test_directives_that_never_close_stay_text_however_many() -> None:
    """A body of directives that each open no span (each closing one follows a space) was read
    in time growing with the square of its length: 63 KB took half a minute."""
    assert styled_to_html("*a " * 21000) is None
    html = styled_to_html("*a* " * 3 + "_b " * 1000 + "~c~")
    assert html is not None and html.count("<strong>a</strong>") == 3
    assert html.endswith("<del>c</del>") and "<em>" not in html


def test_quotes_nest_only_so_deep_and_deeper_markers_stay_text() -> None:
    html = styled_to_html(">" * 5000 + " deep")
    assert html is not None
    assert html.count("<blockquote>") == MAX_QUOTE_DEPTH
    text = "&gt;" * (5000 - MAX_QUOTE_DEPTH) + " deep"
    assert html.endswith(text + "</blockquote>" * MAX_QUOTE_DEPTH)
