"""How the migrations (`bridge.store`, `bridge.audit`, the kinds' own tables) declare a table:
its name and its column and constraint lines, once.

A migration that existing databases have run must send new ones the very same SQL (SQLite keeps
each table's statement as written), so `create_table` lays it out as the migrations always
wrote it: one line per column or constraint, indented under the statement, the columns aligned
as each table was first written.
"""

from mautrix.util.async_db import Connection, Scheme, UpgradeTable

_INDENT = "\n            "


def create_table(name: str, *lines: str, if_not_exists: bool = False) -> str:
    """``CREATE TABLE name (lines)``; ``if_not_exists`` for tables a database may have from
    before they were a migration's own."""
    verb = "CREATE TABLE IF NOT EXISTS" if if_not_exists else "CREATE TABLE"
    return f"{verb} {name} ({_INDENT}{(',' + _INDENT).join(lines)}\n        )"


def migration(table: UpgradeTable, description: str, *statements: str) -> None:
    """Register, as the next version of ``table``, a migration that runs ``statements`` in
    order; one that needs the database's scheme or query arguments is a function of its own."""

    async def upgrade(conn: Connection, scheme: Scheme) -> None:
        for statement in statements:
            await conn.execute(statement)

    table.register(upgrade, description=description)
