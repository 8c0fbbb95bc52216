"""Revision 0034 (issue 16, ADR 0147): the participant-first outbox functions on one node.

Where the contract is the same, each test runs against the single-node function and its
participant-first twin (``api`` fixture: ``single`` or ``participant``); the participant-first
functions also treat a job of another participant as an unknown job. Enqueue's restatement keeps
idempotency global on one node. ``tests/cluster/test_participant_functions.py`` runs the same
calls on a Citus cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.rows
import pytest
from psycopg import sql

if TYPE_CHECKING:
    from tests.integration.conftest import ClaimedRow, LoginFactory, Outbox

pytestmark = pytest.mark.integration

PAYLOAD = '{"amount": 100, "currency": "ZAR"}'


@dataclass(frozen=True)
class Api:
    """One outbox API: the single-node functions (``participant`` is ignored) or the
    participant-first ones (``participant`` is their first argument)."""

    conn: psycopg.Connection[Any]
    first: bool

    def _call(self, function: str, participant: str, args: dict[str, Any], cols: str) -> Any:
        name = f"{function}_for_participant" if self.first else function
        named = {**({"p_participant_id": participant} if self.first else {}), **args}
        placeholders = sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in named
        )
        query = sql.SQL("SELECT {} FROM public.{}({})").format(
            sql.SQL(cols), sql.Identifier(name), placeholders
        )
        return self.conn.execute(query, named).fetchall()

    def complete(
        self, participant: str, job: ClaimedRow, state: str, worker: str = "w-1", **extra: Any
    ) -> tuple[int, str]:
        if state == "DISPATCHED" and "rail_reference" not in extra:
            extra["rail_reference"] = f"ref-{job.outbox_id}"
        args = {
            "p_outbox_id": job.outbox_id,
            "p_lease_token": job.lease_token,
            "p_worker_id": worker,
            "p_state": state,
            **{f"p_{k}": v for k, v in extra.items()},
        }
        (row,) = self._call("complete_outbox_attempt", participant, args, "attempt_no, state::text")
        return int(row[0]), str(row[1])

    def complete_batch(
        self,
        participant: str,
        jobs: list[ClaimedRow],
        states: list[str],
        worker: str = "w-1",
        **extra: Any,
    ) -> list[tuple[Any, int, str]]:
        if "rail_references" not in extra:
            extra["rail_references"] = [f"ref-{j.outbox_id}" for j in jobs]
        args = {
            "p_worker_id": worker,
            "p_outbox_ids": [j.outbox_id for j in jobs],
            "p_lease_tokens": [j.lease_token for j in jobs],
            "p_states": states,
            **{f"p_{k}": v for k, v in extra.items()},
        }
        rows = self._call(
            "complete_outbox_attempts_batch",
            participant,
            args,
            "outbox_id, attempt_no, state::text",
        )
        return [(r[0], int(r[1]), str(r[2])) for r in rows]

    def repair(self, participant: str, batch: int = 10, worker: str = "w-r") -> list[Any]:
        args = {"p_batch_size": batch, "p_worker_id": worker}
        return [r[0] for r in self._call("repair_expired_leases", participant, args, "outbox_id")]

    def cancel(self, participant: str, outbox_id: Any) -> tuple[int, str]:
        args = {"p_outbox_id": outbox_id, "p_reason": "withdrawn", "p_ticket": "OPS-1"}
        (row,) = self._call("cancel_outbox_job", participant, args, "attempt_no, state::text")
        return int(row[0]), str(row[1])

    def redrive(self, participant: str, outbox_id: Any) -> tuple[Any, int, str]:
        args = {"p_outbox_id": outbox_id, "p_reason": "rail fixed", "p_ticket": "OPS-2"}
        (row,) = self._call(
            "redrive_outbox_job", participant, args, "outbox_id, sequence_id, state"
        )
        return row[0], int(row[1]), str(row[2])

    def extend(self, participant: str, job: ClaimedRow, seconds: int = 600) -> Any:
        args = {
            "p_outbox_id": job.outbox_id,
            "p_lease_token": job.lease_token,
            "p_worker_id": "w-1",
            "p_lease_seconds": seconds,
        }
        (row,) = self._call("extend_outbox_lease", participant, args, "*")
        return row[0]


@pytest.fixture(params=["single", "participant"])
def api(request: pytest.FixtureRequest, db: psycopg.Connection[Any]) -> Api:
    return Api(db, request.param == "participant")


@pytest.fixture
def first(db: psycopg.Connection[Any]) -> Api:
    return Api(db, True)


def _claim(outbox: Outbox, participant: str, worker: str = "w-1", lease: int = 30) -> ClaimedRow:
    from tests.integration.conftest import ClaimedRow

    rows = outbox.conn.execute(
        "SELECT * FROM public.claim_outbox_batch_for_participant(%s, 10, %s, %s)",
        (participant, worker, lease),
    ).fetchall()
    assert len(rows) == 1, rows
    return ClaimedRow(*rows[0])


def _states(outbox: Outbox, outbox_id: Any) -> list[str]:
    return [a["state"] for a in outbox.attempts(outbox_id)]


def _heads(conn: psycopg.Connection[Any], participant: str) -> list[str]:
    rows = conn.execute(
        "SELECT instruction_id FROM public.payment_outbox_pending"
        " WHERE participant_id = %s AND is_head ORDER BY sequence_id",
        (participant,),
    ).fetchall()
    return [r[0] for r in rows]


def _ledger_size(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM public.payment_outbox_attempts").fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------
# Completion
# --------------------------------------------------------------------------------------------


def test_a_dispatch_is_recorded_with_its_reference_and_promotes_the_next_job(
    outbox: Outbox, api: Api
) -> None:
    outbox.enqueue("i-1", "pa")
    outbox.enqueue("i-2", "pa")
    job = _claim(outbox, "pa")
    assert api.complete("pa", job, "DISPATCHED", rail_reference="R-1") == (1, "DISPATCHED")
    assert outbox.pending(job.outbox_id) is None
    (attempt,) = outbox.attempts(job.outbox_id)
    assert (attempt["state"], attempt["rail_reference"], attempt["worker_id"]) == (
        "DISPATCHED",
        "R-1",
        "w-1",
    )
    reference = outbox.conn.execute(
        "SELECT outbox_id, attempt_no FROM public.outbox_rail_references"
        " WHERE rail_code = 'RTGS' AND rail_reference = 'R-1'"
    ).fetchone()
    assert reference == (job.outbox_id, 1)
    assert _heads(outbox.conn, "pa") == ["i-2"]


def test_a_retry_is_requeued_and_fails_at_the_ceiling(outbox: Outbox, api: Api) -> None:
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(2)")
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    assert api.complete("pa", job, "RETRYABLE", retry_delay_seconds=1) == (1, "RETRYABLE")
    row = outbox.pending(job.outbox_id)
    assert row is not None
    assert (row["attempt_count"], row["lease_token"], row["is_head"]) == (1, None, True)
    outbox.make_due()
    job = _claim(outbox, "pa")
    assert api.complete("pa", job, "RETRYABLE") == (2, "FAILED")
    assert outbox.pending(job.outbox_id) is None
    assert _states(outbox, job.outbox_id) == ["RETRYABLE", "FAILED"]


def test_a_failure_is_terminal(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    assert api.complete("pa", job, "FAILED", error_code="E1") == (1, "FAILED")
    assert outbox.pending(job.outbox_id) is None


@pytest.mark.parametrize("state", ["DISPATCHED", "RETRYABLE"])
def test_a_stale_token_is_p7002_and_writes_nothing(outbox: Outbox, api: Api, state: str) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    stale = job._replace(lease_token=uuid.UUID("00000000-0000-0000-0000-000000000001"))
    with outbox.raises("P7002", "LEASE_LOST"):
        api.complete("pa", stale, state)
    assert _ledger_size(outbox.conn) == 0
    assert outbox.pending(job.outbox_id) is not None


def test_a_state_a_worker_cannot_report_is_p7003(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    with outbox.raises("P7003"):
        api.complete("pa", job, "ZOMBIE_REQUEUE")
    assert _ledger_size(outbox.conn) == 0


def test_a_reused_rail_reference_is_p7013_and_a_missing_one_22023(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    outbox.enqueue("i-2", "pb")
    one = _claim(outbox, "pa")
    two = _claim(outbox, "pb")
    api.complete("pa", one, "DISPATCHED", rail_reference="R-9")
    with outbox.raises("P7013", "RAIL_REFERENCE_REUSED"):
        api.complete("pb", two, "DISPATCHED", rail_reference="R-9")
    with outbox.raises("22023", "p_rail_reference must be given"):
        api.complete("pb", two, "DISPATCHED", rail_reference=None)
    assert outbox.pending(two.outbox_id) is not None
    assert _states(outbox, two.outbox_id) == []


@pytest.mark.parametrize("state", ["DISPATCHED", "RETRYABLE", "FAILED"])
def test_a_job_of_another_participant_is_an_unknown_job(
    outbox: Outbox, first: Api, state: str
) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    with outbox.raises("P7002", "LEASE_LOST"):
        first.complete("pb", job, state)
    with outbox.raises("P7002", "LEASE_LOST"):
        first.extend("pb", job)
    assert _ledger_size(outbox.conn) == 0
    row = outbox.pending(job.outbox_id)
    assert row is not None
    assert row["lease_token"] == job.lease_token
    assert row["lease_expires_at"] == job.lease_expires_at


@pytest.mark.parametrize("participant", [None, "", "  ", "x" * 1025])
def test_an_invalid_participant_is_22023_naming_it(
    outbox: Outbox, first: Api, participant: str | None
) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    calls: list[Callable[[], Any]] = [
        lambda: first.complete(participant, job, "DISPATCHED"),  # type: ignore[arg-type]
        lambda: first.complete_batch(participant, [job], ["DISPATCHED"]),  # type: ignore[arg-type]
        lambda: first.repair(participant),  # type: ignore[arg-type]
        lambda: first.cancel(participant, job.outbox_id),  # type: ignore[arg-type]
        lambda: first.redrive(participant, job.outbox_id),  # type: ignore[arg-type]
        lambda: first.extend(participant, job),  # type: ignore[arg-type]
    ]
    for call in calls:
        with outbox.raises("22023", "p_participant_id"):
            call()


# --------------------------------------------------------------------------------------------
# Batch completion
# --------------------------------------------------------------------------------------------


def _three_jobs(outbox: Outbox, participant: str = "pa") -> list[ClaimedRow]:
    # Three leased jobs of one participant: per-participant FIFO leases one at a time, so each
    # next job is made a head by hand (a test-only shortcut) before the next claim.
    jobs = []
    for n in range(3):
        outbox.enqueue(f"{participant}-{n}", participant)
    for _ in range(3):
        job = _claim(outbox, participant)
        jobs.append(job)
        # As the owner: trg_place_outbox_head recomputes is_head for anyone else.
        outbox.conn.execute("SET ROLE symphony_owner")
        outbox.conn.execute(
            "UPDATE public.payment_outbox_pending SET is_head = true"
            " WHERE participant_id = %s AND lease_token IS NULL AND sequence_id = ("
            "SELECT min(sequence_id) FROM public.payment_outbox_pending"
            " WHERE participant_id = %s AND lease_token IS NULL)",
            (participant, participant),
        )
        outbox.conn.execute("RESET ROLE")
    return jobs


def test_a_batch_records_every_outcome_in_input_order(outbox: Outbox, api: Api) -> None:
    jobs = _three_jobs(outbox)
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(5)")
    result = api.complete_batch("pa", jobs, ["DISPATCHED", "RETRYABLE", "FAILED"])
    assert [(r[0], r[1], r[2]) for r in result] == [
        (jobs[0].outbox_id, 1, "DISPATCHED"),
        (jobs[1].outbox_id, 1, "RETRYABLE"),
        (jobs[2].outbox_id, 1, "FAILED"),
    ]
    assert outbox.pending(jobs[0].outbox_id) is None
    assert outbox.pending(jobs[2].outbox_id) is None
    requeued = outbox.pending(jobs[1].outbox_id)
    assert requeued is not None
    assert requeued["lease_token"] is None


def test_a_batch_with_a_stale_lease_or_a_bad_state_records_nothing(
    outbox: Outbox, api: Api
) -> None:
    jobs = _three_jobs(outbox)
    stale = [
        jobs[0],
        jobs[1]._replace(lease_token=uuid.UUID("00000000-0000-0000-0000-000000000002")),
    ]
    with outbox.raises("P7002", str(jobs[1].outbox_id)):
        api.complete_batch("pa", stale, ["DISPATCHED", "DISPATCHED"])
    with outbox.raises("P7003"):
        api.complete_batch("pa", jobs[:2], ["DISPATCHED", "CANCELLED"])
    assert _ledger_size(outbox.conn) == 0


def test_a_batch_element_of_another_participant_is_stale_like_an_unknown_job(
    outbox: Outbox, first: Api
) -> None:
    mine = _three_jobs(outbox, "pa")
    theirs = _three_jobs(outbox, "pb")
    with outbox.raises("P7002", str(theirs[0].outbox_id)):
        first.complete_batch("pa", [mine[0], theirs[0]], ["DISPATCHED", "DISPATCHED"])
    assert _ledger_size(outbox.conn) == 0
    # The other participant's jobs only complete under their own participant.
    done = first.complete_batch("pb", theirs, ["DISPATCHED"] * 3)
    assert [r[2] for r in done] == ["DISPATCHED"] * 3


def test_a_batch_promotes_the_participants_next_job(outbox: Outbox, first: Api) -> None:
    outbox.enqueue("a-1", "pa")
    outbox.enqueue("a-2", "pa")
    job = _claim(outbox, "pa")
    first.complete_batch("pa", [job], ["DISPATCHED"])
    assert _heads(outbox.conn, "pa") == ["a-2"]


# --------------------------------------------------------------------------------------------
# Repair, extend
# --------------------------------------------------------------------------------------------


def test_repair_requeues_the_participants_expired_lease_in_doubt(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    outbox.expire_leases([job.outbox_id])
    assert api.repair("pa") == [job.outbox_id]
    row = outbox.pending(job.outbox_id)
    assert row is not None
    assert (row["lease_token"], row["in_doubt"], row["attempt_count"]) == (None, True, 1)
    (attempt,) = outbox.attempts(job.outbox_id)
    assert (attempt["state"], attempt["error_code"]) == ("ZOMBIE_REQUEUE", "LEASE_EXPIRED")
    assert attempt["lease_token"] == job.lease_token


def test_repair_fails_the_job_at_the_ceiling_and_promotes(outbox: Outbox, api: Api) -> None:
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(1)")
    outbox.enqueue("i-1", "pa")
    outbox.enqueue("i-2", "pa")
    job = _claim(outbox, "pa")
    outbox.expire_leases([job.outbox_id])
    assert api.repair("pa") == [job.outbox_id]
    assert outbox.pending(job.outbox_id) is None
    assert _states(outbox, job.outbox_id) == ["FAILED"]
    assert _heads(outbox.conn, "pa") == ["i-2"]


def test_repair_for_a_participant_leaves_the_others_expired_leases(
    outbox: Outbox, first: Api
) -> None:
    outbox.enqueue("a-1", "pa")
    outbox.enqueue("b-1", "pb")
    a = _claim(outbox, "pa")
    b = _claim(outbox, "pb")
    outbox.expire_leases()
    assert first.repair("pa") == [a.outbox_id]
    row = outbox.pending(b.outbox_id)
    assert row is not None
    assert row["lease_token"] == b.lease_token


def test_extend_moves_the_lease_and_a_stale_token_is_p7002(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa", lease=5)
    expiry = api.extend("pa", job, 600)
    assert expiry > job.lease_expires_at
    row = outbox.pending(job.outbox_id)
    assert row is not None
    assert row["lease_expires_at"] == expiry
    with outbox.raises("P7002"):
        api.extend(
            "pa", job._replace(lease_token=uuid.UUID("00000000-0000-0000-0000-000000000003"))
        )
    with outbox.raises("22023", "p_lease_seconds"):
        api.extend("pa", job, 0)


# --------------------------------------------------------------------------------------------
# Cancel, redrive
# --------------------------------------------------------------------------------------------


def test_cancel_and_redrive(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    outbox.enqueue("i-2", "pa")
    job = _claim(outbox, "pa")
    with outbox.raises("P7011", "JOB_LEASED"):
        api.cancel("pa", job.outbox_id)
    with outbox.raises("P7012", "still queued"):
        api.redrive("pa", job.outbox_id)
    outbox.expire_leases([job.outbox_id])
    assert api.cancel("pa", job.outbox_id) == (2, "CANCELLED")
    assert _states(outbox, job.outbox_id) == ["ZOMBIE_REQUEUE", "CANCELLED"]
    assert _heads(outbox.conn, "pa") == ["i-2"]
    with outbox.raises("P7005", "JOB_ALREADY_TERMINAL"):
        api.cancel("pa", job.outbox_id)
    new_id, sequence_id, state = api.redrive("pa", job.outbox_id)
    assert (sequence_id, state) == (3, "PENDING")
    assert _states(outbox, job.outbox_id) == ["ZOMBIE_REQUEUE", "CANCELLED", "REDRIVEN"]
    assert outbox.attempts(job.outbox_id)[-1]["related_outbox_id"] == new_id
    new = outbox.pending(new_id)
    assert new is not None
    assert (new["instruction_id"], new["is_head"]) == ("i-1", False)
    with outbox.raises("P7012", "already redriven"):
        api.redrive("pa", job.outbox_id)
    # A replay of the key answers with the new job.
    assert outbox.enqueue("i-1", "pa")[0] == new_id


def test_redrive_of_a_dispatched_job_is_p7012(outbox: Outbox, api: Api) -> None:
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    api.complete("pa", job, "DISPATCHED")
    with outbox.raises("P7012", "DISPATCHED"):
        api.redrive("pa", job.outbox_id)


def test_an_unknown_job_is_p7010(outbox: Outbox, api: Api) -> None:
    unknown = "00000000-0000-0000-0000-0000000000aa"
    with outbox.raises("P7010", "JOB_NOT_FOUND"):
        api.cancel("pa", unknown)
    with outbox.raises("P7010", "JOB_NOT_FOUND"):
        api.redrive("pa", unknown)


def test_cancel_and_redrive_of_another_participants_job_are_p7010(
    outbox: Outbox, first: Api
) -> None:
    outbox.enqueue("i-1", "pa")
    queued = outbox.enqueue("i-2", "pa")[0]
    job = _claim(outbox, "pa")
    api_done = first.complete("pa", job, "FAILED")
    assert api_done == (1, "FAILED")
    with outbox.raises("P7010"):
        first.cancel("pb", queued)
    with outbox.raises("P7010"):
        first.redrive("pb", job.outbox_id)
    assert outbox.pending(queued) is not None
    assert _states(outbox, job.outbox_id) == ["FAILED"]


def test_redrive_of_a_job_whose_key_row_has_no_participant(outbox: Outbox, first: Api) -> None:
    # A key row written before 0031 (or by a P7005 guard) names no participant: the redrive
    # still finds and locks it, and gives it the participant.
    outbox.enqueue("i-1", "pa")
    job = _claim(outbox, "pa")
    first.complete("pa", job, "FAILED")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_idempotency_keys SET participant_id = NULL"
        " WHERE instruction_id = 'i-1'"
    )
    new_id = first.redrive("pa", job.outbox_id)[0]
    row = outbox.conn.execute(
        "SELECT outbox_id, participant_id FROM public.payment_outbox_idempotency_keys"
        " WHERE instruction_id = 'i-1'"
    ).fetchone()
    assert row == (new_id, "pa")


# --------------------------------------------------------------------------------------------
# Races the single-node functions have tests for
# --------------------------------------------------------------------------------------------


def _wait_until_blocked(watcher: psycopg.Connection[Any], pid: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = watcher.execute(
            "SELECT wait_event_type FROM pg_catalog.pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


@pytest.mark.parametrize("how", ["single", "batch"])
def test_a_completion_promotes_past_a_next_job_cancelled_while_it_waited(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]], how: str
) -> None:
    outbox.enqueue("a-1", participant_id="pa")
    second = outbox.enqueue("a-2", participant_id="pa")[0]
    outbox.enqueue("a-3", participant_id="pa")
    head = _claim(outbox, "pa")
    canceller = connect()
    canceller.autocommit = False
    completer = connect()
    try:
        canceller.execute(
            "SELECT * FROM public.cancel_outbox_job_for_participant('pa', %s, 'withdrawn',"
            " 'OPS-3')",
            (second,),
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            if how == "single":
                query = (
                    "SELECT * FROM public.complete_outbox_attempt_for_participant('pa', %s, %s,"
                    " 'w-1', 'DISPATCHED', p_rail_reference => 'ref-a-1')"
                )
                params: tuple[Any, ...] = (head.outbox_id, head.lease_token)
            else:
                query = (
                    "SELECT * FROM public.complete_outbox_attempts_batch_for_participant('pa',"
                    " 'w-1', %s, %s, ARRAY['DISPATCHED'], p_rail_references => ARRAY['ref-a-1'])"
                )
                params = ([head.outbox_id], [head.lease_token])
            future = pool.submit(completer.execute, query, params)
            _wait_until_blocked(outbox.conn, completer.info.backend_pid)
            canceller.commit()
            future.result(timeout=30)
    finally:
        canceller.rollback()
    assert _heads(outbox.conn, "pa") == ["a-3"], "the participant was left without a head"


def test_an_enqueue_waits_for_the_heads_completion_and_is_not_its_own_head(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    # ADR 0116 in the completion-first order: the completion holds the allocator row; the
    # enqueue waits for it, then sees the promoted head and queues behind it.
    outbox.enqueue("a-1", "pa")
    outbox.enqueue("a-2", "pa")
    head = _claim(outbox, "pa")
    completer = connect()
    completer.autocommit = False
    enqueuer = connect()
    try:
        completer.execute(
            "SELECT * FROM public.complete_outbox_attempt_for_participant('pa', %s, %s, 'w-1',"
            " 'DISPATCHED', p_rail_reference => 'ref-x')",
            (head.outbox_id, head.lease_token),
        )
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(
                enqueuer.execute,
                "SELECT * FROM public.enqueue_payment_outbox('a-3', 'pa', 'key-a-3', 'rtgs',"
                " %s::jsonb)",
                (PAYLOAD,),
            )
            _wait_until_blocked(outbox.conn, enqueuer.info.backend_pid)
            completer.commit()
            future.result(timeout=30)
    finally:
        completer.rollback()
    assert _heads(outbox.conn, "pa") == ["a-2"]


# --------------------------------------------------------------------------------------------
# Enqueue's restatement
# --------------------------------------------------------------------------------------------


def test_enqueue_idempotency_stays_global_and_replays_a_key_without_participant(
    outbox: Outbox,
) -> None:
    first = outbox.enqueue("i-1", "pa", "k-1")
    with outbox.raises("P7004", "IDEMPOTENCY_CONFLICT"):
        outbox.enqueue("i-1", "pb", "k-1")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_idempotency_keys SET participant_id = NULL"
        " WHERE instruction_id = 'i-1'"
    )
    assert outbox.enqueue("i-1", "pa", "k-1") == first
    with outbox.raises("P7004"):
        outbox.enqueue("i-1", "pb", "k-1")
    # After the job's attempts (ledger) too.
    job = _claim(outbox, "pa")
    Api(outbox.conn, True).complete("pa", job, "FAILED")
    assert outbox.enqueue("i-1", "pa", "k-1")[3] == "FAILED"
    with outbox.raises("P7004"):
        outbox.enqueue("i-1", "pb", "k-1")


def test_enqueue_of_a_key_whose_job_vanished_under_another_participant(outbox: Outbox) -> None:
    # A job removed by hand before any attempt: the key gets a new job, under the caller.
    first = outbox.enqueue("i-1", "pa", "k-1")
    outbox.conn.execute(
        "DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s", (first[0],)
    )
    second = outbox.enqueue("i-1", "pb", "k-1")
    assert second[0] != first[0]
    row = outbox.conn.execute(
        "SELECT outbox_id, participant_id FROM public.payment_outbox_idempotency_keys"
        " WHERE instruction_id = 'i-1'"
    ).fetchone()
    assert row == (second[0], "pb")


# --------------------------------------------------------------------------------------------
# Batch enqueue for one participant
# --------------------------------------------------------------------------------------------

BATCH_FOR = (
    "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant(%s, %s, %s, %s, %s::jsonb[])"
)


def _batch_for(
    conn: psycopg.Connection[Any],
    participant: str,
    instructions: list[str],
    keys: list[str] | None = None,
    payloads: list[str] | None = None,
    rails: list[str] | None = None,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            BATCH_FOR,
            (
                participant,
                instructions,
                keys or [f"k-{i}" for i in instructions],
                rails or ["rtgs"] * len(instructions),
                payloads or [PAYLOAD] * len(instructions),
            ),
        ).fetchall()


def test_batch_enqueue_for_a_participant(outbox: Outbox) -> None:
    outbox.enqueue("i-0", "pa", "k-i-0")
    rows = _batch_for(outbox.conn, "pa", ["i-1", "i-2", "i-1", "i-0"])
    assert [r["ordinality"] for r in rows] == [1, 2, 3, 4]
    assert [r["sequence_id"] for r in rows] == [2, 3, 2, 1]
    assert rows[0]["outbox_id"] == rows[2]["outbox_id"]
    assert {r["state"] for r in rows} == {"PENDING"}
    assert _heads(outbox.conn, "pa") == ["i-0"]


@pytest.mark.parametrize(
    ("case", "sqlstate", "match"),
    [
        ("other participant's key", "P7004", "element 2 of the batch: IDEMPOTENCY_CONFLICT"),
        ("same key, other payload", "P7004", "element 3 of the batch"),
        ("blank instruction", "22023", "element 2 of the batch: p_instruction_id"),
        ("unknown rail", "22023", "element 1 of the batch"),
        ("lengths", "22023", "every array must have as many elements"),
        ("blank participant", "22023", "p_participant_id"),
    ],
)
def test_batch_enqueue_for_a_participant_is_all_or_nothing(
    outbox: Outbox, case: str, sqlstate: str, match: str
) -> None:
    outbox.enqueue("theirs", "pb", "k-theirs")
    before = outbox.counts()
    participant = "pa"
    instructions = ["i-1", "theirs", "i-1"]
    keys: list[str] | None = ["k-i-1", "k-theirs", "k-i-1"]
    payloads = [PAYLOAD] * 3
    rails = ["rtgs"] * 3
    if case == "same key, other payload":
        instructions[1], keys = "i-2", None
        instructions[2] = "i-1"
        keys = ["k-i-1", "k-i-2", "k-i-1"]
        payloads[2] = json.dumps({"amount": 1})
    elif case == "blank instruction":
        instructions[1] = " "
    elif case == "unknown rail":
        instructions, keys, rails = ["i-9"], None, ["NO-SUCH-RAIL"]
        payloads = [PAYLOAD]
    elif case == "lengths":
        keys = ["k-1"]
    elif case == "blank participant":
        participant = ""
    with outbox.raises(sqlstate, match):
        _batch_for(outbox.conn, participant, instructions, keys, payloads, rails)
    assert outbox.counts() == before


# --------------------------------------------------------------------------------------------
# Privileges: the single-node function's EXECUTE grants
# --------------------------------------------------------------------------------------------

FUNCTIONS = {
    "complete_outbox_attempt_for_participant": {"symphony_executor", "symphony_control"},
    "complete_outbox_attempts_batch_for_participant": {"symphony_executor", "symphony_control"},
    "repair_expired_leases_for_participant": {"symphony_executor", "symphony_control"},
    "extend_outbox_lease_for_participant": {"symphony_executor", "symphony_control"},
    "cancel_outbox_job_for_participant": {"symphony_control"},
    "redrive_outbox_job_for_participant": {"symphony_control"},
    "enqueue_payment_outbox_batch_for_participant": {"symphony_ingest", "symphony_control"},
    "outbox_promote_participant_head": set(),
}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_execute_grants_match_the_single_node_function(
    db: psycopg.Connection[Any], function: str
) -> None:
    roles = ["symphony_ingest", "symphony_executor", "symphony_control", "symphony_readonly"]
    row = db.execute(
        "SELECT p.oid::regprocedure::text, pg_catalog.pg_get_userbyid(p.proowner), p.prosecdef,"
        " p.proconfig FROM pg_catalog.pg_proc AS p WHERE p.proname = %s",
        (function,),
    ).fetchone()
    assert row is not None
    signature, owner, definer, config = row
    assert (owner, definer) == ("symphony_owner", True)
    assert config == ["search_path=pg_catalog, public, pg_temp"]
    allowed = {
        role
        for role in roles
        if db.execute(
            "SELECT pg_catalog.has_function_privilege(%s, %s, 'EXECUTE')", (role, signature)
        ).fetchone()
        == (True,)
    }
    assert allowed == FUNCTIONS[function]


def test_an_executor_login_completes_for_its_participant_and_cannot_cancel(
    outbox: Outbox, login: LoginFactory
) -> None:
    outbox.enqueue("i-1", "pa")
    executor = login("symphony_executor")
    job = _claim(outbox, "pa")
    assert Api(executor.conn, True).complete("pa", job, "DISPATCHED") == (1, "DISPATCHED")
    with outbox.raises("42501"):
        Api(executor.conn, True).cancel("pa", job.outbox_id)
