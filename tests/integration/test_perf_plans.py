"""Plan shapes of the hot path (revisions 0006 and 0007, ADR 0041). No timings here: timed claims
live in benchmarks/; these tests pin the plans the benchmarks showed to matter.

* Completions find their row by primary key, also when the statistics of the partial lease index
  say it is empty (a VACUUM ran while nothing was leased): a custom plan, or a skip scan on that
  index, would walk every lease on every completion.
* The claim runs on a generic plan (it was re-planned on every call) and leaves the caller's
  plan_cache_mode as it found it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from benchmarks.plans import explain_nested, plan_nodes

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration

LEASED = 2000


def _plans(conn: psycopg.Connection[Any], statement: str, params: Any = None) -> list[Any]:
    """Every nested statement's plan (auto_explain, JSON, no per-node timing)."""
    return explain_nested(conn, statement, params, timing=False)


#: Revision 0014: the head promotion's look-up of a participant's next job (ADR 0116).
PROMOTION_INDEX = "uq_payment_outbox_pending_participant_sequence"


def _pending_scans(plans: list[Any]) -> list[dict[str, Any]]:
    return [
        node
        for document in plans
        for node in plan_nodes(document["Plan"])
        if node.get("Relation Name") == "payment_outbox_pending"
        and node["Node Type"] in {"Index Scan", "Index Only Scan", "Seq Scan", "Bitmap Heap Scan"}
    ]


@pytest.fixture
def stale_lease_statistics(outbox: Outbox) -> Outbox:
    """A queue whose partial lease index was vacuumed while empty, then filled with LEASED live
    leases: the statistics say "no leases" while thousands exist."""
    outbox.conn.execute(
        "INSERT INTO public.payment_outbox_pending"
        " (instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload,"
        "  next_attempt_at)"
        " SELECT 'i-' || g, 'p-' || g, 1, 'k', 'rtgs', '{}'::jsonb,"
        "        now() - interval '1 hour' + g * interval '1 ms'"
        " FROM generate_series(1, %s) AS g",
        (LEASED * 2,),
    )
    outbox.conn.execute("VACUUM ANALYZE public.payment_outbox_pending")
    assert len(outbox.claim(1000, "worker-1", 600)) == 1000
    assert len(outbox.claim(1000, "worker-1", 600)) == 1000
    return outbox


