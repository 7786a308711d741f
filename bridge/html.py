"""Matrix HTML helpers: sanitizing, reply-fallback stripping, HTML ↔ plain text.

Every function here is pure (no I/O) so connectors can call them while translating a network's
payload into an event and back.

Why the sanitizer follows the Matrix spec's list
    ``formatted_body`` travels to every other network (another homeserver, XMPP XHTML-IM, mail
    HTML parts). The client-server spec ("m.room.message msgtypes", section "HTML") names the
    tags and attributes a client may render; anything else is dropped before an event is stored,
    so no connector ever has to trust HTML coming from a foreign network.

Why :func:`html_to_text` is a small ``html.parser`` converter rather than mautrix
    ``mautrix.util.formatter.MatrixParser`` (and ``parse_html``) is ``async`` in mautrix 0.21,
    even though it performs no I/O, and its default plain-text output drops link targets
    (``<a href="https://x">here</a>`` becomes ``here``). A synchronous function can be called
    from anywhere (config checks, mail rendering, tests) and keeps URLs, which matter when the
    text is all the reader gets.
"""

from __future__ import annotations

import html as _html
import re
from html.parser import HTMLParser

import nh3

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "URL_SCHEMES",
    "escape",
    "html_to_text",
    "sanitize",
    "strip_plain_reply_fallback",
    "strip_reply_fallback",
    "text_to_html",
    "too_deep",
]

#: Tags of the client-server spec's HTML subset, plus ``mx-reply`` (reply fallbacks).
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol",
        "sup", "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div",
        "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "img", "details",
        "summary", "mx-reply",
    }
)  # fmt: skip

#: Attributes the spec allows, per tag. Values are further checked by :func:`_filter_attribute`.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "font": {"data-mx-bg-color", "data-mx-color", "color"},
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"},
    "a": {"href", "target"},
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
    "div": {"data-mx-maths"},
}

#: Link schemes allowed on ``<a href>`` by the spec (``matrix:`` URIs included).
URL_SCHEMES: frozenset[str] = frozenset({"https", "http", "ftp", "mailto", "magnet", "matrix"})

#: Tags removed together with everything inside them (their text is code, not prose).
_CONTENT_TAGS: frozenset[str] = frozenset({"script", "style"})

_URL_TRIM = "".join(chr(c) for c in range(0x21))
"""What URL parsers strip from both ends of a URL: C0 controls and space."""
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}")
_DIGITS = re.compile(r"[0-9]{1,6}")


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """Check attribute values nh3 cannot express; return the value to keep, or None to drop it.

    Called by nh3 for every attribute that passed the per-tag allow list. URLs are checked as
    browsers read them, without the leading and trailing spaces and control characters that
    URL parsers (nh3's included) ignore, so ``" mxc://…"`` is an mxc URI here too.
    """
    if tag == "img" and attr == "src":
        # Only content-repository media: an http(s) image would make every reader's client
        # fetch a third-party URL (tracking, and outside the closed federations).
        src = value.strip(_URL_TRIM)
        return src if src.startswith("mxc://") else None
    if tag == "a" and attr == "href":
        href = value.strip(_URL_TRIM)
        return None if href.lower().startswith("mxc:") else href
    if tag == "code" and attr == "class":
        kept = [c for c in value.split() if c.startswith("language-") and len(c) > 9]
        return " ".join(kept) or None
    if attr in ("color", "data-mx-color", "data-mx-bg-color"):
        return value if _COLOR.fullmatch(value.strip()) else None
    if attr in ("width", "height", "start"):
        return value if _DIGITS.fullmatch(value.strip()) else None
    return value


def sanitize(html: str) -> str:
    """Reduce ``formatted_body`` HTML to the Matrix spec's allowed subset.

    Use on every HTML body received from any network before it becomes an event. Disallowed
    tags are unwrapped (their text stays); ``<script>``/``<style>`` vanish with their content;
    event-handler attributes, ``javascript:`` and relative URLs, non-``mxc://`` images and
    non-``language-*`` code classes are removed. No ``rel`` is added to links: the spec does not
    list it and receiving clients apply their own link policy.
    """
    if not html:
        return ""
    if too_deep(html):
        html = _flatten(html)
    result: str = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_CONTENT_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel=None,
        # mxc is only let through the scheme check so that _filter_attribute can accept it on
        # <img src>; it rejects it on <a href>.
        url_schemes=set(URL_SCHEMES) | {"mxc"},
        url_relative="deny",
    )
    return result


_MX_REPLY_TAG = re.compile(r"<(/?)mx-reply\b[^>]*>", re.IGNORECASE)


