"""How the bridge writes the header fields that carry people's words: the ``Subject`` and the
display names of ``From``, ``To`` and ``Reply-To``.

Why not the email package's own folder
    Python's header folder (3.11 at least) changes what these fields say once a value holds
    non-ASCII text or a long word: it writes the space between two words of the text between
    two encoded words, where every decoder drops it ("Straße – Übermäßig" arrives as
    "Straße –Übermäßig"), or adds a space of its own there ("Ü bermäßig"); and a quoted
    display name folded at its specials reads as several addresses. `MailPolicy` writes these
    fields itself, as mail clients such as Thunderbird do:

    - a subject in printable ASCII, single-spaced, without ``=?`` and without a word longer than
      a line is written as it is, folded at its spaces; any other subject is written entirely
      as RFC 2047 encoded words (`email.charset.Charset`), each of whole characters and at most
      75 characters long, with every space of the text inside a word, so a decoder has no
      whitespace between words to keep or drop;
    - a display name is written word by word (see `_phrase`): plain ASCII words as they are or
      quoted, the other words as encoded words, folded between words.

    A value it does not write this way (a control character, which `outbound.check_headers`
    then refuses; a header with several addresses or a non-ASCII address) goes to the email
    package's folder as before.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from email.charset import Charset
from email.headerregistry import Address, Group
from email.policy import EmailPolicy
from email.utils import quote
from typing import Any

MAX_ENCODED_WORD = 75
"""Characters of one encoded word, RFC 2047's limit."""
MAX_LINE = 998
"""Characters of a line, RFC 5322's limit: where the policy sets none."""
_TEXT_FIELDS = frozenset({"subject"})
_ADDRESS_FIELDS = frozenset({"from", "to", "reply-to"})
_UTF8 = Charset("utf-8")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
"""RFC 5322's atext: a word of these needs no quotes in a display name."""
_UNWRITABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _single_spaced(text: str) -> bool:
    return " ".join(text.split()) == text


def _plain(text: str) -> bool:
    """Whether ``text`` reads the same written as it is: printable ASCII, and nothing a decoder
    would take for an encoded word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def _encodable(text: str) -> bool:
    """Whether ``text`` may be written as encoded words: no control character or line
    separator (a decoder would write it out) and no lone surrogate (UTF-8 cannot hold it)."""
    return not any(unicodedata.category(c) in _UNWRITABLE for c in text)


def _folded(head: str, words: list[str], limit: int) -> list[str]:
    """The lines of ``head`` and ``words``, at most ``limit`` characters long where the words
    allow, each line after the first starting with the space in front of its first word."""
    lines = [head]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > limit and lines[-1] != head:
            lines.append("")
        lines[-1] += f" {word}"
    return lines


def _encoded_words(text: str, first: int) -> list[str]:
    """``text`` as encoded words: the first at most ``first`` characters long."""
    lengths = itertools.chain([min(first, MAX_ENCODED_WORD)], itertools.repeat(MAX_ENCODED_WORD))
    return [word for word in _UTF8.header_encode_lines(text, lengths) if word is not None]


def text_field(name: str, text: str, limit: int) -> list[str] | None:
    """The lines of an unstructured field (``Subject: …``) holding ``text``; None when
    ``text`` holds what no field should (see `_encodable`)."""
    if not text:
        return [f"{name}:"]
    if _plain(text) and _single_spaced(text) and max(len(w) for w in text.split(" ")) < limit:
        return _folded(f"{name}:", text.split(" "), limit)
    if not _encodable(text):
        return None
    return _folded(f"{name}:", _encoded_words(text, limit - len(name) - 2), limit)


def _phrase(display: str, first: int, limit: int) -> list[str]:
    """A display name as the words of a phrase: a word of RFC 5322's atom characters as it is,
    another ASCII word as a quoted string, and each run of the other words as encoded words
    (the first at most ``first`` characters long).

    Only a run longer than one encoded word puts two encoded words side by side. Python's
    address parser keeps the space between those, unlike RFC 2047 and other decoders, so runs
    are kept as short as the name allows."""
    words = display.split(" ") if _single_spaced(display) else [display]
    tokens: list[str] = []
    # A plain word must fit on a line with its quotes.
    for plain, group in itertools.groupby(words, key=lambda w: _plain(w) and len(w) < limit - 2):
        if plain:
            tokens += [w if _ATOM.fullmatch(w) else f'"{quote(w)}"' for w in group]
        else:
            tokens += _encoded_words(" ".join(group), first if not tokens else MAX_ENCODED_WORD)
    return tokens


def address_field(name: str, address: Address, limit: int) -> list[str] | None:
    """The lines of an address field naming one mailbox (``From: Name <a@b>``); None for what
    it leaves to the email package (no display name, a non-ASCII address, a display name that
    holds what no field should)."""
    spec, display = address.addr_spec, address.display_name
    if not display or not spec.isascii() or not spec.isprintable() or not _encodable(display):
        return None
    words = _phrase(display, limit - len(name) - 2, limit)
    return _folded(f"{name}:", [*words, f"<{spec}>"], limit)


class MailPolicy(EmailPolicy):
    """`email.policy.SMTP`, except that it writes the fields of `_TEXT_FIELDS` and
    `_ADDRESS_FIELDS` itself (see the module docstring)."""

    def _written(self, name: str, value: Any) -> str | None:
        """The field as this policy writes it, with its line end; None for the email
        package to write."""
        if not hasattr(value, "name"):  # a raw value (set_raw): the email package's business
            return None
        limit = self.max_line_length or MAX_LINE
        lines = None
        if name.lower() in _TEXT_FIELDS:
            lines = text_field(name, str(value), limit)
        elif name.lower() in _ADDRESS_FIELDS:
            groups: tuple[Group, ...] = getattr(value, "groups", ())
            one = len(groups) == 1 and len(groups[0].addresses) == 1
            if one and groups[0].display_name is None:
                lines = address_field(name, groups[0].addresses[0], limit)
        return None if lines is None else self.linesep.join(lines) + self.linesep

    def fold(self, name: str, value: Any) -> str:
        written = self._written(name, value)
        return super().fold(name, value) if written is None else written

    def fold_binary(self, name: str, value: Any) -> bytes:
        written = self._written(name, value)
        return super().fold_binary(name, value) if written is None else written.encode("ascii")


POLICY = MailPolicy(linesep="\r\n")
"""What the bridge writes mail with: `email.policy.SMTP` with the folding above."""
