"""Waiting for the deploy lock holds no snapshot (ADR 0155).

A deployer queued in ``LOCK TABLE public.schema_migrations`` keeps a catalog snapshot while it
waits (``backend_xmin`` set), so a ``CREATE INDEX CONCURRENTLY`` run by the lock holder waits
for every queued deployer, which waits for the holder: the build ends at ``lock_timeout`` with an
INVALID index (docs/reliability.md, R1). Deployers now wait with ``LOCK ... NOWAIT`` retried
from the client, in a fresh transaction each try.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema.migration import deploy_lock
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

LOCK_APP = deploy_lock.LOCK_APPLICATION_NAME


def _wait_until(predicate: Any, what: str, timeout: float = 60, conninfo: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}: {_activity(conninfo)}")
        time.sleep(0.05)


def _activity(conninfo: str) -> list[tuple[Any, ...]]:
    if not conninfo:
        return []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, application_name, state, wait_event_type, wait_event, left(query, 60) "
            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()


def _scalar(conninfo: str, query: str, *params: Any) -> Any:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _lock_sessions(conninfo: str) -> int:
    return int(
        _scalar(
            conninfo,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s",
            LOCK_APP,
        )
    )


def _gate_waiters(conninfo: str) -> int:
    return int(
        _scalar(
            conninfo,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE '%%gate_flag%%' AND pid <> pg_backend_pid()",
        )
    )


def _finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        results.append((process.returncode, out + err))
    return results


def _gated_concurrently_tree(tree: RevisionTree) -> None:
    """Revision 2 waits while the test's flag table exists; revision 3 is CONCURRENTLY.

    (A lock would not do as the gate: the deployer's ``lock_timeout`` ends any lock wait;
    nor would the table's existence: a loop sees no catalog change without taking a lock.)
    """
    tree.add("tables", "CREATE TABLE big (v int); INSERT INTO big SELECT generate_series(1, 1000);")
    tree.add(
        "gate",
        "DO $$ BEGIN WHILE EXISTS (SELECT FROM public.gate_flag) LOOP "
        "PERFORM pg_sleep(0.05); END LOOP; END $$;",
    )
    tree.add("index", "CREATE INDEX CONCURRENTLY ix_big_v ON big (v);", transactional=False)


class Gate:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE public.gate_flag (closed int); INSERT INTO gate_flag VALUES (1)"
            )

    def open(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM public.gate_flag")


@pytest.fixture
def gate(empty_db: Any) -> Iterator[Gate]:
    gate = Gate(empty_db.conninfo)
    try:
        yield gate
    finally:
        gate.open()


def _start_holder_and_queue(
    tree: RevisionTree, conninfo: str, queued: int, env: dict[str, str]
) -> tuple[subprocess.Popen[str], list[subprocess.Popen[str]]]:
    """The first deployer holds the deploy lock (stopped at the gate); ``queued`` others wait."""
    holder = tree.popen("upgrade", "head", env=env)
    _wait_until(lambda: _gate_waiters(conninfo) == 1, "the first deployer reaches the gate")
    others = [tree.popen("upgrade", "head", env=env) for _ in range(queued)]
    _wait_until(
        lambda: _lock_sessions(conninfo) == 1 + queued,
        "every other deployer waits for the lock",
        conninfo=conninfo,
    )
    return holder, others


def _sample_waiters(conninfo: str, waiters: int) -> None:
    """Sampled over a second, a waiter is (almost always) idle, outside a transaction, with
    no snapshot; it is never queued inside ``LOCK TABLE`` (before ADR 0155: always)."""
    holder_pid = _scalar(
        conninfo,
        "SELECT pid FROM pg_locks WHERE granted AND mode = 'ShareUpdateExclusiveLock' "
        "AND relation = 'public.schema_migrations'::regclass",
    )
    idle_samples = 0
    for _ in range(10):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT state, backend_xmin IS NOT NULL, wait_event_type "
                "FROM pg_stat_activity WHERE application_name = %s AND pid <> %s",
                (LOCK_APP, holder_pid),
            ).fetchall()
        assert len(rows) == waiters
        assert all(wait != "Lock" for _, _, wait in rows), rows
        idle_samples += all(state == "idle" and not xmin for state, xmin, _ in rows)
        time.sleep(0.1)
    assert idle_samples >= 7, f"waiters idle in only {idle_samples} of 10 samples"


def test_queued_deployers_do_not_stall_a_concurrently_revision(
    tree: RevisionTree, empty_db: Any, gate: Gate
) -> None:
    """Before ADR 0155 the index build waited on the queued deployers' snapshots until
    ``lock_timeout`` and left ``ix_big_v`` INVALID; every deployer then failed.

    One run checks, in order: waiters hold no snapshot; a waiter killed with SIGKILL leaves no
    session behind; the CONCURRENTLY revision then completes and every other deployer finishes.
    """
    _gated_concurrently_tree(tree)
    env = {"SYMPHONY_LOCK_TIMEOUT": "5s", "SYMPHONY_DEPLOY_LOCK_WAIT": "120s"}
    holder, others = _start_holder_and_queue(tree, empty_db.conninfo, 4, env)
    try:
        _sample_waiters(empty_db.conninfo, 4)
        victim = others.pop()
        os.kill(victim.pid, signal.SIGKILL)
        assert _finish([victim])[0][0] == -signal.SIGKILL
        _wait_until(
            lambda: _lock_sessions(empty_db.conninfo) == 4, "the killed waiter's session ends"
        )
    finally:
        gate.open()
        results = _finish([holder, *others])

    for code, out in results:
        assert code == 0, out
        assert "Traceback" not in out
    assert sum("applied 0003_index" in out for _, out in results) == 1
    assert sum("nothing to do" in out for _, out in results) == 3
    assert sum("waiting up to 120s for the deploy lock held by" in out for _, out in results) == 3
    valid = _scalar(
        empty_db.conninfo,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.ix_big_v'::regclass",
    )
    assert valid is True
    assert _scalar(empty_db.conninfo, "SELECT count(*) FROM schema_migrations") == 3


def test_the_wait_ends_with_one_line_naming_the_holder(tree: RevisionTree, empty_db: Any) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    holder = psycopg.connect(empty_db.conninfo, autocommit=True, application_name="night-batch")
    try:
        deploy_lock.ensure_ledger(holder)
        holder.autocommit = False
        holder.execute(deploy_lock.DEPLOY_LOCK_SQL)
        started = time.monotonic()
        result = tree.alembic("upgrade", "head", env={"SYMPHONY_DEPLOY_LOCK_WAIT": "1500ms"})
        elapsed = time.monotonic() - started
        pid = holder.info.backend_pid
    finally:
        holder.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0
    failed = [line for line in out.splitlines() if line.startswith("FAILED:")]
    assert len(failed) == 1, out
    assert "another deployer has held the deploy lock for more than 1500ms" in failed[0]
    assert f"pid {pid}" in failed[0] and "night-batch" in failed[0] and "55P03" in failed[0]
    assert "Traceback" not in out
    assert 1.5 <= elapsed < 30, elapsed
    assert _scalar(empty_db.conninfo, "SELECT to_regclass('public.one')") is None


def test_a_non_owner_trying_the_lock_does_not_block_deployers(
    tree: RevisionTree, empty_db: Any, pg_server: Any
) -> None:
    """ADR 0065 still holds with NOWAIT tries: a login without rights on the ledger gets 42501
    on every try and holds nothing, even while it retries in a loop."""
    tree.add("one", "CREATE TABLE one (id int);")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        deploy_lock.ensure_ledger(conn)
    login = f"t_wait_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        try:
            with psycopg.connect(pg_server.conninfo(empty_db.name, user=login)) as bad:
                for _ in range(3):
                    with pytest.raises(deploy_lock.DeployLockDenied, match="42501"):
                        deploy_lock.lock_in_transaction(bad, "1s")
                    bad.rollback()
                login_conninfo = pg_server.conninfo(empty_db.name, user=login)
                with (
                    pytest.raises(deploy_lock.DeployLockDenied, match="42501"),
                    deploy_lock.hold_deploy_lock(login_conninfo, "5s"),
                ):
                    pass
                result = tree.alembic("-x", "deploy_lock_wait=0", "upgrade", "head")
            assert result.returncode == 0, result.stdout + result.stderr
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    assert _scalar(empty_db.conninfo, "SELECT to_regclass('public.one')") is not None
