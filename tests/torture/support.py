"""Helpers shared by the torture tests (imported as ``tests.torture.support``).

Nothing here mocks anything: every helper talks to the embedded PostgreSQL 18 server or runs the
real ``alembic`` the way a developer does.
"""

from __future__ import annotations

import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from symphony_schema import project_root

#: Engine-owned relations: created by the migration engine / Alembic, not by a revision.
ENGINE_RELATIONS = (
    "schema_migrations",
    "schema_migrations_pkey",
    "alembic_version",
    "alembic_version_pkc",
)

#: The four Symphony data tables (the migration ledger is compared separately).
SYMPHONY_TABLES = (
    "public.participant_outbox_sequences",
    "public.payment_outbox_pending",
    "public.payment_outbox_attempts",
    "public.policy_versions",
    "public.outbox_settings",
    "public.payment_outbox_idempotency_keys",
)


def run_seed(name: str) -> int:
    """The random seed of one torture test: ``TORTURE_SEED`` when set (to replay a failure),
    else a fresh one. Tests put it in every assertion message."""
    fixed = os.environ.get("TORTURE_SEED")
    if fixed:
        return int(fixed)
    return random.SystemRandom().randrange(1, 2**31) ^ (hash(name) & 0xFFFF)


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds.

    This waits for a condition (a backend gone, a lock queue filled), never for a fixed time.
    """
    deadline = time.monotonic() + timeout
    interval = 0.005
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(interval)
        interval = min(interval * 2, 0.1)


# --------------------------------------------------------------------------------------------
# Databases and logins
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scratch:
    """A throw-away database."""

    name: str
    conninfo: str
    url: str


def new_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def scratch_database(server: Any, prefix: str, template: str | None = None) -> Iterator[Scratch]:
    """CREATE DATABASE (optionally from a template); DROP ... WITH (FORCE) afterwards."""
    name = new_name(prefix)
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as admin:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        admin.execute(statement)
    try:
        yield Scratch(name, server.conninfo(name), server.sqlalchemy_url(name))
    finally:
        with psycopg.connect(server.conninfo("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def create_login(admin: psycopg.Connection[Any], *roles: str, inherit: bool = True) -> str:
    """A uniquely named non-superuser LOGIN role with membership in ``roles``."""
    name = new_name("t_torture")
    admin.execute(
        sql.SQL(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        ).format(sql.Identifier(name))
    )
    for role in roles:
        admin.execute(
            sql.SQL("GRANT {} TO {} WITH INHERIT {}").format(
                sql.Identifier(role), sql.Identifier(name), sql.SQL("TRUE" if inherit else "FALSE")
            )
        )
    return name


def drop_login(admin: psycopg.Connection[Any], name: str) -> None:
    """Drop a login created by :func:`create_login`: its sessions, its objects and privileges in
    the database ``admin`` is connected to (the only one it was used in), then the role."""
    admin.execute(
        "SELECT pg_catalog.pg_terminate_backend(pid, 10000) FROM pg_catalog.pg_stat_activity"
        " WHERE usename = %s",
        (name,),
    )
    admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def other_backends(conninfo: str, dbname: str) -> int:
    """Backends connected to ``dbname`` other than the one asking."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()",
            (dbname,),
        ).fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------
# Revisions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealRevision:
    """One revision of the project's real chain."""

    revision: str
    py: Path
    sql: Path


def real_revisions() -> list[RealRevision]:
    """The project's revision chain, base first (read from the files, so new revisions are
    covered as soon as they exist)."""
    from alembic.script import ScriptDirectory

    from symphony_schema.migration import api

    scripts = ScriptDirectory.from_config(api.alembic_config())
    chain = list(reversed(list(scripts.walk_revisions("base", "heads"))))
    result = []
    for script in chain:
        py = Path(script.path)
        result.append(RealRevision(script.revision, py, py.with_suffix(".sql")))
    return result


def copy_real_revisions(versions_dir: Path, *, pause: float | None = None) -> list[RealRevision]:
    """Copy the real revisions into a throw-away tree's ``versions`` directory.

    With ``pause``, each copied ``.sql`` gets ``SELECT pg_sleep(pause)`` before and after its real
    statements, so that a kill at a random moment often lands inside a revision's transaction
    (before or after its DDL) rather than between revisions.
    """
    copied = []
    for real in real_revisions():
        py = versions_dir / real.py.name
        shutil.copy(real.py, py)
        body = real.sql.read_text(encoding="utf-8")
        # A non-transactional revision (ADR 0056) may hold only re-runnable index statements:
        # the engine refuses a pg_sleep there, so it is copied as it is.
        transactional = "transactional=False" not in real.py.read_text(encoding="utf-8")
        if pause is not None and transactional:
            body = f"SELECT pg_sleep({pause});\n{body}\nSELECT pg_sleep({pause});\n"
        sql_path = versions_dir / real.sql.name
        sql_path.write_text(body, encoding="utf-8")
        copied.append(RealRevision(real.revision, py, sql_path))
    return copied


def alembic_env(url: str, root: Path | None = None) -> dict[str, str]:
    """Environment for an ``alembic`` subprocess against ``url`` (loud, so the output shows
    which deployer applied what)."""
    env = dict(os.environ)
    env["SYMPHONY_DATABASE_URL"] = url
    env["SYMPHONY_QUIET"] = "0"
    env.pop("DATABASE_URL", None)
    if root is not None:
        env["SYMPHONY_PROJECT_ROOT"] = str(root)
    else:
        env.pop("SYMPHONY_PROJECT_ROOT", None)
    return env


def project() -> Path:
    return project_root()


