"""Helpers of the invariants tests: run the gate the way the runner does (results annotated with
their invariant ids from the real manifest) and build throw-away copies of the repository's
invariants docs for the process gates."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from symphony_schema import project_root
from symphony_schema.invariants import gate, runner
from symphony_schema.invariants.results import CheckResult

FIXTURES = Path(__file__).parent / "fixtures"


def annotated_gate(conn: psycopg.Connection[object]) -> list[CheckResult]:
    """Every gate check on ``conn``, annotated with invariant ids as ``verify`` reports them."""
    run = runner.new_run("test")
    for result in gate.run_gate(conn):  # type: ignore[arg-type]
        run.add(result)
    return run.results


def gate_on(conninfo: str) -> list[CheckResult]:
    """The whole gate in its own read-only session, as ``verify`` runs it."""
    with gate.connect(conninfo) as conn:
        return annotated_gate(conn)


def failed_ids(results: list[CheckResult]) -> set[str]:
    return {r.invariant_id or r.ref for r in results if r.failed}


def failure(results: list[CheckResult], invariant_id: str) -> CheckResult:
    """The failed result of ``invariant_id``; a clear assertion error when it did not fail."""
    for result in results:
        if result.invariant_id == invariant_id:
            assert result.failed, f"{invariant_id} ({result.ref}) passed but should have failed"
            return result
    raise AssertionError(f"no check reported {invariant_id}; reported {[r.ref for r in results]}")


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the repository's invariants docs and the tests the manifest names (for pytest
    node ids)."""
    root = project_root()
    copy = tmp_path / "repo"
    shutil.copytree(root / "docs" / "invariants", copy / "docs" / "invariants")
    # The manifest's verification names tests here, in tests/redteam, (the partitioned
    # ledger, INV-061 to INV-064) in tests/integration and (Citus, INV-059) in tests/cluster.
    for tests in ("invariants", "redteam", "integration", "cluster"):
        shutil.copytree(
            root / "tests" / tests,
            copy / "tests" / tests,
            ignore=shutil.ignore_patterns("__pycache__", "fixtures"),
        )
    return copy


@pytest.fixture
def no_seed_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("POLICY_VERSION", "POLICY_DOCUMENT", "POLICY_FILE", "POLICY_CHECKSUM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(runner.SKIP_SEED_VAR, raising=False)
    yield
