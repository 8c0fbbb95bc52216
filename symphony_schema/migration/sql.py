"""The one helper through which revisions execute raw SQL.

SQL reaches the server exactly as written: no ``text()`` construct, so ``:name`` is not a bind
parameter, and no DBAPI parameters, so ``%`` is not a placeholder. (SQLAlchemy's
``exec_driver_sql`` is not enough: it passes an empty parameter tuple, and psycopg then parses
``%``.) Online, the string goes to the psycopg cursor of the migration connection with
``params=None``, which psycopg sends as-is, several statements at once, inside the revision's
transaction; offline (``alembic upgrade head --sql``) it is written to the output verbatim.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op


def companion_sql_path(revision_file: str | Path) -> Path:
    """The ``.sql`` file that belongs to a revision: same directory, same stem."""
    return Path(revision_file).with_suffix(".sql")


def execute_sql(sql: str) -> None:
    """Execute raw SQL in the current migration transaction (or print it in offline mode)."""
    context = op.get_context()
    if context.as_sql:
        output = sql.rstrip()
        if not output.endswith(";"):
            output += ";"
        context.impl.static_output(output)
        return
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def run_revision_sql(revision_file: str | Path, *, transactional: bool = True) -> None:
    """Execute the revision's companion ``.sql`` file (``0001_init.py`` -> ``0001_init.sql``).

    ``transactional=False`` is the explicit opt-out for statements that cannot run in a
    transaction (``CREATE INDEX CONCURRENTLY``): the SQL then runs in autocommit mode, and the
    engine refuses to continue if it left an INVALID index behind.
    """
    path = companion_sql_path(revision_file)
    sql = path.read_text(encoding="utf-8-sig")
    if transactional:
        execute_sql(sql)
        return
    with op.get_context().autocommit_block():
        execute_sql(sql)