# --------------------------------------------------------------------------------------------
# State of a database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationState:
    """What the engine's two version records say."""

    ledger: list[str]
    alembic_version: list[str]


def migration_state(conn: psycopg.Connection[Any]) -> MigrationState:
    ledger: list[str] = []
    version: list[str] = []
    if _exists(conn, "public.schema_migrations"):
        ledger = [r[0] for r in conn.execute("SELECT version FROM public.schema_migrations")]
        ledger.sort()
    if _exists(conn, "public.alembic_version"):
        version = [r[0] for r in conn.execute("SELECT version_num FROM public.alembic_version")]
    return MigrationState(ledger, version)


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# Everything a revision can create or change in this database, as sorted text rows. Roles are
# cluster-wide and therefore left out (other databases of the cluster created them long ago).
_FINGERPRINT_QUERIES = {
    "relation": """
        SELECT c.relname, c.relkind::text, pg_catalog.pg_get_userbyid(c.relowner),
               COALESCE(c.relacl::text, '-'), c.relpersistence::text,
               COALESCE(pg_catalog.obj_description(c.oid, 'pg_class'), '-')
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace AND NOT (c.relname = ANY(%(engine)s))
    """,
    "column": """
        SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
               a.attnotnull::text, a.attgenerated::text,
               COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-'),
               COALESCE(a.attacl::text, '-')
          FROM pg_catalog.pg_attribute AS a
          JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
          LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT (c.relname = ANY(%(engine)s))
    """,
    "constraint": """
        SELECT c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid),
               k.convalidated::text
          FROM pg_catalog.pg_constraint AS k
          JOIN pg_catalog.pg_class AS c ON c.oid = k.conrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT (c.relname = ANY(%(engine)s))
    """,
    "index": """
        SELECT pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid::text
          FROM pg_catalog.pg_index AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.indrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT (c.relname = ANY(%(engine)s))
    """,
    "function": """
        SELECT p.oid::regprocedure::text, pg_catalog.md5(p.prosrc), p.prosecdef::text,
               COALESCE(p.proconfig::text, '-'), pg_catalog.pg_get_userbyid(p.proowner),
               COALESCE(p.proacl::text, '-'), p.provolatile::text, p.prokind::text,
               COALESCE(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = 'public'::regnamespace
    """,
    "type": """
        SELECT t.typname, t.typtype::text, pg_catalog.pg_get_userbyid(t.typowner),
               COALESCE(t.typacl::text, '-'),
               COALESCE((SELECT pg_catalog.string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                           FROM pg_catalog.pg_enum AS e WHERE e.enumtypid = t.oid), '-'),
               COALESCE(pg_catalog.obj_description(t.oid, 'pg_type'), '-')
          FROM pg_catalog.pg_type AS t
         WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c
                            WHERE c.oid = t.typrelid AND c.relkind <> 'c')
    """,
    "trigger": """
        SELECT c.relname, t.tgname, t.tgenabled::text, pg_catalog.pg_get_triggerdef(t.oid)
          FROM pg_catalog.pg_trigger AS t
          JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
    """,
    "schema": """
        SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner), COALESCE(n.nspacl::text, '-')
          FROM pg_catalog.pg_namespace AS n
         WHERE n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'
    """,
    "default_acl": """
        SELECT pg_catalog.pg_get_userbyid(d.defaclrole), d.defaclnamespace::regnamespace::text,
               d.defaclobjtype::text, d.defaclacl::text
          FROM pg_catalog.pg_default_acl AS d
    """,
    "extension": "SELECT x.extname, x.extversion FROM pg_catalog.pg_extension AS x",
}


def catalog_fingerprint(
    conn: psycopg.Connection[Any], *, include_engine_tables: bool
) -> dict[str, list[tuple[str, ...]]]:
    """Every object a revision can create in this database, with owner, ACL, definition and
    comment, as sorted rows per kind. Two databases with equal fingerprints hold the same schema.

    ``include_engine_tables=False`` leaves out the migration ledger and ``alembic_version``
    (the engine creates the ledger before the first revision, so at revision 0 it may or may
    not exist).
    """
    engine = [] if include_engine_tables else list(ENGINE_RELATIONS)
    result: dict[str, list[tuple[str, ...]]] = {}
    for kind, query in _FINGERPRINT_QUERIES.items():
        rows = conn.execute(query, {"engine": engine}).fetchall()
        result[kind] = sorted(tuple(str(v) for v in row) for row in rows)
    return result


def fingerprint_diff(
    want: dict[str, list[tuple[str, ...]]], have: dict[str, list[tuple[str, ...]]]
) -> list[str]:
    """Readable differences between two fingerprints (empty when equal)."""
    lines: list[str] = []
    for kind in sorted(set(want) | set(have)):
        expected, actual = set(want.get(kind, [])), set(have.get(kind, []))
        lines += [f"missing {kind}: {row}" for row in sorted(expected - actual)]
        lines += [f"unexpected {kind}: {row}" for row in sorted(actual - expected)]
    return lines


def table_snapshot(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
    """(row count, md5 of the sorted row texts) of every Symphony table and the migration
    ledger, read as the connection's role (use a superuser)."""
    snapshot: dict[str, tuple[int, str]] = {}
    for table in (*SYMPHONY_TABLES, "public.schema_migrations"):
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), COALESCE(pg_catalog.md5(pg_catalog.string_agg("
                "t::text, E'\\n' ORDER BY t::text)), '') FROM {} AS t"
            ).format(sql.SQL(table))
        ).fetchone()
        assert row is not None
        snapshot[table] = (int(row[0]), str(row[1]))
    return snapshot