def strip_reply_fallback(html: str) -> str:
    """Remove a leading ``<mx-reply>…</mx-reply>`` block (a reply's quote of its parent).

    Call it for events that are replies (``m.relates_to.m.in_reply_to``) before their HTML goes
    to a network that renders replies itself. Nested ``mx-reply`` blocks are matched by depth;
    an unterminated block is left alone rather than swallowing the message.
    """
    stripped = html.lstrip()
    first = _MX_REPLY_TAG.match(stripped)
    if first is None or first.group(1):
        return html
    depth = 0
    for tag in _MX_REPLY_TAG.finditer(stripped):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            return stripped[tag.end() :]
    return html


def strip_plain_reply_fallback(body: str) -> str:
    """Remove the ``> `` quoted lines and the blank line after them at the start of ``body``.

    Matrix reply fallbacks in ``body`` look like ``"> <@a:b> parent\\n> more\\n\\nreply"``.
    Only call this for events that are replies: a message that merely starts with a quote would
    otherwise lose it. Lines are stripped as the spec says, up to the first line not starting
    with ``>``.
    """
    if not body.startswith(">"):
        return body
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and lines[index].strip() == "":
        index += 1
    return "\n".join(lines[index:])


def escape(text: str) -> str:
    """HTML-escape plain text (``&``, ``<``, ``>``, and both quotes)."""
    return _html.escape(text, quote=True)


def text_to_html(text: str) -> str:
    """Turn plain text into HTML that renders the same: escaped, newlines as ``<br>``.

    Used when a network only gives text but a ``formatted_body`` is needed (relay templates).
    """
    return escape(text).replace("\r\n", "\n").replace("\n", "<br>")


# --- HTML → plain text -----------------------------------------------------------------------

# Markers used while rendering, resolved by _finish(). Control characters are removed from the
# input text first, so they cannot collide with content.
_LINE = "\x00"  # block boundary: at least one newline
_PARA = "\x01"  # paragraph boundary: a blank line
_BR = "\x02"  # <br>: exactly one newline each
_PRE_SPACE = "\x03"  # a space inside <pre>, protected from whitespace trimming
_MARKERS = re.compile(r"[ \t]*[\x00\x01\x02][\x00\x01\x02 \t]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SPACES = re.compile(r"[ \t\r\n\f]+")

VOID_ELEMENTS = frozenset({"br", "hr", "img", "wbr", "area", "base", "col", "embed", "input",
                           "link", "meta", "source", "track"})  # fmt: skip
_PARA_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table",
                        "ul", "ol", "hr", "details"})  # fmt: skip
_LINE_TAGS = frozenset({"div", "li", "tr", "summary", "caption", "thead", "tbody", "dl", "dt",
                        "dd"})  # fmt: skip
_SKIP = frozenset({"mx-reply", "script", "style", "head", "title"})
MAX_DEPTH = 100
"""Deepest element nesting kept from any HTML (no layout a person made needs more; see
`_TreeBuilder`)."""
_IMPLICITLY_CLOSED = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option"})
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")


class Element:
    """An element of `element_tree`: its tag, attributes, and children (elements and text)."""

    __slots__ = ("tag", "attrs", "children")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[Element | str] = []


