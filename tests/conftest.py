"""Shared pytest configuration and fixtures.

Server-starting fixtures belong here so one homeserver can serve a whole session.
``require_server`` decides whether a missing server is a skip (developer laptop) or a failure (CI);
it lives in ``tests.harness`` so test modules can import it without importing conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import in_ci, require_server, synapse_available
from tests.harness import world as build
from tests.harness.postgres import Opener, store_opener
from tests.world import World, start_world

__all__ = ["in_ci", "require_server", "synapse_available"]


@pytest.fixture(scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """Two real Synapse homeservers, their users and rooms, and the bridge between them."""
    started = await build.started(start_world, tmp_path_factory.mktemp("world"))
    yield started
    await started.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the bridge `Store` on this test's own database, once per kind; call it again to
    "restart"."""
    async with store_opener(request.param, tmp_path) as opener:
        yield opener
