"""The SQLite database run on the event loop (`bridge.database`): what mautrix's own SQLite
backend guarantees must hold here too, since the store and the crypto store rely on it."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from mautrix.util.async_db import Connection, Database, Scheme, UpgradeTable

from bridge.database import LoopSQLiteDatabase, database_view, open_database

table = UpgradeTable()


@table.register(description="A table")  # type: ignore[call-arg,arg-type]
async def _create(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("CREATE TABLE note (id INTEGER PRIMARY KEY, at TIMESTAMP)")


other = UpgradeTable(version_table_name="other_version")


@other.register(description="Another table")  # type: ignore[call-arg,arg-type]
async def _create_other(conn: Connection, scheme: Scheme) -> None:
    await conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:{tmp_path}/d.db", table)
    await database.start()
    yield database
    await database.stop()


async def ids(db: Database) -> list[int]:
    return [row["id"] for row in await db.fetch("SELECT id FROM note ORDER BY id")]


async def test_sqlite_urls_get_the_loop_database(db: Database) -> None:
    assert isinstance(db, LoopSQLiteDatabase)


async def test_a_failed_transaction_leaves_nothing_and_the_database_usable(db: Database) -> None:
    with pytest.raises(RuntimeError, match="half way"):
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO note (id) VALUES ($1)", 1)
            raise RuntimeError("half way")
    await db.execute("INSERT INTO note (id) VALUES ($1)", 2)
    assert await ids(db) == [2]


async def test_a_nested_transaction_is_part_of_the_outer_one(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, conn.transaction():
            async with conn.transaction():
                await conn.execute("INSERT INTO note (id) VALUES ($1)", 1)
            raise RuntimeError("outer fails")
    assert await ids(db) == []


async def test_another_coroutine_never_writes_inside_an_open_transaction(db: Database) -> None:
    """While one coroutine's transaction waits, another's statement waits for it; so rolling
    back the first does not take the second's row with it."""
    inside = asyncio.Event()

    async def failing() -> None:
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO note (id) VALUES ($1)", 1)
            inside.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("rolled back")

    async def other_writer() -> None:
        await inside.wait()
        await db.execute("INSERT INTO note (id) VALUES ($1)", 2)

    results = await asyncio.gather(failing(), other_writer(), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert await ids(db) == [2]


async def test_timestamps_read_back_as_datetimes(db: Database) -> None:
    at = datetime.datetime(2026, 11, 26, 23, 0, 0)
    await db.execute("INSERT INTO note (id, at) VALUES ($1, $2)", 1, at)
    assert await db.fetchval("SELECT at FROM note WHERE id=$1", 1) == at


async def test_rows_changed_are_counted(db: Database) -> None:
    first = await db.execute("INSERT INTO note (id) VALUES ($1) ON CONFLICT DO NOTHING", 1)
    again = await db.execute("INSERT INTO note (id) VALUES ($1) ON CONFLICT DO NOTHING", 1)
    assert (first.rowcount, again.rowcount) == (1, 0)


async def test_a_view_migrates_its_own_tables_over_the_same_connection(db: Database) -> None:
    view = database_view(db, other)
    await view.start()
    await view.execute("INSERT INTO other (id) VALUES ($1)", 7)
    assert await db.fetchval("SELECT id FROM other") == 7
    await view.stop()
    assert await db.fetchval("SELECT COUNT(*) FROM other") == 1  # the view closed nothing
