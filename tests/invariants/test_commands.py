"""``symphony-schema verify`` and ``symphony-schema invariants`` end to end on the embedded
server: the sequence, the scratch database, the evidence bundle, waivers and the exception
command."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import psycopg
import pytest

from symphony_schema.cli import main
from symphony_schema.invariants import evidence, gate, lints, process, role_passwords, runner
from symphony_schema.invariants.results import CheckResult
from tests.conftest import Database, PgServer
from tests.invariants.conftest import FIXTURES, failure

pytestmark = pytest.mark.integration

DURING = date(2030, 1, 15)  # inside the validity of the fixture exceptions


def database_exists(server: PgServer, name: str) -> bool:
    with psycopg.connect(server.conninfo("postgres")) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def test_invariants_command_passes_on_this_repository_and_leaves_no_scratch_database(
    pg_server: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_seed_env: None
) -> None:
    bundle = tmp_path / "evidence"
    code = main(
        ["invariants", "--url", pg_server.sqlalchemy_url("postgres"), "--evidence", str(bundle)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "all invariants hold" in out
    assert evidence.verify_bundle(bundle) == []
    scratch = json.loads((bundle / "run.json").read_text())["database"]["database"]
    assert scratch.startswith("symphony_invariants_")
    assert not database_exists(pg_server, scratch), "the scratch database is dropped"
    records = [json.loads(p.read_text()) for p in sorted((bundle / "checks").iterdir())]
    refs = [r["check"] for r in records]
    expected_checks = (
        [f"lint:{n}" for n in (*lints.TREE_LINTS, *lints.LINTS)]
        + ["step:migrate", "step:seed"]
        + [f"gate:{n}" for n in gate.CHECKS]
        + [role_passwords.CHECK_REF]
        + ["step:drift"]
        + [f"process:{n}" for n in process.PROCESS_GATES]
    )
    assert refs == expected_checks
    assert all(r["invariant_id"] for r in records if not r["check"].startswith("step:"))


def test_verify_migrates_seeds_and_gates_a_database_with_evidence(
    empty_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_seed_env: None
) -> None:
    bundle = tmp_path / "evidence"
    code = main(["verify", "--url", empty_db.url, "--evidence", str(bundle)])
    assert code == 0, capsys.readouterr().out
    run = json.loads((bundle / "run.json").read_text())
    assert run["outcome"] == "pass"
    assert run["database"]["database"] == empty_db.name
    assert run["database"]["server_version"].startswith("18")
    assert run["database"]["alembic_version"] == [run["code"]["head_revision"]]
    ledger = run["database"]["ledger"]
    assert [row["version"] for row in ledger][-1] == run["code"]["head_revision"]
    assert all(row["checksum"].startswith("sha256:") for row in ledger)
    assert len(run["code"]["commit"]) == 40
    with psycopg.connect(empty_db.conninfo) as conn:
        active = conn.execute("SELECT version FROM public.policy_versions WHERE is_active")
        assert len(active.fetchall()) == 1, "verify seeds the development policy"
    assert evidence.verify_bundle(bundle) == []


def test_verify_does_not_migrate_when_a_lint_fails(empty_db: Database, no_seed_env: None) -> None:
    run = runner.new_run("verify")
    runner.verify_sequence(
        run, empty_db.url, versions_dir=FIXTURES / "lints" / "transaction_control_bad"
    )
    failure(run.results, "INV-020")
    migrate = next(r for r in run.results if r.ref == "step:migrate")
    assert migrate.status == "skip" and "the lints failed" in str(migrate.note)
    with psycopg.connect(empty_db.conninfo) as conn:
        tables = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
    assert tables == (None,), "nothing was migrated"


def test_seed_is_skipped_with_skip_policy_seed(
    migrated_db: Database, monkeypatch: pytest.MonkeyPatch, no_seed_env: None
) -> None:
    monkeypatch.setenv(runner.SKIP_SEED_VAR, "1")
    result = runner.seed_step(migrated_db.conninfo)
    assert result.status == "skip" and result.note == "SKIP_POLICY_SEED=1"


def test_a_failing_seed_is_reported(migrated_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICY_VERSION", "ci-1")  # neither a document nor a checksum: refused
    for var in ("POLICY_DOCUMENT", "POLICY_FILE", "POLICY_CHECKSUM", runner.SKIP_SEED_VAR):
        monkeypatch.delenv(var, raising=False)
    result = runner.seed_step(migrated_db.conninfo)
    assert result.failed and "POLICY" in result.details[0]


def test_a_valid_exception_waives_a_p1_failure_but_never_a_p0_one(
    db: psycopg.Connection[object], migrated_db: Database, repo_copy: Path
) -> None:
    exceptions = repo_copy / "docs" / "invariants" / "exceptions"
    for name in ("2030-01-01-INV-014-valid.md", "2030-01-01-INV-003-p0.md"):
        (exceptions / name).write_text((FIXTURES / "process" / "exceptions" / name).read_text())
    db.execute("GRANT SELECT ON public.payment_outbox_pending TO PUBLIC")
    db.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id, "
        "sequence_id, idempotency_key, rail_type, payload, attempt_no, state) VALUES "
        "(gen_random_uuid(), 'i', 'p', 1, 'k', 'rail', '{}', 1, 'DISPATCHING')"
    )
    run = runner.Run(command="test", root=repo_copy, today=DURING)
    for result in runner.gate_results(migrated_db.conninfo):
        run.add(result)
    by_id: dict[str | None, CheckResult] = {r.invariant_id: r for r in run.results}
    assert by_id["INV-014"].status == "waived"
    assert "waived by 2030-01-01-INV-014-valid.md" in str(by_id["INV-014"].note)
    assert by_id["INV-003"].status == "fail"
    assert "cannot waive it: INV-003 is P0" in str(by_id["INV-003"].note)


def test_evidence_bundle_refuses_a_used_directory_and_detects_tampering(tmp_path: Path) -> None:
    results = [CheckResult("gate:boot-query", "pass", invariant_id="INV-002")]
    sums = evidence.write_bundle(tmp_path / "bundle", results, {"command": "test"})
    assert evidence.verify_bundle(sums.parent) == []
    with pytest.raises(evidence.SymphonyError, match="is not an empty directory"):
        evidence.write_bundle(sums.parent, results, {})
    record = sums.parent / "checks" / "001-gate-boot-query.json"
    record.write_text(record.read_text().replace('"pass"', '"fail"'))
    (sums.parent / "extra.json").write_text("{}")
    assert evidence.verify_bundle(sums.parent) == [
        "checks/001-gate-boot-query.json does not match its SHA-256",
        "extra.json is not listed in SHA256SUMS",
    ]


def test_verify_refuses_a_non_empty_evidence_directory_before_doing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "old.json").write_text("{}")
    args = ["verify", "--url", "postgresql://nobody@/nowhere", "--evidence", str(tmp_path)]
    assert main(args) == 2
    assert "is not an empty directory" in capsys.readouterr().err


def test_exception_new_command_writes_a_valid_exception(
    repo_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(repo_copy))
    expires = date.fromordinal(date.today().toordinal() + 30).isoformat()
    args = ["invariants", "exception", "new", "--id", "INV-024", "--expires", expires]
    code = main([*args, "--reason", "Vendor-supplied SQL kept verbatim", "--owner", "db team"])
    assert code == 0
    written = sorted((repo_copy / "docs" / "invariants" / "exceptions").glob("*INV-024*.md"))
    assert len(written) == 1 and written[0].name in capsys.readouterr().out
    context = process.ProcessContext(root=repo_copy)
    assert process.gate_exceptions(context) == []
    assert main([*args, "--reason", "x", "--owner", "me", "--id", "INV-999"]) == 2
    assert "--id INV-999: no such invariant" in capsys.readouterr().err


def test_docs_check_command_reports_stale_docs(
    repo_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(repo_copy))
    assert main(["invariants", "docs", "--check"]) == 0
    quick = repo_copy / "docs" / "invariants" / "INVARIANTS_QUICK.md"
    quick.write_text(quick.read_text() + "hand edit\n")
    assert main(["invariants", "docs", "--check"]) == 1
    assert "INVARIANTS_QUICK.md is stale" in capsys.readouterr().out
    assert main(["invariants", "docs"]) == 0
    assert main(["invariants", "docs", "--check"]) == 0


def test_lint_command_runs_on_any_directory(capsys: pytest.CaptureFixture[str]) -> None:
    bad = FIXTURES / "lints" / "legacy_bad"
    assert main(["invariants", "lint", "--dir", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  INV-023  lint:no-legacy-references" in out
    assert main(["invariants", "lint", "--dir", str(FIXTURES / "lints" / "squawk_good")]) == 0


def test_gate_command_reports_the_invariant_id(
    db: psycopg.Connection[object], migrated_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invariants", "gate", "--url", migrated_db.url]) == 0
    db.execute("GRANT EXECUTE ON FUNCTION public.outbox_retry_ceiling() TO PUBLIC")
    assert main(["invariants", "gate", "--url", migrated_db.url]) == 1
    out = capsys.readouterr().out
    assert "FAIL  INV-004  gate:public-function-execute" in out
    assert "FAILED: INV-004, INV-006" in out
