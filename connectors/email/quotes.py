"""Separating what a mail's author wrote from the message they quoted: pure functions.

A reply by mail carries the whole earlier conversation below (or, rarely, above) the new text.
On Matrix the reply already points at its parent, so the quote is only kept folded away.

Plain text is split by mail-parser-reply, which knows the attribution lines of common clients in
German, French and English ("Am … schrieb …:", "Le … a écrit :", Outlook's "Von:/Gesendet:"
header blocks). HTML has no such library in Python that is still maintained, so `split_html`
looks for the markers the common clients put where the quote starts (Thunderbird's
``moz-cite-prefix``, Gmail's ``gmail_quote``, Outlook's ``divRplyFwdMsg`` and its top-bordered
header block, ``<blockquote type="cite">``): the split happens on the raw HTML, before the
sanitizer removes the classes and ids that give it away.
"""

from __future__ import annotations

import logging
import re

from mailparser_reply import EmailReplyParser

_PARSER = EmailReplyParser(languages=["de", "fr", "en"])
# It logs its compiled regular expressions at DEBUG for every mail: kilobytes that help no one.
logging.getLogger("mailparser_reply").setLevel(logging.INFO)

_HTML_QUOTE_START = re.compile(
    r"""<div[^>]*class=["']?[^"'>]*\bmoz-cite-prefix\b"""
    r"""|<div[^>]*class=["']?[^"'>]*\bgmail_quote"""
    r"""|(?:<hr[^>]*>\s*)?<div[^>]*id=["']?divRplyFwdMsg"""
    r"""|<div[^>]*id=["']?appendonsend"""
    r"""|<div[^>]*style=["'][^"'>]*border-top:\s*solid\s+#(?:E1E1E1|B5C4DF)"""
    r"""|<hr[^>]*id=["']?stopSpelling"""
    r"""|<div[^>]*class=["']?[^"'>]*\byahoo_quoted"""
    r"""|<blockquote[^>]*class=["']?[^"'>]*\bprotonmail_quote"""
    r"""|<blockquote[^>]*type=["']?cite"""
    r"""|-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine)\s*-{3,}""",
    re.IGNORECASE,
)
_QUOTED_TAIL = re.compile(r"(?:\n>[^\n]*)+\s*\Z")


def split_plain(text: str) -> tuple[str, str]:
    """``(new text, quoted conversation)``; the quote is empty when none was found.

    A mail that starts with an attribution or header block (a forward without a comment) has
    no new text of its own: it is returned whole, unsplit. An attribution line that a client
    wrapped (Gmail does at 76 columns) is not recognised by the parser; it still goes with the
    quote when it is the paragraph right above it, ends in a colon and holds a date.
    """
    text = text.strip()
    message = _PARSER.read(text)
    replies = message.replies
    if len(replies) > 1 and not replies[0].headers and replies[0].content.strip():
        reply = replies[0].content.strip()
        after = message.text.find(replies[0].content) + len(replies[0].content)
        quote = message.text[max(message.text.find(replies[1].content, after), after) :]
    else:
        tail = _QUOTED_TAIL.search("\n" + text)
        if tail is None or not ("\n" + text)[: tail.start()].strip():
            return text, ""
        reply, quote = ("\n" + text)[: tail.start()].strip(), tail.group()
    head, _, last = reply.rpartition("\n\n")
    if (
        head.strip()
        and last.rstrip().endswith(":")
        and last.count("\n") < 3
        and (any(c.isdigit() for c in last))
    ):
        reply, quote = head.strip(), f"{last}\n{quote.strip()}"
    return reply, quote.strip()


def split_html(html: str) -> tuple[str, str]:
    """``(new part, quoted part)`` of raw, unsanitized mail HTML, split where the first known
    quote marker starts; each half may hold unbalanced tags, which the sanitizer closes."""
    match = _HTML_QUOTE_START.search(html)
    if match is None:
        return html, ""
    return html[: match.start()], html[match.start() :]
