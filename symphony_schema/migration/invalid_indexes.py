"""INVALID indexes: the one query and the one fix message, for the engine and
``gate:no-invalid-index`` (ADR 0110).

A failed or interrupted ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX CONCURRENTLY``) leaves an
INVALID index behind. The scope is the whole database, every schema: the engine and the gate
refuse the same indexes, so a database the engine migrates is never one the gate then fails.
"""

from __future__ import annotations

from symphony_schema.migration.connections import AnyConnection, fetch_all

INVALID_INDEXES_SQL = """\
SELECT i.indexrelid::pg_catalog.regclass::text, i.indrelid::pg_catalog.regclass::text
  FROM pg_catalog.pg_index AS i
 WHERE NOT i.indisvalid
 ORDER BY 1"""


def invalid_index_problem(index: str, table: str) -> str:
    """The one message for an INVALID index."""
    return (
        f"index {index} on {table} is INVALID (a CREATE INDEX CONCURRENTLY failed or was "
        f"interrupted): fix what made it fail, then run REINDEX INDEX CONCURRENTLY {index}; "
        f"or DROP INDEX CONCURRENTLY {index}; (a revision not yet applied builds it again on "
        "the next upgrade; an applied one needs the REINDEX or a new revision)"
    )


def invalid_index_problems(conn: AnyConnection) -> list[str]:
    """One :func:`invalid_index_problem` per INVALID index in the database, by name."""
    return [
        invalid_index_problem(index, table) for index, table in fetch_all(conn, INVALID_INDEXES_SQL)
    ]
