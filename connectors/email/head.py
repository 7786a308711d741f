"""The first look at a received mail, before anything reads it in earnest: pure functions.

The email package reads a header in time that grows faster than its length (a 700 KB Subject
of encoded words took 78 s, 40,000 ``Content-Type`` parameters 135 s), so a mail's header block
is measured first, on the event loop, as bytes: where it ends, how many fields it holds, how
long each is. Only a mail within the network's limits is read further, in the mail worker
(`connectors.email.worker`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.email.config import InboundSettings
from connectors.email.headers import one_line

_BLANK_LINE = re.compile(rb"(?:\A|(?>\r\n|\r|\n))(?>\r\n|\r|\n)")
"""Where the header block ends: the first empty line, with the line ends the email package
knows (CRLF, LF, or a lone CR)."""
_LINE_END = re.compile(rb"\r\n|\r|\n")
NAME_SHOWN = 40
"""Characters of a header field's name quoted in a refusal."""


@dataclass(frozen=True)
class HeaderLimits:
    max_bytes: int
    """The whole header block, up to and with the empty line that ends it."""
    max_fields: int
    max_field_bytes: int
    """One field with its continuation lines."""

    @classmethod
    def of(cls, settings: InboundSettings) -> HeaderLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.max_header_field_bytes)


class OverLimit(ValueError):
    """A header block beyond the limits; the message is the reason, fit for an SMTP reply."""


def header_end(raw: bytes, limits: HeaderLimits) -> int:
    """The offset where the body starts; raises `OverLimit` for a header block beyond
    ``limits`` (looking at no more of ``raw`` than the limit)."""
    found = _BLANK_LINE.search(raw, 0, limits.max_bytes)
    if found is not None:
        end = found.end()
    elif len(raw) <= limits.max_bytes:
        end = len(raw)  # no body at all
    else:
        raise OverLimit(f"Header block larger than {limits.max_bytes} bytes")
    count = 0
    for name, value in fields(raw[:end]):
        count += 1
        if count > limits.max_fields:
            raise OverLimit(f"More than {limits.max_fields} header fields")
        if len(name) + 1 + len(value) > limits.max_field_bytes:
            shown = one_line(name[:NAME_SHOWN].decode("ascii", "replace")) or "without a name"
            raise OverLimit(f"Header field {shown} longer than {limits.max_field_bytes} bytes")
    return end


def fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """``(name, value)`` of each field of a header block, the value unfolded: a line with the
    lines that continue it (those starting with a space or tab), line ends removed."""
    found: list[tuple[bytes, list[bytes]]] = []
    for line in _LINE_END.split(block):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and found:
            found[-1][1].append(line)
        else:
            name, _, value = line.partition(b":")
            found.append((name, [value]))
    return [(name, b"".join(parts)) for name, parts in found]
