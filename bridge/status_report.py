"""``passerelle status``: the running bridge's status, read from its admin API
(`bridge.admin`, through `bridge.admin_client`), as a short table for a terminal or as JSON for
scripts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bridge.admin import API_PATH
from bridge.admin_client import AdminUnavailable, ask
from bridge.config.model import Config
from bridge.status_page import duration

LINKS_SHOWN = 50
"""Links listed; beyond that, links that need no attention are only counted."""


def fetch_status(config: Config) -> dict[str, Any]:
    """The status JSON of the bridge running with ``config``; `AdminUnavailable` otherwise."""
    answer, url = ask(config, API_PATH)
    if not isinstance(answer.get("networks"), dict):
        raise AdminUnavailable(f"what answers at {url} is not a Passerelle status")
    return answer


def report(answer: dict[str, Any], url: str) -> str:
    """The status as a few short tables."""
    at = float(answer.get("at") or time.time())
    lines = [f"Passerelle at {url}: {'ready' if answer.get('ready') else 'NOT READY'}", ""]
    rows = []
    for name, n in answer["networks"].items():
        since = duration(at - n["since"], "en") if n.get("since") is not None else ""
        details = n.get("reason") or ""
        if n.get("rooms_not_set_up"):
            missing = ", ".join(n["rooms_not_set_up"][:10])
            details = f"{details}; " if details else ""
            details += f"rooms not set up: {missing}"
        rows.append([name, n["state"], since, details])
    lines += _table(["NETWORK", "STATE", "SINCE", "DETAILS"], rows)
    links = answer.get("links") or {}
    shown = sorted(links.items(), key=lambda item: not _attention(item[1]))[:LINKS_SHOWN]
    rows = []
    for link_id, rooms in shown:
        for i, (network, r) in enumerate(rooms.items()):
            note = f"not bridged: {r['disabled']}" if r.get("disabled") else ""
            note = note or ("not set up yet" if r.get("room") is None else "")
            backlog = "?" if r.get("backlog") is None else str(r["backlog"])
            oldest = duration(r["oldest_age"], "en") if r.get("oldest_age") is not None else ""
            address = r.get("address") or r.get("room") or "(created by the bridge)"
            rows.append([link_id if i == 0 else "", network, address, backlog, oldest, note])
    lines += ["", *_table(["LINK", "NETWORK", "ROOM", "WAITING", "OLDEST", "NOTE"], rows)]
    if len(links) > len(shown):
        more = len(links) - len(shown)
        lines.append(f"... and {more} more links: every room set up, nothing waiting")
    if answer.get("store_error"):
        lines += ["", f"The database did not answer, queues unknown: {answer['store_error']}"]
    lines += ["", "LAST DELIVERY FAILURES (newest first)"]
    for f in answer.get("failures") or []:
        when = time.strftime("%H:%M:%S", time.localtime(f["at"]))
        outcome = "given up" if f["given_up"] else "will be retried"
        lines.append(f"{when}  {f['link']}  {f['source']} -> {f['target']}  {f['kind']}  "
                     f"{f['reason']}, {outcome}: {f['detail']}")  # fmt: skip
    if not answer.get("failures"):
        lines.append("none since the bridge started")
    return "\n".join(lines)


def _attention(rooms: dict[str, Any]) -> bool:
    return any(r.get("room") is None or r.get("disabled") or r.get("backlog")
               for r in rooms.values())  # fmt: skip


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
