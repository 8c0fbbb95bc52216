"""Baseline generation and the four drift checks, each provoked in a throw-away copy.

Every test builds its own inputs: a baseline freshly generated into a temp directory, a temp
revision tree (the real revisions copied plus one extra), a modified copy of the models or of the
declared matrix. The real files are never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from symphony_schema import SymphonyError, project_root
from symphony_schema.baseline.drift import DriftInputs, DriftKind, DriftReport, run_drift
from symphony_schema.baseline.generate import BASELINE_SQL, CATALOG_TXT, PRIVILEGES_MD, generate
from symphony_schema.baseline.privileges_report import NOTHING
from symphony_schema.baseline.scratch import NAME_PREFIX
from symphony_schema.cli import main as cli_main
from symphony_schema.models import metadata as real_metadata
from symphony_schema.privileges import ObjectKind, expected_grants
from tests.conftest import PgServer
from tests.migration.conftest import RevisionTree, make_tree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


@pytest.fixture
def baseline_copy(fresh_baseline: Path, tmp_path: Path) -> Path:
    """A private copy of the fresh baseline that a test may edit."""
    return Path(shutil.copytree(fresh_baseline, tmp_path / "baseline"))


def tree_with_real_revisions(root: Path) -> RevisionTree:
    """A temp Alembic project holding copies of the real revisions; ``add`` appends after them."""
    tree = make_tree(root, url="")
    for path in sorted((project_root() / "alembic" / "versions").glob("[0-9]*")):
        if path.suffix in {".py", ".sql"}:
            shutil.copy(path, tree.versions / path.name)
    tree.revisions = sorted(path.stem for path in tree.versions.glob("*.py"))
    return tree


def drift(server_url: str, baseline_dir: Path, *kinds: DriftKind, **inputs: object) -> DriftReport:
    return run_drift(
        server_url,
        DriftInputs(baseline_dir=baseline_dir, kinds=kinds, **inputs),  # type: ignore[arg-type]
    )


def result(report: DriftReport, kind: DriftKind) -> str:
    (found,) = [r for r in report.results if r.kind is kind]
    assert not found.ok, f"drift check {kind.label} should have failed"
    return found.diff + found.error


def scratch_databases(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (NAME_PREFIX,)
        ).fetchall()
    return {row[0] for row in rows}


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def test_generation_is_byte_identical_across_runs(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    generate(server_url, tmp_path)
    for name in (BASELINE_SQL, PRIVILEGES_MD, CATALOG_TXT):
        assert (tmp_path / name).read_bytes() == (fresh_baseline / name).read_bytes(), name
    text = (tmp_path / BASELINE_SQL).read_text()
    assert "\\restrict" not in text and "Dumped from" not in text and "Dumped by" not in text
    assert "OWNER TO postgres" not in text
    sections = ["-- 1. Roles", "-- 2. Schema", "-- 3. Database", "-- 4. Migration ledger"]
    assert [text.index(s) for s in sections] == sorted(text.index(s) for s in sections)


def test_the_committed_baseline_matches_the_migrations_models_and_matrix(server_url: str) -> None:
    report = run_drift(server_url, DriftInputs(baseline_dir=project_root() / "baseline"))
    assert report.ok, "run `nox -s baseline` and commit baseline/:\n" + "\n".join(
        f"{r.kind.label}: {r.error}\n{r.diff}" for r in report.failed
    )


def test_scratch_databases_are_dropped_even_when_migrating_fails(
    server_url: str,
    pg_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    before = scratch_databases(pg_server.conninfo("postgres"))
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add("broken", "SELECT no_such_function();")
    with pytest.raises(SymphonyError, match="no_such_function"):
        generate(server_url, tmp_path / "out", script_location=tree.root / "alembic")
    assert scratch_databases(pg_server.conninfo("postgres")) <= before
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# 1. a new revision without regenerating the baseline
# --------------------------------------------------------------------------------------------

FUNCTION_CHANGE = """\
CREATE OR REPLACE FUNCTION public.outbox_retry_ceiling() RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN 25;
END
$$;
"""


def test_a_new_revision_without_regenerating_fails_with_a_diff_naming_it(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    tree = tree_with_real_revisions(tmp_path / "project")
    revision = tree.add("ceiling_25", FUNCTION_CHANGE, doc="Raise the retry ceiling to 25.")
    report = drift(
        server_url,
        fresh_baseline,
        DriftKind.BASELINE,
        script_location=tree.root / "alembic",
    )
    diff = result(report, DriftKind.BASELINE)
    assert f"+++ baseline/baseline.sql (generated from the migrations at {revision})" in diff
    assert "+    RETURN 25;" in diff
    assert (
        "-        (SELECT s.retry_ceiling FROM public.outbox_settings AS s WHERE s.singleton),"
        in diff
    )
    assert (
        "+INSERT INTO public.schema_migrations (version, description, checksum) "
        f"VALUES ('{revision}'" in diff
    )
    previous_head = tree.revisions[-2]
    assert f"-INSERT INTO public.alembic_version (version_num) VALUES ('{previous_head}');" in diff


def test_a_grant_added_by_a_revision_shows_in_baseline_round_trip_and_privileges(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add(
        "ingest_reads_attempts",
        "GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_ingest;",
    )
    report = drift(
        server_url,
        fresh_baseline,
        DriftKind.BASELINE,
        DriftKind.ROUND_TRIP,
        DriftKind.PRIVILEGES,
        script_location=tree.root / "alembic",
    )
    baseline = result(report, DriftKind.BASELINE)
    assert "+GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_ingest;" in baseline
    row = "| `public.payment_outbox_attempts` | "
    row += "symphony_owner | {0} | SELECT | SELECT | {0} |"
    row = row.format(NOTHING)
    assert f"-{row} {NOTHING} |" in baseline
    assert f"+{row} SELECT |" in baseline
    round_trip = result(report, DriftKind.ROUND_TRIP)
    assert "-relation public.payment_outbox_attempts: symphony_ingest SELECT" in round_trip
    privileges = result(report, DriftKind.PRIVILEGES)
    assert "+table public.payment_outbox_attempts: symphony_ingest SELECT" in privileges


def test_a_membership_and_a_column_grant_added_by_a_revision_fail_the_privileges_check(
    pg_server: PgServer, server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    """Regression (issue 11 item 5): check 4 read table ACLs only; a column grant and a
    membership between Symphony roles passed it."""
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add(
        "widen_roles",
        "GRANT UPDATE (attempt_count) ON public.payment_outbox_pending TO symphony_executor;\n"
        "GRANT symphony_control TO symphony_readonly;",
    )
    try:
        report = drift(
            server_url, fresh_baseline, DriftKind.PRIVILEGES, script_location=tree.root / "alembic"
        )
    finally:  # memberships are cluster-wide: the scratch database's drop does not undo this one
        with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
            conn.execute("REVOKE symphony_control FROM symphony_readonly")
    privileges = result(report, DriftKind.PRIVILEGES)
    assert (
        "+column public.payment_outbox_pending.attempt_count: symphony_executor UPDATE"
        in privileges
    )
    assert "+membership: symphony_readonly is a member of symphony_control" in privileges
    assert (
        "+effective: symphony_readonly can effectively EXECUTE on function "
        "public.cancel_outbox_job(uuid,text,text) (through symphony_control)" in privileges
    )


# --------------------------------------------------------------------------------------------
# 2. a hand edit of baseline.sql
# --------------------------------------------------------------------------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_a_hand_edited_grant_in_baseline_sql_fails_the_round_trip(
    server_url: str, baseline_copy: Path, tmp_path: Path
) -> None:
    _edit(
        baseline_copy / BASELINE_SQL,
        "GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_readonly;",
        "GRANT SELECT,UPDATE ON TABLE public.payment_outbox_attempts TO symphony_readonly;",
    )
    summary = tmp_path / "summary.md"
    code = cli_main(
        [
            "baseline",
            "drift",
            "--url",
            server_url,
            "--baseline-dir",
            str(baseline_copy),
            "--summary",
            str(summary),
            "--check",
            "baseline",
            "--check",
            "round-trip",
        ]
    )
    assert code == 1
    markdown = summary.read_text()
    assert "| 2 | round trip |" in markdown and "```diff" in markdown
    assert (
        "+relation public.payment_outbox_attempts: symphony_readonly UPDATE "
        "(granted by symphony_owner)" in markdown
    )
    assert (
        "+GRANT SELECT,UPDATE ON TABLE public.payment_outbox_attempts TO symphony_readonly;"
        in markdown
    )


def test_a_hand_edited_role_attribute_is_detected_and_the_cluster_role_restored(
    server_url: str,
    baseline_copy: Path,
    pg_server,  # type: ignore[no-untyped-def]
) -> None:
    _edit(
        baseline_copy / BASELINE_SQL,
        "('test_user', true, false, false, false, true, false, false, -1,",
        "('test_user', true, false, false, false, true, false, false, 3,",
    )
    report = drift(server_url, baseline_copy, DriftKind.ROUND_TRIP)
    diff = result(report, DriftKind.ROUND_TRIP)
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS"
    assert f"-role test_user: {attributes} CONNECTION LIMIT -1" in diff
    assert f"+role test_user: {attributes} CONNECTION LIMIT 3" in diff
    with psycopg.connect(pg_server.conninfo("postgres")) as conn:
        row = conn.execute(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'test_user'"
        ).fetchone()
    assert row == (-1,), "the drift check must put the cluster-wide role back"


def test_a_baseline_that_does_not_apply_fails_the_round_trip_with_the_error(
    server_url: str, baseline_copy: Path
) -> None:
    _edit(
        baseline_copy / BASELINE_SQL,
        "CREATE TABLE public.policy_versions (",
        "CREATE TABLE public.policy_versions (\n    oops,",
    )
    diff = result(drift(server_url, baseline_copy, DriftKind.ROUND_TRIP), DriftKind.ROUND_TRIP)
    assert "failed and was rolled back (SQLSTATE 42601)" in diff


# --------------------------------------------------------------------------------------------
# 3. models vs migrated database
# --------------------------------------------------------------------------------------------


def models_copy() -> sa.MetaData:
    copy = sa.MetaData(naming_convention=real_metadata.naming_convention)
    for table in real_metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def test_a_model_column_change_is_named_in_the_models_diff(
    server_url: str, fresh_baseline: Path
) -> None:
    models = models_copy()
    pending = models.tables["payment_outbox_pending"]
    pending.c.rail_type.nullable = True
    pending.append_column(sa.Column("note", sa.Text, server_default=sa.text("'x'")))
    diff = result(
        drift(server_url, fresh_baseline, DriftKind.MODELS, metadata=models), DriftKind.MODELS
    )
    assert "-public.payment_outbox_pending column rail_type text NOT NULL" in diff
    assert "+public.payment_outbox_pending column rail_type text" in diff
    assert "+public.payment_outbox_pending column note text DEFAULT 'x'::text" in diff


def test_model_check_constraints_index_predicates_and_enum_labels_are_compared(
    server_url: str, fresh_baseline: Path
) -> None:
    models = models_copy()
    attempts = models.tables["payment_outbox_attempts"]
    for constraint in list(attempts.constraints):
        if constraint.name == "ck_payment_outbox_attempts_attempt_no_positive":
            constraint.sqltext = sa.text("attempt_no >= 0")  # type: ignore[attr-defined]
    for index in attempts.indexes:
        if index.name == "uq_payment_outbox_attempts_one_outcome":
            index.dialect_options["postgresql"]["where"] = sa.text("state = 'DISPATCHED'")
    state = attempts.c.state.type
    assert isinstance(state, sa.Enum)
    state.enums = [*state.enums, "PARKED"]
    diff = result(
        drift(server_url, fresh_baseline, DriftKind.MODELS, metadata=models), DriftKind.MODELS
    )
    assert (
        "+public.payment_outbox_attempts constraint ck_payment_outbox_attempts_attempt_no_positive "
        "CHECK ((attempt_no >= 0))" in diff
    )
    assert "WHERE (state = 'DISPATCHED'::public.outbox_attempt_state)" in diff
    assert (
        "+enum public.outbox_attempt_state: DISPATCHING, DISPATCHED, RETRYABLE, FAILED, "
        "ZOMBIE_REQUEUE, CANCELLED, REDRIVEN, PARKED" in diff
    )


def test_models_that_do_not_compile_are_reported(server_url: str, fresh_baseline: Path) -> None:
    models = models_copy()
    models.tables["policy_versions"].append_constraint(
        sa.CheckConstraint("no_such_column > 0", name="ck_policy_versions_broken")
    )
    error = result(
        drift(server_url, fresh_baseline, DriftKind.MODELS, metadata=models), DriftKind.MODELS
    )
    assert "do not compile to valid PostgreSQL DDL" in error and "no_such_column" in error


# --------------------------------------------------------------------------------------------
# 4. declared matrix vs catalog
# --------------------------------------------------------------------------------------------


def test_a_declared_grant_missing_from_the_catalog_is_named(
    server_url: str, fresh_baseline: Path
) -> None:
    declared = dict(expected_grants())
    key = ("symphony_auditor", ObjectKind.TABLE, "public.participant_outbox_sequences")
    declared[key] = frozenset({"SELECT"})
    diff = result(
        drift(server_url, fresh_baseline, DriftKind.PRIVILEGES, expected_grants=declared),
        DriftKind.PRIVILEGES,
    )
    assert diff.splitlines()[:2] == [
        "--- declared (symphony_schema.privileges)",
        "+++ catalog (database migrated to head)",
    ]
    assert "-table public.participant_outbox_sequences: symphony_auditor SELECT" in diff
    assert (
        sum(line.startswith(("-t", "+t", "-f", "+f", "-s", "+s")) for line in diff.splitlines())
        == 1
    )


@pytest.fixture
def no_leftover_scratch(pg_server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    before = scratch_databases(pg_server.conninfo("postgres"))
    yield
    assert scratch_databases(pg_server.conninfo("postgres")) <= before


def test_a_full_drift_run_leaves_no_scratch_database(
    server_url: str, fresh_baseline: Path, no_leftover_scratch: None
) -> None:
    report = drift(server_url, fresh_baseline, *DriftKind)
    assert [r.kind for r in report.results] == list(DriftKind)


def test_a_revision_that_fails_is_a_usage_error_explained_in_the_summary(
    server_url: str, fresh_baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add("broken", "SELECT no_such_function();")
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(tree.root))
    summary = tmp_path / "summary.md"
    args = ["baseline", "drift", "--url", server_url, "--baseline-dir", str(fresh_baseline)]
    assert cli_main([*args, "--summary", str(summary)]) == 2
    assert "Schema drift could not run" in summary.read_text()
    assert "no_such_function" in summary.read_text()
