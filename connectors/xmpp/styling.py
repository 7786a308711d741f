"""XEP-0393 message styling ↔ Matrix HTML, as pure functions.

XMPP bodies are plain text whose ``*strong*``, ``_emphasis_``, ``~strike~``, ```pre```, fenced
preformatted blocks and ``>`` quotes clients render (XEP-0393); the other networks carry the
sanitized Matrix HTML subset. The grammar is small and exact, so it is implemented here from the
XEP: the one Python library for it (slidge-style-parser) reads ``_…_`` as underline and adds
spoilers, which XEP-0393 clients would not render that way.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from bridge.html import VOID_ELEMENTS, Element, element_tree, escape, html_to_text, sanitize

_SPAN_TAGS = {"*": "strong", "_": "em", "~": "del"}
_DIRECTIVES = "*_~`"
_FENCE = "```"
MAX_QUOTE_DEPTH = 8
"""Quote levels (``>>>``) rendered as nested blockquotes; deeper ``>`` stay text. Each level
is a pass over its lines, so the cap keeps a body of ``>>>>…`` linear (and its HTML shallow)."""

# -- XEP-0393 → HTML ------------------------------------------------------------------------------
#
# In time about proportional to the body's length: where each span may close is found once per
# line (`_closings`) and looked up by bisection, instead of searching the rest of the line from
# every directive that opens none (which made ``"*a " * 21000`` take half a minute). Spans nest
# at most three deep (a span never contains its own directive; code spans are not parsed).

_CLOSING = re.compile(r"(?<=\S)[*_~`]")


def _closings(line: str) -> dict[str, list[int]]:
    """For each directive, the ascending indexes where it may close a span: wherever it is
    not preceded by whitespace (XEP-0393 §6.2)."""
    found: dict[str, list[int]] = {directive: [] for directive in _DIRECTIVES}
    for match in _CLOSING.finditer(line):
        found[match.group(0)].append(match.start())
    return found


def _opens(line: str, index: int, end: int) -> bool:
    """XEP-0393 §6.2: an opening directive starts the line or follows whitespace or another
    opening directive, and is followed by something other than whitespace (before ``end``)."""
    before_ok = index == 0 or line[index - 1].isspace() or line[index - 1] in _DIRECTIVES
    return before_ok and index + 1 < end and not line[index + 1].isspace()


def _spans(line: str, start: int, end: int, closings: dict[str, list[int]]) -> tuple[str, bool]:
    """The spans of ``line[start:end]`` as HTML, and whether it had any. A span opened at
    ``i`` closes at the first possible closing directive after ``i + 1`` (so it is never
    empty), if that lies before ``end``."""
    out: list[str] = []
    styled = False
    i = start
    while i < end:
        char = line[i]
        if char in _DIRECTIVES and _opens(line, i, end):
            positions = closings[char]
            found = bisect_left(positions, i + 2)
            if found < len(positions) and positions[found] < end:
                close = positions[found]
                if char == "`":
                    out.append(f"<code>{escape(line[i + 1 : close])}</code>")
                else:
                    tag = _SPAN_TAGS[char]
                    out.append(f"<{tag}>{_spans(line, i + 1, close, closings)[0]}</{tag}>")
                styled = True
                i = close + 1
                continue
        out.append(escape(char))
        i += 1
    return "".join(out), styled


def _blocks(lines: list[str], depth: int = 0) -> tuple[list[str], bool]:
    """Block-level parse (preformatted blocks, quotes, plain lines) of a list of lines at quote
    level ``depth``; the HTML pieces (a plain line is one piece, joined with ``<br>``) and
    whether any styling."""
    pieces: list[str] = []
    styled = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(_FENCE):
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == _FENCE), len(lines))
            code = "\n".join(lines[i + 1 : end])
            pieces.append(f"<pre><code>{escape(code)}</code></pre>")
            styled = True
            i = end + 1
            continue
        if line.startswith(">") and depth < MAX_QUOTE_DEPTH:
            end = i
            quoted: list[str] = []
            while end < len(lines) and lines[end].startswith(">"):
                inner = lines[end][1:]
                quoted.append(inner[1:] if inner.startswith(" ") else inner)
                end += 1
            inner_pieces, _ = _blocks(quoted, depth + 1)
            pieces.append(f"<blockquote>{_join(inner_pieces)}</blockquote>")
            styled = True
            i = end
            continue
        html, line_styled = _spans(line, 0, len(line), _closings(line))
        pieces.append(html)
        styled = styled or line_styled
        i += 1
    return pieces, styled


def _join(pieces: list[str]) -> str:
    """Join block pieces: plain lines get a ``<br>`` between them, block elements do not."""
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index:
            block_edge = piece.startswith(("<pre>", "<blockquote>")) or pieces[index - 1].endswith(
                ("</pre>", "</blockquote>")
            )
            if not block_edge:
                out.append("<br>")
        out.append(piece)
    return "".join(out)


def styled_to_html(body: str) -> str | None:
    """Matrix HTML for an XMPP body, or None when it has no XEP-0393 styling (plain text is
    then all the other networks need)."""
    pieces, styled = _blocks(body.replace("\r\n", "\n").split("\n"))
    return sanitize(_join(pieces)) if styled else None


# -- HTML → XEP-0393 ------------------------------------------------------------------------------

_MARKERS = {"b": "*", "strong": "*", "i": "_", "em": "_", "s": "~", "del": "~", "strike": "~"}


def _text(node: Element | str) -> str:
    if isinstance(node, str):
        return node
    return "".join(_text(c) for c in node.children)


def _wrap(marker: str, inner: str) -> str:
    """``inner`` between two directives, with its outer whitespace moved outside them (a span
    may neither start nor end with whitespace)."""
    stripped = inner.strip()
    if not stripped:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()) :]
    return f"{lead}{marker}{stripped}{marker}{trail}"


def _render(node: Element | str) -> str:
    """HTML again, with the formatting XEP-0393 knows turned into its directives (as text)."""
    if isinstance(node, str):
        return escape(node)
    tag = node.tag
    if tag == "pre":
        block = "\n".join((_FENCE, _text(node).removesuffix("\n"), _FENCE))
        return f"<pre>{escape(block)}</pre>"
    if tag == "code":
        return _wrap("`", escape(_text(node)))
    inner = "".join(_render(c) for c in node.children)
    if tag in _MARKERS:
        return _wrap(escape(_MARKERS[tag]), inner)
    if not tag:
        return inner
    attrs = "".join(f' {k}="{escape(v)}"' for k, v in node.attrs.items())
    if tag in VOID_ELEMENTS:
        return f"<{tag}{attrs}>"
    return f"<{tag}{attrs}>{inner}</{tag}>"


def html_to_styled(html: str) -> str:
    """The XMPP body for (sanitized) Matrix HTML: bold, italic, strike, code, preformatted
    blocks and quotes as XEP-0393 directives; everything else as `bridge.html.html_to_text`
    renders it (lists, links with their URL, line breaks)."""
    return html_to_text(_render(element_tree(html)))
