"""``passerelle status``: the running bridge's status, read from its admin API
(`bridge.admin`) at the config's listen address with the config's admin token, as a short
table for a terminal or as JSON for scripts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from bridge.admin import API_PATH
from bridge.config.model import Config
from bridge.status_page import duration

TIMEOUT = 15.0
"""Seconds to wait for the answer (the bridge waits up to 5 s for its database)."""
MAX_ANSWER_BYTES = 64 * 1024 * 1024
LINKS_SHOWN = 50
"""Links listed; beyond that, links that need no attention are only counted."""
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class StatusUnavailable(Exception):
    """No status could be had; the message says why, for the admin."""


def bridge_url(config: Config) -> str:
    """Where the bridge that runs with ``config`` listens (on the local machine when it
    listens on every address)."""
    host = WILDCARDS.get(config.listen.host, config.listen.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.listen.port}"


def fetch_status(config: Config) -> dict[str, Any]:
    """The status JSON of the bridge running with ``config``; `StatusUnavailable` otherwise."""
    if config.admin is None:
        raise StatusUnavailable(
            f"{config.path} has no admin section: add admin: {{token: …}} and restart the bridge"
        )
    url = bridge_url(config) + API_PATH
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {config.admin.token}"})
    # No proxy, whatever the environment says: the token goes to the bridge and nowhere else.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            body = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise StatusUnavailable(_refusal(url, e.code)) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise StatusUnavailable(_silent(url)) from None
        why = e.reason.strerror if isinstance(e.reason, OSError) else e.reason
        raise StatusUnavailable(f"no bridge answers at {url} ({why}): is it running?") from None
    except TimeoutError:
        raise StatusUnavailable(_silent(url)) from None
    except OSError as e:
        raise StatusUnavailable(f"no bridge answers at {url} ({e.strerror or e})") from None
    try:
        answer = json.loads(body) if len(body) <= MAX_ANSWER_BYTES else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("networks"), dict):
        raise StatusUnavailable(f"what answers at {url} is not a Passerelle status")
    return answer


def _silent(url: str) -> str:
    return f"the bridge at {url} did not answer within {TIMEOUT:.0f} s"


def _refusal(url: str, code: int) -> str:
    if code == 401:
        return f"the bridge at {url} refused the admin token: does it run with this config?"
    if code == 404:
        return f"the bridge at {url} has no admin API: restart it with this config (admin section)"
    return f"the bridge at {url} answered HTTP {code}"


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
