"""Reactions the bridge bot posts for someone else (relay mode, or a person with a real account
on this network), attributed in one line per message.

The bot cannot react as anyone but itself: a 👍 from it says nothing of who reacted, and a
notice per reaction would drown the room. So the bot keeps one notice per message, a reply to
it, that lists who reacted with what (``Reaktionen: 👍 Max Mustermann [BMI], Erika
Musterfrau [BMI]``), and edits it as reactions come and go; the last withdrawn takes the notice
away. The ID the store keeps for a reaction bridged this way (`reaction_ref`) names the message,
the person and the key, so its withdrawal (a redaction) finds what to take off the list.

Pure functions; the notice's event and the current list are kept in `MatrixState`.
"""

from __future__ import annotations

import json

from bridge.notices import notice
from bridge.reaction_refs import ReactionRefs

_REFS = ReactionRefs("relayed-reaction\n")

Reactions = dict[str, list[str]]
"""Key → the names of those who reacted with it, in the order they did."""


reaction_ref = _REFS.make
"""The ID of a relayed reaction: (target message, name, key)."""
parse_reaction_ref = _REFS.parse


def added(reactions: Reactions, key: str, name: str) -> Reactions:
    names = reactions.get(key, [])
    return reactions if name in names else {**reactions, key: [*names, name]}


def withdrawn(reactions: Reactions, key: str, name: str) -> Reactions:
    left = {k: [n for n in v if k != key or n != name] for k, v in reactions.items()}
    return {k: v for k, v in left.items() if v}


def line(reactions: Reactions, language: str) -> str:
    """The notice's text: every key with who reacted with it."""
    listed = "; ".join(f"{key} {', '.join(names)}" for key, names in reactions.items())
    return notice("relay.reactions", reactions=listed).render(language)


def dump(reactions: Reactions) -> str:
    return json.dumps(reactions, ensure_ascii=False)


def load(text: str) -> Reactions:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
