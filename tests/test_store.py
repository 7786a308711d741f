"""Tests of `bridge.store.Store` on both supported databases: SQLite and PostgreSQL.

Every test runs against a real database. PostgreSQL runs use a fresh schema per test on the
server at 127.0.0.1:5432 (trust auth); when that server is unreachable the PostgreSQL cases skip
on a developer machine and fail in CI (``require_server``).
"""

from __future__ import annotations

import time

import pytest

from bridge.events import Event, Sender
from bridge.store import OutboxItem, Store, upgrade_table
from tests import samples
from tests.harness.postgres import Opener


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


def message(
    remote_id: str, *, network: str = "tchap", link: str = "crisis", text: str = ""
) -> Event:
    alice = Sender(network, f"@alice:{network}.example", "Alice")
    room = f"!room:{network}.example"
    return samples.message(alice, link, room, remote_id, text or f"text of {remote_id}")


async def drain(store: Store, link: str, target: str) -> list[str]:
    """The source IDs in a queue, head first, removing them (as give-ups)."""
    seen = []
    while items := await store.queue_head(link, target, 2):
        seen.append(items[0].event.remote_id)
        await store.give_up(items[0])
    return seen


async def head(store: Store, link: str, target: str) -> OutboxItem:
    items = await store.queue_head(link, target, 1)
    assert items, f"queue ({link}, {target}) is empty"
    return items[0]


# Migrations


async def test_migrations_run_and_reopen_keeps_version_and_data(open_store: Opener) -> None:
    store = await open_store()
    latest = len(upgrade_table.upgrades)
    assert await store.db.fetchval("SELECT version FROM version") == latest
    assert await store.outbox_size() == 0
    assert await store.accept(message("$a"), ["matrix"])
    await store.close()

    reopened = await open_store()
    assert await reopened.db.fetchval("SELECT version FROM version") == latest
    assert await reopened.outbox_size() == 1
    assert await reopened.is_known("tchap", "$a")


# accept


async def test_accept_stores_once(store: Store) -> None:
    event = message("$one")
    assert await store.accept(event, ["matrix", "other"]) is True
    assert await store.is_known("tchap", "$one")
    assert await store.outbox_size() == 2

    # The same event again (a redelivered transaction, a replayed sync) queues nothing.
    assert await store.accept(event, ["matrix", "other"]) is False
    assert await store.accept(message("$one", text="changed"), ["matrix"]) is False
    assert await store.outbox_size() == 2
    assert await drain(store, "crisis", "matrix") == ["$one"]
    assert await drain(store, "crisis", "other") == ["$one"]


async def test_same_remote_id_on_another_network_is_another_message(store: Store) -> None:
    assert await store.accept(message("$x", network="tchap"), ["matrix"])
    assert await store.accept(message("$x", network="matrix"), ["tchap"])
    assert await store.outbox_size() == 2
    assert not await store.is_known("other", "$x")


async def test_accept_without_targets_still_remembers_the_event(store: Store) -> None:
    assert await store.accept(message("$lonely"), [])
    assert await store.outbox_size() == 0
    assert await store.queues() == []
    assert await store.accept(message("$lonely"), ["matrix"]) is False


async def test_queued_event_comes_back_intact(store: Store) -> None:
    user_id = "@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr"
    jean = Sender(
        "tchap", user_id, "Jean Dupont", person_id="jdupont", org="Intérieur", suffix=" (Tchap)"
    )
    event = samples.message(
        jean, "crisis", "!r:tchap.example", "$rich", "Réunion à 10 h — « salle 2 » 🚒",
        html="Réunion à <strong>10 h</strong>", reply_to="$parent", extra={"k": [1, 2]},
    )  # fmt: skip
    assert await store.accept(event, ["matrix"])
    item = await head(store, "crisis", "matrix")
    assert item.event == event
    assert (item.link_id, item.target, item.attempts) == ("crisis", "matrix", 0)


# Queues


async def test_queue_order_is_insertion_order_and_queues_are_independent(store: Store) -> None:
    for n in range(5):
        assert await store.accept(message(f"$c{n}"), ["matrix", "other"])
        assert await store.accept(message(f"$d{n}", link="drill"), ["matrix"])

    # Working one queue does not move the others.
    first = await head(store, "crisis", "matrix")
    await store.delivered(first, "$m0", "!m:matrix.example")
    assert (await head(store, "crisis", "other")).event.remote_id == "$c0"
    assert (await head(store, "drill", "matrix")).event.remote_id == "$d0"

    assert await drain(store, "crisis", "matrix") == ["$c1", "$c2", "$c3", "$c4"]
    assert await drain(store, "crisis", "other") == [f"$c{n}" for n in range(5)]
    assert await drain(store, "drill", "matrix") == [f"$d{n}" for n in range(5)]
    assert await store.queue_head("drill", "other", 1) == []
    assert await store.outbox_size() == 0


