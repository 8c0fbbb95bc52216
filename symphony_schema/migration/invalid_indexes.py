"""INVALID indexes: the one query and the one fix message, for the engine and
``gate:no-invalid-index`` (ADR 0110).

A failed or interrupted ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX CONCURRENTLY``) leaves an
INVALID index behind. The scope is the whole database, every schema: the engine and the gate
refuse the same indexes, so a database the engine migrates is never one the gate then fails.

An index whose build is in progress right now is INVALID until the build ends; it is not a
failure and is left out (ADR 0156): a row of ``pg_stat_progress_create_index`` names it
(``index_relid``), or, for ``REINDEX CONCURRENTLY``, its table, for the build's own ``_ccnew``
and ``_ccold`` indexes. That view shows another user's build without its
relations unless the caller may read all statistics (``pg_read_all_stats``): such a build is
still reported, as before.
"""

from __future__ import annotations

from symphony_schema.migration.connections import AnyConnection, fetch_all

INVALID_INDEXES_SQL = """\
SELECT i.indexrelid::pg_catalog.regclass::text, i.indrelid::pg_catalog.regclass::text
  FROM pg_catalog.pg_index AS i
 WHERE NOT i.indisvalid
   AND NOT EXISTS (
       SELECT FROM pg_catalog.pg_stat_progress_create_index AS p
        WHERE p.datid = (SELECT oid FROM pg_catalog.pg_database
                          WHERE datname = pg_catalog.current_database())
          AND (p.index_relid = i.indexrelid
               OR (p.command = 'REINDEX CONCURRENTLY' AND p.relid = i.indrelid
                   AND (SELECT c.relname FROM pg_catalog.pg_class AS c
                         WHERE c.oid = i.indexrelid) ~ '_cc(new|old)[0-9]*$')))
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
    """One :func:`invalid_index_problem` per INVALID index in the database, by name, leaving
    out indexes being built right now."""
    return [
        invalid_index_problem(index, table) for index, table in fetch_all(conn, INVALID_INDEXES_SQL)
    ]
