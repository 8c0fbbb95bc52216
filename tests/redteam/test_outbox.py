"""Red team of the outbox hardening (revision 0011, ADRs 0060-0063): variants of the attacks
that the regression tests in tests/integration/test_outbox_hardening.py do not cover."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

CEILING = 4


def test_a_crash_loop_under_batch_claims_concurrent_repair_and_retries_ends_at_the_ceiling(
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    outbox_for: type[Outbox],
) -> None:
    """Thirty jobs whose workers never finish: two claimers with different batch sizes, a
    repairer and a worker that reports RETRYABLE race every round; every lease is then lost.
    Whoever records an attempt, numbering continues without a gap or a duplicate and every job
    ends FAILED at exactly the ceiling."""
    admin = outbox_for(db)
    db.execute("SELECT public.set_outbox_retry_ceiling(%s)", (CEILING,))
    ids = [admin.enqueue(f"instr-{n}", participant_id=f"participant-{n % 3}")[0] for n in range(30)]
    claimer_a, claimer_b, repairer = (outbox_for(connect()) for _ in range(3))
    barrier = threading.Barrier(3)

    def claim_a() -> None:
        barrier.wait()
        claimer_a.claim(8, "a", 600)

    def claim_b_and_retry() -> None:
        barrier.wait()
        for row in claimer_b.claim(5, "b", 600)[::2]:
            claimer_b.complete(row.outbox_id, row.lease_token, "b", "RETRYABLE")

    def repair() -> None:
        barrier.wait()
        repairer.repair(6, "r")

    with ThreadPoolExecutor(max_workers=3) as pool:
        for _ in range(80):
            if admin.counts().pending == 0:
                break
            for future in [pool.submit(f) for f in (claim_a, claim_b_and_retry, repair)]:
                future.result()
            admin.expire_leases()
            admin.make_due()
    assert admin.counts().pending == 0, "every job left the queue"
    for outbox_id in ids:
        attempts = [(a["attempt_no"], a["state"]) for a in admin.attempts(outbox_id)]
        assert [n for n, _ in attempts] == list(range(1, CEILING + 1)), attempts
        assert attempts[-1][1] == "FAILED", attempts
        assert {s for _, s in attempts[:-1]} <= {"ZOMBIE_REQUEUE", "RETRYABLE"}, attempts


def test_a_runtime_login_idle_in_a_transaction_blocks_no_other_payment(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    login: LoginFactory,
    outbox_for: type[Outbox],
) -> None:
    """Every runtime login does the most it can to hold locks (an executor keeps its claim's
    row locks, readers LOCK every table they can read in ACCESS SHARE mode, ingest keeps one
    enqueue open) and stays idle in its transaction; another payment of another participant is
    still enqueued, claimed and completed at once, and the retry ceiling can still be changed."""
    admin = outbox_for(db)
    held_id = admin.enqueue("instr-held", participant_id="participant-held")[0]
    executor = login("symphony_executor", autocommit=False)
    claimed = outbox_for(executor.conn).claim(10, "holder", 600)
    assert [r.outbox_id for r in claimed] == [held_id]
    ingest_holder = login("symphony_ingest", autocommit=False)
    outbox_for(ingest_holder.conn).enqueue("instr-open", participant_id="participant-open")
    for role in ("symphony_readonly", "symphony_auditor"):
        reader = login(role, autocommit=False)
        tables = reader.conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class AS c "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
            "AND has_table_privilege(c.oid, 'SELECT')"
        ).fetchall()
        for (table,) in tables:
            reader.conn.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")

    ingest = login("symphony_ingest")
    ingest.conn.execute("SET lock_timeout = '2s'")
    new_id = outbox_for(ingest.conn).enqueue("instr-new", participant_id="participant-new")[0]
    again = outbox_for(ingest.conn).enqueue("instr-new", participant_id="participant-new")[0]
    assert again == new_id
    worker = login("symphony_executor")
    worker.conn.execute("SET lock_timeout = '2s'")
    rows = outbox_for(worker.conn).claim(10, "other", 60)
    assert [r.outbox_id for r in rows] == [new_id]
    assert outbox_for(worker.conn).complete(new_id, rows[0].lease_token, "other", "DISPATCHED")
    control = login("symphony_control")
    control.conn.execute("SET lock_timeout = '2s'")
    control.conn.execute("SELECT public.set_outbox_retry_ceiling(7)")


def _job_values(admin: Outbox, outbox_id: Any) -> tuple[Any, ...]:
    row = admin.pending(outbox_id)
    assert row is not None
    return (
        outbox_id,
        row["instruction_id"],
        row["participant_id"],
        row["sequence_id"],
        row["idempotency_key"],
        row["rail_type"],
        None if row["payload"] is None else Jsonb(row["payload"]),  # NULL since 0038
    )


def test_concurrent_manual_requeue_and_outcome_cannot_both_pass_the_p7005_guards(
    db: psycopg.Connection[Any], connect: Any, outbox_for: type[Outbox]
) -> None:
    """Two manual sessions race on one job: one queues it again, the other records its
    terminal outcome. Each guard (ADR 0063) only saw committed rows, so both passed; the worker's
    completion then failed for ever with 23505 (the one-terminal index), the undocumented end
    issue 11 item 4 forbids. Now the second writer waits for the first and gets P7005.

    Since 0019 (issue 20) the control plane has no DML on the queue or the ledger; the guards
    still bind everyone but the owner, so the race is run by two superuser sessions (a DBA's hot
    fix), which are subject to the guards' triggers like any other non-owner."""
    admin = outbox_for(db)
    outbox_id = admin.enqueue("instr-race")[0]
    values = _job_values(admin, outbox_id)
    db.execute("DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s", (outbox_id,))
    requeue, outcome = (SimpleNamespace(conn=connect()) for _ in range(2))
    for session in (requeue, outcome):
        session.conn.autocommit = False
    requeue.conn.execute(
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        values,
    )

    def record_outcome() -> None:
        outcome.conn.execute("SET lock_timeout = '20s'")
        outcome.conn.execute(
            "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
            " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no,"
            " state, completed_at, worker_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 1, 'DISPATCHED', now(), 'control')",
            values,
        )
        outcome.conn.commit()

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(record_outcome)
        finished, _ = wait([future], timeout=1)
        requeue.conn.commit()
        with pytest.raises(psycopg.Error) as refused:
            future.result(timeout=30)
    assert refused.value.sqlstate == "P7005", refused.value
    assert not finished, "the outcome waited for the requeue to commit"
    outcome.conn.rollback()
    claimed = admin.claim(10, "w", 60)
    assert [r.outbox_id for r in claimed] == [outbox_id]
    assert admin.complete(outbox_id, claimed[0].lease_token, "w", "DISPATCHED") == (
        1,
        "DISPATCHED",
    )