class _TreeBuilder(HTMLParser):
    """Builds a minimal element tree; tolerant of unclosed and stray end tags.

    Elements nested deeper than `MAX_DEPTH` are left out (their text stays, in the deepest
    element kept), so that every walk over the tree has bounded recursion, whatever the input.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("", {})
        self._stack = [self.root]
        self._dropped: dict[str, int] = {}
        """Start tags left out for depth, by tag, so their end tags are left out too."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS and len(self._stack) > MAX_DEPTH:
            self._dropped[tag] = self._dropped.get(tag, 0) + 1
            return
        node = Element(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(node)
        if tag not in VOID_ELEMENTS:
            self._stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if self._dropped.get(tag):
            self._dropped[tag] -= 1
            return
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(_CONTROL.sub("", data))


def element_tree(html: str) -> Element:
    """``html`` as a tree under a root element with no tag (control characters dropped), at
    most `MAX_DEPTH` elements deep."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def too_deep(html: str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``html`` may nest elements deeper than ``limit``: a linear scan of its tags,
    counting the elements HTML closes implicitly (paragraphs, list items, cells) as closed, so
    that sloppy but ordinary mail HTML does not count as deep."""
    depth = 0
    for match in _TAG.finditer(html):
        closing, tag = match.group(1), match.group(2).lower()
        if tag in VOID_ELEMENTS or tag in _IMPLICITLY_CLOSED or match.group(3):
            continue
        depth += -1 if closing else 1
        if depth > limit:
            return True
    return False


def _flatten(html: str) -> str:
    """``html`` rebuilt with at most `MAX_DEPTH` nested elements. The sanitizer's HTML5 parser
    takes time quadratic in the nesting depth (its scope checks walk the stack of open
    elements): a message of ten thousand nested lists would hold the bridge for seconds."""
    return _serialize(element_tree(html))


def _serialize(node: Element) -> str:
    parts: list[str] = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(escape(child))
            continue
        attrs = "".join(f' {k}="{escape(v)}"' for k, v in child.attrs.items())
        if child.tag in VOID_ELEMENTS:
            parts.append(f"<{child.tag}{attrs}>")
        else:
            parts.append(f"<{child.tag}{attrs}>{_serialize(child)}</{child.tag}>")
    return "".join(parts)


def _finish(text: str) -> str:
    """Resolve block markers into newlines and trim the ends."""

    def newlines(match: re.Match[str]) -> str:
        run = match.group(0)
        breaks = run.count(_BR)
        if _PARA in run:
            breaks = max(breaks, 2)
        elif _LINE in run:
            breaks = max(breaks, 1)
        return "\n" * breaks

    text = _MARKERS.sub(newlines, text)
    return text.strip(" \t\n")


def _is_pill(href: str) -> bool:
    return href.startswith(("https://matrix.to/#/@", "https://matrix.to/#/%40", "matrix:u/"))


def _render_children(node: Element, pre: bool) -> str:
    parts: list[str] = []
    for child in node.children:
        if isinstance(child, str):
            parts.append(child.replace(" ", _PRE_SPACE) if pre else _SPACES.sub(" ", child))
        else:
            parts.append(_render(child, pre))
    return "".join(parts)


def _render_list(node: Element, pre: bool) -> str:
    ordered = node.tag == "ol"
    try:
        counter = int(node.attrs.get("start", "1")) if ordered else 1
    except ValueError:
        counter = 1
    items: list[str] = []
    for child in node.children:
        if not isinstance(child, Element) or child.tag != "li":
            continue
        bullet = f"{counter}. " if ordered else "- "
        counter += 1
        # Paragraph breaks inside an item (nested lists, <p>) become single newlines: compact.
        lines = _finish(_render_children(child, pre).replace(_PARA, _LINE)).split("\n")
        indent = " " * len(bullet)
        items.append(
            bullet + lines[0] + "".join("\n" + (indent + ln if ln else ln) for ln in lines[1:])
        )
    return _PARA + "\n".join(items) + _PARA


def _render(node: Element, pre: bool) -> str:
    tag = node.tag
    if tag in _SKIP:
        return ""
    if tag == "br":
        return _BR
    if tag == "hr":
        return _PARA + "---" + _PARA
    if tag == "img":
        return node.attrs.get("alt") or node.attrs.get("title") or ""
    if tag in ("ul", "ol"):
        return _render_list(node, pre)
    if tag == "pre":
        inner = _render_children(node, True)
        return _PARA + inner.removesuffix("\n") + _PARA
    if tag == "blockquote":
        inner = _finish(_render_children(node, pre))
        quoted = "\n".join("> " + ln if ln else ">" for ln in inner.split("\n"))
        return _PARA + quoted + _PARA
    if tag == "tr":
        cells = [
            _finish(_render_children(c, pre))
            for c in node.children
            if isinstance(c, Element) and c.tag in ("td", "th")
        ]
        return _LINE + " | ".join(cells) + _LINE
    inner = _render_children(node, pre)
    if tag == "a":
        href = node.attrs.get("href", "")
        label = _finish(inner)
        if not href or _is_pill(href) or href in (label, "mailto:" + label):
            return inner
        return f"{inner} ({href})" if label else href
    if tag in _PARA_TAGS:
        return _PARA + inner + _PARA
    if tag in _LINE_TAGS:
        prefix = "- " if tag == "li" else ""
        return _LINE + prefix + inner + _LINE
    return inner


def html_to_text(html: str) -> str:
    """Render (sanitized) HTML as readable plain text.

    Use when a network only carries text, or when a Matrix ``body`` must be built and only HTML
    is known. Paragraphs become blank-line separated, ``<br>`` a newline, lists ``- item`` /
    ``1. item``, blockquotes ``> ``-prefixed lines, links ``label (url)`` (user pills keep just
    their label), images their alt text; reply fallbacks, scripts and styles are left out.
    """
    return _finish(_render(element_tree(html), False)).replace(_PRE_SPACE, " ")
