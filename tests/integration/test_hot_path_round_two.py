"""Revision 0032 (issue 17, ADR 0158): the hot path, round two.

- A claim reads the lease index only when the unleased heads did not fill its batch; an expired
  head waits behind unleased heads until a claim comes up short (or repair takes it).
- Completions promote the participant's next job themselves, locking the allocator row with
  FOR NO KEY UPDATE instead of rewriting it; enqueue still serialises with them (ADR 0116), in
  both orders. Every other delete of a head (cancel, repair or claim at the retry ceiling, a
  superuser's DELETE) still promotes through the trigger.
- The ledger has no (instruction_id, idempotency_key) index any more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

LEASE_INDEX = "ix_payment_outbox_pending_lease_expires"


def _lease_index_scans(conn: psycopg.Connection[Any]) -> int:
    """idx_scan of the lease index, with this backend's pending statistics flushed first."""
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT idx_scan FROM pg_catalog.pg_stat_user_indexes WHERE indexrelname = %s",
        (LEASE_INDEX,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _heads(conn: psycopg.Connection[Any], participant: str) -> list[str]:
    rows = conn.execute(
        "SELECT instruction_id FROM public.payment_outbox_pending"
        " WHERE participant_id = %s AND is_head ORDER BY sequence_id",
        (participant,),
    ).fetchall()
    return [r[0] for r in rows]


def _allocator_version(conn: psycopg.Connection[Any], participant: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT ctid::text, xmin::text FROM public.participant_outbox_sequences"
        " WHERE participant_id = %s",
        (participant,),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def _wait_until_blocked(watcher: psycopg.Connection[Any], pid: int) -> None:
    """Wait until backend ``pid`` waits for a lock (fails after 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = watcher.execute(
            "SELECT wait_event_type FROM pg_catalog.pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


# --------------------------------------------------------------------------------------------
# 1. The expired-lease scan is off the claim's common path
# --------------------------------------------------------------------------------------------


def test_a_claim_filled_by_unleased_heads_does_not_read_the_lease_index(outbox: Outbox) -> None:
    for n in range(3):
        outbox.enqueue(f"i-{n}", participant_id=f"p-{n}")
    outbox.claim(1, "w-0")  # one lease exists: the lease index is not empty
    before = _lease_index_scans(outbox.conn)
    assert len(outbox.claim(1, "w-1")) == 1
    assert _lease_index_scans(outbox.conn) == before, "a full claim read the lease index"
    # A claim that comes up short looks for expired leases (and finds none here).
    assert len(outbox.claim(5, "w-2")) == 1
    assert _lease_index_scans(outbox.conn) > before, "a short claim skipped the lease index"


def test_an_expired_head_waits_behind_unleased_heads_until_a_claim_comes_up_short(
    outbox: Outbox,
) -> None:
    """The head-of-line consequence ADR 0158 accepts (docs/contract/schema.md): an expired
    lease is taken over by the first claim that unleased heads do not fill, or repaired."""
    a = outbox.enqueue("a-1", participant_id="pa")[0]
    b = outbox.enqueue("b-1", participant_id="pb")[0]
    c = outbox.enqueue("c-1", participant_id="pc")[0]
    (first,) = outbox.claim(1, "w-1")
    assert first.outbox_id == a
    outbox.expire_leases([a])

    (second,) = outbox.claim(1, "w-2")
    assert second.outbox_id == b, "an unleased head fills the claim before the expired one"
    assert outbox.attempts(a) == [], "the expired lease was not touched"

    taken = outbox.claim(5, "w-3")
    assert [(r.outbox_id, r.in_doubt) for r in taken] == [(c, False), (a, True)], (
        "a short claim takes the expired head over, after the unleased heads it leased"
    )
    assert [r["state"] for r in outbox.attempts(a)] == ["ZOMBIE_REQUEUE"]


def test_repair_still_requeues_an_expired_head_the_claims_pass_by(outbox: Outbox) -> None:
    a = outbox.enqueue("a-1", participant_id="pa")[0]
    outbox.enqueue("b-1", participant_id="pb")
    outbox.claim(1, "w-1")
    outbox.expire_leases([a])
    assert outbox.repair(10, "janitor") == [(a, 1)]
    row = outbox.pending(a)
    assert row is not None and row["lease_token"] is None and row["in_doubt"]


# --------------------------------------------------------------------------------------------
# 2. Completions promote the next head themselves
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["DISPATCHED", "FAILED", "RETRYABLE at the ceiling", "batch"])
def test_a_completion_promotes_the_next_job_without_rewriting_the_allocator_row(
    outbox: Outbox, how: str
) -> None:
    """0014's trigger updated the allocator row in place on every completion (a new row
    version, a dead tuple, ~140 WAL bytes): the completions now only lock it."""
    if how == "RETRYABLE at the ceiling":
        outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(1)")
    outbox.enqueue("a-1", participant_id="pa")
    outbox.enqueue("a-2", participant_id="pa")
    (job,) = outbox.claim(1, "w-1")
    version = _allocator_version(outbox.conn, "pa")
    if how == "batch":
        outbox.conn.execute(
            "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s, %s,"
            " ARRAY['DISPATCHED'], p_rail_references => ARRAY['ref-batch'])",
            ([job.outbox_id], [job.lease_token]),
        )
    else:
        state = "RETRYABLE" if how.startswith("RETRYABLE") else how
        _, recorded = outbox.complete(job.outbox_id, job.lease_token, "w-1", state)
        assert recorded == ("FAILED" if how.startswith("RETRYABLE") else how)
    assert outbox.pending(job.outbox_id) is None
    assert _heads(outbox.conn, "pa") == ["a-2"]
    assert _allocator_version(outbox.conn, "pa") == version, "the allocator row was rewritten"
    (nxt,) = outbox.claim(1, "w-1")
    assert nxt.instruction_id == "a-2"


def test_a_batch_promotes_each_participant_once_and_keeps_a_retried_head(outbox: Outbox) -> None:
    for p in ("pa", "pb", "pc"):
        outbox.enqueue(f"{p}-1", participant_id=p)
        outbox.enqueue(f"{p}-2", participant_id=p)
    jobs = outbox.claim(10, "w-1")
    assert sorted(j.instruction_id for j in jobs) == ["pa-1", "pb-1", "pc-1"]
    by = {j.participant_id: j for j in jobs}
    outbox.conn.execute(
        "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s, %s,"
        " ARRAY['DISPATCHED', 'RETRYABLE', 'FAILED'],"
        " p_rail_references => ARRAY['ref-a', NULL, NULL])",
        (
            [by[p].outbox_id for p in ("pa", "pb", "pc")],
            [by[p].lease_token for p in ("pa", "pb", "pc")],
        ),
    )
    assert _heads(outbox.conn, "pa") == ["pa-2"]
    assert _heads(outbox.conn, "pb") == ["pb-1"], "a requeued head stays the head"
    assert _heads(outbox.conn, "pc") == ["pc-2"]


@pytest.mark.parametrize("first", ["enqueue", "completion"])
def test_an_enqueue_and_the_heads_completion_serialise_on_the_allocator_row(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]], first: str
) -> None:
    """ADR 0116 with the FOR NO KEY UPDATE lock, both interleavings forced: whichever holds the
    participant's allocator row first, the other waits for its commit, and the new job ends up
    the head (never stuck behind a head that left)."""
    outbox.enqueue("a-1", participant_id="pa")
    (head,) = outbox.claim(1, "w-1")
    holder = connect()
    holder.autocommit = False
    other = connect()
    try:
        if first == "enqueue":
            holder.execute(
                "SELECT * FROM public.enqueue_payment_outbox('a-2', 'pa', 'k-a-2', 'rtgs',"
                " '{\"a\": 1}'::jsonb)"
            )

            def second() -> None:
                other.execute(
                    "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
                    " p_rail_reference => 'ref-a-1')",
                    (head.outbox_id, head.lease_token),
                )
        else:
            holder.execute(
                "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
                " p_rail_reference => 'ref-a-1')",
                (head.outbox_id, head.lease_token),
            )

            def second() -> None:
                other.execute(
                    "SELECT * FROM public.enqueue_payment_outbox('a-2', 'pa', 'k-a-2', 'rtgs',"
                    " '{\"a\": 1}'::jsonb)"
                )

        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(second)
            _wait_until_blocked(outbox.conn, other.info.backend_pid)
            holder.commit()
            future.result(timeout=30)
    finally:
        holder.rollback()
    assert _heads(outbox.conn, "pa") == ["a-2"]
    (nxt,) = outbox.claim(1, "w-2")
    assert nxt.instruction_id == "a-2"


def test_completions_racing_enqueues_of_the_same_participants_keep_one_head_each(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """Hostile: 4 threads complete heads (single and batched) while 2 enqueue more jobs of the
    same 5 participants; at the end every participant with queued jobs has exactly one head,
    its lowest sequence number, and the jobs drain in sequence order."""
    participants = [f"p-{n}" for n in range(5)]
    for p in participants:
        outbox.enqueue(f"{p}-seed", participant_id=p)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        conn = connect()
        try:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(3, %s, 30)",
                    (f"w-{n}",),
                ).fetchall()
                if not rows:
                    time.sleep(0.005)
                    continue
                if n % 2:
                    conn.execute(
                        "SELECT * FROM public.complete_outbox_attempts_batch(%s, %s, %s,"
                        " array_fill('DISPATCHED'::text, ARRAY[%s]),"
                        " p_rail_references => (SELECT array_agg('r-' || x::text)"
                        "                        FROM unnest(%s::uuid[]) AS x))",
                        (
                            f"w-{n}",
                            [r[0] for r in rows],
                            [r[1] for r in rows],
                            len(rows),
                            [r[0] for r in rows],
                        ),
                    )
                else:
                    for outbox_id, token in rows:
                        conn.execute(
                            "SELECT * FROM public.complete_outbox_attempt(%s, %s, %s,"
                            " 'DISPATCHED', p_rail_reference => 'r-' || %s::text)",
                            (outbox_id, token, f"w-{n}", outbox_id),
                        )
        except BaseException as exc:  # reported below
            errors.append(exc)

    def producer(n: int) -> None:
        conn = connect()
        try:
            for i in range(60):
                p = participants[(i + n) % len(participants)]
                conn.execute(
                    "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs',"
                    " '{\"a\": 1}'::jsonb)",
                    (f"{p}-{n}-{i}", p, f"k-{p}-{n}-{i}"),
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    producers = [threading.Thread(target=producer, args=(n,)) for n in range(2)]
    for t in threads + producers:
        t.start()
    for t in producers:
        t.join(timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = outbox.conn.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone()
        if left is not None and left[0] == 0:
            break
        bad = outbox.conn.execute(
            "SELECT participant_id FROM public.payment_outbox_pending GROUP BY participant_id"
            " HAVING count(*) FILTER (WHERE is_head) <> 1"
        ).fetchall()
        assert bad == [] or not stop.is_set()
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    left = outbox.conn.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone()
    assert left == (0,), "a participant was left without a head: its jobs never drained"
    # Per participant, the outcomes were recorded in sequence order.
    disorder = outbox.conn.execute(
        "SELECT participant_id FROM ("
        "  SELECT participant_id, sequence_id,"
        "         lag(sequence_id) OVER (PARTITION BY participant_id"
        "                                ORDER BY completed_at, sequence_id) AS prev"
        "    FROM public.payment_outbox_attempts WHERE state = 'DISPATCHED') AS x"
        " WHERE prev > sequence_id"
    ).fetchall()
    assert disorder == []


# --------------------------------------------------------------------------------------------
# Every other delete of a head still promotes (the trigger's path)
# --------------------------------------------------------------------------------------------


def test_cancelling_a_head_whose_lease_expired_promotes_the_next_job(
    outbox: Outbox, login: LoginFactory
) -> None:
    a = outbox.enqueue("a-1", participant_id="pa")[0]
    outbox.enqueue("a-2", participant_id="pa")
    outbox.claim(1, "w-1")
    outbox.expire_leases([a])
    control = login("symphony_control").conn
    control.execute("SELECT * FROM public.cancel_outbox_job(%s, 'withdrawn', 'OPS-2')", (a,))
    assert _heads(outbox.conn, "pa") == ["a-2"]


@pytest.mark.parametrize("how", ["claim", "repair"])
def test_a_lost_lease_failed_at_the_ceiling_promotes_the_next_job(outbox: Outbox, how: str) -> None:
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(1)")
    a = outbox.enqueue("a-1", participant_id="pa")[0]
    outbox.enqueue("a-2", participant_id="pa")
    outbox.claim(1, "w-1")
    outbox.expire_leases([a])
    if how == "claim":
        assert outbox.claim(1, "w-2") == [], "the failed job is not returned"
    else:
        assert outbox.repair(10, "janitor") == [(a, 1)]
    assert [r["state"] for r in outbox.attempts(a)] == ["FAILED"]
    assert _heads(outbox.conn, "pa") == ["a-2"]


def test_a_superusers_delete_of_a_leased_head_promotes_the_next_job(outbox: Outbox) -> None:
    """Only the outbox functions' own deletes under a live lease skip the trigger."""
    outbox.enqueue("a-1", participant_id="pa")
    outbox.enqueue("a-2", participant_id="pa")
    (job,) = outbox.claim(1, "w-1")
    outbox.conn.execute(
        "DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s", (job.outbox_id,)
    )
    assert _heads(outbox.conn, "pa") == ["a-2"]


# --------------------------------------------------------------------------------------------
# 3. The ledger's unused index is gone; replays still find finished jobs
# --------------------------------------------------------------------------------------------


def test_the_ledger_has_no_instruction_idempotency_index(outbox: Outbox) -> None:
    rows = outbox.conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_catalog.pg_index"
        " WHERE indrelid = 'public.payment_outbox_attempts'::regclass"
        "   AND pg_catalog.pg_get_indexdef(indexrelid) LIKE '%(instruction_id, idempotency_key)%'"
    ).fetchall()
    assert rows == []
    job = outbox.enqueue("a-1", participant_id="pa")
    (claimed,) = outbox.claim(1, "w-1")
    outbox.complete(claimed.outbox_id, claimed.lease_token, "w-1", "DISPATCHED")
    again = outbox.enqueue("a-1", participant_id="pa")
    assert (again[0], again[3]) == (job[0], "DISPATCHED"), "the replay finds the finished job"


