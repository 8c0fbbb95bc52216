"""Revision 0014 (issue 19, ADRs 0116-0119): dispatch a payments team can trust.

Per-participant FIFO (checked from the ledger under 8 racing workers), rail-scoped claims,
heartbeats, in-doubt jobs, late-but-current completions, stale outcomes kept for reconciliation,
not-before and priority at enqueue, and the ledger facts of each attempt.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

ENQUEUE = (
    "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, %s, %s, %s, '{\"a\": 1}'::jsonb,"
    " p_not_before => %s, p_priority => %s::smallint)"
)
CLAIM = "SELECT * FROM public.claim_outbox_batch(%s, %s, %s, %s)"


def _enqueue(
    conn: psycopg.Connection[Any],
    instruction: str,
    participant: str,
    rail: str = "rtgs",
    not_before: Any = None,
    priority: int = 0,
) -> Any:
    row = conn.execute(
        ENQUEUE, (instruction, participant, f"k-{instruction}", rail, not_before, priority)
    ).fetchone()
    assert row is not None
    return row[0]


def _claim(
    conn: psycopg.Connection[Any],
    batch: int,
    worker: str,
    lease_seconds: int = 30,
    rails: list[str] | None = None,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(CLAIM, (batch, worker, lease_seconds, rails)).fetchall()


def _extend(conn: psycopg.Connection[Any], job: dict[str, Any], worker: str, seconds: int) -> Any:
    row = conn.execute(
        "SELECT public.extend_outbox_lease(%s, %s, %s, %s)",
        (job["outbox_id"], job["lease_token"], worker, seconds),
    ).fetchone()
    assert row is not None
    return row[0]


# --------------------------------------------------------------------------------------------
# Item 1: per-participant FIFO
# --------------------------------------------------------------------------------------------


def test_a_participants_later_jobs_wait_until_every_earlier_one_is_terminal(
    outbox: Outbox,
) -> None:
    conn = outbox.conn
    first = _enqueue(conn, "a-1", "pa")
    second = _enqueue(conn, "a-2", "pa")
    other = _enqueue(conn, "b-1", "pb")

    claimed = _claim(conn, 10, "w-1")
    assert {job["outbox_id"] for job in claimed} == {first, other}, "only heads are claimable"

    # The head waits for a retry: its participant is blocked (head-of-line), others are not.
    head = next(job for job in claimed if job["outbox_id"] == first)
    outbox.complete(head["outbox_id"], head["lease_token"], "w-1", "RETRYABLE")
    assert _claim(conn, 10, "w-2") == []
    outbox.make_due()
    (again,) = _claim(conn, 10, "w-2")
    assert again["outbox_id"] == first, "the retried head comes back before sequence 2"

    outbox.complete(again["outbox_id"], again["lease_token"], "w-2", "DISPATCHED")
    (nxt,) = _claim(conn, 10, "w-3")
    assert nxt["outbox_id"] == second


def test_a_failed_head_unblocks_its_participant(outbox: Outbox) -> None:
    conn = outbox.conn
    _enqueue(conn, "a-1", "pa")
    second = _enqueue(conn, "a-2", "pa")
    (head,) = _claim(conn, 10, "w-1")
    outbox.complete(head["outbox_id"], head["lease_token"], "w-1", "FAILED")
    assert [job["outbox_id"] for job in _claim(conn, 10, "w-1")] == [second]


def test_a_cancelled_head_promotes_the_next_job(outbox: Outbox, login: LoginFactory) -> None:
    """The control plane cancels through cancel_outbox_job (0019; its raw DELETE is revoked):
    the participant's next job becomes claimable."""
    first = _enqueue(outbox.conn, "a-1", "pa")
    second = _enqueue(outbox.conn, "a-2", "pa")
    control = login("symphony_control").conn
    control.execute(
        "SELECT * FROM public.cancel_outbox_job(%s, 'customer withdrew', 'OPS-1')", (first,)
    )
    assert [job["outbox_id"] for job in _claim(outbox.conn, 10, "w-1")] == [second]


