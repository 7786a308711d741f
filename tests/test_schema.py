"""`bridge.schema.create_table` writes a table's statement as the migrations always wrote it:
databases made before it and after it must hold the same SQL."""

from bridge.schema import create_table


def test_a_table_is_laid_out_one_line_per_column_as_the_migrations_wrote_it() -> None:
    assert create_table(
        "federation_list",
        "network  TEXT PRIMARY KEY",
        "version  BIGINT NOT NULL",
        "token    TEXT NOT NULL",
        "taken    DOUBLE PRECISION NOT NULL",
    ) == (
        """CREATE TABLE federation_list (
            network  TEXT PRIMARY KEY,
            version  BIGINT NOT NULL,
            token    TEXT NOT NULL,
            taken    DOUBLE PRECISION NOT NULL
        )"""
    )


def test_a_table_a_database_may_have_already_is_created_only_if_missing() -> None:
    assert create_table("sync_position", "network TEXT PRIMARY KEY", if_not_exists=True) == (
        """CREATE TABLE IF NOT EXISTS sync_position (
            network TEXT PRIMARY KEY
        )"""
    )
