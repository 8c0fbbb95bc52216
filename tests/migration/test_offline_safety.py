"""The offline deploy script keeps the engine's safety (issue 12.8, ADR 0096).

``alembic upgrade head --sql > deploy.sql`` (the runbook's offline path) sets the engine's
``lock_timeout`` and ``statement_timeout`` (``-x`` knobs honoured) and takes the deploy lock
(``LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE``, waiting at most
``deploy_lock_wait``) at the start of every transaction it opens. Each script is run here with the
embedded PostgreSQL 18 ``psql -v ON_ERROR_STOP=1`` against a scratch database.
"""

from __future__ import annotations

import io
import subprocess
import threading
import time

import psycopg
import pytest

from alembic import command
from symphony_schema import embedded
from symphony_schema.migration import api
from symphony_schema.migration.ledger import LEDGER_DDL
from tests.conftest import Database
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def psql(conninfo: str, script: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [str(embedded.binary("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
        input=script,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return result, time.monotonic() - started


def state(conninfo: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(conninfo) as conn:
        names = conn.execute(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL, "
            "to_regclass('public.alembic_version') IS NOT NULL"
        ).fetchone()
        assert names is not None
        ledger = (
            [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
            if names[0]
            else []
        )
        heads = (
            [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
            if names[1]
            else []
        )
    return ledger, heads


def offline_script(tree: RevisionTree, *knobs: str) -> str:
    args: list[str] = []
    for knob in knobs:
        args += ["-x", knob]
    result = tree.alembic(*args, "upgrade", "head", "--sql")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_project_deploy_script_sets_timeouts_and_migrates_a_scratch_database(
    empty_db: Database,
) -> None:
    cfg = api.alembic_config(extra={"lock_timeout": "7s", "statement_timeout": "20min"})
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    script = cfg.output_buffer.getvalue()
    assert "SET lock_timeout = '7s';" in script
    assert "SET statement_timeout = '20min';" in script
    assert script.count("LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE") >= (
        script.count("\nBEGIN;")
    )
    result, _ = psql(empty_db.conninfo, script)
    assert result.returncode == 0, result.stderr
    revisions = sorted(s.revision for s in api.script_directory().walk_revisions())
    assert state(empty_db.conninfo) == (revisions, [api.head_revision()])


def test_default_timeouts_are_the_engines(tree: RevisionTree) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    script = offline_script(tree)
    assert "SET lock_timeout = '10s';" in script
    assert "SET statement_timeout = '15min';" in script


def test_statement_timeout_stops_a_long_statement(tree: RevisionTree, empty_db: Database) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    slow = tree.add("slow", "SELECT pg_sleep(30);")
    script = offline_script(tree, "statement_timeout=500ms")
    result, elapsed = psql(empty_db.conninfo, script)
    assert result.returncode != 0
    assert "canceling statement due to statement timeout" in result.stderr
    assert elapsed < 20
    ledger, _ = state(empty_db.conninfo)
    assert slow not in ledger and ledger == [tree.revisions[0]]


def _hold_lock(conninfo: str, ready: threading.Event, release_after: float) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute("LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        ready.set()
        time.sleep(release_after)


def _with_ledger(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(LEDGER_DDL)


def test_deploy_lock_held_elsewhere_stops_the_script(
    tree: RevisionTree, empty_db: Database
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    script = offline_script(tree, "deploy_lock_wait=1s")
    _with_ledger(empty_db.conninfo)
    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(empty_db.conninfo, ready, 8.0))
    holder.start()
    try:
        assert ready.wait(30)
        result, elapsed = psql(empty_db.conninfo, script)
    finally:
        holder.join()
    assert result.returncode != 0
    assert "canceling statement due to lock timeout" in result.stderr
    assert elapsed < 7
    assert state(empty_db.conninfo) == ([], [])


def test_deploy_lock_wait_zero_does_not_wait(tree: RevisionTree, empty_db: Database) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    script = offline_script(tree, "deploy_lock_wait=0")
    assert "IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;" in script
    _with_ledger(empty_db.conninfo)
    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(empty_db.conninfo, ready, 5.0))
    holder.start()
    try:
        assert ready.wait(30)
        result, elapsed = psql(empty_db.conninfo, script)
    finally:
        holder.join()
    assert result.returncode != 0 and "could not obtain lock" in result.stderr
    assert elapsed < 4


def test_script_waits_for_the_deploy_lock_then_migrates(
    tree: RevisionTree, empty_db: Database
) -> None:
    first = tree.add("one", "CREATE TABLE one (id int);")
    script = offline_script(tree, "deploy_lock_wait=60s")
    _with_ledger(empty_db.conninfo)
    ready = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(empty_db.conninfo, ready, 2.0))
    holder.start()
    try:
        assert ready.wait(30)
        result, elapsed = psql(empty_db.conninfo, script)
    finally:
        holder.join()
    assert result.returncode == 0, result.stderr
    assert elapsed >= 1.5, "the script must have waited for the holder"
    assert state(empty_db.conninfo) == ([first], [first])


@pytest.mark.parametrize(
    "knob", ["lock_timeout=5s'; DROP TABLE x; --", "statement_timeout=soon", "deploy_lock_wait=-1"]
)
def test_bad_knob_is_refused_without_a_script(tree: RevisionTree, knob: str) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("-x", knob, "upgrade", "head", "--sql")
    assert result.returncode != 0
    assert f"invalid {knob.split('=')[0]}=" in result.stdout + result.stderr
    assert "CREATE TABLE one" not in result.stdout


def test_script_with_a_non_transactional_revision_locks_again_for_its_ledger_row(
    tree: RevisionTree, empty_db: Database
) -> None:
    from tests.migration.test_engine_concurrently import _indexes, _two_index_tree

    rev = _two_index_tree(tree)
    script = offline_script(tree)
    ledger_row = script.index("INSERT INTO public.schema_migrations", script.index("ix_b_v"))
    relock = script.rindex("BEGIN;", 0, ledger_row)
    assert script.index("LOCK TABLE public.schema_migrations", relock) < ledger_row
    result, _ = psql(empty_db.conninfo, script)
    assert result.returncode == 0, result.stderr
    assert _indexes(empty_db.conninfo) == {"ix_a_v": True, "ix_b_v": True}
    assert state(empty_db.conninfo) == (tree.revisions, [rev])


def test_script_stops_at_the_first_error_even_without_on_error_stop(
    tree: RevisionTree, empty_db: Database
) -> None:
    """Without ON_ERROR_STOP psql would go on after a failed LOCK: the next revision would run."""
    tree.add("one", "CREATE TABLE one (id int); SELECT 1/0;")
    tree.add("two", "CREATE TABLE two (id int);")
    script = offline_script(tree)
    result = subprocess.run(
        [str(embedded.binary("psql")), "-X", "-q", "-d", empty_db.conninfo],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "division by zero" in result.stderr
    with psycopg.connect(empty_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.two')").fetchone() == (None,)
    assert state(empty_db.conninfo) == ([], [])


def test_standard_conforming_strings_off_cannot_change_what_the_script_runs(
    tree: RevisionTree, empty_db: Database
) -> None:
    """With ``standard_conforming_strings=off`` (PGOPTIONS, a role or database setting) the server
    would read ``'a\\''`` as a closed string and run the DROP hidden in the comment's text; the
    script pins the setting, as the online engine does (ADR 0100)."""
    tree.add("t", "CREATE TABLE t (id int);")
    tree.add("comment", "COMMENT ON TABLE t IS 'a\\''; DROP TABLE t; --';")
    script = offline_script(tree)
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{empty_db.name}" SET standard_conforming_strings = off')
    result, _ = psql(empty_db.conninfo, script)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.t')").fetchone() != (None,)
