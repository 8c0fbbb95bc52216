"""The INVALID-index check ignores indexes whose build is in progress (ADR 0156).

A ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX CONCURRENTLY``) is INVALID until it ends: before,
another session's build anywhere in the database made ``alembic upgrade`` refuse to migrate.
An INVALID index nobody is building (a failed build) is still refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from symphony_schema.migration.invalid_indexes import invalid_index_problems
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def _wait_for_build(conninfo: str, command: str) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_progress_create_index WHERE command = %s "
                "AND phase LIKE 'waiting%%'",
                (command,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"no {command} in progress")


@pytest.fixture
def build_in_progress(empty_db: Any, request: Any) -> Iterator[str]:
    """Another session's index build, held in progress by an old snapshot; yields the command."""
    command = request.param
    with psycopg.connect(empty_db.conninfo, autocommit=True) as setup:
        setup.execute("CREATE SCHEMA other")
        setup.execute("CREATE TABLE other.t (v int); INSERT INTO other.t VALUES (1), (2)")
        if command == "REINDEX CONCURRENTLY":
            setup.execute("CREATE INDEX ix_other_v ON other.t (v)")
    statement = (
        "CREATE INDEX CONCURRENTLY ix_other_v ON other.t (v)"
        if command == "CREATE INDEX CONCURRENTLY"
        else "REINDEX INDEX CONCURRENTLY other.ix_other_v"
    )
    old = psycopg.connect(empty_db.conninfo)
    old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    old.execute("SELECT 1").fetchone()  # a snapshot the build must wait for
    errors: list[BaseException] = []

    def build() -> None:
        try:
            with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
                conn.execute(statement)
        except BaseException as exc:
            errors.append(exc)

    builder = threading.Thread(target=build)
    builder.start()
    try:
        _wait_for_build(empty_db.conninfo, command)
        yield command
    finally:
        old.close()
        builder.join(timeout=60)
    assert not errors, errors
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        assert invalid_index_problems(conn) == []


@pytest.mark.parametrize(
    "build_in_progress", ["CREATE INDEX CONCURRENTLY", "REINDEX CONCURRENTLY"], indirect=True
)
def test_a_deploy_goes_ahead_while_someone_else_builds_an_index(
    tree: RevisionTree, empty_db: Any, build_in_progress: str
) -> None:
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        invalid = conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relnamespace = 'other'::regnamespace"
        ).fetchone()
        assert invalid is not None and invalid[0] == 1  # the build's index is INVALID meanwhile
        assert invalid_index_problems(conn) == []
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied 0001_one" in result.stdout


def test_an_invalid_index_nobody_builds_is_still_refused(tree: RevisionTree, empty_db: Any) -> None:
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_dup_v ON dup (v)")
        # A build elsewhere in progress does not hide the failed one.
        assert [p.split(" on ")[0] for p in invalid_index_problems(conn)] == ["index ix_dup_v"]
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("upgrade", "head")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "index ix_dup_v on dup is INVALID" in out and "Traceback" not in out
