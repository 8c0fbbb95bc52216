"""R2 at full strength: SIGKILL of ``alembic upgrade head`` of the real chain at random points.

The real revisions are copied into a throw-away tree with ``SELECT pg_sleep(PAUSE)`` before and
after each revision's statements, so a kill lands before, inside (DDL done, not committed) or
between revisions. Each trial picks a target boundary and a random moment: the deployer is killed
a random time after the ledger shows that many revisions, or at a random moment of the whole run.

After each kill (and after the killed deployer's server session is gone) the database must sit
exactly at a revision boundary: the ledger is a prefix of the chain with the files' checksums,
``alembic_version`` names its last entry, and the catalog (every relation, column, constraint,
index, function, type, trigger, ACL, default ACL and comment) equals that of a clean migration to
the same revision. Then a rerun must complete and reach the head state.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema.migration.checksum import revision_checksum
from tests.migration.conftest import RevisionTree, make_tree
from tests.torture import support
from tests.torture.conftest import Boundaries

pytestmark = [pytest.mark.integration, pytest.mark.migration]

PAUSE = 0.12


def _paused_tree(root: Path, url: str) -> tuple[RevisionTree, list[support.RealRevision]]:
    tree = make_tree(root, url)
    copied = support.copy_real_revisions(tree.versions, pause=PAUSE)
    tree.revisions = [rev.revision for rev in copied]
    return tree, copied


def _ledger_count(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return len(support.migration_state(conn).ledger)


def _assert_at_boundary(
    conninfo: str, copied: list[support.RealRevision], boundaries: Boundaries, context: str
) -> int:
    """The database is exactly at a revision boundary; returns how many revisions it holds."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        state = support.migration_state(conn)
        applied = len(state.ledger)
        chain = [rev.revision for rev in copied]
        assert state.ledger == chain[:applied], f"ledger is not a prefix of the chain ({context})"
        assert state.alembic_version == chain[applied - 1 : applied], (
            f"alembic_version {state.alembic_version} disagrees with the ledger "
            f"{state.ledger} ({context})"
        )
        checksums = (
            [
                row[0]
                for row in conn.execute(
                    "SELECT checksum FROM public.schema_migrations ORDER BY version"
                )
            ]
            if applied
            else []
        )
        assert checksums == [revision_checksum(rev.py) for rev in copied[:applied]], context
        have = boundaries.fingerprint_of(conn, applied)
    diff = support.fingerprint_diff(boundaries.fingerprints[applied], have)
    assert diff == [], f"objects present differ from revision boundary {applied} ({context}):\n" + (
        "\n".join(diff[:40])
    )
    return applied


def _deployer_in_transaction(pg_server: Any, dbname: str) -> bool:
    """Whether a session of the deployer is inside a transaction right now (statistics only: the
    kill follows a moment later)."""
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s AND xact_start IS NOT NULL",
            (dbname,),
        ).fetchone()
    return bool(row and row[0])


def _calibrate(pg_server: Any, tmp_path: Path, boundaries: Boundaries) -> float:
    """One uninterrupted run of the paused chain: it must work, and its wall time bounds the
    random kill moments."""
    with support.scratch_database(pg_server, "t_torture_r2") as scratch:
        tree, copied = _paused_tree(tmp_path / "calibration", scratch.url)
        started = time.monotonic()
        result = tree.alembic("upgrade", "head")
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stdout + result.stderr
        _assert_at_boundary(scratch.conninfo, copied, boundaries, "calibration run")
    return elapsed


def _trial(
    pg_server: Any,
    root: Path,
    boundaries: Boundaries,
    rng: random.Random,
    target: int | None,
    run_time: float,
    context: str,
) -> tuple[int, bool]:
    """One kill-and-rerun trial; returns (revisions applied at the kill, whether the deployer
    was inside a transaction just before the kill)."""
    with support.scratch_database(pg_server, "t_torture_r2") as scratch:
        tree, copied = _paused_tree(root, scratch.url)
        process = tree.popen("upgrade", "head")
        try:
            if target is None:
                time.sleep(rng.uniform(0.0, run_time))  # a random moment of the whole run
            else:
                if target > 0:
                    support.wait_until(
                        lambda: (
                            process.poll() is not None or _ledger_count(scratch.conninfo) >= target
                        ),
                        timeout=120,
                        what=f"the deployer committed {target} revision(s)",
                    )
                time.sleep(rng.uniform(0.0, 2.5 * PAUSE))  # somewhere in the next revision
            in_transaction = _deployer_in_transaction(pg_server, scratch.name)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=60)
            process.communicate()
        # The killed client's session ends when the server notices (client_connection_check_
        # interval); only then is the state final.
        support.wait_until(
            lambda: support.other_backends(pg_server.conninfo("postgres"), scratch.name) == 0,
            timeout=60,
            what="the killed deployer's server session is gone",
        )
        applied = _assert_at_boundary(scratch.conninfo, copied, boundaries, f"{context}, killed")

        rerun = tree.alembic("upgrade", "head")
        assert rerun.returncode == 0, f"rerun failed ({context}):\n{rerun.stdout}{rerun.stderr}"
        final = _assert_at_boundary(scratch.conninfo, copied, boundaries, f"{context}, rerun")
        assert final == len(copied), context
        assert ("nothing to do" in rerun.stdout) == (applied == len(copied)), context
        return applied, in_transaction


def _run_trials(
    pg_server: Any, tmp_path: Path, boundaries: Boundaries, trials: int, name: str
) -> Counter[int]:
    seed = support.run_seed(name)
    rng = random.Random(seed)
    run_time = _calibrate(pg_server, tmp_path, boundaries)
    chain_length = len(boundaries.revisions)
    landed: Counter[int] = Counter()
    inside = 0
    # Spread the targeted trials over the whole chain (every boundary when there are enough
    # trials), with every third trial fully random.
    spread = max(1, (chain_length + 1) // max(1, trials - trials // 3))
    for number in range(trials):
        target = None if number % 3 == 2 else (number * spread) % (chain_length + 1)
        context = f"seed {seed}, trial {number}, target {target}"
        applied, in_transaction = _trial(
            pg_server, tmp_path / f"trial{number}", boundaries, rng, target, run_time, context
        )
        landed[applied] += 1
        inside += in_transaction
    print(
        f"R2 seed {seed}: {trials} trials in {run_time:.2f} s runs; revisions applied at the "
        f"kill: {sorted(landed.items())}; killed inside a migration transaction: {inside}"
    )
    return landed


TRIALS_SMALL = 6


def test_sigkill_of_the_real_chain_leaves_a_revision_boundary(
    pg_server: Any, tmp_path: Path, boundaries: Boundaries
) -> None:
    # A fixed number of trials spread over the chain, so the default run does not grow with
    # every revision; the slow variant below targets every boundary.
    landed = _run_trials(pg_server, tmp_path, boundaries, TRIALS_SMALL, "r2-small")
    assert sum(landed.values()) == TRIALS_SMALL


TRIALS_FULL = 36


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_thirty_six_sigkills_of_the_real_chain(
    pg_server: Any, tmp_path: Path, boundaries: Boundaries
) -> None:
    landed = _run_trials(pg_server, tmp_path, boundaries, TRIALS_FULL, "r2-full")
    # Not vacuous: kills landed before, inside and after the chain.
    assert landed[0] > 0 and any(landed[k] for k in range(1, len(boundaries.revisions))), landed
