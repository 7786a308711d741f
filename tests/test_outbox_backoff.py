"""Tests of `Outbox.backoff`: the wait after each failed delivery attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.claims import LocalClaims
from bridge.config.model import Delivery
from bridge.connector import Refusal
from bridge.health import NetworkHealth
from bridge.outbox import Outbox
from bridge.store import OutboxItem, Store


async def _deliver(item: OutboxItem) -> None:
    raise AssertionError("backoff must not deliver anything")


async def _give_up(item: OutboxItem, reason: Refusal, error: str) -> None:
    raise AssertionError("backoff must not give up on anything")


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    store = await Store.open(f"sqlite:{tmp_path}/s.db")
    try:
        yield Outbox(
            store,
            Delivery(max_attempts=8, initial_backoff=0.5, max_backoff=10),
            NetworkHealth([]),
            LocalClaims(),
            _deliver,
            _give_up,
        )
    finally:
        await store.close()


def test_backoff_doubles_from_initial_and_caps_at_max(outbox: Outbox) -> None:
    assert [outbox.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_backoff_before_any_failure_is_the_initial_delay(outbox: Outbox) -> None:
    assert outbox.backoff(0) == 0.5


def test_backoff_stays_capped_after_many_attempts(outbox: Outbox) -> None:
    assert outbox.backoff(1000) == 10
