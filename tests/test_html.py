"""Tests for bridge.html with payloads shaped like real Element / Matrix events."""

from __future__ import annotations

import pytest

from bridge.html import (
    MAX_DEPTH,
    escape,
    html_to_text,
    sanitize,
    strip_plain_reply_fallback,
    strip_reply_fallback,
    text_to_html,
)
from connectors.xmpp.styling import html_to_styled

# formatted_body of an Element Web reply (with the legacy reply fallback).
ELEMENT_REPLY_HTML = (
    '<mx-reply><blockquote><a href="https://matrix.to/#/!abcdef:bund.example/'
    '$Vc1XpXYpl8e9yN0TwrvIzEtCVSbfVT53gqP3z4FyEyM?via=bund.example">In reply to</a> '
    '<a href="https://matrix.to/#/@max.mustermann:bund.example">@max.mustermann:bund.example</a>'
    "<br>Treffen morgen um 10?</blockquote></mx-reply>"
    "Oui, <strong>10h</strong> c'est parfait."
)
ELEMENT_REPLY_BODY = (
    "> <@max.mustermann:bund.example> Treffen morgen um 10?\n\nOui, **10h** c'est parfait."
)


SANITIZED = {
    "script-and-style-vanish-with-content": (
        "<p>Bonjour<script>alert(1)</script><style>p{color:red}</style></p>", "<p>Bonjour</p>"),
    "event-handlers-removed": ('<b onclick="steal()" onmouseover="x()">gras</b>', "<b>gras</b>"),
    "javascript-url-removed": (
        '<a href="javascript:alert(document.cookie)">clic</a>', "<a>clic</a>"),
    "link-keeps-href-target-and-gets-no-rel": (
        '<a href="https://www.tchap.gouv.fr" target="_blank" rel="noopener">Tchap</a>',
        '<a href="https://www.tchap.gouv.fr" target="_blank">Tchap</a>'),
    "relative-link-removed": ('<a href="/etc/passwd">x</a>', "<a>x</a>"),
    "mxc-link-removed": ('<a href="mxc://bund.example/abc">x</a>', "<a>x</a>"),
    "non-mxc-image-source-removed": (
        '<img src="https://tracker.example/pixel.png" alt="logo">', '<img alt="logo">'),
    "bogus-dimensions-dropped": (
        '<img src="mxc://a.example/b" width="100%" height="expression(1)">',
        '<img src="mxc://a.example/b">'),
    "code-class-only-language": (
        '<pre><code class="language-python hljs evil">print(1)</code></pre>',
        '<pre><code class="language-python">print(1)</code></pre>'),
    "code-class-without-language": ('<code class="hljs">x</code>', "<code>x</code>"),
    "colour-with-css-dropped": (
        '<span data-mx-color="red;background:url(x)">c</span>', "<span>c</span>"),
    "disallowed-tags-unwrapped-and-attributes-dropped": (
        '<p style="color:red" class="x" id="y">a<iframe src="https://e.x"></iframe>'
        "<marquee>b</marquee></p>", "<p>ab</p>"),
    "comments-removed": ("a<!-- secret -->b", "ab"),
    "empty": ("", ""),
    "svg-onload-removed": ('<svg onload="alert(1)"><circle/></svg>ok', "ok"),
}  # fmt: skip
"""HTML as a client may send it, and what of it the bridge passes on."""
KEPT = {
    "element-reply": ELEMENT_REPLY_HTML,
    "mxc-image-with-dimensions": (
        '<img src="mxc://bund.example/AbCd" width="32" height="32" alt=":ok:" title="ok">'
    ),
    "colours-and-spoilers": (
        '<font color="#ff0000" data-mx-color="#00ff00" data-mx-bg-color="black">c</font>'
        '<span data-mx-spoiler="fin du film" data-mx-color="#123456">caché</span>'
    ),
    "maths-and-ol-start": '<div data-mx-maths="x^2">x²</div><ol start="3"><li>trois</li></ol>',
    "details-and-tables": (
        "<details><summary>Plus</summary><table><caption>T</caption><thead><tr><th>a</th>"
        "</tr></thead><tbody><tr><td>1</td></tr></tbody></table></details>"
    ),
}
"""HTML the bridge passes on as it is."""