def test_a_job_a_dba_queues_again_takes_its_place_in_line(outbox: Outbox) -> None:
    """Only a superuser writes the queue by hand since 0019 (control lost its DML): such a row
    is placed by trg_place_outbox_head like any write outside the outbox functions."""
    first = _enqueue(outbox.conn, "a-1", "pa")
    second = _enqueue(outbox.conn, "a-2", "pa")
    control = outbox.conn
    with control.transaction():
        (saved,) = control.execute(
            "DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s RETURNING *", (first,)
        ).fetchall()
        columns = [
            c.name
            for c in control.execute(
                "SELECT * FROM public.payment_outbox_pending LIMIT 0"
            ).description
            or []
        ]
    row = dict(zip(columns, saved, strict=True))
    control.execute(
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, is_head)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, false)",
        (
            row["outbox_id"],
            row["instruction_id"],
            row["participant_id"],
            row["sequence_id"],
            row["idempotency_key"],
            row["rail_type"],
            # NULL since 0038 (ADR 0167): the payload row is the job's one copy.
            None if row["payload"] is None else psycopg.types.json.Jsonb(row["payload"]),
        ),
    )
    heads = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_pending WHERE is_head"
    ).fetchall()
    assert heads == [(first,)], "sequence 1 is the head again and sequence 2 stepped back"
    assert [job["outbox_id"] for job in _claim(outbox.conn, 10, "w-1")] == [first]
    assert second != first


