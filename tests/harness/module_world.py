"""The world a test module shares among its tests, as a module-scoped fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from tests.harness import world as build


class Stoppable(Protocol):
    async def stop(self) -> None: ...


W = TypeVar("W", bound=Stoppable)


def module_world(
    name: str, start: Callable[[Path], Awaitable[W]], directory: str, *, xmpp: bool = False
) -> Any:
    """A fixture ``name``: the world ``start`` builds in a new temporary ``directory``
    (`tests.harness.world.started`: ``xmpp`` says whether it needs Prosody), stopped after the
    module's last test."""

    async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[W]:
        started = await build.started(start, tmp_path_factory.mktemp(directory), xmpp=xmpp)
        yield started
        await started.stop()

    return pytest.fixture(scope="module", name=name)(world)
