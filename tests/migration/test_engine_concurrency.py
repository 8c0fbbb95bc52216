"""Concurrent deployers and crashes mid-upgrade (R1/R2 at engine-test strength)."""

from __future__ import annotations

import random
import signal
import time

import psycopg
import pytest

from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def _logged_revisions(tree: RevisionTree, count: int, *, pause: float = 0.0) -> list[str]:
    tree.add("log", "CREATE TABLE applied_log (revision text NOT NULL);")
    for n in range(2, count + 1):
        tree.add(
            f"step{n}",
            f"""\
            CREATE TABLE step{n} (id int);
            INSERT INTO applied_log VALUES ('step{n}');
            SELECT pg_sleep({pause});
            """,
        )
    return tree.revisions


def _state(conninfo: str) -> tuple[list[str], list[str], list[str]]:
    """(ledger versions, alembic_version, step tables present)."""
    with psycopg.connect(conninfo) as conn:
        has_ledger = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
        ledger = (
            [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
            if has_ledger and has_ledger[0]
            else []
        )
        has_version = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        version = (
            [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
            if has_version and has_version[0]
            else []
        )
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relname ~ '^(applied_log|step[0-9]+)$' "
                "AND relkind = 'r' ORDER BY 1"
            )
        ]
    return ledger, version, tables


def _assert_at_revision_boundary(tree: RevisionTree, conninfo: str) -> int:
    ledger, version, tables = _state(conninfo)
    applied = tree.revisions[: len(ledger)]
    assert ledger == applied, "the ledger must be a prefix of the chain"
    assert version == ([applied[-1]] if applied else []), "alembic_version must match the ledger"
    expected_tables = sorted(
        ["applied_log"] * bool(applied) + [rev.split("_", 1)[1] for rev in applied[1:]]
    )
    assert tables == expected_tables, "objects present must match the ledger"
    return len(ledger)


def test_eight_concurrent_deployers_apply_each_revision_exactly_once(
    tree: RevisionTree, empty_db
) -> None:
    revisions = _logged_revisions(tree, 4, pause=0.2)
    processes = [tree.popen("upgrade", "head") for _ in range(8)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in processes]

    assert [code for code, _, _ in outcomes] == [0] * 8, outcomes
    ledger, version, _ = _state(empty_db.conninfo)
    assert ledger == revisions
    assert version == [revisions[-1]]
    with psycopg.connect(empty_db.conninfo) as conn:
        counts = conn.execute(
            "SELECT revision, count(*) FROM applied_log GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert counts == [(f"step{n}", 1) for n in range(2, 5)]
    applying = [out for _, out, _ in outcomes if "applied " in out]
    assert len(applying) == 1, "exactly one deployer applies; the others find nothing to do"
    assert sum("nothing to do" in out for _, out, _ in outcomes) == 7


def test_a_failing_revision_rolls_back_alone(tree: RevisionTree, empty_db) -> None:
    tree.add("log", "CREATE TABLE applied_log (revision text NOT NULL);")
    tree.add("step2", "CREATE TABLE step2 (id int);")
    tree.add("step3", "CREATE TABLE step3 (id int); SELECT 1 / 0;")
    result = tree.alembic("upgrade", "head")
    assert result.returncode != 0
    assert "division by zero" in result.stdout + result.stderr
    assert "the database stays at 0002_step2" in result.stdout + result.stderr
    assert _assert_at_revision_boundary(tree, empty_db.conninfo) == 2


@pytest.mark.parametrize("trial", range(4))
def test_sigkill_during_upgrade_leaves_a_revision_boundary_and_rerun_completes(
    tree: RevisionTree, empty_db, trial: int
) -> None:
    revisions = _logged_revisions(tree, 6, pause=0.15)
    rng = random.Random(trial)
    process = tree.popen("upgrade", "head")
    # A random kill point somewhere inside the ~1 s the chain takes (not a wait for a server).
    time.sleep(rng.uniform(0.3, 1.2))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.communicate()

    applied = _assert_at_revision_boundary(tree, empty_db.conninfo)
    assert applied <= len(revisions)

    rerun = tree.alembic("upgrade", "head")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _assert_at_revision_boundary(tree, empty_db.conninfo) == len(revisions)
