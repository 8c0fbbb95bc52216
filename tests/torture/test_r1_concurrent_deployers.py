"""R1 at full strength: 8 simultaneous ``alembic upgrade head`` of the REAL revisions.

The deployers are real ``alembic`` subprocesses run in the project directory. In the gated
variant the test holds the engine's deploy lock (the ledger table lock, ADR 0065) until all
eight wait for it (retrying, ADR 0155), so they really race for it when it is released (without
the gate, process start-up alone often serialises them; they still race to create the ledger).
Afterwards: every run exited 0, exactly one applied the chain, every revision is in the ledger
exactly once with the checksum of its files, ``alembic_version`` is the head, the schema equals
the one a single clean migration produces, and the declared privilege matrix holds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema import privilege_catalog, privilege_diff, privileges
from symphony_schema.migration import deploy_lock
from symphony_schema.migration.checksum import revision_checksum
from tests.torture import support
from tests.torture.conftest import Boundaries

pytestmark = [pytest.mark.integration, pytest.mark.migration]

ALEMBIC = str(Path(sys.executable).with_name("alembic"))
DEPLOYERS = 8


def _deployer(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ALEMBIC, "upgrade", "head"],
        cwd=support.project(),
        env=support.alembic_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _queued_on_deploy_lock(conn: psycopg.Connection[Any], dbname: str) -> int:
    """Deployers whose lock session is open on ``dbname`` (they retry ``LOCK ... NOWAIT``
    between idle pauses, ADR 0155, so they are not queued in ``pg_locks``). ``conn`` is the
    gate's transaction, where ``pg_stat_activity`` would be read once and cached: clear it."""
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_stat_activity"
        " WHERE datname = %s AND application_name = %s",
        (dbname, deploy_lock.LOCK_APPLICATION_NAME),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _run_deployers(scratch: support.Scratch, *, gated: bool) -> list[tuple[int, str, str]]:
    """Start DEPLOYERS deployers on one database; with ``gated``, release them together."""
    with psycopg.connect(scratch.conninfo, autocommit=True) as gate:
        if gated:
            deploy_lock.ensure_ledger(gate)
            gate.autocommit = False
            gate.execute(deploy_lock.DEPLOY_LOCK_SQL)
        processes = [_deployer(scratch.url) for _ in range(DEPLOYERS)]
        try:
            if gated:
                support.wait_until(
                    lambda: _queued_on_deploy_lock(gate, scratch.name) == DEPLOYERS,
                    timeout=120,
                    what=f"all {DEPLOYERS} deployers wait for the deploy lock",
                )
                time.sleep(0.5)  # each has found the lock busy at least once
                gate.commit()  # releases the deploy lock
            outcomes = []
            for process in processes:
                out, err = process.communicate(timeout=300)
                outcomes.append((process.returncode, out, err))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()  # also closes its pipes (no leaked file objects)
    return outcomes


def _assert_applied_exactly_once(
    scratch: support.Scratch, boundaries: Boundaries, outcomes: list[tuple[int, str, str]]
) -> None:
    assert [code for code, _, _ in outcomes] == [0] * DEPLOYERS, outcomes
    revisions = support.real_revisions()
    applying = [out for _, out, _ in outcomes if "applied " in out]
    assert len(applying) == 1, "exactly one deployer may apply the chain"
    for revision in revisions:
        assert applying[0].count(f"applied {revision.revision} ") == 1, applying[0]
    idle = sum("nothing to do" in out for _, out, _ in outcomes)
    assert idle == DEPLOYERS - 1, "every other deployer must find nothing to do"

    with psycopg.connect(scratch.conninfo, autocommit=True) as conn:
        ledger = conn.execute(
            "SELECT version, checksum FROM public.schema_migrations ORDER BY version"
        ).fetchall()
        assert ledger == [(r.revision, revision_checksum(r.py)) for r in revisions]
        state = support.migration_state(conn)
        assert state.alembic_version == [revisions[-1].revision]
        have = support.catalog_fingerprint(conn, include_engine_tables=True)
        assert support.fingerprint_diff(boundaries.fingerprints[-1], have) == []
        problems = privilege_diff.diff_grants(
            privileges.expected_grants(), privilege_catalog.read_actual_grants(conn)
        )
        assert problems == []


@pytest.mark.parametrize("gated", [True, False], ids=["released-together", "free-start"])
def test_eight_concurrent_deployers_apply_the_real_chain_exactly_once(
    pg_server: Any, boundaries: Boundaries, gated: bool
) -> None:
    with support.scratch_database(pg_server, "t_torture_r1") as scratch:
        outcomes = _run_deployers(scratch, gated=gated)
        _assert_applied_exactly_once(scratch, boundaries, outcomes)


ROUNDS = 10


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_repeated_rounds_of_eight_racing_deployers(pg_server: Any, boundaries: Boundaries) -> None:
    """Full strength: ROUNDS rounds of eight deployers released together, each on a fresh empty
    database."""
    for _ in range(ROUNDS):
        with support.scratch_database(pg_server, "t_torture_r1") as scratch:
            outcomes = _run_deployers(scratch, gated=True)
            _assert_applied_exactly_once(scratch, boundaries, outcomes)


@pytest.mark.slow
def test_eight_deployers_on_eight_databases_of_one_cluster(
    pg_server: Any, boundaries: Boundaries
) -> None:
    """Roles are cluster-wide: 0003 runs in eight databases at once and must neither fail nor
    leave a role with other attributes."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        scratches = [
            stack.enter_context(support.scratch_database(pg_server, "t_torture_r1m"))
            for _ in range(DEPLOYERS)
        ]
        processes = [_deployer(s.url) for s in scratches]
        outcomes = [(p.wait(timeout=300), *p.communicate()) for p in processes]
        assert [code for code, _, _ in outcomes] == [0] * DEPLOYERS, outcomes
        for scratch in scratches:
            with psycopg.connect(scratch.conninfo, autocommit=True) as conn:
                have = support.catalog_fingerprint(conn, include_engine_tables=True)
                assert support.fingerprint_diff(boundaries.fingerprints[-1], have) == []
                live = privilege_catalog.read_role_attributes(conn)
                assert privilege_diff.diff_role_attributes(live) == []