async def test_queues_lists_non_empty_queues_and_survive_restart(open_store: Opener) -> None:
    store = await open_store()
    assert await store.queues() == []
    assert await store.accept(message("$1"), ["matrix", "other"])
    assert await store.accept(message("$2"), ["matrix"])
    assert await store.accept(message("$3", link="drill"), ["other"])
    expected = {("crisis", "matrix"), ("crisis", "other"), ("drill", "other")}
    queues = await store.queues()
    assert sorted(queues) == sorted(expected)  # each queue once

    await store.close()
    store = await open_store()
    assert set(await store.queues()) == expected
    assert await drain(store, "crisis", "matrix") == ["$1", "$2"]
    assert set(await store.queues()) == {("crisis", "other"), ("drill", "other")}
    assert await drain(store, "crisis", "other") == ["$1"]
    assert await drain(store, "drill", "other") == ["$3"]
    assert await store.queues() == []


async def test_retry_later_counts_attempts_and_keeps_the_item_at_the_head(store: Store) -> None:
    assert await store.accept(message("$first"), ["matrix"])
    assert await store.accept(message("$second"), ["matrix"])
    item = await head(store, "crisis", "matrix")
    assert (item.attempts, item.next_attempt) == (0, 0)

    before = time.time()
    await store.retry_later(item, 30, "connection refused")
    again = await head(store, "crisis", "matrix")
    assert again.id == item.id
    assert again.event.remote_id == "$first"
    assert again.attempts == 1
    assert before + 30 <= again.next_attempt <= time.time() + 30

    await store.retry_later(again, 60, "x" * 5000)  # a long error is accepted (truncated)
    third = await head(store, "crisis", "matrix")
    assert (third.id, third.attempts) == (item.id, 2)
    assert third.next_attempt >= before + 60
    assert await store.outbox_size() == 2


# Delivery and the ID map


async def test_delivered_removes_item_and_maps_ids_both_ways(store: Store) -> None:
    assert await store.accept(message("$src"), ["matrix", "other"])
    to_matrix = await head(store, "crisis", "matrix")
    await store.delivered(to_matrix, "$on_matrix", "!m:matrix.example")
    assert await store.queue_head("crisis", "matrix", 1) == []
    assert await store.outbox_size() == 1

    assert await store.counterpart("tchap", "$src", "matrix") == "$on_matrix"
    assert await store.counterpart("matrix", "$on_matrix", "tchap") == "$src"
    assert await store.is_known("matrix", "$on_matrix")
    # Not delivered to "other" yet.
    assert await store.counterpart("tchap", "$src", "other") is None
    assert await store.counterpart("matrix", "$on_matrix", "other") is None

    to_other = await head(store, "crisis", "other")
    await store.delivered(to_other, "$on_other", "!o:other.example")
    # A third network is reached through the origin, from either copy.
    assert await store.counterpart("matrix", "$on_matrix", "other") == "$on_other"
    assert await store.counterpart("other", "$on_other", "matrix") == "$on_matrix"
    assert await store.counterpart("other", "$on_other", "tchap") == "$src"
    assert await store.outbox_size() == 0
    assert await store.queues() == []


async def test_counterpart_of_unknown_message_is_none(store: Store) -> None:
    assert await store.counterpart("tchap", "$nobody", "matrix") is None


async def test_delivered_without_remote_id_only_removes(store: Store) -> None:
    assert await store.accept(message("$redacted"), ["matrix"])
    await store.delivered(await head(store, "crisis", "matrix"), None, "!m:matrix.example")
    assert await store.outbox_size() == 0
    assert await store.counterpart("tchap", "$redacted", "matrix") is None


async def test_echo_of_a_delivered_message_is_not_accepted_again(store: Store) -> None:
    """The bridge's own message coming back from the target is recognised by its ID."""
    assert await store.accept(message("$src"), ["matrix"])
    await store.delivered(await head(store, "crisis", "matrix"), "$echo", "!m:matrix.example")
    assert await store.accept(message("$echo", network="matrix"), ["tchap"]) is False
    assert await store.outbox_size() == 0


async def test_give_up_removes_without_mapping(store: Store) -> None:
    assert await store.accept(message("$bad"), ["matrix"])
    assert await store.accept(message("$good"), ["matrix"])
    await store.give_up(await head(store, "crisis", "matrix"))
    assert (await head(store, "crisis", "matrix")).event.remote_id == "$good"
    assert await store.counterpart("tchap", "$bad", "matrix") is None
    assert await store.outbox_size() == 1


# Transactions, rooms, sync positions, ghosts


async def test_created_rooms(store: Store) -> None:
    assert await store.created_rooms("matrix") == {}
    await store.save_created_room("crisis", "matrix", "!new:matrix.example")
    await store.save_created_room("crisis", "tchap", "!new:tchap.example")
    await store.save_created_room("drill", "matrix", "!drill:matrix.example")
    assert await store.created_rooms("matrix") == {
        "crisis": "!new:matrix.example",
        "drill": "!drill:matrix.example",
    }
    assert await store.created_rooms("tchap") == {"crisis": "!new:tchap.example"}
