"""mautrix's HTTP API objects, with every request named in the metrics, and its request log
written only when it is read.

mautrix counts its requests in ``bridge_matrix_api_calls_total{method=…}`` (and
``bridge_matrix_api_calls_failed_total``), but only some of its methods give a name; the
others (joining, creating rooms, uploads, profiles…) were all counted under ``method=""``, a
series no admin can read or alert on. These classes name such a request after the function that
made it (``join_room_by_id``, ``upload_media``, ``create_room``): a name from the code, never
from the request, so the label takes no more values than there are such functions. A thin
wrapper: mautrix offers no hook for it, and every request passes through ``HTTPAPI.request``
(`NamedCalls` sits right above it, under the appservice classes' own ``request``).

mautrix writes two DEBUG lines per request (sent, answered) and formats both, the URL made a
string twice, before ``logging`` drops them at any other level: 36 of the 656 Python calls of a
message sent (both ends of the request). `NamedCalls` has them written only when its log takes
DEBUG lines.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from mautrix.api import HTTPAPI, Method, PathBuilder
from mautrix.appservice import AppServiceAPI
from mautrix.appservice.api import ChildAppServiceAPI
from mautrix.types import JSON, UserID
from mautrix.util.async_body import AsyncBody

Content = dict[str, Any] | list[Any] | bytes | bytearray | str | AsyncBody | None


def _caller() -> str:
    """The function that asked for the request (past `NamedCalls.request` and the appservice
    classes' ``request``, which only add parameters)."""
    frame = sys._getframe(2)
    while frame.f_code.co_name == "request" and frame.f_back is not None:
        frame = frame.f_back
    return frame.f_code.co_name


class NamedCalls(HTTPAPI):
    """mautrix's HTTP API, every request named; as itself, the ``api`` of a
    `mautrix.client.Client` (a relay account, the bot's encryption device)."""

    def request(  # type: ignore[override]
        self,
        method: Method,
        path: PathBuilder | str,
        content: Content = None,
        headers: dict[str, str] | None = None,
        query_params: Mapping[str, str] | None = None,
        retry_count: int | None = None,
        metrics_method: str = "",
        min_iter_size: int = 25 * 1024 * 1024,
        sensitive: bool = False,
    ) -> Coroutine[Any, Any, JSON]:
        # Not a coroutine itself, so that the frames below are the callers' at the call.
        name = metrics_method or _caller()
        return super().request(method, path, content, headers, query_params, retry_count,
                               name, min_iter_size, sensitive)  # fmt: skip

    def _log_request(self, *args: Any) -> None:
        if self.log.isEnabledFor(logging.DEBUG):  # mautrix logs /sync below DEBUG, the rest at it
            super()._log_request(*args)

    def _log_request_done(self, *args: Any) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            super()._log_request_done(*args)


class NamedChildAppServiceAPI(ChildAppServiceAPI, NamedCalls):  # type: ignore[misc]
    """A ghost's (or the bot's) API object under a `NamedAppServiceAPI`."""


class NamedAppServiceAPI(AppServiceAPI, NamedCalls):  # type: ignore[misc]
    def user(self, user: UserID) -> ChildAppServiceAPI:
        """mautrix's, with the child named too."""
        try:
            return self.children[user]
        except KeyError:
            child = self.children[user] = NamedChildAppServiceAPI(user, self)
            return child
