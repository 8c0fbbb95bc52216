"""Sabotages of gate:fifo-heads-promoted (INV-069, revision 0032, ADR 0158): each breaks the
promotion of a participant's next job in one way on a real migrated database and the gate fails
with INV-069 (see test_gate.py for the conventions)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Database
from tests.invariants.conftest import failure, gate_on

pytestmark = pytest.mark.integration

PENDING = "public.payment_outbox_pending"
ENQUEUE = (
    "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, 'pa', %s, 'rtgs', '{\"a\": 1}'::jsonb)"
)


def _passes(migrated_db: Database) -> bool:
    return all(not r.failed for r in gate_on(migrated_db.conninfo) if r.invariant_id == "INV-069")


def test_fifo_heads_promoted_passes_on_a_working_queue(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    for n in range(3):
        db.execute(ENQUEUE, (f"i-{n}", f"k-{n}"))
    row = db.execute("SELECT outbox_id, lease_token FROM public.claim_outbox_batch(1, 'w', 30)")
    job = row.fetchone()
    assert job is not None
    db.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w', 'DISPATCHED',"
        " p_rail_reference => 'ref-1')",
        job,
    )
    assert _passes(migrated_db)


def test_fifo_heads_promoted_fails_for_a_stuck_participant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    """A head deleted with the promotion trigger disabled leaves the next job without the flag."""
    first = db.execute(ENQUEUE, ("i-1", "k-1")).fetchone()
    second = db.execute(ENQUEUE, ("i-2", "k-2")).fetchone()
    assert first is not None and second is not None
    db.execute(f"ALTER TABLE {PENDING} DISABLE TRIGGER trg_promote_outbox_head")
    db.execute(f"DELETE FROM {PENDING} WHERE outbox_id = %s", first)
    db.execute(f"ALTER TABLE {PENDING} ENABLE ALWAYS TRIGGER trg_promote_outbox_head")
    result = failure(gate_on(migrated_db.conninfo), "INV-069")
    assert len(result.details) == 1, result.details
    assert result.details[0].startswith("participant 'pa' is stuck"), result.details
    assert str(second[0]) in result.details[0]


@pytest.mark.parametrize(
    ("sabotage", "expected"),
    [
        (
            f"DROP TRIGGER trg_promote_outbox_head ON {PENDING}",
            f"trg_promote_outbox_head is missing on {PENDING}",
        ),
        (
            f"ALTER TABLE {PENDING} ENABLE TRIGGER trg_promote_outbox_head",
            f"trg_promote_outbox_head on {PENDING} is not enabled ALWAYS",
        ),
        (
            # A completion restated without its own promotion (the 0024 body relied on the
            # trigger, which now skips the completions' deletes).
            "DO $$ BEGIN EXECUTE pg_catalog.replace(pg_catalog.pg_get_functiondef("
            "'public.complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state,"
            " text, text, text, text, integer, integer)'::regprocedure),"
            " 'FOR NO KEY UPDATE', 'FOR UPDATE'); END $$",
            "public.complete_outbox_attempt no longer promotes the participant's next job",
        ),
    ],
)
def test_fifo_heads_promoted_fails_when_the_promotion_is_unwired(
    db: psycopg.Connection[object], migrated_db: Database, sabotage: str, expected: str
) -> None:
    db.execute(sabotage)
    result = failure(gate_on(migrated_db.conninfo), "INV-069")
    assert any(d.startswith(expected) for d in result.details), result.details
