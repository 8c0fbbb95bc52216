"""Non-transactional revisions run statement by statement and survive interruption (ADR 0056)."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def _indexes(conninfo: str) -> dict[str, bool]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'ix_%' ORDER BY 1"
        ).fetchall()
    return dict(rows)


def _ledger(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def _two_index_tree(tree: RevisionTree) -> str:
    tree.add("tables", "CREATE TABLE a (v int); CREATE TABLE b (v int);")
    return tree.add(
        "indexes",
        """\
        -- Two indexes, each built without blocking writes.
        CREATE INDEX CONCURRENTLY ix_a_v ON a (v);
        /* a comment; with a semicolon */
        CREATE INDEX CONCURRENTLY ix_b_v ON b (v);
        COMMENT ON INDEX ix_b_v IS $c$built; concurrently$c$;
        """,
        transactional=False,
    )


def test_two_concurrently_statements_in_one_revision_apply(tree: RevisionTree, empty_db) -> None:
    rev = _two_index_tree(tree)
    result = tree.alembic("upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _indexes(empty_db.conninfo) == {"ix_a_v": True, "ix_b_v": True}
    assert _ledger(empty_db.conninfo)[-1] == rev


def test_offline_script_sends_each_statement_on_its_own(tree: RevisionTree) -> None:
    _two_index_tree(tree)
    result = tree.alembic("upgrade", "head", "--sql")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    first = out.index("CREATE INDEX CONCURRENTLY ix_a_v ON a (v);")
    second = out.index("CREATE INDEX CONCURRENTLY ix_b_v ON b (v);")
    assert first < second < out.index("INSERT INTO public.schema_migrations", second)
    assert "BEGIN" not in out[first:second], "CONCURRENTLY cannot run inside a transaction"


def _wait_for(conninfo: str, query: str, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query).fetchone()
            if row and row[0]:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {query}")


WAITING_MIGRATOR = (
    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'relation' "
    "AND application_name <> 'holder' AND datname = current_database()"
)


@pytest.mark.parametrize("moment", ["between_indexes", "before_ledger_row"])
def test_a_backend_terminated_mid_revision_is_completed_by_a_rerun(
    tree: RevisionTree, empty_db, moment: str
) -> None:
    rev = _two_index_tree(tree)
    tree.add("after", "CREATE TABLE after_indexes (id int);")
    # Apply the first revision, then stop the migrator at the chosen moment with a lock the
    # test holds: on table b (the second index waits) or on alembic_version (the indexes have
    # committed; the version/ledger update waits, reads are still allowed).
    assert tree.alembic("upgrade", tree.revisions[0]).returncode == 0
    target = "b" if moment == "between_indexes" else "alembic_version"
    with psycopg.connect(empty_db.conninfo, application_name="holder") as holder:
        mode = "ACCESS EXCLUSIVE" if moment == "between_indexes" else "EXCLUSIVE"
        holder.execute(f"LOCK TABLE {target} IN {mode} MODE")
        process = tree.popen("upgrade", "head")
        pid = _wait_for(empty_db.conninfo, WAITING_MIGRATOR)
        built = _indexes(empty_db.conninfo)
        assert built["ix_a_v"] is True
        assert ("ix_b_v" in built) is (moment == "before_ledger_row")
        with psycopg.connect(empty_db.conninfo, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        holder.rollback()
    process.wait(timeout=60)
    process.communicate()
    assert process.returncode != 0
    assert rev not in _ledger(empty_db.conninfo)

    rerun = tree.alembic("upgrade", "head")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _ledger(empty_db.conninfo) == tree.revisions
    assert _indexes(empty_db.conninfo) == {"ix_a_v": True, "ix_b_v": True}


def test_an_invalid_index_is_refused_with_the_exact_command_then_the_rerun_completes(
    tree: RevisionTree, empty_db
) -> None:
    tree.add("data", "CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1);")
    rev = tree.add(
        "idx", "CREATE UNIQUE INDEX CONCURRENTLY ix_dup_v ON dup (v);", transactional=False
    )
    failed = tree.alembic("upgrade", "head")
    assert failed.returncode != 0
    assert "could not create unique index" in failed.stdout + failed.stderr
    assert f"non-transactional revision {rev}" in failed.stdout + failed.stderr

    rerun = tree.alembic("upgrade", "head")

    message = rerun.stdout + rerun.stderr
    assert rerun.returncode != 0
    assert "index ix_dup_v on dup is INVALID" in message
    assert "REINDEX INDEX CONCURRENTLY ix_dup_v;" in message
    assert "DROP INDEX CONCURRENTLY ix_dup_v;" in message
    assert "Traceback" not in message
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute("DROP INDEX CONCURRENTLY public.ix_dup_v")
        conn.execute("DELETE FROM dup WHERE ctid = (SELECT max(ctid) FROM dup)")
    fixed = tree.alembic("upgrade", "head")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _ledger(empty_db.conninfo)[-1] == rev
    assert _indexes(empty_db.conninfo) == {"ix_dup_v": True}


def test_a_statement_whose_rerun_is_not_safe_is_refused_before_anything_runs(
    tree: RevisionTree, empty_db
) -> None:
    tree.add(
        "mixed",
        "CREATE TABLE t (v int); CREATE INDEX CONCURRENTLY ix_t_v ON t (v);",
        transactional=False,
    )
    result = tree.alembic("upgrade", "head")
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CREATE TABLE t (v int)" in message and "transactional revision" in message
    assert "Traceback" not in message
    with psycopg.connect(empty_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.t')").fetchone() == (None,)
