"""The bridge's store on a throw-away database of either kind: a SQLite file, or a fresh schema
on the PostgreSQL server at 127.0.0.1:5432 (trust auth, database ``test``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from bridge.store import Store
from tests.harness import require_server

PG_HOST = "127.0.0.1:5432"
PG_DATABASE = "test"
PG_USERS = ("postgres", "root")

Opener = Callable[[], Awaitable[Store]]


async def postgres_url() -> str:
    """The URL of the test database as the first role that can log in; without one, a skip
    on a developer machine and a failure in CI (`require_server`)."""
    errors = []
    for user in PG_USERS:
        url = f"postgres://{user}@{PG_HOST}/{PG_DATABASE}"
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            errors.append(f"{user}: {e}")
            continue
        await conn.close()
        return url
    require_server("postgresql", f"cannot connect to {PG_HOST}/{PG_DATABASE} ({'; '.join(errors)})")


async def _execute(url: str, statement: str) -> None:
    """One statement on a connection of its own (``CREATE DATABASE`` runs outside a
    transaction)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def store_opener(kind: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """A function opening a `Store` on a database of its own (``sqlite`` or ``postgres``);
    calling it again is a restart. Stores left open are closed afterwards, and the PostgreSQL
    schema is dropped."""
    opened: list[Store] = []
    schema: str | None = None
    url: str
    if kind == "sqlite":
        url = f"sqlite:{tmp_path}/s.db"
        db_args = None
    else:
        url = await postgres_url()
        schema = f"t_{uuid.uuid4().hex}"
        await _execute(url, f'CREATE SCHEMA "{schema}"')
        db_args = {"server_settings": {"search_path": schema}}

    async def opener() -> Store:
        store = await Store.open(url, db_args=db_args)
        opened.append(store)
        return store

    try:
        yield opener
    finally:
        for store in opened:
            await store.close()  # closing twice is harmless
        if schema is not None:
            await _execute(url, f'DROP SCHEMA "{schema}" CASCADE')


@asynccontextmanager
async def fresh_database(prefix: str = "passerelle") -> AsyncIterator[str]:
    """The URL of a new, empty database ``<prefix>_<random>`` on the test server (for bridge
    processes, which take a database URL and nothing else), dropped afterwards with whatever is
    still connected."""
    admin = await postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def terminate_connections(url: str) -> int:
    """Terminate every other connection to ``url``'s database (``pg_terminate_backend``), as an
    admin or a failing server would; how many there were."""
    database = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        ))  # fmt: skip
    finally:
        await conn.close()
