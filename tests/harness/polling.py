"""Waiting in tests for what a server received, by asking again until it is there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def polled(find: Callable[[], T | None], timeout: float, missing: Callable[[], str]) -> T:  # noqa: ASYNC109
    """What ``find`` finds, asking it every tenth of a second; after ``timeout`` s a
    `TimeoutError` that says what is ``missing``."""
    deadline = time.monotonic() + timeout
    while (found := find()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(missing())
        await asyncio.sleep(0.1)
    return found
