"""``boot-check``: fit only when at head, the ledger is honest and exactly one policy is ACTIVE."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema import policy
from symphony_schema.cli import main
from symphony_schema.migration import api
from tests.helpers import run_cli

LIFECYCLE = "trg_guard_policy_version_lifecycle"
IDENTITY = "trg_guard_policy_version_identity"

pytestmark = pytest.mark.integration

DOC = {"policyVersion": "boot-1", "x": 1}
HEAD = api.head_revision()


def boot_cli(url: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["boot-check", "--url", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeded(migrated_db: Any) -> Any:
    policy.seed_policy_document(migrated_db.conninfo, DOC)
    return migrated_db


def test_fit_database_passes_with_one_ok_line(
    seeded: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = boot_cli(seeded.url, capsys=capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("boot-check OK:")
    assert f"at head {HEAD}" in out and "ACTIVE policy 'boot-1'" in out
    assert policy.boot_check(seeded.conninfo) == []


def test_no_active_policy_fails(migrated_db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = boot_cli(migrated_db.url, capsys=capsys)
    assert code == 1 and out == ""
    assert "boot-check FAILED" in err
    assert "no ACTIVE policy in public.policy_versions" in err
    assert policy.boot_check(migrated_db.conninfo) == [
        "no ACTIVE policy in public.policy_versions: seed one with "
        "'symphony-schema seed-policy --file PATH' or '--from-env'"
    ]


def test_only_retired_policies_fail(migrated_db: Any, db: psycopg.Connection[Any]) -> None:
    # Unreachable since 0016 without switching the guard off (tampering): the check still fails
    # closed. The trigger is back on before the boot check runs (no live drift).
    with db.transaction():
        db.execute(f"ALTER TABLE public.policy_versions DISABLE TRIGGER {LIFECYCLE}")
        db.execute(
            "INSERT INTO public.policy_versions (version, status, checksum) "
            "VALUES ('old', 'RETIRED', %s)",
            ("0" * 64,),
        )
        db.execute(f"ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER {LIFECYCLE}")
    reasons = policy.boot_check(migrated_db.conninfo)
    assert len(reasons) == 1 and reasons[0].startswith("no ACTIVE policy")


def test_database_behind_head_fails(empty_db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    api.upgrade(empty_db.url, "0004_privileges")
    code, _, err = boot_cli(empty_db.url, capsys=capsys)
    assert code == 1
    assert f"it is at 0004_privileges, head is {HEAD}" in err
    assert "Run 'alembic upgrade head'" in err
    # policy_versions arrives with 0005: there cannot be an ACTIVE policy either.
    assert "no ACTIVE policy: public.policy_versions does not exist" in err
    assert "ledger disagrees" not in err


def test_unmigrated_database_fails(empty_db: Any) -> None:
    reasons = policy.boot_check(empty_db.conninfo)
    assert any("it is at no revision (not migrated)" in r for r in reasons), reasons
    assert any("public.policy_versions does not exist" in r for r in reasons), reasons


def test_tampered_ledger_fails(seeded: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(seeded.conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE public.schema_migrations SET checksum = %s "
            "WHERE version = '0002_outbox_functions'",
            ("sha256:" + "0" * 64,),
        )
    code, _, err = boot_cli(seeded.url, capsys=capsys)
    assert code == 1
    assert "the migration ledger disagrees with the revision files" in err
    assert "applied revision 0002_outbox_functions was edited" in err
    assert "sha256:" + "0" * 64 in err
    assert "no ACTIVE policy" not in err  # only the real reason is reported


def test_ledger_row_missing_fails(seeded: Any) -> None:
    with psycopg.connect(seeded.conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM public.schema_migrations WHERE version = '0003_roles'")
    reasons = policy.boot_check(seeded.conninfo)
    assert len(reasons) == 1
    assert "applied per alembic_version but not in the ledger: 0003_roles" in reasons[0]


def test_two_active_rows_after_tampering_fail(seeded: Any, db: psycopg.Connection[Any]) -> None:
    db.execute("DROP INDEX public.uq_policy_versions_one_active")
    db.execute(
        "INSERT INTO public.policy_versions (version, status, checksum) "
        "VALUES ('boot-2', 'ACTIVE', %s)",
        ("1" * 64,),
    )
    reasons = policy.boot_check(seeded.conninfo)
    assert any("2 ACTIVE policies ('boot-1', 'boot-2')" in r for r in reasons), reasons


def test_malformed_active_checksum_fails(seeded: Any, db: psycopg.Connection[Any]) -> None:
    db.execute(
        "ALTER TABLE public.policy_versions DROP CONSTRAINT ck_policy_versions_checksum_sha256_hex"
    )
    with db.transaction():  # tampering: the checksum guard (0016) is switched off meanwhile
        db.execute(f"ALTER TABLE public.policy_versions DISABLE TRIGGER {IDENTITY}")
        db.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred event blocks the ALTER below
        db.execute(
            "UPDATE public.policy_versions SET checksum = 'sha256:abc' WHERE version = 'boot-1'"
        )
        db.execute(f"ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER {IDENTITY}")
    reasons = policy.boot_check(seeded.conninfo)
    assert reasons == [
        "ACTIVE policy 'boot-1' has checksum 'sha256:abc', which is not a lowercase hex SHA-256: "
        "the row was not written by seed-policy"
    ]


def test_expected_policy_file_must_match(
    seeded: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"x": 1, "policyVersion": "boot-1"}, indent=2))
    assert boot_cli(seeded.url, "--policy-file", str(same), capsys=capsys)[0] == 0

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({"x": 2, "policyVersion": "boot-1"}))
    code, _, err = boot_cli(seeded.url, "--policy-file", str(edited), capsys=capsys)
    assert code == 1 and "the seeded document is not the expected one" in err

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"x": 1, "policyVersion": "boot-9"}))
    code, _, err = boot_cli(seeded.url, "--policy-file", str(other), capsys=capsys)
    assert code == 1 and "the ACTIVE policy is 'boot-1', but policy file" in err
    assert "expects 'boot-9'" in err


def test_expected_policy_from_env(
    seeded: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLICY_VERSION", "boot-1")
    monkeypatch.setenv("POLICY_CHECKSUM", policy.canonical_checksum(DOC))
    assert boot_cli(seeded.url, "--policy-from-env", capsys=capsys)[0] == 0
    monkeypatch.setenv("POLICY_CHECKSUM", "f" * 64)
    code, _, err = boot_cli(seeded.url, "--policy-from-env", capsys=capsys)
    assert code == 1 and f"has checksum {'f' * 64}" in err


def test_unreachable_database_fails_closed(tmp_path: Path) -> None:
    reasons = policy.boot_check(f"host={tmp_path} port=1 user=nobody dbname=none")
    assert len(reasons) == 1 and reasons[0].startswith("cannot connect to the database")


@pytest.mark.parametrize("role", ["symphony_executor", "symphony_auditor"])
def test_runtime_logins_are_told_to_run_as_the_migrator(
    seeded: Any, pg_server: Any, login: Any, role: str
) -> None:
    """alembic_version is the migrator's: a runtime login fails closed, with the fix."""
    runtime = login(role)
    reasons = policy.boot_check(pg_server.conninfo(seeded.name, runtime.name))
    assert len(reasons) == 1, reasons
    assert "SQLSTATE 42501" in reasons[0] and "as the migrating user" in reasons[0]


def test_console_script_exit_codes(migrated_db: Any) -> None:

    def run() -> subprocess.CompletedProcess[str]:
        return run_cli("boot-check", "--url", migrated_db.url, unset=["POLICY_"])

    failed = run()
    assert failed.returncode == 1 and "no ACTIVE policy" in failed.stderr
    policy.seed_policy_document(migrated_db.conninfo, DOC)
    passed = run()
    assert passed.returncode == 0 and passed.stdout.startswith("boot-check OK:"), passed.stderr
