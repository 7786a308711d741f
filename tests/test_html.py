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


class TestSanitize:
    def test_keeps_element_reply_intact(self) -> None:
        assert sanitize(ELEMENT_REPLY_HTML) == ELEMENT_REPLY_HTML

    def test_script_and_style_vanish_with_content(self) -> None:
        html = "<p>Bonjour<script>alert(1)</script><style>p{color:red}</style></p>"
        assert sanitize(html) == "<p>Bonjour</p>"

    def test_event_handlers_removed(self) -> None:
        out = sanitize('<b onclick="steal()" onmouseover="x()">gras</b>')
        assert out == "<b>gras</b>"

    def test_javascript_url_removed(self) -> None:
        out = sanitize('<a href="javascript:alert(document.cookie)">clic</a>')
        assert out == "<a>clic</a>"
        assert "javascript" not in sanitize('<a href=" JaVaScRiPt:alert(1)">x</a>')

    def test_link_keeps_href_target_and_gets_no_rel(self) -> None:
        html = '<a href="https://www.tchap.gouv.fr" target="_blank" rel="noopener">Tchap</a>'
        assert sanitize(html) == '<a href="https://www.tchap.gouv.fr" target="_blank">Tchap</a>'

    def test_allowed_link_schemes(self) -> None:
        for href in (
            "http://a.example/",
            "ftp://a.example/f",
            "mailto:jean.dupont@interieur.gouv.fr",
            "magnet:?xt=urn:btih:c12fe1",
            "matrix:u/alice:example.org",
        ):
            assert f'href="{href}"' in sanitize(f'<a href="{href}">x</a>'), href

    def test_relative_and_mxc_links_removed(self) -> None:
        assert sanitize('<a href="/etc/passwd">x</a>') == "<a>x</a>"
        assert sanitize('<a href="mxc://bund.example/abc">x</a>') == "<a>x</a>"

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

    def test_non_mxc_image_source_removed(self) -> None:
        out = sanitize('<img src="https://tracker.example/pixel.png" alt="logo">')
        assert out == '<img alt="logo">'

    def test_mxc_image_kept_with_dimensions(self) -> None:
        html = '<img src="mxc://bund.example/AbCd" width="32" height="32" alt=":ok:" title="ok">'
        assert sanitize(html) == html

    def test_bogus_dimensions_dropped(self) -> None:
        out = sanitize('<img src="mxc://a.example/b" width="100%" height="expression(1)">')
        assert out == '<img src="mxc://a.example/b">'

    def test_code_class_only_language(self) -> None:
        out = sanitize('<pre><code class="language-python hljs evil">print(1)</code></pre>')
        assert out == '<pre><code class="language-python">print(1)</code></pre>'
        assert sanitize('<code class="hljs">x</code>') == "<code>x</code>"

    def test_colors_and_spoilers(self) -> None:
        html = (
            '<font color="#ff0000" data-mx-color="#00ff00" data-mx-bg-color="black">c</font>'
            '<span data-mx-spoiler="fin du film" data-mx-color="#123456">caché</span>'
        )
        assert sanitize(html) == html
        out = sanitize('<span data-mx-color="red;background:url(x)">c</span>')
        assert out == "<span>c</span>"

    def test_maths_and_ol_start(self) -> None:
        html = '<div data-mx-maths="x^2">x²</div><ol start="3"><li>trois</li></ol>'
        assert sanitize(html) == html

    def test_disallowed_tags_unwrapped_and_attributes_dropped(self) -> None:
        html = (
            '<p style="color:red" class="x" id="y">a<iframe src="https://e.x"></iframe>'
            "<marquee>b</marquee></p>"
        )
        assert sanitize(html) == "<p>ab</p>"

    def test_comments_removed_and_empty(self) -> None:
        assert sanitize("a<!-- secret -->b") == "ab"
        assert sanitize("") == ""

    def test_svg_onload_removed(self) -> None:
        assert sanitize('<svg onload="alert(1)"><circle/></svg>ok') == "ok"

    def test_details_and_tables(self) -> None:
        html = (
            "<details><summary>Plus</summary><table><caption>T</caption><thead><tr><th>a</th>"
            "</tr></thead><tbody><tr><td>1</td></tr></tbody></table></details>"
        )
        assert sanitize(html) == html


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


class TestHtmlToText:
    def test_reply_fallback_left_out(self) -> None:
        assert html_to_text(ELEMENT_REPLY_HTML) == "Oui, 10h c'est parfait."

    def test_paragraphs_and_breaks(self) -> None:
        html = "<p>Bonjour,</p>\n<p>ligne 1<br>ligne 2</p><p>fin</p>"
        assert html_to_text(html) == "Bonjour,\n\nligne 1\nligne 2\n\nfin"

    def test_links_and_pills(self) -> None:
        html = (
            '<a href="https://matrix.to/#/@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr">'
            'Jean Dupont [Intérieur]</a>: voir <a href="https://www.bsi.bund.de">le BSI</a> ou '
            '<a href="https://x.example">https://x.example</a> / '
            '<a href="mailto:a@b.fr">a@b.fr</a>'
        )
        assert html_to_text(html) == (
            "Jean Dupont [Intérieur]: voir le BSI (https://www.bsi.bund.de) ou "
            "https://x.example / a@b.fr"
        )

    def test_lists(self) -> None:
        html = '<ul><li>un</li><li>deux<ol start="3"><li>trois</li><li>quatre</li></ol></li></ul>'
        assert html_to_text(html) == "- un\n- deux\n  3. trois\n  4. quatre"

    def test_blockquote_and_code(self) -> None:
        html = (
            "<blockquote><p>cité</p><p>encore</p></blockquote>"
            '<pre><code class="language-python">def f():\n    return 1\n</code></pre>'
            "fin <code>x  y</code>"
        )
        assert html_to_text(html) == ("> cité\n>\n> encore\n\ndef f():\n    return 1\n\nfin x y")

    def test_entities_images_and_scripts(self) -> None:
        html = '<p>a &amp; b &lt;c&gt;</p><img src="mxc://a/b" alt="photo"><script>x()</script>'
        assert html_to_text(html) == "a & b <c>\n\nphoto"

    def test_table_and_hr(self) -> None:
        html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table><hr>z"
        assert html_to_text(html) == "a | b\n1 | 2\n\n---\n\nz"

    def test_whitespace_collapsed(self) -> None:
        assert html_to_text("  <p>\n  Hallo   <b>Welt</b>\n</p>  ") == "Hallo Welt"

    def test_plain_text_roundtrip(self) -> None:
        text = "ligne 1\nligne <2> & co"
        assert html_to_text(text_to_html(text)) == text

    def test_malformed_html(self) -> None:
        assert html_to_text("<p>a<b>b</p>c</i>") == "ab\n\nc"
