"""The mail worker: a process of its own that reads untrusted mail with a time budget.

Reading a mail is CPU work on bytes anyone can send (the email package's header parsers, MIME,
the HTML sanitizer, DKIM's canonicalisation), and some of it takes time that grows faster than
the input. On the event loop, one such mail froze every link of the bridge; in a thread it
would still hold the GIL, and a thread cannot be stopped. A process can: each step runs there
with the network's ``parse_timeout``, and a step that overruns has its process killed and
replaced (pebble's process pool does exactly this). The process is started once and reused, so
an ordinary mail costs a round trip through a pipe, not a process start.

Functions run here are pure functions of `connectors.email.parse` and `.auth`, given and
returning picklable values; the exceptions they document (`MalformedMail`) come back as they
were raised.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

T = TypeVar("T")

_CONTEXT = multiprocessing.get_context("forkserver")
# Workers fork from a server that has the readers imported already: a replaced worker is ready
# at once.
_CONTEXT.set_forkserver_preload(["connectors.email.parse", "connectors.email.auth"])


class TooComplex(Exception):
    """A mail whose reading overran the time budget, or killed the process reading it; the
    message is the reason, fit for an SMTP reply."""


class WorkerUnavailable(Exception):
    """The worker pool is broken or stopped: a failure of the bridge, not of the mail."""


class MailWorker:
    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._pool = ProcessPool(max_workers=1, context=_CONTEXT)

    async def start(self) -> None:
        """Start the worker process, off the event loop (a process start blocks), so that the
        first mail does not wait for it; a stopped worker starts anew."""
        if not self._pool.active:
            self._pool = ProcessPool(max_workers=1, context=_CONTEXT)
        future = await asyncio.to_thread(self._pool.schedule, len, args=((),))
        await asyncio.wrap_future(future)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the worker process. Raises `TooComplex` when it overruns the
        budget (the process is then replaced) or its process dies, `WorkerUnavailable` when the
        pool cannot take work, and whatever ``function`` raises."""
        try:
            future = self._pool.schedule(function, args=args, timeout=self.budget)
        except RuntimeError as exc:  # pebble: the pool is stopped or broken
            raise WorkerUnavailable(str(exc)) from exc
        try:
            return await asyncio.wrap_future(future)
        except TimeoutError:
            raise TooComplex(f"not read within {self.budget:g} s") from None
        except ProcessExpired as exc:
            raise TooComplex(f"its reader stopped (exit code {exc.exitcode})") from None
        except BrokenProcessPool as exc:
            raise WorkerUnavailable(str(exc)) from exc

    def stop(self) -> None:
        """Stop the worker process (blocking; a running step is abandoned)."""
        self._pool.stop()
        self._pool.join()
