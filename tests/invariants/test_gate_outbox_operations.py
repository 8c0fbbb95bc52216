"""Sabotages of the issue 20 gate checks (INV-054 to INV-056): each breaks exactly its rule on a
real migrated database and the gate fails with that invariant id (see test_gate.py for the
conventions: cluster-wide sabotage is rolled back)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.conftest import Database
from tests.invariants.conftest import annotated_gate, failure, gate_on

pytestmark = pytest.mark.integration

ATTEMPTS = "public.payment_outbox_attempts"


@contextmanager
def uncommitted(conninfo: str) -> Iterator[psycopg.Connection[object]]:
    """A connection in an open transaction that is always rolled back."""
    conn = psycopg.connect(conninfo)
    try:
        yield conn  # type: ignore[misc]
    finally:
        conn.rollback()
        conn.close()


def _passes(results: list, invariant_id: str) -> bool:  # type: ignore[type-arg]
    return all(not r.failed for r in results if r.invariant_id == invariant_id)


def test_the_issue_20_checks_pass_on_an_untouched_database(migrated_db: Database) -> None:
    results = gate_on(migrated_db.conninfo)
    for invariant_id in ("INV-054", "INV-055", "INV-056"):
        assert any(r.invariant_id == invariant_id for r in results), invariant_id
        assert _passes(results, invariant_id), [r.details for r in results if r.failed]


# -- INV-054 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant", "expected"),
    [
        (
            "GRANT DELETE ON public.payment_outbox_pending TO symphony_control",
            "symphony_control can DELETE public.payment_outbox_pending directly",
        ),
        (
            "GRANT INSERT ON public.payment_outbox_attempts TO symphony_control",
            "symphony_control can INSERT public.payment_outbox_attempts directly",
        ),
        (
            "GRANT UPDATE (next_sequence_id) ON public.participant_outbox_sequences"
            " TO symphony_readonly",
            "symphony_readonly can UPDATE public.participant_outbox_sequences directly",
        ),
        (
            "GRANT INSERT ON public.outbox_rail_references TO symphony_executor",
            "symphony_executor can INSERT public.outbox_rail_references directly",
        ),
        (
            "GRANT UPDATE ON public.outbox_rails TO test_user",
            "test_user can UPDATE public.outbox_rails directly",
        ),
    ],
)
def test_queue_and_ledger_writers_fails_on_a_direct_write_grant(
    db: psycopg.Connection[object], migrated_db: Database, grant: str, expected: str
) -> None:
    db.execute(grant)
    result = failure(gate_on(migrated_db.conninfo), "INV-054")
    assert any(d.startswith(expected) for d in result.details), result.details


def test_queue_and_ledger_writers_fails_through_a_membership(migrated_db: Database) -> None:
    """A role that inherits a writer's privileges writes too (cluster-wide: rolled back)."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("CREATE ROLE t_gate_writer NOLOGIN")
        conn.execute("GRANT INSERT ON public.payment_outbox_attempts TO t_gate_writer")
        conn.execute("GRANT t_gate_writer TO symphony_auditor")
        result = failure(annotated_gate(conn), "INV-054")
    assert any(
        d.startswith("symphony_auditor can INSERT public.payment_outbox_attempts")
        for d in result.details
    ), result.details


# -- INV-055 --------------------------------------------------------------------------------------


def test_one_outcome_per_job_fails_when_the_index_is_dropped(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("DROP INDEX public.uq_payment_outbox_attempts_one_outcome")
    result = failure(gate_on(migrated_db.conninfo), "INV-055")
    assert result.details[0].startswith(f"no unique index on {ATTEMPTS} (outbox_id) WHERE state IN")
    assert "DISPATCHED, FAILED, CANCELLED" in result.details[0]


def test_one_outcome_per_job_fails_when_cancelled_is_left_out(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    """The 0001 rule (DISPATCHED and FAILED only) is not enough: a CANCELLED job could still be
    dispatched by a stale worker, or cancelled twice."""
    db.execute("DROP INDEX public.uq_payment_outbox_attempts_one_outcome")
    db.execute(
        f"CREATE UNIQUE INDEX uq_sabotage ON {ATTEMPTS} (outbox_id)"
        " WHERE state IN ('DISPATCHED', 'FAILED')"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-055")
    assert "one outcome (DISPATCHED, FAILED or CANCELLED) per job" in result.details[0]


def test_one_outcome_per_job_fails_without_the_one_redrive_rule(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("DROP INDEX public.uq_payment_outbox_attempts_one_redrive")
    db.execute(f"CREATE INDEX ix_sabotage ON {ATTEMPTS} (outbox_id) WHERE state = 'REDRIVEN'")
    result = failure(gate_on(migrated_db.conninfo), "INV-055")
    assert "one REDRIVEN row per job" in result.details[0]


def test_one_outcome_per_job_fails_on_an_invalid_index(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "UPDATE pg_catalog.pg_index SET indisvalid = false"
        " WHERE indexrelid = 'public.uq_payment_outbox_attempts_one_outcome'::regclass"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-055")
    assert any("is INVALID: REINDEX" in d for d in result.details), result.details


# -- INV-056 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "audit"),
    [
        ("CANCELLED", "NULL, NULL, NULL, NULL"),
        ("CANCELLED", "'dba', '  ', 'OPS-1', NULL"),
        ("REDRIVEN", "'dba', 'why', 'OPS-1', NULL"),
        ("REDRIVEN", "'dba', 'why', '', gen_random_uuid()"),
    ],
)
def test_interventions_audited_fails_on_an_unaudited_row(
    db: psycopg.Connection[object], migrated_db: Database, state: str, audit: str
) -> None:
    """A row written around the functions (a superuser's INSERT: nobody else may)."""
    db.execute(
        f"INSERT INTO {ATTEMPTS} (outbox_id, instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload, attempt_no, state, acted_by, reason, ticket,"
        f" related_outbox_id) VALUES ('01a20000-0000-7000-8000-000000000001', 'i', 'p', 1, 'k',"
        f" 'RTGS', '{{}}', 1, '{state}', {audit})"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-056")
    assert result.details[0].startswith(
        f"ledger row {state} of outbox 01a20000-0000-7000-8000-000000000001 (attempt 1) lacks"
    )
