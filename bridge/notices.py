"""The notices the bridge posts for people, in the room's language.

People read these in their rooms: a message that could not be delivered, a room the bridge will
not bridge, a message it could not decrypt. They are short, say what the reader can do, and
come in German, French or English (each network's ``language``); the texts live in one
catalogue per language (``bridge/locales/<language>.yaml``), never in the code. Internals
(exception texts, hosts, error codes) go to the log, not into a notice.

Code builds a `Notice` (a catalogue key and its values, which may be notices themselves, such as
a reason) and renders it for a room with `Notice.render`; ``str()`` gives the English text, for
log lines.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ruamel.yaml import YAML

LANGUAGES = ("de", "fr", "en")
FALLBACK = "en"
_LOCALES = Path(__file__).with_name("locales")


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """Every text of ``language`` by key (read once)."""
    data = YAML(typ="safe").load((_LOCALES / f"{language}.yaml").read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in data.items()}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@dataclass(frozen=True)
class Notice:
    key: str
    values: Mapping[str, str | int | Notice] = field(default_factory=dict)

    def render(self, language: str) -> str:
        """The notice in ``language`` (English where that language lacks the text). A value
        that is itself a notice is rendered in the same language; values are inserted as they
        are, never read as templates."""
        texts = catalogue(language if language in LANGUAGES else FALLBACK)
        template = texts.get(self.key) or catalogue(FALLBACK)[self.key]
        values = {
            name: value.render(language) if isinstance(value, Notice) else str(value)
            for name, value in self.values.items()
        }
        return template.format_map(_Blank(values))

    def __str__(self) -> str:
        return self.render(FALLBACK)


def notice(key: str, **values: str | int | Notice) -> Notice:
    return Notice(key, values)


class _Blank(dict[str, str]):
    """A placeholder without a value renders as nothing (an optional quote, say)."""

    def __missing__(self, key: str) -> str:
        return ""
