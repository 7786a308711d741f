"""The admin API as the command line calls it (``passerelle status``, ``passerelle reload``):
at the config's listen address, with the config's admin token, never through a proxy.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bridge.config.model import Config

TIMEOUT = 15.0
"""Seconds to wait for the answer (the bridge waits up to 5 s for its database)."""
MAX_ANSWER_BYTES = 64 * 1024 * 1024
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AdminUnavailable(Exception):
    """The bridge could not be asked; the message says why, for the admin."""


def bridge_url(config: Config) -> str:
    """Where the bridge that runs with ``config`` listens (on the local machine when it
    listens on every address)."""
    host = WILDCARDS.get(config.listen.host, config.listen.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.listen.port}"


def ask(config: Config, path: str, *, post: bool = False) -> tuple[dict[str, Any], str]:
    """The JSON object the admin API answers at ``path`` (GET, or an empty POST), and the URL
    asked; `AdminUnavailable` when there is no admin section, no bridge, or a refusal."""
    if config.admin is None:
        raise AdminUnavailable(
            f"{config.path} has no admin section: add admin: {{token: …}} and restart the bridge"
        )
    url = bridge_url(config) + path
    request = urllib.request.Request(
        url,
        data=b"" if post else None,
        headers={"Authorization": f"Bearer {config.admin.token}"},
        method="POST" if post else "GET",
    )
    # No proxy, whatever the environment says: the token goes to the bridge and nowhere else.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            body = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise AdminUnavailable(_refusal(url, e.code)) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise AdminUnavailable(_silent(url)) from None
        why = e.reason.strerror if isinstance(e.reason, OSError) else e.reason
        raise AdminUnavailable(f"no bridge answers at {url} ({why}): is it running?") from None
    except TimeoutError:
        raise AdminUnavailable(_silent(url)) from None
    except OSError as e:
        raise AdminUnavailable(f"no bridge answers at {url} ({e.strerror or e})") from None
    try:
        answer = json.loads(body) if len(body) <= MAX_ANSWER_BYTES else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise AdminUnavailable(f"what answers at {url} is not a Passerelle bridge")
    return answer, url


def _silent(url: str) -> str:
    return f"the bridge at {url} did not answer within {TIMEOUT:.0f} s"


def _refusal(url: str, code: int) -> str:
    if code == 401:
        return f"the bridge at {url} refused the admin token: does it run with this config?"
    if code == 404:
        return f"the bridge at {url} has no admin API: restart it with this config (admin section)"
    return f"the bridge at {url} answered HTTP {code}"