# --------------------------------------------------------------------------------------------
# P2b: the batched completion's work grows with the batch, not with its square
# --------------------------------------------------------------------------------------------


def _index_reads(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(tuples read through the queue's primary key, index scans of the ledger's partitions),
    with this backend's pending statistics flushed first."""
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT (SELECT idx_tup_read FROM pg_catalog.pg_stat_user_indexes"
        "         WHERE indexrelname = 'pk_payment_outbox_pending'),"
        "       (SELECT COALESCE(sum(s.idx_scan), 0) FROM pg_catalog.pg_stat_user_indexes AS s"
        "          JOIN pg_catalog.pg_inherits AS i ON i.inhrelid = s.relid"
        "         WHERE i.inhparent = 'public.payment_outbox_attempts'::regclass)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_batched_completion_reads_each_job_once_not_once_per_job(outbox: Outbox) -> None:
    """0024's batched completion rescanned the whole id list once per job (the DELETE's and the
    reference loop's joins: 100 jobs read 10,000 queue index tuples) and searched every ledger
    partition once per job for its last attempt; ADR 0158."""
    size = 60
    # A queue of realistic size with fresh statistics: the plans the old body chose then.
    outbox.conn.execute(
        "SELECT count(*) FROM pg_catalog.generate_series(1, 3000) AS g,"
        " LATERAL public.enqueue_payment_outbox('i-' || g, 'p-' || g, 'k-' || g, 'rtgs',"
        " '{\"a\": 1}'::jsonb) AS e"
    )
    outbox.conn.execute("ANALYZE public.payment_outbox_pending")
    jobs = outbox.claim(size, "w-1")
    assert len(jobs) == size
    partitions = outbox.conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_inherits"
        " WHERE inhparent = 'public.payment_outbox_attempts'::regclass"
    ).fetchone()
    assert partitions is not None and partitions[0] > 2
    tuples0, scans0 = _index_reads(outbox.conn)
    outbox.conn.execute(
        "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s, %s, %s,"
        " p_rail_references => %s)",
        (
            [j.outbox_id for j in jobs],
            [j.lease_token for j in jobs],
            ["DISPATCHED"] * size,
            [f"ref-{j.outbox_id}" for j in jobs],
        ),
    )
    tuples1, scans1 = _index_reads(outbox.conn)
    assert tuples1 - tuples0 < 10 * size, f"{tuples1 - tuples0} queue index tuples for {size}"
    assert scans1 - scans0 < 3 * size, f"{scans1 - scans0} ledger index scans for {size} jobs"
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE outbox_id = ANY (%s)",
        ([j.outbox_id for j in jobs],),
    ).fetchone() == (0,)