class TestSanitize:
    @pytest.mark.parametrize(("html", "clean"), SANITIZED.values(), ids=SANITIZED)
    def test_cleaned(self, html: str, clean: str) -> None:
        assert sanitize(html) == clean

    @pytest.mark.parametrize("html", KEPT.values(), ids=KEPT)
    def test_kept_intact(self, html: str) -> None:
        assert sanitize(html) == html

    def test_javascript_url_in_any_case_removed(self) -> None:
        assert "javascript" not in sanitize('<a href=" JaVaScRiPt:alert(1)">x</a>')

    def test_allowed_link_schemes(self) -> None:
        for href in (
            "http://a.example/",
            "ftp://a.example/f",
            "mailto:jean.dupont@interieur.gouv.fr",
            "magnet:?xt=urn:btih:c12fe1",
            "matrix:u/alice:example.org",
        ):
            assert f'href="{href}"' in sanitize(f'<a href="{href}">x</a>'), href

    @pytest.mark.parametrize("space", [" ", "\t", "\n", "\x01", "  \r\n"])
    def test_urls_are_checked_as_browsers_read_them(self, space: str) -> None:
        """Spaces and control characters around a URL are ignored by URL parsers: they must
        not carry an mxc link or a remote image past the checks."""
        assert sanitize(f'<a href="{space}mxc://bund.example/abc">x</a>') == "<a>x</a>"
        assert sanitize(f'<img src="{space}https://tracker.example/p.png">') == "<img>"
        assert sanitize(f'<img src="{space}mxc://bund.example/a">') == (
            '<img src="mxc://bund.example/a">'
        )

    def test_deep_nesting_is_cut_and_quick(self) -> None:
        """Ten thousand nested lists would hold the sanitizer for seconds (its parser is
        quadratic in the depth) and every tree walk would overflow the stack."""
        out = sanitize("<ul><li>" * 10_000 + "tief" + "</li></ul>" * 10_000)
        assert out.count("<ul>") <= MAX_DEPTH
        assert html_to_text(out).endswith("tief")
        assert html_to_text("<b>" * 5_000 + "fett") == "fett"
        assert html_to_styled("<em>" * 5_000 + "x").strip("_") == "x"


class TestReplyFallback:
    def test_strip_html_fallback(self) -> None:
        assert (
            strip_reply_fallback(ELEMENT_REPLY_HTML) == "Oui, <strong>10h</strong> c'est parfait."
        )

    def test_strip_html_without_fallback_is_identity(self) -> None:
        assert strip_reply_fallback("<p>hi</p>") == "<p>hi</p>"
        assert strip_reply_fallback("hi <mx-reply>x</mx-reply>") == "hi <mx-reply>x</mx-reply>"

    def test_strip_nested_fallback(self) -> None:
        html = "<mx-reply><blockquote><mx-reply>old</mx-reply>mid</blockquote></mx-reply>new"
        assert strip_reply_fallback(html) == "new"

    def test_unterminated_fallback_left_alone(self) -> None:
        assert strip_reply_fallback("<mx-reply>never closed") == "<mx-reply>never closed"

    def test_strip_plain_fallback(self) -> None:
        assert strip_plain_reply_fallback(ELEMENT_REPLY_BODY) == "Oui, **10h** c'est parfait."

    def test_strip_plain_multiline_fallback(self) -> None:
        body = "> <@a:b> ligne 1\n> ligne 2\n>\n> ligne 4\n\nréponse\n\n> citation gardée"
        assert strip_plain_reply_fallback(body) == "réponse\n\n> citation gardée"

    def test_strip_plain_without_fallback(self) -> None:
        assert strip_plain_reply_fallback("pas de citation") == "pas de citation"


class TestEscaping:
    def test_escape(self) -> None:
        assert escape("<b>&\"'") == "&lt;b&gt;&amp;&quot;&#x27;"

    def test_text_to_html(self) -> None:
        assert text_to_html("a < b\nc & d\r\ne") == "a &lt; b<br>c &amp; d<br>e"


AS_TEXT = {
    "reply-fallback-left-out": (ELEMENT_REPLY_HTML, "Oui, 10h c'est parfait."),
    "paragraphs-and-breaks": (
        "<p>Bonjour,</p>\n<p>ligne 1<br>ligne 2</p><p>fin</p>",
        "Bonjour,\n\nligne 1\nligne 2\n\nfin"),
    "links-and-pills": (
        '<a href="https://matrix.to/#/@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr">'
        'Jean Dupont [Intérieur]</a>: voir <a href="https://www.bsi.bund.de">le BSI</a> ou '
        '<a href="https://x.example">https://x.example</a> / <a href="mailto:a@b.fr">a@b.fr</a>',
        "Jean Dupont [Intérieur]: voir le BSI (https://www.bsi.bund.de) ou "
        "https://x.example / a@b.fr"),
    "lists": (
        '<ul><li>un</li><li>deux<ol start="3"><li>trois</li><li>quatre</li></ol></li></ul>',
        "- un\n- deux\n  3. trois\n  4. quatre"),
    "blockquote-and-code": (
        "<blockquote><p>cité</p><p>encore</p></blockquote>"
        '<pre><code class="language-python">def f():\n    return 1\n</code></pre>'
        "fin <code>x  y</code>",
        "> cité\n>\n> encore\n\ndef f():\n    return 1\n\nfin x y"),
    "entities-images-and-scripts": (
        '<p>a &amp; b &lt;c&gt;</p><img src="mxc://a/b" alt="photo"><script>x()</script>',
        "a & b <c>\n\nphoto"),
    "table-and-hr": (
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table><hr>z",
        "a | b\n1 | 2\n\n---\n\nz"),
    "whitespace-collapsed": ("  <p>\n  Hallo   <b>Welt</b>\n</p>  ", "Hallo Welt"),
    "malformed-html": ("<p>a<b>b</p>c</i>", "ab\n\nc"),
}  # fmt: skip
"""HTML and the plain text it reads as."""


class TestHtmlToText:
    @pytest.mark.parametrize(("html", "text"), AS_TEXT.values(), ids=AS_TEXT)
    def test_html_to_text(self, html: str, text: str) -> None:
        assert html_to_text(html) == text

    def test_plain_text_roundtrip(self) -> None:
        text = "ligne 1\nligne <2> & co"
        assert html_to_text(text_to_html(text)) == text
