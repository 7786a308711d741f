"""Opening the bridge's database: PostgreSQL through mautrix's asyncpg pool, SQLite on the loop.

mautrix's SQLite backend runs every statement on aiosqlite's worker thread. The hand-over to
that thread and back costs about 130 µs of CPU per statement, and a ``fetchrow`` takes three
(execute, fetch, close), while the bridge's statements themselves take a few µs each on an
indexed table: measured, it was most of the CPU the bridge spent per message. So
`LoopSQLiteDatabase` runs ``sqlite3`` directly on the event loop, behind the same
`mautrix.util.async_db.Database` interface, so that migrations, the store and the crypto store
use it unchanged. A statement that waits is bounded by ``busy_timeout``; with WAL and
``synchronous = NORMAL`` (mautrix's own defaults) a commit does not wait for the disk.

One connection serves everyone; `acquire` hands it out under a lock, so a transaction is never
interleaved with another coroutine's statements.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from mautrix.util.async_db import Database, Scheme, UpgradeTable
from mautrix.util.async_db.connection import LoggingConnection
from yarl import URL

log = logging.getLogger(__name__)

PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
)
_POSITIONAL = re.compile(r"\$(\d+)")


@lru_cache(maxsize=512)
def _sqlite_query(query: str) -> str:
    """``$1`` (the asyncpg style every query here is written in) as SQLite's ``?1``."""
    return _POSITIONAL.sub(r"?\1", query)


class LoopSQLiteConnection:
    """The part of aiosqlite's connection API that `LoggingConnection` calls, done directly.

    The methods are coroutines only to keep that interface: none of them ever suspends.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self.conn.in_transaction:  # nested: part of the outer one, as in mautrix
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> sqlite3.Cursor:
        return self.conn.execute(_sqlite_query(query), args)

    async def executemany(
        self,
        query: str,
        args: Iterable[Sequence[Any]],
        timeout: float | None = None,
    ) -> sqlite3.Cursor:
        return self.conn.executemany(_sqlite_query(query), args)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        return self.conn.execute(_sqlite_query(query), args).fetchall()

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return self.conn.execute(_sqlite_query(query), args).fetchone()

    async def fetchval(
        self,
        query: str,
        *args: Any,
        column: int = 0,
        timeout: float | None = None,
    ) -> Any:
        row = self.conn.execute(_sqlite_query(query), args).fetchone()
        return None if row is None else row[column]


class LoopSQLiteDatabase(Database):
    scheme = Scheme.SQLITE

    def __init__(
        self, url: URL, upgrade_table: UpgradeTable | None, db_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(url, upgrade_table, db_args, **kwargs)
        self._path = url.path
        self._sqlite: sqlite3.Connection | None = None
        self._conn: LoggingConnection | None = None
        self._lock = asyncio.Lock()
        self._parent: LoopSQLiteDatabase | None = None

    def override_pool(self, db: Database) -> None:
        """Share ``db``'s connection (a second upgrade table on the same file)."""
        assert isinstance(db, LoopSQLiteDatabase)
        self._parent = db

    async def start(self) -> None:
        if self._parent is None:
            # Declared types as mautrix's own SQLite connection reads them (the crypto store
            # reads TIMESTAMP columns as datetimes).
            conn = sqlite3.connect(
                self._path,
                detect_types=sqlite3.PARSE_DECLTYPES,
                isolation_level=None,
            )
            for pragma in PRAGMAS:
                conn.execute(pragma)
            conn.row_factory = sqlite3.Row
            self._sqlite = conn
            self._conn = LoggingConnection(self.scheme, LoopSQLiteConnection(conn), self.log)  # type: ignore[arg-type]
        await super().start()

    async def stop(self) -> None:
        if self._parent is None and self._conn is not None:
            async with self._lock:
                assert self._sqlite is not None
                self._sqlite.close()
                self._conn = self._sqlite = None

    @asynccontextmanager
    async def acquire_direct(self) -> AsyncIterator[LoggingConnection]:
        if self._parent is not None:
            async with self._parent.acquire_direct() as conn:
                yield conn
            return
        async with self._lock:
            if self._conn is None:
                raise RuntimeError("the database is closed")
            yield self._conn


def open_database(
    url: str, upgrade_table: UpgradeTable, db_args: dict[str, Any] | None = None
) -> Database:
    """A not yet started database for ``url`` (``sqlite:`` or ``postgres://``)."""
    parsed = URL(url)
    if parsed.scheme in ("sqlite", "sqlite3"):
        return LoopSQLiteDatabase(parsed, upgrade_table, db_args)
    # mautrix ends the process (exit status 26) on an asyncpg "internal client error", which a
    # connection the server terminated can raise; the store retries instead (`unreachable`).
    args = {"meow_exit_on_ice": False, **(db_args or {})}
    return Database.create(parsed, upgrade_table=upgrade_table, db_args=args)


_SQLITE_TRANSIENT = ("locked", "busy", "disk", "readonly", "unable to open", "i/o")


def unreachable(exc: BaseException) -> bool:
    """Whether a database error means "the database cannot be reached or written right now"
    (a dropped or terminated connection, a server restarting, a busy or read-only SQLite
    file), as opposed to a mistake in a statement: the first is worth retrying."""
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError
                  | asyncpg.InsufficientResourcesError | asyncpg.InterfaceError
                  | asyncpg.InternalClientError | OSError | TimeoutError):  # fmt: skip
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc).lower() for word in _SQLITE_TRANSIENT)
    return False


def database_view(db: Database, upgrade_table: UpgradeTable) -> Database:
    """Another set of tables (with its own migrations) in the same database as ``db``, over
    ``db``'s connections."""
    if isinstance(db, LoopSQLiteDatabase):
        view: Database = LoopSQLiteDatabase(db.url, upgrade_table, log=db.log)
    else:
        view = Database.create(db.url, upgrade_table=upgrade_table, log=db.log)
    view.override_pool(db)
    return view


R = TypeVar("R")
PATIENCE = 10.0
"""Seconds a store call on the way in (storing a received event, looking an ID up) waits for an
unreachable database before it fails, so that the source is answered "try again later"."""


def retried(patience: float | None) -> Callable[[Callable[..., Awaitable[R]]],
                                                 Callable[..., Awaitable[R]]]:  # fmt: skip
    """Retry a store call while the database is unreachable (`bridge.database.unreachable`),
    with backoff up to 30 s, for ``patience`` seconds (None: until it answers; the outbox's
    bookkeeping waits rather than send anything twice). A failed transaction was rolled back,
    and every call here can be made again."""

    def wrap(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(method)
        async def retrying(*args: Any, **kwargs: Any) -> R:
            started, delay, warned = time.monotonic(), 0.5, False
            while True:
                try:
                    result = await method(*args, **kwargs)
                except Exception as exc:
                    waited = time.monotonic() - started
                    if not unreachable(exc) or (patience is not None and waited >= patience):
                        raise
                    if not warned:
                        log.warning("The database is unreachable (%s: %s); retrying",
                                    type(exc).__name__, exc)  # fmt: skip
                        warned = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if warned:
                    log.info("The database answers again")
                return result

        return retrying

    return wrap
