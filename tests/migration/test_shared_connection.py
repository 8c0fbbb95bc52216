"""Alembic's shared connection (``config.attributes["connection"]``) is the database migrated.

Issue 12.1, ADR 0095: programmatic ``command.upgrade`` (application test suites, pytest-alembic)
hands ``env.py`` a connection or an engine; the engine migrates THAT database with everything it
does (version gate, deploy lock, ledger, checksums, per-revision transactions). The URL rule
applies only when none is given.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.pool import NullPool

from alembic import command
from symphony_schema.migration import api
from tests.conftest import Database, PgServer
from tests.migration.conftest import make_tree
from tests.migration.test_deploy_lock import _login

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def _ledger(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone() == (None,):
            return []
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def _default_db_state(pg_server: PgServer) -> object:
    """What the URL rule's database (embedded ``symphony``) holds: it must not change."""
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'symphony'").fetchone() is None:
            return None
    with psycopg.connect(pg_server.conninfo("symphony")) as conn:
        return conn.execute(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL, "
            "(SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = 'public'::regnamespace)"
        ).fetchone()


@pytest.fixture
def no_url_rule(monkeypatch: pytest.MonkeyPatch, pg_server: PgServer) -> None:
    """Were the URL rule used, it would pick a database that does not exist and fail."""
    monkeypatch.setenv(
        "SYMPHONY_DATABASE_URL", pg_server.sqlalchemy_url("symphony_must_not_be_used")
    )


def test_programmatic_upgrade_migrates_the_shared_connections_database(
    pg_server: PgServer, empty_db: Database
) -> None:
    before = _default_db_state(pg_server)
    cfg = api.alembic_config()
    engine = sa.create_engine(empty_db.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            # The caller's connection is handed back usable, outside a transaction and with
            # its own session settings (the engine's timeouts were put back).
            assert not conn.in_transaction()
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
            assert conn.execute(sa.text("SELECT count(*) FROM schema_migrations")).scalar()
    finally:
        engine.dispose()
    head = api.head_revision()
    assert _ledger(empty_db.conninfo)[-1] == head
    with psycopg.connect(empty_db.conninfo) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)
    assert _default_db_state(pg_server) == before


def test_shared_connection_wins_over_the_url_rule(no_url_rule: None, empty_db: Database) -> None:
    cfg = api.alembic_config()
    engine = sa.create_engine(empty_db.url, poolclass=NullPool)
    try:
        cfg.attributes["connection"] = engine  # pytest-alembic passes its Engine here
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    assert _ledger(empty_db.conninfo)[-1] == api.head_revision()


def test_shared_connection_still_takes_the_deploy_lock(empty_db: Database) -> None:
    api.upgrade(empty_db.url)  # the ledger exists
    with psycopg.connect(empty_db.conninfo) as holder:
        holder.execute("LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        cfg = api.alembic_config(extra={"deploy_lock_wait": "0"})
        engine = sa.create_engine(empty_db.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                cfg.attributes["connection"] = conn
                with pytest.raises(CommandError, match="another deployer holds the deploy lock"):
                    command.upgrade(cfg, "head")
        finally:
            engine.dispose()


def test_shared_connection_inside_a_transaction_is_refused_and_left_alone(
    empty_db: Database,
) -> None:
    cfg = api.alembic_config()
    engine = sa.create_engine(empty_db.url, poolclass=NullPool)
    try:
        with engine.begin() as conn:  # Alembic's "external transaction" recipe
            cfg.attributes["connection"] = conn
            with pytest.raises(CommandError, match="inside a transaction"):
                command.upgrade(cfg, "head")
            assert conn.in_transaction()
    finally:
        engine.dispose()
    assert _ledger(empty_db.conninfo) == []


def test_shared_connection_of_another_kind_is_refused(empty_db: Database) -> None:
    cfg = api.alembic_config()
    cfg.attributes["connection"] = empty_db.url
    with pytest.raises(CommandError, match=r"config.attributes\['connection'\]"):
        command.upgrade(cfg, "head")
    assert _ledger(empty_db.conninfo) == []


def test_failing_revision_on_a_shared_connection_hands_it_back_usable(
    tmp_path: Path, empty_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path / "project", empty_db.url)
    first = tree.add("one", "CREATE TABLE one (id int);")
    tree.add("two", "CREATE TABLE two (id int); SELECT 1/0;")
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(tree.root))
    cfg = api.alembic_config(script_location=tree.root / "alembic")
    engine = sa.create_engine(empty_db.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET lock_timeout = '3s'"))
            conn.commit()
            cfg.attributes["connection"] = conn
            with pytest.raises(CommandError, match="division by zero"):
                command.upgrade(cfg, "head")
            assert not conn.in_transaction()
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "3s"
            conn.rollback()
    finally:
        engine.dispose()
    assert _ledger(empty_db.conninfo) == [first]
    with psycopg.connect(empty_db.conninfo) as check:
        # The lock session is gone with the run: nobody holds the deploy lock any more.
        check.execute("LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE NOWAIT")


def test_closed_shared_connection_is_refused_in_one_line(empty_db: Database) -> None:
    engine = sa.create_engine(empty_db.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pass
        cfg = api.alembic_config()
        cfg.attributes["connection"] = conn
        with pytest.raises(CommandError, match="closed or invalidated"):
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    assert _ledger(empty_db.conninfo) == []


def test_lock_session_logs_in_as_the_shared_connections_user(
    migrated_db: Database, pg_server: PgServer
) -> None:
    """The second session uses the shared connection's parameters (its login), not the URL rule
    or the superuser: a read-only login is refused the deploy lock (42501), nothing changes."""
    before = _ledger(migrated_db.conninfo)
    for login in _login(pg_server, "symphony_readonly"):
        engine = sa.create_engine(
            pg_server.sqlalchemy_url(migrated_db.name, login), poolclass=NullPool
        )
        try:
            cfg = api.alembic_config()
            cfg.attributes["connection"] = engine
            with pytest.raises(CommandError, match=r"may not take the deploy lock.*42501"):
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()
    assert _ledger(migrated_db.conninfo) == before