def test_enqueue_racing_with_the_heads_completion_leaves_exactly_one_head(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """Hostile: the head of a participant completes while a new job of that participant is
    enqueued, many times; the new job must never be left without a head (stuck for ever)."""
    completer, enqueuer = connect(), connect()
    for round_no in range(40):
        participant = f"race-{round_no}"
        _enqueue(outbox.conn, f"{participant}-1", participant)
        (head,) = _claim(outbox.conn, 1, "w-1")
        barrier = threading.Barrier(2)

        def complete(job: dict[str, Any] = head, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            completer.execute(
                "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
                " p_rail_reference => %s::uuid::text)",
                (job["outbox_id"], job["lease_token"], job["outbox_id"]),
            )

        def enqueue(name: str = participant, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            _enqueue(enqueuer, f"{name}-2", name)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(complete), pool.submit(enqueue)]:
                future.result(timeout=60)
        heads = outbox.conn.execute(
            "SELECT count(*) FILTER (WHERE is_head), count(*)"
            " FROM public.payment_outbox_pending WHERE participant_id = %s",
            (participant,),
        ).fetchone()
        assert heads == (1, 1), f"round {round_no}: {heads}"
        (nxt,) = _claim(outbox.conn, 1, "w-1")
        outbox.complete(nxt["outbox_id"], nxt["lease_token"], "w-1", "DISPATCHED")


def test_eight_workers_over_fifty_participants_never_overlap_or_reorder_a_participant(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """Hostile: 8 workers claim in batches, retry some jobs and complete the rest. From the
    ledger: per participant, no two jobs were leased at the same time and the DISPATCHED
    sequence follows sequence_id."""
    participants, per_participant = 50, 5
    outbox.conn.execute(
        "SELECT public.enqueue_payment_outbox('i-' || p || '-' || s, 'p-' || p,"
        " 'k', 'rtgs', '{}'::jsonb)"
        " FROM generate_series(1, %s) AS s, generate_series(1, %s) AS p ORDER BY s, p",
        (per_participant, participants),
    )
    total = participants * per_participant
    stop = time.monotonic() + 90
    in_flight: dict[str, str] = {}
    overlaps: list[str] = []
    guard = threading.Lock()

    def work(index: int) -> None:
        conn = connect()
        rng = random.Random(index)
        worker = f"worker-{index}"
        while time.monotonic() < stop:
            jobs = _claim(conn, rng.choice([1, 3, 5]), worker)
            if not jobs:
                left = conn.execute("SELECT count(*) FROM public.payment_outbox_pending")
                row = left.fetchone()
                if row is not None and row[0] == 0:
                    return
                conn.execute(
                    "UPDATE public.payment_outbox_pending SET next_attempt_at = now()"
                    " WHERE lease_token IS NULL AND next_attempt_at > now()"
                )
                continue
            with guard:
                for job in jobs:
                    holder = in_flight.get(job["participant_id"])
                    if holder is not None:
                        overlaps.append(f"{job['participant_id']}: {holder} and {worker}")
                    in_flight[job["participant_id"]] = worker
            for job in jobs:
                state = "RETRYABLE" if rng.random() < 0.2 else "DISPATCHED"
                with guard:
                    del in_flight[job["participant_id"]]
                conn.execute(
                    "SELECT * FROM public.complete_outbox_attempt(%s, %s, %s, %s::"
                    "public.outbox_attempt_state, p_rail_reference => %s::uuid::text)",
                    (job["outbox_id"], job["lease_token"], worker, state, job["outbox_id"]),
                )

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(work, i) for i in range(8)]:
            future.result(timeout=120)

    assert overlaps == []
    assert outbox.counts().pending == 0, "every job finished"
    rows = outbox.conn.execute(
        "SELECT participant_id, sequence_id, state::text, claimed_at, completed_at, created_at"
        " FROM public.payment_outbox_attempts ORDER BY participant_id, created_at, attempt_id"
    ).fetchall()
    dispatched: dict[str, list[int]] = defaultdict(list)
    spans: dict[str, list[tuple[Any, Any, int]]] = defaultdict(list)
    for participant, sequence_id, state, claimed_at, completed_at, created_at in rows:
        if state == "DISPATCHED":
            dispatched[participant].append(sequence_id)
        spans[participant].append((claimed_at, completed_at or created_at, sequence_id))
    assert len([s for seqs in dispatched.values() for s in seqs]) == total
    for participant, seqs in dispatched.items():
        assert seqs == sorted(seqs), f"{participant} dispatched out of sequence: {seqs}"
    for participant, attempts in spans.items():
        ordered = sorted(attempts)
        for (start, end, seq), (nxt_start, _, nxt_seq) in itertools.pairwise(ordered):
            assert nxt_start >= end or nxt_seq == seq, (
                f"{participant}: sequence {nxt_seq} leased at {nxt_start} while sequence {seq}"
                f" was leased ({start} to {end})"
            )


# --------------------------------------------------------------------------------------------
# Item 2: rail-scoped claims
# --------------------------------------------------------------------------------------------


def test_a_rail_scoped_claim_returns_only_jobs_of_those_rails(outbox: Outbox) -> None:
    conn = outbox.conn
    ach = _enqueue(conn, "ach-1", "p1", rail="ach")
    rtgs = _enqueue(conn, "rtgs-1", "p2", rail="rtgs")
    swift = _enqueue(conn, "swift-1", "p3", rail="swift")

    assert [job["outbox_id"] for job in _claim(conn, 10, "w-rtgs", rails=["rtgs"])] == [rtgs]
    assert _claim(conn, 10, "w-rtgs", rails=["rtgs"]) == []
    got = {job["outbox_id"] for job in _claim(conn, 10, "w-2", rails=["swift", "ach", "x"])}
    assert got == {ach, swift}


def test_a_rail_scoped_claim_takes_over_expired_leases_of_its_rails_only(outbox: Outbox) -> None:
    conn = outbox.conn
    ach = _enqueue(conn, "ach-1", "p1", rail="ach")
    _enqueue(conn, "rtgs-1", "p2", rail="rtgs")
    assert len(_claim(conn, 10, "w-1")) == 2
    outbox.expire_leases()
    assert [job["outbox_id"] for job in _claim(conn, 10, "w-ach", rails=["ach"])] == [ach]
    assert outbox.counts().attempts == 1, "only the taken-over lease was recorded"


@pytest.mark.parametrize(
    ("rails", "message"),
    [
        ([], "p_rail_types must be NULL"),
        (["rtgs", None], "p_rail_types element must be a non-empty string"),
        (["  "], "p_rail_types element must be a non-empty string"),
        (["r" * 1025], "p_rail_types element must be at most 1024 bytes"),
        ([f"r{i}" for i in range(101)], "p_rail_types must be NULL"),
    ],
)
def test_invalid_rail_lists_are_22023(outbox: Outbox, rails: list[Any], message: str) -> None:
    _enqueue(outbox.conn, "a-1", "p1")
    with outbox.raises("22023", match=message):
        _claim(outbox.conn, 10, "w-1", rails=rails)
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE lease_token IS NOT NULL"
    ).fetchone() == (0,)


# --------------------------------------------------------------------------------------------
# Item 3: heartbeat
# --------------------------------------------------------------------------------------------


def test_heartbeats_keep_a_slow_job_leased_past_its_first_expiry(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    worker = connect()
    rival = connect()
    _enqueue(outbox.conn, "slow-1", "p1")
    (job,) = _claim(worker, 1, "w-slow", lease_seconds=1)
    first_expiry = job["lease_expires_at"]
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        expiry = _extend(worker, job, "w-slow", 1)
        assert expiry > first_expiry or time.monotonic() < deadline
        assert _claim(rival, 10, "w-rival") == []
        assert rival.execute("SELECT * FROM public.repair_expired_leases(10, 'r')").fetchall() == []
        time.sleep(0.3)
    now = outbox.conn.execute("SELECT clock_timestamp()").fetchone()
    assert now is not None and now[0] > first_expiry, "the job outlived its first lease"
    result = worker.execute(
        "SELECT attempt_no, state::text FROM public.complete_outbox_attempt(%s, %s, 'w-slow',"
        " 'DISPATCHED', p_rail_reference => 'rail-ref-slow')",
        (job["outbox_id"], job["lease_token"]),
    ).fetchone()
    assert result == (1, "DISPATCHED")


@pytest.mark.parametrize("how", ["repaired", "claimed-again", "other-token", "other-worker"])
def test_a_lost_lease_cannot_be_extended(outbox: Outbox, how: str) -> None:
    conn = outbox.conn
    _enqueue(conn, "a-1", "p1")
    (job,) = _claim(conn, 1, "w-1")
    worker = "w-1"
    if how == "repaired":
        outbox.expire_leases()
        outbox.repair(10, "repairer")
    elif how == "claimed-again":
        outbox.expire_leases()
        assert len(_claim(conn, 1, "w-2")) == 1
    elif how == "other-token":
        job = {**job, "lease_token": uuid.uuid4()}
    else:
        worker = "w-2"
    before = conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall()
    with outbox.raises("P7002", match="LEASE_LOST"):
        _extend(conn, job, worker, 60)
    assert conn.execute("SELECT * FROM public.payment_outbox_pending").fetchall() == before


def test_an_expired_lease_nobody_replaced_may_still_be_extended(outbox: Outbox) -> None:
    _enqueue(outbox.conn, "a-1", "p1")
    (job,) = _claim(outbox.conn, 1, "w-1")
    outbox.expire_leases()
    expiry = _extend(outbox.conn, job, "w-1", 60)
    assert expiry > job["lease_expires_at"]
    assert _claim(outbox.conn, 1, "w-2") == []


@pytest.mark.parametrize(
    ("seconds", "token", "worker", "message"),
    [
        (0, "ok", "w-1", "p_lease_seconds must be between 1 and 86400"),
        (86401, "ok", "w-1", "p_lease_seconds must be between 1 and 86400"),
        (None, "ok", "w-1", "p_lease_seconds must be between 1 and 86400"),
        (30, None, "w-1", "p_lease_token must not be NULL"),
        (30, "ok", " ", "p_worker_id must be a non-empty string"),
        (30, "ok", "w" * 1025, "p_worker_id must be at most 1024 bytes"),
    ],
)
def test_extend_rejects_bad_arguments_with_22023(
    outbox: Outbox, seconds: Any, token: Any, worker: str, message: str
) -> None:
    _enqueue(outbox.conn, "a-1", "p1")
    (job,) = _claim(outbox.conn, 1, "w-1")
    job = {**job, "lease_token": job["lease_token"] if token else None}
    with outbox.raises("22023", match=message):
        _extend(outbox.conn, job, worker, seconds)


# --------------------------------------------------------------------------------------------
# Item 4: in doubt
# --------------------------------------------------------------------------------------------


def test_in_doubt_is_set_after_an_expiry_and_not_otherwise(outbox: Outbox) -> None:
    conn = outbox.conn
    _enqueue(conn, "a-1", "p1")
    _enqueue(conn, "b-1", "p2")

    first = {job["outbox_id"]: job for job in _claim(conn, 10, "w-1")}
    assert [job["in_doubt"] for job in first.values()] == [False, False]
    # A recorded retry is not in doubt: the worker knows what the rail said.
    for job in first.values():
        outbox.complete(job["outbox_id"], job["lease_token"], "w-1", "RETRYABLE")
    outbox.make_due()
    second = _claim(conn, 10, "w-1")
    assert [job["in_doubt"] for job in second] == [False, False]

    # One lease expires and is repaired, the other is taken over by a claim: both in doubt.
    outbox.expire_leases()
    repaired = second[0]["outbox_id"]
    conn.execute(
        "SELECT * FROM public.repair_expired_leases(1, 'r') WHERE outbox_id = %s", (repaired,)
    )
    third = _claim(conn, 10, "w-2")
    assert {job["outbox_id"]: job["in_doubt"] for job in third} == {
        second[0]["outbox_id"]: True,
        second[1]["outbox_id"]: True,
    }
    # And it stays in doubt through a later retry.
    for job in third:
        outbox.complete(job["outbox_id"], job["lease_token"], "w-2", "RETRYABLE")
    outbox.make_due()
    assert [job["in_doubt"] for job in _claim(conn, 10, "w-3")] == [True, True]
    # The brief's definition holds: in doubt exactly when the ledger has a ZOMBIE_REQUEUE.
    assert conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending AS p WHERE p.in_doubt IS DISTINCT"
        " FROM EXISTS (SELECT 1 FROM public.payment_outbox_attempts AS a"
        " WHERE a.outbox_id = p.outbox_id AND a.state = 'ZOMBIE_REQUEUE')"
    ).fetchone() == (0,)


# --------------------------------------------------------------------------------------------
# Item 5: no rail outcome is lost
# --------------------------------------------------------------------------------------------


def test_a_late_but_current_completion_is_recorded(outbox: Outbox, login: LoginFactory) -> None:
    executor = login("symphony_executor")
    _enqueue(outbox.conn, "a-1", "p1")
    (job,) = _claim(executor.conn, 1, "w-1")
    outbox.expire_leases()

    result = executor.conn.execute(
        "SELECT attempt_no, state::text FROM public.complete_outbox_attempt(%s, %s, 'w-1',"
        " 'DISPATCHED', p_rail_reference => 'rail-ref-1')",
        (job["outbox_id"], job["lease_token"]),
    ).fetchone()
    assert result == (1, "DISPATCHED")
    (attempt,) = outbox.attempts(job["outbox_id"])
    assert attempt["rail_reference"] == "rail-ref-1"
    # Item 7: the real claim time, the lease token and the login that recorded it.
    assert attempt["lease_token"] == job["lease_token"]
    assert attempt["recorded_by"] == executor.name
    claim_started = outbox.conn.execute(
        "SELECT %s::timestamptz - make_interval(secs => 30)", (job["lease_expires_at"],)
    ).fetchone()
    assert claim_started is not None
    assert claim_started[0] <= attempt["claimed_at"] < attempt["completed_at"]


def test_a_replaced_tokens_outcome_is_kept_for_reconciliation(
    outbox: Outbox, login: LoginFactory
) -> None:
    executor = login("symphony_executor")
    auditor = login("symphony_auditor")
    _enqueue(outbox.conn, "a-1", "p1")
    (job,) = _claim(executor.conn, 1, "w-1")
    outbox.expire_leases()
    assert len(outbox.repair(10, "repairer")) == 1
    zombie = outbox.attempts(job["outbox_id"])[-1]
    assert (zombie["state"], zombie["lease_token"]) == ("ZOMBIE_REQUEUE", job["lease_token"])

    with outbox.raises("P7002", match="LEASE_LOST"):
        executor.conn.execute(
            "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
            " p_rail_reference => 'rail-ref-1')",
            (job["outbox_id"], job["lease_token"]),
        )
    row = executor.conn.execute(
        "SELECT public.record_stale_outbox_outcome(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'rail-ref-1', p_latency_ms => 42)",
        (job["outbox_id"], job["lease_token"]),
    ).fetchone()
    assert row is not None
    kept = auditor.conn.execute(
        "SELECT outbox_id, lease_token, worker_id, state::text, rail_reference, latency_ms,"
        " recorded_by FROM public.payment_outbox_stale_outcomes WHERE stale_outcome_id = %s",
        (row[0],),
    ).fetchone()
    assert kept == (
        job["outbox_id"],
        job["lease_token"],
        "w-1",
        "DISPATCHED",
        "rail-ref-1",
        42,
        executor.name,
    )
    # Neither the queue nor the ledger changed: the job is still queued, in doubt.
    pending = outbox.pending(job["outbox_id"])
    assert pending is not None and pending["in_doubt"] is True
    assert len(outbox.attempts(job["outbox_id"])) == 1


def test_stale_outcomes_are_refused_for_current_or_unknown_leases(
    outbox: Outbox, login: LoginFactory
) -> None:
    executor = login("symphony_executor").conn
    _enqueue(outbox.conn, "a-1", "p1")
    (job,) = _claim(executor, 1, "w-1")
    record = "SELECT public.record_stale_outbox_outcome(%s, %s, %s, 'DISPATCHED')"
    with outbox.raises("22023", match="still current"):
        executor.execute(record, (job["outbox_id"], job["lease_token"], "w-1"))
    with outbox.raises("P7002", match="never lost a lease"):
        executor.execute(record, (job["outbox_id"], uuid.uuid4(), "w-1"))
    outbox.expire_leases()
    outbox.repair(10, "repairer")
    with outbox.raises("P7002", match="never lost a lease"):
        executor.execute(record, (job["outbox_id"], job["lease_token"], "w-other"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        executor.execute("INSERT INTO public.payment_outbox_stale_outcomes DEFAULT VALUES")
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_stale_outcomes"
    ).fetchone() == (0,)


# --------------------------------------------------------------------------------------------
# Item 6: not before, priority
# --------------------------------------------------------------------------------------------


def test_not_before_is_respected_and_holds_back_the_participant(outbox: Outbox) -> None:
    conn = outbox.conn
    later = _enqueue(conn, "a-1", "p1", not_before="2999-01-01T00:00:00Z")
    _enqueue(conn, "a-2", "p1")
    past = _enqueue(conn, "b-1", "p2", not_before="2000-01-01T00:00:00Z")
    assert [job["outbox_id"] for job in _claim(conn, 10, "w-1")] == [past]
    assert _claim(conn, 10, "w-1") == [], "a-2 waits behind its not-before head"
    conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() WHERE outbox_id = %s",
        (later,),
    )
    assert [job["outbox_id"] for job in _claim(conn, 10, "w-1")] == [later]


def test_priority_orders_participants_but_never_reorders_within_one(outbox: Outbox) -> None:
    conn = outbox.conn
    a1 = _enqueue(conn, "a-1", "pa", priority=0)
    a2 = _enqueue(conn, "a-2", "pa", priority=9)
    b1 = _enqueue(conn, "b-1", "pb", priority=5)
    c1 = _enqueue(conn, "c-1", "pc", priority=0)

    assert [job["outbox_id"] for job in _claim(conn, 2, "w-1")] == [b1, a1]
    assert [job["outbox_id"] for job in _claim(conn, 10, "w-1")] == [c1]
    assert a2 not in {
        row[0]
        for row in conn.execute(
            "SELECT outbox_id FROM public.payment_outbox_pending WHERE lease_token IS NOT NULL"
        )
    }


@pytest.mark.parametrize(
    ("not_before", "priority", "message"),
    [
        ("infinity", 0, "p_not_before must be a finite time"),
        (None, None, "p_priority must not be NULL"),
    ],
)
def test_invalid_enqueue_options_are_22023(
    outbox: Outbox, not_before: Any, priority: Any, message: str
) -> None:
    with outbox.raises("22023", match=message):
        outbox.conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox('i', 'p', 'k', 'rtgs', '{}'::jsonb,"
            " %s::timestamptz, %s::smallint)",
            (not_before, priority),
        )
    assert outbox.counts() == OutboxCounts(pending=0, attempts=0, sequences=0)


def test_the_old_signatures_still_work(outbox: Outbox, login: LoginFactory) -> None:
    ingest = login("symphony_ingest").conn
    executor = login("symphony_executor").conn
    ingest.execute(
        "SELECT * FROM public.enqueue_payment_outbox('i-1', 'p-1', 'k', 'rtgs', '{}'::jsonb)"
    )
    rows = executor.execute("SELECT * FROM public.claim_outbox_batch(10, 'w-1', 30)").fetchall()
    assert len(rows) == 1
    assert executor.execute(
        "SELECT count(*) FROM pg_catalog.pg_proc WHERE proname IN"
        " ('enqueue_payment_outbox', 'claim_outbox_batch')"
    ).fetchone() == (2,), "one function each: no overloads"
