"""The deploy lock (ADR 0065): a table lock on the ledger that runtime logins cannot take.

Issue 11 item 3: with the old session advisory lock, any login (even one with nothing but
``symphony_readonly``) could hold ``pg_advisory_lock(hashtextextended('symphony_schema.deploy',0))``
and make every deploy and ``reset`` fail. Item 10: ``deploy_lock_wait=0`` waited forever.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import privileges, reset
from symphony_schema.migration import deploy_lock
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

OLD_ADVISORY_KEY = "SELECT pg_advisory_lock(hashtextextended('symphony_schema.deploy', 0))"

# Sleeps only while the test's flag table exists, so that the same (checksummed) revision can be
# re-run quickly once the flag is gone.
SLOW_WHILE_FLAGGED = """\
CREATE TABLE one (id int);
DO $$
BEGIN
    IF to_regclass('public.slow_flag') IS NOT NULL THEN
        PERFORM pg_sleep(60);
    END IF;
END
$$;
"""


@pytest.fixture(params=["symphony_readonly", None], ids=["readonly-login", "no-membership"])
def attacker(request: Any, pg_server: Any, migrated_template: str) -> Iterator[str]:
    """A login with only ``symphony_readonly`` (or no membership at all)."""
    del migrated_template  # the cluster-wide Symphony roles exist
    yield from _login(pg_server, request.param)


def _login(pg_server: Any, role: str | None) -> Iterator[str]:
    login = f"t_lock_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        if role:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login))
            )
        try:
            yield login
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def _table_exists(conninfo: str, name: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
    return bool(row and row[0])


def _hold_lock(conninfo: str) -> psycopg.Connection[Any]:
    """A superuser session holding the deploy lock (the ledger is created if needed)."""
    holder = psycopg.connect(conninfo, autocommit=True)
    deploy_lock.ensure_ledger(holder)
    holder.autocommit = False
    holder.execute(deploy_lock.DEPLOY_LOCK_SQL)
    return holder


def _lock_holders(conninfo: str) -> list[tuple[int, str]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT l.pid, coalesce(a.application_name, '') FROM pg_locks AS l "
            "LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'relation' AND l.granted "
            "AND l.relation = to_regclass('public.schema_migrations') "
            "AND l.mode = 'ShareUpdateExclusiveLock' "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    return [(int(pid), str(app)) for pid, app in rows]


def _wait_until(predicate: Any, what: str, timeout: float = 60) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)
    return time.monotonic() - started


# --------------------------------------------------------------------------------------------
# Runtime logins can neither block nor take the lock
# --------------------------------------------------------------------------------------------


def test_a_login_holding_the_old_advisory_key_does_not_block_a_deploy(
    tree: RevisionTree, empty_db: Any, pg_server: Any, attacker: str
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    with psycopg.connect(pg_server.conninfo(empty_db.name, user=attacker), autocommit=True) as bad:
        bad.execute(OLD_ADVISORY_KEY)
        result = tree.alembic("upgrade", "head", env={"SYMPHONY_DEPLOY_LOCK_WAIT": "1s"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert _table_exists(empty_db.conninfo, "one")


def test_a_login_holding_the_old_advisory_key_does_not_block_reset(
    migrated_db: Any, pg_server: Any, attacker: str
) -> None:
    with psycopg.connect(pg_server.conninfo(migrated_db.name), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.scratch_junk (x int)")
    login_conninfo = pg_server.conninfo(migrated_db.name, user=attacker)
    with psycopg.connect(login_conninfo, autocommit=True) as bad:
        bad.execute(OLD_ADVISORY_KEY)
        reset.reset_database(migrated_db.url, lock_timeout="1s")
    assert not _table_exists(migrated_db.conninfo, "scratch_junk")
    assert _table_exists(migrated_db.conninfo, "schema_migrations")


@pytest.mark.parametrize("role", [*privileges.RUNTIME_ROLES, None])
def test_runtime_logins_cannot_take_the_deploy_lock(
    migrated_db: Any, pg_server: Any, role: str | None
) -> None:
    for login in _login(pg_server, role):
        with psycopg.connect(pg_server.conninfo(migrated_db.name, user=login)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(deploy_lock.DEPLOY_LOCK_SQL)
            assert caught.value.sqlstate == "42501"
            conn.rollback()
            # Nor through the module's own entry point.
            with pytest.raises(deploy_lock.DeployLockDenied, match="42501"):
                deploy_lock.lock_in_transaction(conn, "1s")


def test_the_lock_does_not_conflict_with_ledger_writes_or_readers(migrated_db: Any) -> None:
    """SHARE UPDATE EXCLUSIVE: a second holder queues, a ledger INSERT and a SELECT do not."""
    holder = _hold_lock(migrated_db.conninfo)
    try:
        with psycopg.connect(migrated_db.conninfo) as other:
            other.execute("SET lock_timeout = '200ms'")
            other.execute(
                "INSERT INTO public.schema_migrations (version, description, checksum) "
                "VALUES ('zz_probe', 'probe', 'sha256:' || repeat('0', 64))"
            )
            other.execute("SELECT count(*) FROM public.schema_migrations").fetchone()
            other.rollback()
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(deploy_lock.DEPLOY_LOCK_SQL)
    finally:
        holder.close()


# --------------------------------------------------------------------------------------------
# Waiting: deploy_lock_wait, and 0 = do not wait
# --------------------------------------------------------------------------------------------


def test_a_waiting_deployer_gives_up_after_the_configured_wait(
    tree: RevisionTree, empty_db: Any
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    holder = _hold_lock(empty_db.conninfo)
    holder_pid = holder.info.backend_pid
    try:
        started = time.monotonic()
        result = tree.alembic("upgrade", "head", env={"SYMPHONY_DEPLOY_LOCK_WAIT": "500ms"})
        elapsed = time.monotonic() - started
    finally:
        holder.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "another deployer has held the deploy lock for more than 500ms" in out
    assert f"pid {holder_pid}" in out  # who holds it
    assert "Traceback" not in out
    assert not _table_exists(empty_db.conninfo, "one")
    assert elapsed < 30


def test_deploy_lock_wait_zero_fails_at_once_when_the_lock_is_held(
    tree: RevisionTree, empty_db: Any
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    holder = _hold_lock(empty_db.conninfo)
    try:
        started = time.monotonic()
        result = tree.alembic("-x", "deploy_lock_wait=0", "upgrade", "head")
        elapsed = time.monotonic() - started
    finally:
        holder.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "deploy_lock_wait=0: not waiting" in out and "55P03" in out
    assert not _table_exists(empty_db.conninfo, "one")
    assert elapsed < 20, f"deploy_lock_wait=0 must not wait ({elapsed:.1f} s)"


def test_deploy_lock_wait_zero_takes_a_free_lock(tree: RevisionTree, empty_db: Any) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("-x", "deploy_lock_wait=0", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _table_exists(empty_db.conninfo, "one")


def test_a_bad_deploy_lock_wait_is_a_clear_error(tree: RevisionTree, empty_db: Any) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("-x", "deploy_lock_wait=soon", "upgrade", "head")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "invalid deploy_lock_wait='soon'" in out and "Traceback" not in out
    assert not _table_exists(empty_db.conninfo, "one")


# --------------------------------------------------------------------------------------------
# Crashes: a killed deployer releases the lock; a lost lock session stops the deployer
# --------------------------------------------------------------------------------------------


def test_a_killed_deployer_releases_the_lock(tree: RevisionTree, empty_db: Any) -> None:
    tree.add("one", SLOW_WHILE_FLAGGED)
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.slow_flag ()")
    deployer = tree.popen("upgrade", "head")
    try:
        _wait_until(
            lambda: any(
                app == deploy_lock.LOCK_APPLICATION_NAME
                for _, app in _lock_holders(empty_db.conninfo)
            ),
            "the deployer holds the deploy lock",
        )
        _wait_until(
            lambda: _running(empty_db.conninfo, "pg_sleep"), "the deployer runs its revision"
        )
        os.kill(deployer.pid, signal.SIGKILL)
        deployer.communicate(timeout=30)
        released_after = _wait_until(
            lambda: _lock_holders(empty_db.conninfo) == [], "the lock is released", timeout=30
        )
    finally:
        if deployer.poll() is None:
            deployer.kill()
            deployer.communicate()
    print(f"deploy lock released {released_after:.2f} s after SIGKILL")
    assert released_after < 10
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        _wait_until(lambda: not _running(empty_db.conninfo, "pg_sleep"), "the revision is gone")
        conn.execute("DROP TABLE public.slow_flag")
    assert not _table_exists(empty_db.conninfo, "one")  # rolled back with its session
    rerun = tree.alembic("upgrade", "head", env={"SYMPHONY_DEPLOY_LOCK_WAIT": "5s"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _table_exists(empty_db.conninfo, "one")


def _running(conninfo: str, fragment: str) -> bool:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{fragment}%",),
        ).fetchone()
    return bool(row and row[0])


def test_a_lost_lock_session_rolls_the_running_revision_back(
    tree: RevisionTree, empty_db: Any
) -> None:
    """Someone terminates the lock session mid-run: the revision must not commit without it."""
    tree.add(
        "one",
        "CREATE TABLE one (id int);\n"
        "DO $$ BEGIN IF to_regclass('public.slow_flag') IS NOT NULL THEN "
        "PERFORM pg_sleep(3); END IF; END $$;\n",
    )
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.slow_flag ()")
    deployer = tree.popen("upgrade", "head")
    try:
        _wait_until(
            lambda: _running(empty_db.conninfo, "pg_sleep"), "the deployer runs its revision"
        )
        holders = _lock_holders(empty_db.conninfo)
        assert [app for _, app in holders] == [deploy_lock.LOCK_APPLICATION_NAME]
        with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (holders[0][0],))
        out, err = deployer.communicate(timeout=60)
    finally:
        if deployer.poll() is None:
            deployer.kill()
            deployer.communicate()
    assert deployer.returncode != 0, out + err
    assert "the deploy lock was lost" in out + err and "Traceback" not in out + err
    assert not _table_exists(empty_db.conninfo, "one")
    assert _ledger_versions(empty_db.conninfo) == []


def _ledger_versions(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM public.schema_migrations")]


# --------------------------------------------------------------------------------------------
# baseline apply, and statements that lock before they check privileges
# --------------------------------------------------------------------------------------------


def test_a_login_holding_the_old_advisory_key_does_not_block_baseline_apply(
    empty_db: Any, pg_server: Any, attacker: str
) -> None:
    from symphony_schema import project_root
    from symphony_schema.baseline.apply import apply_baseline

    with psycopg.connect(pg_server.conninfo(empty_db.name, user=attacker), autocommit=True) as bad:
        bad.execute("SET lock_timeout = 0")
        bad.execute(OLD_ADVISORY_KEY)
        os.environ["SYMPHONY_DEPLOY_LOCK_WAIT"] = "1s"
        try:
            result = apply_baseline(empty_db.url, project_root() / "baseline" / "baseline.sql")
        finally:
            del os.environ["SYMPHONY_DEPLOY_LOCK_WAIT"]
    assert result.heads
    assert _table_exists(empty_db.conninfo, "schema_migrations")


def test_baseline_apply_waits_for_a_deployer_then_says_so(
    empty_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symphony_schema import SymphonyError, project_root
    from symphony_schema.baseline.apply import apply_baseline

    monkeypatch.setenv("SYMPHONY_DEPLOY_LOCK_WAIT", "300ms")
    holder = _hold_lock(empty_db.conninfo)  # a deployer that has just created the ledger
    try:
        with pytest.raises(SymphonyError, match="another deployer has held the deploy lock"):
            apply_baseline(empty_db.url, project_root() / "baseline" / "baseline.sql")
    finally:
        holder.close()


def test_statements_that_lock_before_checking_privileges_leave_no_lock_behind(
    migrated_db: Any, pg_server: Any
) -> None:
    """A runtime login tries every statement it can think of on the ledger, each in a savepoint,
    and then sits idle in its transaction: a deployer must still get the lock at once."""
    attempts = [
        "LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE",
        "LOCK TABLE public.schema_migrations IN ACCESS EXCLUSIVE MODE",
        "COMMENT ON TABLE public.schema_migrations IS 'mine'",
        "SECURITY LABEL ON TABLE public.schema_migrations IS 'x'",
        "ALTER TABLE public.schema_migrations ADD COLUMN x int",
        "TRUNCATE public.schema_migrations",
        "DELETE FROM public.schema_migrations",
        "SELECT * FROM public.schema_migrations FOR UPDATE",
        "VACUUM FULL public.schema_migrations",
        "ANALYZE public.schema_migrations",
        "CREATE INDEX ON public.schema_migrations (version)",
        "REINDEX TABLE public.schema_migrations",
        "CLUSTER public.schema_migrations USING schema_migrations_pkey",
        "DROP TABLE public.schema_migrations",
    ]
    for login in _login(pg_server, "symphony_auditor"):  # the one role that may read the ledger
        with psycopg.connect(pg_server.conninfo(migrated_db.name, user=login)) as bad:
            bad.execute("SELECT count(*) FROM public.schema_migrations")  # ACCESS SHARE, kept
            for statement in attempts:
                bad.execute("SAVEPOINT s")
                try:
                    bad.execute(statement)  # VACUUM cannot run in a transaction at all
                except psycopg.Error:
                    bad.execute("ROLLBACK TO SAVEPOINT s")
                else:  # ANALYZE only warns "permission denied to analyze, skipping it"
                    assert statement.startswith("ANALYZE"), f"{statement!r} succeeded"
            # Idle in transaction, still holding what it could get.
            with psycopg.connect(migrated_db.conninfo) as deployer:
                assert deploy_lock.lock_in_transaction(deployer, "0")
