"""Live drift (issue 11 item 8a, ADR 0080): ``symphony-schema drift`` compares a live database
with ``baseline/catalog.txt``, and ``boot-check`` refuses a database whose security-relevant
catalog was tampered with.

Each tamper is done the way an operator with a superuser session would hot-patch production;
the database has an ACTIVE policy and an intact ledger, so only live drift can notice.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema import policy, project_root
from symphony_schema.cli import main
from tests.conftest import Database
from tests.integration.conftest import LoginFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(migrated_db: Database) -> Database:
    policy.seed_policy_file(migrated_db.conninfo, policy.DEFAULT_POLICY_FILE)
    return migrated_db


def drift(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["drift", "--url", url, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def hot_patch_complete(db: psycopg.Connection[Any]) -> None:
    """``CREATE OR REPLACE`` complete_outbox_attempt with one extra statement in its body (the
    shape of the migration/sql.py text-replacement attack)."""
    row = db.execute(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc AS p "
        "WHERE p.oid = 'public.complete_outbox_attempt'::regproc"
    ).fetchone()
    assert row is not None
    definition = str(row[0])
    patched = definition.replace("BEGIN", "BEGIN\n    PERFORM 1; -- hot patch", 1)
    assert patched != definition
    db.execute(patched)


def test_a_clean_migrated_database_has_no_drift_and_boots(
    seeded: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = drift(seeded.url, capsys)
    assert code == 0, out
    assert "the live database matches baseline/catalog.txt" in out
    assert policy.boot_check(seeded.conninfo) == []


def test_a_hot_patched_function_body_is_named_and_refused_at_boot(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    hot_patch_complete(db)
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "drift functions: FAILED" in out
    changed = [line for line in out.splitlines() if line.startswith(("-public.", "+public."))]
    assert changed and all("public.complete_outbox_attempt(" in line for line in changed), out
    reasons = policy.boot_check(seeded.conninfo)
    assert any(
        r.startswith("live drift in functions") and "complete_outbox_attempt" in r for r in reasons
    ), reasons
    assert main(["boot-check", "--url", seeded.url]) == 1


def test_a_disabled_trigger_is_named_and_refused_at_boot(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute(
        "ALTER TABLE public.payment_outbox_attempts "
        "DISABLE TRIGGER trg_deny_outbox_attempts_mutation"
    )
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "+public.payment_outbox_attempts trg_deny_outbox_attempts_mutation enabled=D" in out
    reasons = policy.boot_check(seeded.conninfo)
    assert any("live drift in triggers" in r and "enabled=D" in r for r in reasons), reasons


def test_an_extra_grant_is_named_and_refused_at_boot(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute("GRANT UPDATE ON public.payment_outbox_attempts TO symphony_readonly")
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "+relation public.payment_outbox_attempts: symphony_readonly UPDATE" in out
    reasons = policy.boot_check(seeded.conninfo)
    assert any("live drift in ACLs" in r and "symphony_readonly UPDATE" in r for r in reasons)


@pytest.fixture
def control_in_readonly(db: psycopg.Connection[Any]) -> Iterator[None]:
    """``GRANT symphony_control TO symphony_readonly`` (cluster-wide: revoked afterwards)."""
    db.execute("GRANT symphony_control TO symphony_readonly")
    try:
        yield
    finally:
        db.execute("REVOKE symphony_control FROM symphony_readonly")


def test_an_added_membership_is_named_and_refused_at_boot(
    seeded: Database, control_in_readonly: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "+symphony_control -> symphony_readonly: admin=False inherit=True set=True" in out
    reasons = policy.boot_check(seeded.conninfo)
    assert any("live drift in memberships" in r for r in reasons), reasons


def test_a_non_superuser_auditor_login_runs_live_drift(
    seeded: Database,
    db: psycopg.Connection[Any],
    login: LoginFactory,
    pg_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    auditor = login("symphony_auditor")
    url = pg_server.sqlalchemy_url(seeded.name, user=auditor.name)
    code, out = drift(url, capsys)
    assert code == 0, out
    assert "public.alembic_version is not readable" in out
    hot_patch_complete(db)
    code, out = drift(url, capsys)
    assert code == 1 and "public.complete_outbox_attempt(" in out, out


def test_a_runtime_login_without_ledger_access_is_a_usage_error(
    seeded: Database, login: LoginFactory, pg_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    executor = login("symphony_executor")
    url = pg_server.sqlalchemy_url(seeded.name, user=executor.name)
    code, out = drift(url, capsys)
    assert code == 2, out
    assert "SQLSTATE 42501" in out and "symphony_auditor" in out
    assert "Traceback" not in out


def test_a_database_behind_head_is_not_compared(
    empty_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from symphony_schema.migration import api

    api.upgrade(empty_db.url, "0005_policy_versions")
    code, out = drift(empty_db.url, capsys)
    assert code == 1, out
    assert "drift: behind head: the database is at 0005_policy_versions" in out
    assert "drift functions" not in out


def test_a_database_at_an_unknown_head_is_not_compared(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute(
        "INSERT INTO public.schema_migrations (version, description, checksum) "
        "VALUES ('0999_elsewhere', 'x', 'sha256:' || repeat('0', 64))"
    )
    db.execute("UPDATE public.alembic_version SET version_num = '0999_elsewhere'")
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "drift: unknown head: the database is at 0999_elsewhere" in out


def test_a_missing_or_stale_catalog_is_a_usage_error(
    seeded: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = drift(seeded.url, capsys, "--baseline-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "catalog.txt" in out and "nox -s baseline" in out, out
    stale = Path(shutil.copytree(project_root() / "baseline", tmp_path / "stale"))
    text = (stale / "catalog.txt").read_text()
    first, rest = text.split("\n", 1)
    (stale / "catalog.txt").write_text("# Symphony schema catalog at revision 0009_old.\n" + rest)
    code, out = drift(seeded.url, capsys, "--baseline-dir", str(stale))
    assert code == 2 and "describes 0009_old but the revision files' head is" in out, out
    assert first != "# Symphony schema catalog at revision 0009_old."


def test_verify_runs_the_full_live_drift_and_fails_on_a_hot_patch(
    seeded: Database, db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from symphony_schema.invariants import runner

    for var in ("POLICY_VERSION", "POLICY_DOCUMENT", "POLICY_FILE", "POLICY_CHECKSUM"):
        monkeypatch.delenv(var, raising=False)
    clean = runner.new_run("verify")
    runner.verify_sequence(clean, seeded.url)
    step = next(r for r in clean.results if r.ref == "step:drift")
    assert step.status == "pass", step
    hot_patch_complete(db)
    # The ledger's payload is nullable since 0024: the hot patch puts NOT NULL back.
    db.execute("ALTER TABLE public.payment_outbox_attempts ALTER COLUMN payload SET NOT NULL")
    run = runner.new_run("verify")
    runner.verify_sequence(run, seeded.url)
    step = next(r for r in run.results if r.ref == "step:drift")
    assert step.failed
    details = "\n".join(step.details)
    assert "public.complete_outbox_attempt(" in details
    assert "+public.payment_outbox_attempts column payload jsonb NOT NULL" in details


def test_a_rule_and_an_object_of_another_kind_are_named(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute(
        "CREATE RULE swallow_history AS ON INSERT TO public.payment_outbox_attempts "
        "DO INSTEAD NOTHING"
    )
    db.execute("CREATE DOMAIN public.amount AS numeric CHECK (VALUE > 0)")
    db.execute("CREATE VIEW public.attempts_view AS SELECT 1 AS one")
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "+rule public.payment_outbox_attempts swallow_history:" in out
    assert "DO INSTEAD NOTHING" in out
    assert "+type public.amount" in out
    assert "+view public.attempts_view: " in out
    reasons = policy.boot_check(seeded.conninfo)
    assert any("live drift in rules" in r for r in reasons), reasons
    assert any("live drift in other objects" in r for r in reasons), reasons


def test_changed_storage_parameters_are_named(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute("ALTER TABLE public.payment_outbox_pending SET (autovacuum_enabled = false)")
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "drift storage: FAILED" in out
    assert (
        "+table public.payment_outbox_pending: options=[autovacuum_enabled=false, "
        "autovacuum_vacuum_scale_factor=0, autovacuum_vacuum_threshold=10000]" in out
    )


def test_an_unreachable_server_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["drift", "--url", f"postgresql://nobody@/nowhere?host={tmp_path}&port=1"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symphony-schema: error: cannot connect")


def test_a_function_planted_in_pg_catalog_is_named(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Definer functions run with search_path = pg_catalog, public, pg_temp: an overload planted
    in pg_catalog is resolved first."""
    db.execute(
        "CREATE FUNCTION pg_catalog.symphony_shadow(integer) RETURNS integer "
        "LANGUAGE sql AS 'SELECT 1'"
    )
    try:
        code, out = drift(seeded.url, capsys)
        assert code == 1, out
        assert "+function symphony_shadow(integer)" in out  # pg_catalog names are unqualified
    finally:
        db.execute("DROP FUNCTION pg_catalog.symphony_shadow(integer)")