def _one_lease(outbox: Outbox) -> tuple[Any, Any]:
    row = outbox.conn.execute(
        "SELECT outbox_id, lease_token FROM public.payment_outbox_pending"
        " WHERE claimed_by = 'worker-1' ORDER BY lease_expires_at DESC, outbox_id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("state", ["DISPATCHED", "RETRYABLE"])
def test_completion_reads_the_queue_by_primary_key_despite_stale_statistics(
    stale_lease_statistics: Outbox, state: str
) -> None:
    outbox = stale_lease_statistics
    outbox_id, token = _one_lease(outbox)

    plans = _plans(
        outbox.conn,
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'worker-1', %s,"
        " p_rail_reference => %s::uuid::text)",
        (outbox_id, token, state, outbox_id),
    )

    scans = _pending_scans(plans)
    assert scans, "auto_explain reported no read of payment_outbox_pending"
    for scan in scans:
        # Revision 0014: a terminal completion promotes the participant's next job (the
        # trigger reads the participant's queued jobs by (participant_id, sequence_id)).
        assert scan.get("Index Name") in {"pk_payment_outbox_pending", PROMOTION_INDEX}, scan
        assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 10, scan


def test_batch_completion_reads_the_queue_by_primary_key(stale_lease_statistics: Outbox) -> None:
    outbox = stale_lease_statistics
    rows = outbox.conn.execute(
        "SELECT outbox_id, lease_token FROM public.payment_outbox_pending"
        " WHERE claimed_by = 'worker-1' ORDER BY outbox_id LIMIT 50"
    ).fetchall()

    plans = _plans(
        outbox.conn,
        "SELECT * FROM public.complete_outbox_attempts_batch('worker-1', %s::uuid[],"
        " %s::uuid[], array_fill('DISPATCHED'::text, ARRAY[50]),"
        " p_rail_references => %s::uuid[]::text[])",
        ([r[0] for r in rows], [r[1] for r in rows], [r[0] for r in rows]),
    )

    scans = _pending_scans(plans)
    assert scans, "auto_explain reported no read of payment_outbox_pending"
    assert {scan.get("Index Name") for scan in scans} == {
        "pk_payment_outbox_pending",
        PROMOTION_INDEX,
    }
    for scan in scans:
        if scan.get("Index Name") == PROMOTION_INDEX:
            assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 10, scan
    assert outbox.counts().attempts == 50


def test_claim_runs_on_a_generic_plan_and_restores_plan_cache_mode(outbox: Outbox) -> None:
    for i in range(20):
        outbox.enqueue(f"instr-{i}", f"p-{i}")
    conn = outbox.conn
    with conn.transaction():
        conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")

        plans = _plans(conn, "SELECT * FROM public.claim_outbox_batch(5, 'worker-1', 30)")

        setting = conn.execute("SELECT pg_catalog.current_setting('plan_cache_mode')").fetchone()
        assert setting == ("force_custom_plan",), "the caller's plan_cache_mode must be restored"
    claim_plans = [p for p in plans if _pending_scans([p]) and "WITH unleased" in p["Query Text"]]
    assert len(claim_plans) == 1
    # Revision 0014: claimable heads come from their own partial index (ADR 0116).
    conditions = [
        scan.get("Index Cond", "") + scan.get("Filter", "")
        for scan in _pending_scans(claim_plans)
        if scan.get("Index Name") == "ix_payment_outbox_pending_claimable"
    ]
    # A generic plan compares with the parameter ($n); a custom plan would show the timestamp.
    assert conditions
    assert all("$" in condition for condition in conditions), conditions
    claimed = conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE claimed_by = 'worker-1'"
    ).fetchone()
    assert claimed == (5,)


def _grow_queue(conn: psycopg.Connection[Any], rows: int) -> None:
    """Add rows behind the planner's back (no ANALYZE): the statistics still say "empty"."""
    conn.execute(
        "INSERT INTO public.payment_outbox_pending"
        " (instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload,"
        "  next_attempt_at)"
        " SELECT 'grown-' || g, 'grown-' || g, 1, 'k', 'rtgs', '{}'::jsonb,"
        "        now() - interval '1 hour' + g * interval '1 ms'"
        " FROM generate_series(1, %s) AS g",
        (rows,),
    )


CALLS_PLANNED_WHEN_EMPTY = {
    "enqueue": "SELECT * FROM public.enqueue_payment_outbox(%s, 'p-1', 'k', 'rtgs', '{}')",
    "claim": "SELECT * FROM public.claim_outbox_batch(1, 'worker-1', 30)",
}


@pytest.mark.parametrize("call", list(CALLS_PLANNED_WHEN_EMPTY))
def test_plans_made_while_the_queue_was_empty_still_use_the_indexes(
    outbox: Outbox, call: str
) -> None:
    conn = outbox.conn
    conn.execute("VACUUM ANALYZE public.payment_outbox_pending")
    conn.execute("VACUUM ANALYZE public.payment_outbox_attempts")
    statement = CALLS_PLANNED_WHEN_EMPTY[call]
    for i in range(8):  # past the plan cache's five custom plans: the cached plan is now fixed
        outbox.enqueue(f"early-{i}", f"p-early-{i}")
        conn.execute(statement, (f"warm-{i}",) if "%s" in statement else None).fetchall()
    _grow_queue(conn, 5000)

    plans = _plans(conn, statement, ("late",) if "%s" in statement else None)

    scans = _pending_scans(plans)
    assert scans, "auto_explain reported no read of payment_outbox_pending"
    assert not [s for s in scans if s["Node Type"] == "Seq Scan"], scans
    for scan in scans:
        assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 20, scan
