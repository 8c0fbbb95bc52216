"""claim_outbox_batch, complete_outbox_attempt, repair_expired_leases and the retry ceiling.

docs/contract/schema.md §4: leases with fencing tokens, lease-fenced completion (P7002 first, then
P7003), attempt numbers from the ledger, the retry ceiling GUC, repair of expired leases. Leases
are expired by moving lease_expires_at into the past, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration


def _now(conn: psycopg.Connection[Any]) -> dt.datetime:
    row = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# claim
# --------------------------------------------------------------------------------------------


def test_claim_leases_the_oldest_due_rows(outbox: Outbox) -> None:
    ids = [outbox.enqueue(f"instr-{i}", f"p-{i}")[0] for i in range(3)]
    # Make the third the oldest due row.
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 hour'"
        " WHERE outbox_id = %s",
        (ids[2],),
    )
    before = _now(outbox.conn)

    rows = outbox.claim(2, "worker-1", lease_seconds=60)

    assert [r.outbox_id for r in rows] == [ids[2], ids[0]]
    for r in rows:
        assert r.attempt_count == 0
        assert uuid.UUID(str(r.lease_token)).version == 7
        assert before + dt.timedelta(seconds=59) < r.lease_expires_at
        assert r.lease_expires_at < before + dt.timedelta(seconds=61)
        pending = outbox.pending(r.outbox_id)
        assert pending is not None
        assert (pending["claimed_by"], pending["lease_token"], pending["attempt_count"]) == (
            "worker-1",
            r.lease_token,
            0,
        )
    assert rows[0].lease_token != rows[1].lease_token
    assert [r.outbox_id for r in outbox.claim(10, "worker-2")] == [ids[1]]
    assert outbox.claim(10, "worker-3") == [], "live leases are not claimable"
    assert outbox.counts() == OutboxCounts(pending=3, attempts=0, sequences=3), (
        "claiming never deletes or writes attempts"
    )


def test_claim_returns_all_columns_of_the_job(outbox: Outbox) -> None:
    outbox_id, sequence_id, _, _ = outbox.enqueue("instr-1", "participant-9", "key-9", "swift")

    (row,) = outbox.claim(1, "worker-1")

    assert row[:8] == (
        outbox_id,
        "instr-1",
        "participant-9",
        sequence_id,
        "key-9",
        "SWIFT",
        {"amount": 100, "currency": "ZAR"},
        0,
    )


def test_claim_skips_rows_that_are_not_due(outbox: Outbox) -> None:
    outbox.enqueue("instr-1")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() + interval '1 minute'"
    )
    assert outbox.claim(10, "worker-1") == []


def test_expired_leases_are_claimable_again_with_a_new_token(outbox: Outbox) -> None:
    outbox.enqueue("instr-1")
    (first,) = outbox.claim(1, "worker-1", lease_seconds=1)
    outbox.expire_leases()

    (second,) = outbox.claim(1, "worker-2")

    assert second.outbox_id == first.outbox_id
    assert second.lease_token != first.lease_token
    # The lost lease is an attempt (0011, ADR 0060): recorded as ZOMBIE_REQUEUE by the claim.
    assert second.attempt_count == 1
    assert [a["state"] for a in outbox.attempts(first.outbox_id)] == ["ZOMBIE_REQUEUE"]
    with outbox.raises("P7002", match="LEASE_LOST"):
        outbox.complete(first.outbox_id, first.lease_token, "worker-1", "DISPATCHED")
    assert outbox.complete(second.outbox_id, second.lease_token, "worker-2", "DISPATCHED") == (
        2,
        "DISPATCHED",
    )


def test_claim_orders_unleased_and_expired_rows_by_due_time(outbox: Outbox) -> None:
    old = outbox.enqueue("instr-old", "p-old")[0]
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 hour'"
    )
    outbox.claim(1, "worker-crashed", lease_seconds=1)
    outbox.expire_leases()
    new = outbox.enqueue("instr-new", "p-new")[0]

    # Since 0032 (ADR 0158) a claim looks at expired leases only when the unleased heads do not
    # fill it: a claim of one takes the unleased job, the next claim (short) the expired one.
    assert [r.outbox_id for r in outbox.claim(1, "worker-1")] == [new]
    assert [r.outbox_id for r in outbox.claim(1, "worker-1")] == [old]


@pytest.mark.parametrize(
    ("batch_size", "worker_id", "lease_seconds", "argument"),
    [
        (0, "w", 30, "p_batch_size"),
        (-1, "w", 30, "p_batch_size"),
        (1001, "w", 30, "p_batch_size"),
        (None, "w", 30, "p_batch_size"),
        (10, None, 30, "p_worker_id"),
        (10, "", 30, "p_worker_id"),
        (10, " ", 30, "p_worker_id"),
        (10, "w", 0, "p_lease_seconds"),
        (10, "w", -5, "p_lease_seconds"),
        (10, "w", 86401, "p_lease_seconds"),
        (10, "w", None, "p_lease_seconds"),
    ],
)
def test_claim_rejects_invalid_arguments_with_22023(
    outbox: Outbox,
    batch_size: int | None,
    worker_id: str | None,
    lease_seconds: int | None,
    argument: str,
) -> None:
    outbox.enqueue("instr-1")
    before = outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()

    with outbox.raises("22023", match=argument):
        outbox.conn.execute(
            "SELECT * FROM public.claim_outbox_batch(%s, %s, %s)",
            (batch_size, worker_id, lease_seconds),
        )

    assert outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before


def test_claim_accepts_the_boundary_values(outbox: Outbox) -> None:
    outbox.enqueue("instr-1")
    assert len(outbox.claim(1000, "w", 86400)) == 1
    outbox.expire_leases()
    assert len(outbox.claim(1, "w", 1)) == 1


# --------------------------------------------------------------------------------------------
# complete
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["DISPATCHED", "FAILED"])
def test_terminal_completion_appends_the_attempt_and_removes_the_job(
    outbox: Outbox, state: str
) -> None:
    outbox_id, sequence_id, _, _ = outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    before = _now(outbox.conn)

    result = outbox.complete(
        row.outbox_id,
        row.lease_token,
        "worker-1",
        state,
        rail_reference="ref-1",
        rail_code="00",
        error_code=None if state == "DISPATCHED" else "E42",
        error_message=None if state == "DISPATCHED" else "rejected by rail",
        latency_ms=120,
    )

    assert result == (1, state)
    assert outbox.pending(outbox_id) is None
    (attempt,) = outbox.attempts(outbox_id)
    assert uuid.UUID(str(attempt["attempt_id"])).version == 7
    assert {
        k: attempt[k]
        for k in (
            "instruction_id",
            "participant_id",
            "sequence_id",
            "idempotency_key",
            "rail_type",
            "payload",
            "attempt_no",
            "state",
            "rail_reference",
            "rail_code",
            "error_code",
            "latency_ms",
            "worker_id",
        )
    } == {
        "instruction_id": "instr-1",
        "participant_id": "participant-1",
        "sequence_id": sequence_id,
        "idempotency_key": "key-instr-1",
        "rail_type": "RTGS",
        "payload": None,  # stored once per job since 0024: payment_outbox_payloads
        "attempt_no": 1,
        "state": state,
        "rail_reference": "ref-1",
        "rail_code": "00",
        "error_code": None if state == "DISPATCHED" else "E42",
        "latency_ms": 120,
        "worker_id": "worker-1",
    }
    assert attempt["completed_at"] is not None
    assert attempt["completed_at"] >= before


def test_retryable_completion_requeues_the_job_after_the_delay(outbox: Outbox) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    before = _now(outbox.conn)

    assert outbox.complete(
        row.outbox_id, row.lease_token, "worker-1", "RETRYABLE", retry_delay_seconds=120
    ) == (1, "RETRYABLE")

    pending = outbox.pending(outbox_id)
    assert pending is not None
    assert (pending["claimed_by"], pending["lease_token"], pending["lease_expires_at"]) == (
        None,
        None,
        None,
    )
    assert pending["attempt_count"] == 1
    delay = pending["next_attempt_at"] - before
    assert dt.timedelta(seconds=119) < delay < dt.timedelta(seconds=121)
    (attempt,) = outbox.attempts(outbox_id)
    assert (attempt["state"], attempt["completed_at"]) == ("RETRYABLE", None)
    assert outbox.claim(1, "worker-2") == [], "the retry is not due before its delay"


@pytest.mark.parametrize("delay", [None, 0, -30, 1])
def test_retry_delay_is_at_least_one_second(outbox: Outbox, delay: int | None) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    before = _now(outbox.conn)

    outbox.complete(
        row.outbox_id, row.lease_token, "worker-1", "RETRYABLE", retry_delay_seconds=delay
    )

    pending = outbox.pending(outbox_id)
    assert pending is not None
    delay_seen = pending["next_attempt_at"] - before
    assert dt.timedelta(seconds=1) <= delay_seen < dt.timedelta(seconds=2)


def test_attempt_numbers_come_from_the_ledger(outbox: Outbox) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    results = []
    for _ in range(2):
        outbox.make_due()
        (row,) = outbox.claim(1, "worker-1")
        results.append(outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE"))
    # A repair event counts as an attempt too.
    outbox.make_due()
    outbox.claim(1, "worker-crashed")
    outbox.expire_leases()
    assert outbox.repair(10, "repairer") == [(outbox_id, 3)]
    (row,) = outbox.claim(1, "worker-1")
    results.append(outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED"))

    assert results == [(1, "RETRYABLE"), (2, "RETRYABLE"), (4, "DISPATCHED")]
    assert [(a["attempt_no"], a["state"]) for a in outbox.attempts(outbox_id)] == [
        (1, "RETRYABLE"),
        (2, "RETRYABLE"),
        (3, "ZOMBIE_REQUEUE"),
        (4, "DISPATCHED"),
    ]


def _claimed(outbox: Outbox) -> Any:
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    return row


LEASE_LOST_CASES = [
    pytest.param({"worker_id": "worker-2"}, id="other-worker"),
    pytest.param({"lease_token": "random"}, id="other-token"),
    pytest.param({"outbox_id": "random"}, id="unknown-outbox"),
    # Revision 0014 (issue 19 item 5): an expired lease nobody replaced still completes; one
    # that repair replaced does not.
    pytest.param({"expire": True}, id="expired-and-repaired-lease"),
]


@pytest.mark.parametrize("case", LEASE_LOST_CASES)
def test_completion_without_a_matching_live_lease_raises_p7002(
    outbox: Outbox, case: dict[str, Any]
) -> None:
    row = _claimed(outbox)
    if case.get("expire"):
        outbox.expire_leases()
        outbox.repair(10, "repairer")
    outbox_id = uuid.uuid4() if case.get("outbox_id") else row.outbox_id
    token = uuid.uuid4() if case.get("lease_token") else row.lease_token
    worker = case.get("worker_id", "worker-1")
    before = outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()

    with outbox.raises("P7002", match="LEASE_LOST"):
        outbox.complete(outbox_id, token, worker, "DISPATCHED")

    assert outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before
    assert outbox.counts().attempts == (1 if case.get("expire") else 0), "only repair's attempt"


def test_completion_of_an_unclaimed_job_raises_p7002(outbox: Outbox) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    with outbox.raises("P7002"):
        outbox.complete(outbox_id, uuid.uuid4(), "worker-1", "DISPATCHED")


def test_second_completion_of_the_same_lease_raises_p7002(outbox: Outbox) -> None:
    row = _claimed(outbox)
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED")
    with outbox.raises("P7002"):
        outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED")
    assert len(outbox.attempts(row.outbox_id)) == 1


def test_completion_after_a_retry_needs_a_new_lease(outbox: Outbox) -> None:
    row = _claimed(outbox)
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE")
    with outbox.raises("P7002"):
        outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED")


@pytest.mark.parametrize("state", ["DISPATCHING", "ZOMBIE_REQUEUE"])
def test_invalid_completion_state_raises_p7003(outbox: Outbox, state: str) -> None:
    row = _claimed(outbox)
    before = outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()

    with outbox.raises("P7003", match=state):
        outbox.complete(row.outbox_id, row.lease_token, "worker-1", state)

    assert outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before
    assert outbox.counts().attempts == 0


def test_lease_check_comes_before_the_state_check(outbox: Outbox) -> None:
    row = _claimed(outbox)
    with outbox.raises("P7002"):
        outbox.complete(row.outbox_id, uuid.uuid4(), "worker-1", "ZOMBIE_REQUEUE")


@pytest.mark.parametrize(
    ("argument", "override"),
    [
        ("p_outbox_id", {"outbox_id": None}),
        ("p_lease_token", {"lease_token": None}),
        ("p_worker_id", {"worker_id": None}),
        ("p_worker_id", {"worker_id": ""}),
        ("p_state", {"state": None}),
        ("p_latency_ms", {"latency_ms": -1}),
    ],
)
def test_complete_rejects_invalid_arguments_with_22023(
    outbox: Outbox, argument: str, override: dict[str, Any]
) -> None:
    row = _claimed(outbox)
    args: dict[str, Any] = {
        "outbox_id": row.outbox_id,
        "lease_token": row.lease_token,
        "worker_id": "worker-1",
        "state": "DISPATCHED",
        **override,
    }
    before = outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()

    with outbox.raises("22023", match=argument):
        outbox.complete(
            args.pop("outbox_id"),
            args.pop("lease_token"),
            args.pop("worker_id"),
            args.pop("state"),
            **args,
        )

    assert outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before
    assert outbox.counts().attempts == 0


def test_unknown_state_labels_are_rejected_by_the_enum(outbox: Outbox) -> None:
    row = _claimed(outbox)
    with outbox.raises("22P02"):
        outbox.complete(row.outbox_id, row.lease_token, "worker-1", "SUCCEEDED")


# --------------------------------------------------------------------------------------------
# retry ceiling
# --------------------------------------------------------------------------------------------


def _ceiling(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT public.outbox_retry_ceiling()").fetchone()
    assert row is not None
    return int(row[0])


def test_retry_ceiling_defaults_to_20(db: psycopg.Connection[Any]) -> None:
    assert _ceiling(db) == 20


@pytest.mark.parametrize("value", [1, 5, 2147483647])
def test_retry_ceiling_is_read_from_the_settings_table(
    db: psycopg.Connection[Any], value: int
) -> None:
    """0011 (ADR 0061): stored in public.outbox_settings, set with set_outbox_retry_ceiling();
    no setting changes it (tests/integration/test_outbox_hardening.py)."""
    db.execute("SELECT public.set_outbox_retry_ceiling(%s)", (value,))
    assert _ceiling(db) == value


def test_a_missing_settings_row_means_the_default(db: psycopg.Connection[Any]) -> None:
    db.execute("DELETE FROM public.outbox_settings")
    assert _ceiling(db) == 20
    assert db.execute("SELECT public.set_outbox_retry_ceiling(4)").fetchone() == (20,)
    assert _ceiling(db) == 4


def test_retryable_at_the_ceiling_becomes_failed(outbox: Outbox) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(3)")
    results = []
    for _ in range(3):
        outbox.make_due()
        (row,) = outbox.claim(1, "worker-1")
        results.append(outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE"))

    assert results == [(1, "RETRYABLE"), (2, "RETRYABLE"), (3, "FAILED")]
    assert outbox.pending(outbox_id) is None, "the job left the queue at the ceiling"
    last = outbox.attempts(outbox_id)[-1]
    assert (last["state"], last["completed_at"] is not None) == ("FAILED", True)


def test_ceiling_of_one_fails_the_first_retry(outbox: Outbox) -> None:
    row = _claimed(outbox)
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(1)")
    assert outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE") == (
        1,
        "FAILED",
    )


# --------------------------------------------------------------------------------------------
# repair
# --------------------------------------------------------------------------------------------


def test_repair_requeues_only_expired_leases(outbox: Outbox) -> None:
    expired_id = outbox.enqueue("instr-expired", "p-expired")[0]
    live_id = outbox.enqueue("instr-live", "p-live")[0]
    unclaimed_id = outbox.enqueue("instr-unclaimed", "p-unclaimed")[0]
    claimed = {r.outbox_id: r for r in outbox.claim(2, "worker-1")}
    assert set(claimed) == {expired_id, live_id}
    outbox.expire_leases([expired_id])
    live_before = outbox.pending(live_id)

    assert outbox.repair(10, "repairer") == [(expired_id, 1)]

    repaired = outbox.pending(expired_id)
    assert repaired is not None
    assert (repaired["claimed_by"], repaired["lease_token"], repaired["lease_expires_at"]) == (
        None,
        None,
        None,
    )
    assert repaired["attempt_count"] == 1
    (attempt,) = outbox.attempts(expired_id)
    assert (attempt["attempt_no"], attempt["state"], attempt["worker_id"]) == (
        1,
        "ZOMBIE_REQUEUE",
        "worker-1",
    )
    assert attempt["completed_at"] is None
    assert "repairer" in attempt["error_message"]
    assert outbox.pending(live_id) == live_before, "a live lease is never touched"
    assert outbox.attempts(live_id) == [] and outbox.attempts(unclaimed_id) == []
    assert outbox.repair(10, "repairer") == [], "repair is idempotent"

    # Due again at once, ahead of the younger unclaimed job; the stale worker cannot complete.
    assert [r.outbox_id for r in outbox.claim(10, "worker-2")] == [expired_id, unclaimed_id]
    with outbox.raises("P7002"):
        outbox.complete(expired_id, claimed[expired_id].lease_token, "worker-1", "DISPATCHED")


def test_repair_respects_the_batch_size(outbox: Outbox) -> None:
    for i in range(5):
        outbox.enqueue(f"instr-{i}", f"p-{i}")
    outbox.claim(5, "worker-1")
    outbox.expire_leases()

    assert len(outbox.repair(2, "repairer")) == 2
    assert len(outbox.repair(10, "repairer")) == 3
    assert outbox.counts().attempts == 5


@pytest.mark.parametrize(
    ("batch_size", "worker_id", "argument"),
    [
        (0, "w", "p_batch_size"),
        (1001, "w", "p_batch_size"),
        (None, "w", "p_batch_size"),
        (10, None, "p_worker_id"),
        (10, "", "p_worker_id"),
    ],
)
def test_repair_rejects_invalid_arguments_with_22023(
    outbox: Outbox, batch_size: int | None, worker_id: str | None, argument: str
) -> None:
    outbox.enqueue("instr-1")
    outbox.claim(1, "worker-1")
    outbox.expire_leases()
    before = outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()

    with outbox.raises("22023", match=argument):
        outbox.repair(batch_size, worker_id)  # type: ignore[arg-type]

    assert outbox.conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before
    assert outbox.counts().attempts == 0