@pytest.mark.parametrize("how", ["single", "batch"])
def test_a_completion_promotes_past_a_next_job_cancelled_while_it_waited(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]], how: str
) -> None:
    """Hostile (found attacking 0032; 0014's trigger had the same gap): the head completes while
    the control plane cancels the participant's next job. The promotion waits for that job's row
    lock, finds it deleted, and must promote the job after it instead of nobody."""
    outbox.enqueue("a-1", participant_id="pa")
    second = outbox.enqueue("a-2", participant_id="pa")[0]
    outbox.enqueue("a-3", participant_id="pa")
    (head,) = outbox.claim(1, "w-1")
    canceller = connect()
    canceller.autocommit = False
    completer = connect()
    try:
        canceller.execute(
            "SELECT * FROM public.cancel_outbox_job(%s, 'withdrawn', 'OPS-3')", (second,)
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            if how == "single":
                query = (
                    "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
                    " p_rail_reference => 'ref-a-1')"
                )
                params: tuple[Any, ...] = (head.outbox_id, head.lease_token)
            else:
                query = (
                    "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s, %s,"
                    " ARRAY['DISPATCHED'], p_rail_references => ARRAY['ref-a-1'])"
                )
                params = ([head.outbox_id], [head.lease_token])
            future = pool.submit(completer.execute, query, params)
            _wait_until_blocked(outbox.conn, completer.info.backend_pid)
            canceller.commit()
            future.result(timeout=30)
    finally:
        canceller.rollback()
    assert _heads(outbox.conn, "pa") == ["a-3"], "the participant was left without a head"
