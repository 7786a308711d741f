"""Message contents that people's Matrix clients send in end-to-end tests: a reply and an edit,
as Element sends them."""

from __future__ import annotations

from typing import Any


def reply(text: str, to: str) -> dict[str, Any]:
    """An ``m.text`` message answering the event ``to``."""
    return {"msgtype": "m.text", "body": text, "m.relates_to": {"m.in_reply_to": {"event_id": to}}}


def edit(text: str, of: str) -> dict[str, Any]:
    """The edit that makes the event ``of`` say ``text``, with the ``* text`` body that clients
    without edits show."""
    return {
        "msgtype": "m.text",
        "body": f"* {text}",
        "m.new_content": {"msgtype": "m.text", "body": text},
        "m.relates_to": {"rel_type": "m.replace", "event_id": of},
    }
