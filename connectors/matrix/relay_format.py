"""Relay-mode message rendering: one bot posts "**Name [Org]**: text" for everyone.

The template is the network's naming setting. ``{name}`` and ``{message}`` are its only
placeholders; ``**…**`` marks bold. Substituted values are never re-read as template syntax, so
a name containing ``{`` or ``**`` is shown literally.
"""

from __future__ import annotations

import re

from bridge.html import escape, text_to_html

__all__ = ["DEFAULT_RELAY_TEMPLATE", "render_relay"]

DEFAULT_RELAY_TEMPLATE = "**{name}**: {message}"

_TOKEN = re.compile(r"(\*\*|\{name\}|\{message\})")


def render_relay(template: str, name: str, text: str, html: str | None) -> tuple[str, str]:
    """Render a relayed message as ``(body, formatted_body)``.

    ``body`` is the template with the bold markers removed and ``text`` inserted;
    ``formatted_body`` has ``<strong>`` for ``**…**``, the HTML-escaped name and ``html`` (which
    must already be sanitized) or, when ``html`` is None, ``text`` escaped with ``<br>`` line
    breaks. An unpaired trailing ``**`` stays literal. Raises ValueError when the template has no
    ``{message}``, since the message would silently be lost.
    """
    if "{message}" not in template:
        raise ValueError("relay template must contain {message}")
    tokens = _TOKEN.split(template)
    pairs = tokens.count("**") // 2 * 2
    message_html = html if html is not None else text_to_html(text)
    plain: list[str] = []
    rich: list[str] = []
    seen_markers = 0
    bold = False
    for token in tokens:
        if token == "**" and seen_markers < pairs:
            seen_markers += 1
            bold = not bold
            rich.append("<strong>" if bold else "</strong>")
        elif token == "{name}":
            plain.append(name)
            rich.append(escape(name))
        elif token == "{message}":
            plain.append(text)
            rich.append(message_html)
        else:
            plain.append(token)
            rich.append(escape(token))
    return "".join(plain), "".join(rich)
