"""Background tasks that must keep running for as long as the bridge does.

A task that ended with an exception would otherwise be noticed only as "Task exception was
never retrieved" at exit (if at all), and what it did (setting rooms up, syncing, listening for
mail) would silently stop. `supervise` logs the failure and starts the work again after a
backoff, until the bridge stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

RESTART_MAX = 60.0


def supervise(
    name: str, work: Callable[[], Awaitable[None]], log: logging.Logger
) -> asyncio.Task[None]:
    """Run ``work()`` as a task named ``name``; when it raises, log it and run it again (after
    1 s, doubling up to `RESTART_MAX`). It ends when ``work()`` returns or is cancelled."""

    async def keep_running() -> None:
        delay = 1.0
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stopped; starting it again in %.0fs", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX)

    return asyncio.create_task(keep_running(), name=name)
