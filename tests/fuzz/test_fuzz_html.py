"""Generated HTML against the sanitizer and the HTML renderers: they never raise, and what the
sanitizer lets through holds nothing a reader's client would run or fetch."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from bridge.html import (
    ALLOWED_TAGS,
    MAX_DEPTH,
    URL_SCHEMES,
    Element,
    element_tree,
    html_to_text,
    sanitize,
    strip_reply_fallback,
)

TAGS = [
    "b",
    "i",
    "a",
    "img",
    "script",
    "style",
    "div",
    "ul",
    "li",
    "ol",
    "blockquote",
    "pre",
    "code",
    "span",
    "font",
    "table",
    "tr",
    "td",
    "mx-reply",
    "details",
    "svg",
    "iframe",
    "p",
]
ATTRIBUTES = ["href", "src", "onclick", "onerror", "style", "class", "data-mx-color", "start"]
VALUES = ["javascript:alert(1)", " javascript:x", "mxc://a/b", " mxc://a/b", "\x01mxc://a/b",
          "https://tracker.example/p.png", "data:text/html,x", "//evil.example", "#f00",
          "language-python", "1" * 9, "JaVaScRiPt:x", "vbscript:x"]  # fmt: skip
PIECE = st.one_of(
    st.builds(lambda t, a, v: f'<{t} {a}="{v}">', st.sampled_from(TAGS),
              st.sampled_from(ATTRIBUTES), st.sampled_from(VALUES)),
    st.sampled_from(TAGS).map(lambda t: f"<{t}>"),
    st.sampled_from(TAGS).map(lambda t: f"</{t}>"),
    st.text(max_size=10),
    st.sampled_from(["&amp;", "&#x3c;script&#x3e;", "<!--", "-->", "<![CDATA[", "]]>", "<", ">"]),
)  # fmt: skip
HTML = st.lists(PIECE, max_size=60).map("".join)
URL_TRIM = "".join(chr(c) for c in range(0x21))


def elements(node: Element) -> list[Element]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(c for c in current.children if isinstance(c, Element))
    return found


@given(HTML)
@example("<ul><li>" * 10_000 + "x")
@example('<a href=" mxc://a/b">x</a><img src="\x01https://t.example/p.png">')
@example("<b>" * 5_000 + "<mx-reply>" * 500 + "x")
@example('<iframe href="javascript:alert(1)"><b href="javascript:alert(1)">')
def test_sanitized_html_is_safe(html: str) -> None:
    clean = sanitize(html)
    for element in elements(element_tree(clean)):
        assert element.tag in ALLOWED_TAGS or element.tag == ""
        for name, value in element.attrs.items():
            assert not name.startswith("on") and name != "style"
            url = value.strip(URL_TRIM).lower()
            if name == "href":
                assert url.split(":", 1)[0] in URL_SCHEMES - {"mxc"}, value
            if name == "src":
                assert element.tag == "img" and url.startswith("mxc://"), value
    assert clean.count("<ul>") <= MAX_DEPTH + 1
    html_to_text(clean)
    strip_reply_fallback(clean)


@given(HTML)
def test_rendering_unsanitized_html_never_raises(html: str) -> None:
    html_to_text(html)
    strip_reply_fallback(html)
