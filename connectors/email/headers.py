"""Text the bridge writes into a mail header or an SMTP reply: one clean line, whatever it came
from (a Matrix display name, a message's first words, a file name, a parsed mail's address).

Why encoded words are taken apart here
    Python's email package parses every header value it is given and decodes the RFC 2047
    encoded words in it (``=?utf-8?q?Erika=0D=0AReply-To:…?=``); depending on the Python patch
    level, its generator then writes the decoded CR/LF out, and a display name becomes a header
    of its own. So `header_text` decodes encoded words itself, strips what it decoded like any
    other text, and breaks up every ``=?`` left: what it returns holds no encoded word for any
    parser to find, and no character that can end or hide a line.
"""

from __future__ import annotations

import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f"  # Arabic letter mark, left-to-right and right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
_REMOVED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
"""Control characters (C0, DEL, C1), lone surrogates, line and paragraph separators."""
_ENCODED_WORD = re.compile(r"=\?[^?\s]{1,40}\?[bBqQ]\?[^?\s]*\?=")
MAX_DECODE_ROUNDS = 3
"""An encoded word may hold another; past this many rounds, the rest stays encoded (and
broken up)."""


def _is_removed(char: str) -> bool:
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _REMOVED_CATEGORIES


def one_line(text: str) -> str:
    """``text`` on one line: control characters, lone surrogates, line and paragraph separators
    and bidi overrides become spaces, and runs of whitespace one space."""
    if text.isascii() and text.isprintable():
        return " ".join(text.split())
    return " ".join("".join(" " if _is_removed(c) else c for c in text).split())


def _decoded_word(match: re.Match[str]) -> str:
    """One encoded word decoded; left as it is when it does not decode."""
    try:
        ((data, charset),) = decode_header(match.group())
        if isinstance(data, str) or charset is None:
            return match.group()
        return data.decode(charset, errors="replace")
    except (HeaderParseError, LookupError, ValueError):
        return match.group()


def header_text(text: str) -> str:
    """``text`` fit for any header value or display name the bridge writes: on one line (see
    `one_line`), encoded words decoded, and no ``=?`` left to start one."""
    text = one_line(text)
    for _ in range(MAX_DECODE_ROUNDS):
        if _ENCODED_WORD.search(text) is None:
            break
        text = one_line(_ENCODED_WORD.sub(_decoded_word, text))
    return text.replace("=?", "= ?")
