"""``symphony-schema baseline apply``: bring up an EMPTY database from ``baseline/baseline.sql``.

The whole file runs in one transaction under the engine's deploy lock (``LOCK TABLE
public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE`` when the ledger exists, ADR 0065; on an
empty database the baseline's own ``CREATE TABLE public.schema_migrations`` makes a concurrent
deployer's ledger creation wait for this transaction), after two refusals that write nothing:
a server older than PostgreSQL 18 and a database that already holds anything of its own. Before
committing, the ledger it wrote is validated against the revision files with the engine's own
check, so a stale ``baseline.sql`` is refused rather than leaving a database that
``alembic upgrade`` would then refuse (ADR 0012).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from symphony_schema import SymphonyError, project_root
from symphony_schema.database import to_conninfo
from symphony_schema.migration import api, deploy_lock
from symphony_schema.migration.engine import EngineSettings, check_server_version
from symphony_schema.migration.ledger import read_alembic_heads, read_ledger, validation_problems

# Anything a user (or an earlier migration) put into the database. The public schema itself,
# plpgsql and the catalogs are what CREATE DATABASE gives every new database.
_CONTENT_SQL = """
SELECT kind, name FROM (
    SELECT 1 AS o, 'schema' AS kind, n.nspname::text AS name
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname NOT IN ('public', 'pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname !~ '^pg_(toast_)?temp_'
    UNION ALL
    SELECT 2, 'relation', c.oid::pg_catalog.regclass::text
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname !~ '^pg_(toast_)?temp_'
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 3, 'function', p.oid::pg_catalog.regprocedure::text
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 4, 'type', t.oid::pg_catalog.regtype::text
      FROM pg_catalog.pg_type AS t
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND t.typrelid = 0 AND t.typcategory <> 'A'
    UNION ALL
    SELECT 5, 'extension', e.extname::text
      FROM pg_catalog.pg_extension AS e
     WHERE e.extname <> 'plpgsql'
) AS found
ORDER BY o, name
"""


@dataclass(frozen=True)
class ApplyResult:
    database: str
    heads: list[str]
    elapsed_ms: int


def database_contents(conn: Connection) -> list[str]:
    """``kind name`` of everything user-made in the database; empty for a fresh database."""
    return [f"{kind} {name}" for kind, name in conn.exec_driver_sql(_CONTENT_SQL)]


def execute_script(conn: Connection, script: str) -> None:
    """Send the whole script as-is (psycopg, no parameters: ``%`` and ``:name`` untouched)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor: Any = dbapi.cursor()
    with cursor:
        cursor.execute(script)


def _refuse_non_empty(conn: Connection, database: str) -> None:
    found = database_contents(conn)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise SymphonyError(
            f"refusing to apply the baseline: database {database!r} is not empty (found {shown}); "
            "nothing was written. The baseline is for new, empty databases: migrate an existing "
            "one with 'alembic upgrade head', or create an empty database and apply it there."
        )


def _refuse_stale_ledger(
    conn: Connection, baseline_file: Path, script_location: Path | None
) -> None:
    scripts = ScriptDirectory.from_config(api.alembic_config(script_location=script_location))
    problems = validation_problems(
        read_ledger(conn), read_alembic_heads(conn), scripts, project_root()
    )
    if problems:
        raise SymphonyError(
            f"{baseline_file} does not match the revision files, so 'alembic upgrade' would "
            "refuse the result; nothing was written. Regenerate it with 'nox -s baseline'.\n  - "
            + "\n  - ".join(problems)
        )


def _take_deploy_lock(conn: Connection, wait: str) -> None:
    """The deploy lock, for the rest of this transaction (nothing to lock on an empty database)."""
    dbapi = conn.connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    try:
        deploy_lock.lock_in_transaction(dbapi, wait)
    except deploy_lock.DeployLockError as exc:
        # The same typed error (DeployLockBusy, ...), with what was refused in front.
        raise type(exc)(f"refusing to apply the baseline: {exc}") from None


def read_script(baseline_file: Path) -> str:
    if not baseline_file.is_file():
        raise SymphonyError(
            f"no baseline at {baseline_file}: generate it with 'nox -s baseline' "
            "(symphony-schema baseline generate)"
        )
    return baseline_file.read_text(encoding="utf-8")


def apply_baseline(
    url: str,
    baseline_file: Path,
    *,
    script_location: Path | None = None,
    validate_ledger: bool = True,
) -> ApplyResult:
    """Apply ``baseline_file`` to the empty database at ``url`` in one transaction.

    ``validate_ledger=False`` skips the ledger check (the drift check applies hand-edited copies
    on purpose and compares the result itself).
    """
    script = read_script(baseline_file)
    check_server_version(to_conninfo(url))  # ServerTooOld is a SymphonyError
    started = time.monotonic()
    engine = sa.create_engine(url, poolclass=NullPool)
    database = str(engine.url.database)
    settings = EngineSettings.from_sources({}, os.environ)
    try:
        with engine.connect() as conn:
            _take_deploy_lock(conn, settings.deploy_lock_wait)
            _refuse_non_empty(conn, database)
            execute_script(conn, script)
            heads = read_alembic_heads(conn)
            if validate_ledger:
                _refuse_stale_ledger(conn, baseline_file, script_location)
            conn.commit()
    except (sa.exc.DBAPIError, psycopg.Error) as exc:
        error = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        sqlstate = getattr(error, "sqlstate", None)
        raise SymphonyError(
            f"applying {baseline_file} to {database!r} failed and was rolled back "
            f"(SQLSTATE {sqlstate}): {error}".rstrip()
        ) from exc
    finally:
        engine.dispose()
    return ApplyResult(database, heads, round((time.monotonic() - started) * 1000))
