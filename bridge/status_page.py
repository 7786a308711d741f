"""The status page's HTML: the bridge's `Status` for a phone or a wall screen, in the language
the browser asks for (German, French or English, from the notice catalogues), rendered on the
server with Jinja2 (no JavaScript). The page reloads itself every `REFRESH_SECONDS`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from bridge.notices import FALLBACK, LANGUAGES, Notice, notice
from bridge.status import LinkStatus, Status

REFRESH_SECONDS = 5
LINKS_SHOWN = 100
"""Links listed on the page; beyond that, links that need no attention are only counted."""
MAX_LANGUAGE_RANGES = 32
"""Language ranges of an ``Accept-Language`` header looked at (the rest is ignored)."""


def language(accept_language: str | None) -> str:
    """The page's language for an ``Accept-Language`` header (RFC 9110): the supported one the
    browser weighs highest, the earlier one on a tie; English when it names none of them.
    Whatever the header holds, this never raises."""
    best, best_q = FALLBACK, 0.0
    for part in (accept_language or "").split(",")[:MAX_LANGUAGE_RANGES]:
        tag, _, params = part.partition(";")
        primary = tag.strip().split("-", 1)[0].lower()
        q = _weight(params)
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def _weight(params: str) -> float:
    """The ``q`` of a language range's parameters (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip()[:5])
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def duration(seconds: float, lang: str) -> str:
    """A wait as people say it, in two units at most: "45 s", "5 min", "2 h 5 min", "3 d 4 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        parts = [("s", seconds)]
    elif seconds < 3600:
        parts = [("min", seconds // 60)]
    elif seconds < 86400:
        parts = [("h", seconds // 3600), ("min", seconds % 3600 // 60)]
    else:
        parts = [("d", seconds // 86400), ("h", seconds % 86400 // 3600)]
    return " ".join(notice(f"status.duration.{unit}", n=n).render(lang)
                    for unit, n in parts if n or unit == parts[0][0])  # fmt: skip


def shown_links(links: Sequence[LinkStatus], limit: int) -> tuple[list[LinkStatus], int]:
    """The links to list, those needing attention first, at most ``limit``; and how many
    more there are."""
    ordered = sorted(links, key=lambda link: not link.attention)
    return ordered[:limit], max(0, len(ordered) - limit)


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("bridge", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _texts(lang: str) -> dict[str, object]:
    """What every template gets: the language and a function rendering catalogue texts."""

    def t(key: str, **values: str | int | Notice) -> str:
        return Notice(key, values).render(lang)

    return {"lang": lang, "t": t, "duration": lambda s: duration(s, lang)}


def login_page(lang: str, csrf: str, error: str | None = None) -> str:
    """The form that asks for the admin token; ``error`` a catalogue key saying what went
    wrong with the last try."""
    template = _environment().get_template("login.html")
    return template.render(**_texts(lang), csrf=csrf, error=error)


def status_page(status: Status, lang: str, csrf: str) -> str:
    links, hidden = shown_links(status.links, LINKS_SHOWN)
    template = _environment().get_template("status.html")
    return template.render(
        **_texts(lang),
        status=status,
        links=links,
        hidden=hidden,
        csrf=csrf,
        refresh=REFRESH_SECONDS,
        taken=time.strftime("%H:%M:%S UTC", time.gmtime(status.at)),
    )
