"""Sabotages of the issue 20 gate checks (INV-054 to INV-056): each breaks exactly its rule on a
real migrated database and the gate fails with that invariant id (see test_gate.py for the
conventions: cluster-wide sabotage is rolled back)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


# -- INV-057 --------------------------------------------------------------------------------------

VERSIONS = Path(__file__).resolve().parents[2] / "alembic" / "versions"


def _statement(revision_file: str, header: str) -> str:
    """One CREATE OR REPLACE FUNCTION statement of a shipped revision (up to its closing $$;)."""
    text = (VERSIONS / revision_file).read_text(encoding="utf-8")
    start = text.index(header)
    return text[start : text.index("$$;", start) + 3]


def test_rail_rules_wired_passes_on_an_untouched_database(migrated_db: Database) -> None:
    results = gate_on(migrated_db.conninfo)
    assert any(r.invariant_id == "INV-057" for r in results), "no check reports INV-057"
    assert _passes(results, "INV-057"), [r.details for r in results if r.failed]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (
            "CREATE OR REPLACE FUNCTION public.complete_outbox_attempt(",
            "public.complete_outbox_attempt",
        ),
        (
            "CREATE OR REPLACE FUNCTION public.complete_outbox_attempts_batch(",
            "public.complete_outbox_attempts_batch",
        ),
    ],
)
def test_rail_rules_wired_fails_when_completion_is_restated_without_references(
    db: psycopg.Connection[object], migrated_db: Database, header: str, name: str
) -> None:
    """A later revision that restates a completion from the 0014 body (before references)."""
    db.execute(_statement("0014_fifo_dispatch.sql", header))  # type: ignore[arg-type]
    result = failure(gate_on(migrated_db.conninfo), "INV-057")
    assert list(result.details) == [
        f"{name} no longer calls public.record_outbox_rail_references: enqueue must refuse "
        "unknown rails and inexact numbers, and a DISPATCHED completion must record its rail "
        "reference (unique per rail, P7013); restore the call in a new revision (ADRs 0122, "
        "0123, 0141)"
    ]


def test_rail_rules_wired_fails_when_enqueue_skips_the_rail_check(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    statement = _statement(
        "0020_enqueue_uses_rails.sql", "CREATE OR REPLACE FUNCTION public.enqueue_payment_outbox("
    ).replace("public.outbox_rail_code(p_rail_type)", "p_rail_type")
    db.execute(statement)  # type: ignore[arg-type]
    result = failure(gate_on(migrated_db.conninfo), "INV-057")
    assert (
        "public.enqueue_payment_outbox no longer calls public.outbox_rail_code"
        in (result.details[0])
    )


@pytest.mark.parametrize(
    "call", ["public.outbox_rail_code(", "public.check_outbox_payload_numbers("]
)
def test_rail_rules_wired_fails_when_the_batch_skips_a_rule(
    db: psycopg.Connection[object], migrated_db: Database, call: str
) -> None:
    """Since 0031 the batch applies the rail and number rules itself (ADR 0136): a body that
    no longer calls one of them fails INV-057."""
    statement = _statement(
        "0031_enqueue_set_based.sql",
        "CREATE OR REPLACE FUNCTION public.enqueue_payment_outbox_batch(",
    ).replace(f"PERFORM {call}", "PERFORM pg_catalog.num_nonnulls(")
    db.execute(statement)  # type: ignore[arg-type]
    result = failure(gate_on(migrated_db.conninfo), "INV-057")
    assert (
        f"public.enqueue_payment_outbox_batch no longer calls {call.rstrip('(')}"
        in result.details[0]
    )


def test_rail_rules_wired_fails_without_the_unique_reference_key(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "ALTER TABLE public.outbox_rail_references DROP CONSTRAINT pk_outbox_rail_references"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-057")
    assert list(result.details) == [
        "public.outbox_rail_references has no primary key (rail_code, rail_reference): nothing "
        "keeps a rail reference unique per rail; restore it in a new revision"
    ]


# -- INV-065 --------------------------------------------------------------------------------------

PAYLOADS = "public.payment_outbox_payloads"


def test_payloads_append_only_passes_on_an_untouched_database(migrated_db: Database) -> None:
    results = gate_on(migrated_db.conninfo)
    assert any(r.invariant_id == "INV-065" for r in results), "no check reports INV-065"
    assert _passes(results, "INV-065"), [r.details for r in results if r.failed]


@pytest.mark.parametrize(
    ("sabotage", "expected"),
    [
        (
            f"DROP TRIGGER trg_deny_outbox_payloads_truncate ON {PAYLOADS}",
            f"no BEFORE TRUNCATE trigger on {PAYLOADS} calls",
        ),
        (
            f"DROP TRIGGER trg_deny_outbox_payloads_mutation ON {PAYLOADS}",
            f"no BEFORE UPDATE trigger on {PAYLOADS} calls",
        ),
        (
            f"ALTER TABLE {PAYLOADS} ENABLE TRIGGER trg_deny_outbox_payloads_mutation",
            "trigger trg_deny_outbox_payloads_mutation (rejects UPDATE) on "
            f"{PAYLOADS} is not enabled ALWAYS",
        ),
    ],
)
def test_payloads_append_only_fails_when_a_guard_is_gone_or_not_always(
    db: psycopg.Connection[object], migrated_db: Database, sabotage: str, expected: str
) -> None:
    db.execute(sabotage)  # type: ignore[arg-type]
    result = failure(gate_on(migrated_db.conninfo), "INV-065")
    assert result.details[0].startswith(expected), result.details


def test_queue_and_ledger_writers_covers_the_payload_table(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"GRANT INSERT ON {PAYLOADS} TO symphony_ingest")  # type: ignore[arg-type]
    result = failure(gate_on(migrated_db.conninfo), "INV-054")
    assert f"symphony_ingest can INSERT {PAYLOADS} directly" in result.details[0]
