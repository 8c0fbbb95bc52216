"""Red team of the sixth wave (revisions 0033-0036) on one node: the participant-first functions
against their single-node twins (roles, bad arguments, races), enqueue's global idempotency,
the wake-one-worker notification's parsing, and the P7005 guards restated by 0035."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from tests.integration.test_executor_guide import _reference_worker

if TYPE_CHECKING:
    from tests.integration.conftest import ClaimedRow, LoginFactory, Outbox

pytestmark = pytest.mark.integration

PAYLOAD = '{"amount": 100, "currency": "ZAR"}'


def _sqlstate(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> str | None:
    """Run ``query``; the SQLSTATE it raised, or None when it succeeded."""
    try:
        conn.execute(query, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def _claim(conn: psycopg.Connection[Any], participant: str, worker: str = "w-1") -> ClaimedRow:
    from tests.integration.conftest import ClaimedRow

    rows = conn.execute(
        "SELECT * FROM public.claim_outbox_batch_for_participant(%s, 10, %s, 30)",
        (participant, worker),
    ).fetchall()
    assert len(rows) == 1, rows
    return ClaimedRow(*rows[0])


def _snapshot(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Everything a refused call must leave untouched."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM public.payment_outbox_pending),"
        " (SELECT count(*) FROM public.payment_outbox_attempts),"
        " (SELECT count(*) FROM public.participant_outbox_sequences),"
        " (SELECT count(*) FROM public.payment_outbox_pending WHERE lease_token IS NOT NULL),"
        " (SELECT coalesce(string_agg(outbox_id::text || ':' || coalesce(lease_token::text, '-'),"
        "   ',' ORDER BY outbox_id), '') FROM public.payment_outbox_pending)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def _terminal(conn: psycopg.Connection[Any], outbox_id: Any) -> list[str]:
    rows = conn.execute(
        "SELECT state::text FROM public.payment_outbox_attempts"
        " WHERE outbox_id = %s AND state::text IN ('DISPATCHED', 'FAILED', 'CANCELLED')",
        (outbox_id,),
    ).fetchall()
    return [r[0] for r in rows]


def _complete_query(first: bool, participant: str, job: ClaimedRow, state: str) -> Any:
    name = "complete_outbox_attempt_for_participant" if first else "complete_outbox_attempt"
    args: list[Any] = [participant] if first else []
    args += [job.outbox_id, job.lease_token, "w-1", state]
    ref = f"ref-{job.outbox_id}" if state == "DISPATCHED" else None
    query = sql.SQL("SELECT * FROM public.{}({}, p_rail_reference => %s)").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Placeholder() * len(args))
    )
    return query, (*args, ref)


def _wait_until_blocked(watcher: psycopg.Connection[Any], pid: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = watcher.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")


def _race(
    holder: psycopg.Connection[Any],
    waiter: psycopg.Connection[Any],
    first_call: Any,
    second_call: Any,
) -> str | None:
    """``first_call`` runs in an open transaction on ``holder``; ``second_call`` runs on
    ``waiter`` in a thread, must block on ``holder``'s lock; ``holder`` commits; returns the
    SQLSTATE of ``second_call`` (None: it succeeded)."""
    holder.execute("BEGIN")
    holder.execute(*first_call)
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(_sqlstate(waiter, *second_call)))
    thread.start()
    _wait_until_blocked(holder, waiter.info.backend_pid)
    holder.execute("COMMIT")
    thread.join(30)
    assert not thread.is_alive()
    return result[0]


# --------------------------------------------------------------------------------------------
# 1. Participant-first functions: roles
# --------------------------------------------------------------------------------------------

# Each twin called with arguments that are refused with 22023 by the function body (a blank
# worker or reason), so a caller allowed to EXECUTE gets 22023 and one who is not gets 42501.
_TWINS: list[tuple[str, str, str]] = [
    (
        "complete_outbox_attempt",
        "complete_outbox_attempt_for_participant",
        "gen_random_uuid(), gen_random_uuid(), ' ', 'DISPATCHED'",
    ),
    (
        "complete_outbox_attempts_batch",
        "complete_outbox_attempts_batch_for_participant",
        "' ', ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY['DISPATCHED']",
    ),
    ("repair_expired_leases", "repair_expired_leases_for_participant", "0, 'w'"),
    ("cancel_outbox_job", "cancel_outbox_job_for_participant", "gen_random_uuid(), ' ', 'T'"),
    ("redrive_outbox_job", "redrive_outbox_job_for_participant", "gen_random_uuid(), ' ', 'T'"),
    (
        "extend_outbox_lease",
        "extend_outbox_lease_for_participant",
        "gen_random_uuid(), gen_random_uuid(), ' ', 30",
    ),
]


@pytest.mark.parametrize(
    "roles",
    [(), ("symphony_ingest",), ("symphony_executor",), ("symphony_control",)],
    ids=["no-role", "ingest", "executor", "control"],
)
def test_r6_each_role_gets_the_same_sqlstate_from_both_twins(
    login: LoginFactory, db: psycopg.Connection[Any], roles: tuple[str, ...]
) -> None:
    before = _snapshot(db)
    who = login(*roles)
    for single, first, args in _TWINS:
        got_single = _sqlstate(who.conn, f"SELECT * FROM public.{single}({args})")
        got_first = _sqlstate(who.conn, f"SELECT * FROM public.{first}('p-1', {args})")
        assert got_single in ("22023", "42501"), (single, got_single)
        assert got_first == got_single, (first, roles, got_first, got_single)
        if not roles:
            assert got_first == "42501", (first, "PUBLIC must not execute it")
    assert _snapshot(db) == before


# --------------------------------------------------------------------------------------------
# 1. Participant-first functions: bad arguments write nothing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "participant",
    [None, "", " \t", "x" * 1025],
    ids=["null", "empty", "blank", "oversized"],
)
def test_r6_a_bad_participant_is_22023_and_writes_nothing(
    outbox: Outbox, db: psycopg.Connection[Any], participant: str | None
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    before = _snapshot(db)
    calls = [
        (
            "SELECT * FROM public.complete_outbox_attempt_for_participant(%s, %s, %s, 'w-1',"
            " 'FAILED')",
            (participant, job.outbox_id, job.lease_token),
        ),
        (
            "SELECT * FROM public.complete_outbox_attempts_batch_for_participant(%s, 'w-1',"
            " ARRAY[%s]::uuid[], ARRAY[%s]::uuid[], ARRAY['FAILED'])",
            (participant, job.outbox_id, job.lease_token),
        ),
        ("SELECT * FROM public.repair_expired_leases_for_participant(%s, 10, 'w')", (participant,)),
        (
            "SELECT * FROM public.cancel_outbox_job_for_participant(%s, %s, 'r', 'T')",
            (participant, job.outbox_id),
        ),
        (
            "SELECT * FROM public.redrive_outbox_job_for_participant(%s, %s, 'r', 'T')",
            (participant, job.outbox_id),
        ),
        (
            "SELECT * FROM public.extend_outbox_lease_for_participant(%s, %s, %s, 'w-1', 60)",
            (participant, job.outbox_id, job.lease_token),
        ),
        (
            "SELECT * FROM public.claim_outbox_batch_for_participant(%s, 10, 'w-2', 30)",
            (participant,),
        ),
    ]
    for query, params in calls:
        assert _sqlstate(db, query, params) == "22023", query
    assert _snapshot(db) == before


def test_r6_batch_arrays_of_unequal_length_or_repeated_ids_are_22023_on_both_twins(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    outbox.enqueue("i-2", participant_id="p-1")
    job = _claim(db, "p-1")
    before = _snapshot(db)
    ids, tok = job.outbox_id, job.lease_token
    cases: list[tuple[str, tuple[Any, ...]]] = [
        # tokens shorter than ids
        ("%s::uuid[], %s::uuid[], %s::text[]", ([ids, uuid.uuid4()], [tok], ["FAILED"] * 2)),
        # states longer than ids
        ("%s::uuid[], %s::uuid[], %s::text[]", ([ids], [tok], ["FAILED", "FAILED"])),
        # the same job twice
        ("%s::uuid[], %s::uuid[], %s::text[]", ([ids, ids], [tok, tok], ["FAILED"] * 2)),
        # a NULL id, a NULL token
        ("%s::uuid[], %s::uuid[], %s::text[]", ([None], [tok], ["FAILED"])),
        ("%s::uuid[], %s::uuid[], %s::text[]", ([ids], [None], ["FAILED"])),
        # empty and two-dimensional arrays
        ("%s::uuid[], %s::uuid[], %s::text[]", ([], [], [])),
        ("%s::uuid[], %s::uuid[], %s::text[]", ([[ids]], [[tok]], [["FAILED"]])),
    ]
    for extra in (
        "",
        ", p_error_codes => ARRAY['a', 'b', 'c']",
        ", p_latency_ms => ARRAY[1, 2]",
        ", p_retry_delay_seconds => ARRAY[]::integer[]",
    ):
        for args, params in cases[:1] if extra else cases:
            if extra:
                args, params = "%s::uuid[], %s::uuid[], %s::text[]", ([ids], [tok], ["FAILED"])
            single = _sqlstate(
                db,
                f"SELECT * FROM public.complete_outbox_attempts_batch('w-1', {args}{extra})",
                params,
            )
            first = _sqlstate(
                db,
                "SELECT * FROM public.complete_outbox_attempts_batch_for_participant("
                f"'p-1', 'w-1', {args}{extra})",
                params,
            )
            assert single == first == "22023", (args, params, extra, single, first)
    assert _snapshot(db) == before


def test_r6_a_batch_spanning_two_participants_is_p7002_and_writes_nothing(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-a", participant_id="p-a")
    outbox.enqueue("i-b", participant_id="p-b")
    a, b = _claim(db, "p-a"), _claim(db, "p-b")
    before = _snapshot(db)
    for participant in ("p-a", "p-b"):
        state = _sqlstate(
            db,
            "SELECT * FROM public.complete_outbox_attempts_batch_for_participant(%s, 'w-1',"
            " %s::uuid[], %s::uuid[], ARRAY['FAILED', 'FAILED'])",
            (participant, [a.outbox_id, b.outbox_id], [a.lease_token, b.lease_token]),
        )
        assert state == "P7002"
        # Another participant's job alone, with its right token, is just as unknown.
        other = b if participant == "p-a" else a
        state = _sqlstate(
            db,
            "SELECT * FROM public.complete_outbox_attempt_for_participant(%s, %s, %s, 'w-1',"
            " 'FAILED')",
            (participant, other.outbox_id, other.lease_token),
        )
        assert state == "P7002"
    assert _snapshot(db) == before
    # The single-node batch takes both (it is not bound to a participant).
    rows = db.execute(
        "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s::uuid[], %s::uuid[],"
        " ARRAY['FAILED', 'FAILED'])",
        ([a.outbox_id, b.outbox_id], [a.lease_token, b.lease_token]),
    ).fetchall()
    assert len(rows) == 2


# --------------------------------------------------------------------------------------------
# 1. Participant-first functions: races
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("holder_first", [True, False], ids=["participant-wins", "single-wins"])
@pytest.mark.parametrize("state", ["DISPATCHED", "FAILED", "RETRYABLE"])
def test_r6_one_job_completed_twice_concurrently_through_both_apis(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    holder_first: bool,
    state: str,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    holder, waiter = connect(), connect()
    got = _race(
        holder,
        waiter,
        _complete_query(holder_first, "p-1", job, state),
        _complete_query(not holder_first, "p-1", job, state),
    )
    assert got == "P7002"
    ledger = outbox.attempts(job.outbox_id)
    assert [a["state"] for a in ledger] == [state]
    assert len(_terminal(db, job.outbox_id)) == (0 if state == "RETRYABLE" else 1)


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_completion_waiting_for_a_repair_of_its_expired_lease_is_p7002(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    outbox.expire_leases()
    repair = (
        ("SELECT * FROM public.repair_expired_leases_for_participant('p-1', 10, 'w-r')",)
        if first
        else ("SELECT * FROM public.repair_expired_leases(10, 'w-r')",)
    )
    got = _race(connect(), connect(), repair, _complete_query(first, "p-1", job, "DISPATCHED"))
    assert got == "P7002"
    assert [a["state"] for a in outbox.attempts(job.outbox_id)] == ["ZOMBIE_REQUEUE"]
    assert _terminal(db, job.outbox_id) == []


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_repair_racing_a_completion_skips_the_job(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    outbox.expire_leases()
    holder = connect()
    holder.execute("BEGIN")
    holder.execute(*_complete_query(not first, "p-1", job, "DISPATCHED"))
    name = "repair_expired_leases_for_participant" if first else "repair_expired_leases"
    args = "'p-1', 10, 'w-r'" if first else "10, 'w-r'"
    repaired = connect().execute(f"SELECT * FROM public.{name}({args})").fetchall()
    holder.execute("COMMIT")
    assert repaired == []
    assert [a["state"] for a in outbox.attempts(job.outbox_id)] == ["DISPATCHED"]


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_cancel_waiting_for_a_completion_sees_the_finished_job(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    outbox.expire_leases()  # an expired lease: cancel is allowed (ZOMBIE_REQUEUE first)
    cancel = (
        "SELECT * FROM public.cancel_outbox_job_for_participant('p-1', %s, 'r', 'T')"
        if first
        else "SELECT * FROM public.cancel_outbox_job(%s, 'r', 'T')",
        (job.outbox_id,),
    )
    got = _race(connect(), connect(), _complete_query(not first, "p-1", job, "FAILED"), cancel)
    # Same answer from both twins: the job finished, nothing more is recorded.
    assert got == "P7005", got
    assert [a["state"] for a in outbox.attempts(job.outbox_id)] == ["FAILED"]


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_completion_waiting_for_a_cancel_of_its_expired_lease_is_p7002(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    outbox.expire_leases()
    cancel = (
        "SELECT * FROM public.cancel_outbox_job_for_participant('p-1', %s, 'r', 'T')"
        if first
        else "SELECT * FROM public.cancel_outbox_job(%s, 'r', 'T')",
        (job.outbox_id,),
    )
    got = _race(connect(), connect(), cancel, _complete_query(not first, "p-1", job, "DISPATCHED"))
    assert got == "P7002"
    assert [a["state"] for a in outbox.attempts(job.outbox_id)] == [
        "ZOMBIE_REQUEUE",
        "CANCELLED",
    ]


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_two_redrives_of_one_failed_job_make_one_new_job(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    db.execute(*_complete_query(True, "p-1", job, "FAILED"))
    one = ("SELECT * FROM public.redrive_outbox_job_for_participant('p-1', %s, 'r', 'T')",)
    two = ("SELECT * FROM public.redrive_outbox_job(%s, 'r', 'T')",)
    a, b = (one, two) if first else (two, one)
    got = _race(connect(), connect(), (a[0], (job.outbox_id,)), (b[0], (job.outbox_id,)))
    assert got == "P7012", got
    row = db.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE instruction_id = 'i-1'"
    ).fetchone()
    assert row is not None and row[0] == 1


# --------------------------------------------------------------------------------------------
# 2. enqueue_payment_outbox: global idempotency on one node
# --------------------------------------------------------------------------------------------


def test_r6_a_key_of_another_participant_is_p7004_and_writes_nothing(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-a", idempotency_key="k")
    before = _snapshot(db)
    with outbox.raises("P7004"):
        outbox.enqueue("i-1", participant_id="p-b", idempotency_key="k")
    with outbox.raises("P7004"):
        db.execute(
            "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant('p-b',"
            " ARRAY['i-1'], ARRAY['k'], ARRAY['rtgs'], ARRAY[%s::jsonb])",
            (PAYLOAD,),
        )
    assert _snapshot(db) == before


def test_r6_a_key_row_without_participant_is_still_global(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-a", idempotency_key="k")
    db.execute("UPDATE public.payment_outbox_idempotency_keys SET participant_id = NULL")
    before = _snapshot(db)
    with outbox.raises("P7004"):
        outbox.enqueue("i-1", participant_id="p-b", idempotency_key="k")
    with outbox.raises("P7004"):
        db.execute(
            "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant('p-b',"
            " ARRAY['i-1'], ARRAY['k'], ARRAY['rtgs'], ARRAY[%s::jsonb])",
            (PAYLOAD,),
        )
    assert _snapshot(db) == before
    # The same participant replays its job.
    again = outbox.enqueue("i-1", participant_id="p-a", idempotency_key="k")
    row = db.execute("SELECT outbox_id FROM public.payment_outbox_pending").fetchone()
    assert row is not None and again[0] == row[0]


_ENQUEUE_ONE = "SELECT * FROM public.enqueue_payment_outbox('i-1', %s, 'k', 'rtgs', %s::jsonb)"
_ENQUEUE_BATCH = (
    "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant(%s, ARRAY['i-1'],"
    " ARRAY['k'], ARRAY['rtgs'], ARRAY[%s::jsonb])"
)


@pytest.mark.parametrize(
    ("holder", "waiter"),
    [(_ENQUEUE_ONE, _ENQUEUE_ONE), (_ENQUEUE_BATCH, _ENQUEUE_ONE), (_ENQUEUE_ONE, _ENQUEUE_BATCH)],
    ids=["one-one", "batch-one", "one-batch"],
)
def test_r6_concurrent_enqueues_of_one_key_under_two_participants(
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    holder: str,
    waiter: str,
) -> None:
    got = _race(connect(), connect(), (holder, ("p-a", PAYLOAD)), (waiter, ("p-b", PAYLOAD)))
    assert got == "P7004"
    rows = db.execute("SELECT participant_id FROM public.payment_outbox_pending").fetchall()
    assert rows == [("p-a",)]
    seq = db.execute("SELECT participant_id FROM public.participant_outbox_sequences").fetchall()
    assert ("p-b",) not in seq


# --------------------------------------------------------------------------------------------
# 3. The wake-one-worker notification
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("RTGS:517", ("RTGS", 517)),
        ("rtgs", ("RTGS", None)),
        ("RTGS:", ("RTGS", None)),
        ("RTGS:-3", ("RTGS", None)),
        ("RTGS: 4", ("RTGS", None)),
        ("A:B:17", ("A", None)),
        ("RTGS:\u00b2", ("RTGS", None)),  # superscript two: str.isdigit() but not int()
        ("RTGS:\u0663", ("RTGS", None)),  # Arabic-Indic three: not an ASCII digit
        ("RTGS:" + "9" * 5000, ("RTGS", None)),  # more digits than int() converts
        ("", ("", None)),
    ],
)
def test_r6_hostile_wake_payloads_never_raise(payload: str, expected: tuple[str, Any]) -> None:
    worker = _reference_worker()
    assert worker.parse_notification(payload) == expected


def test_r6_a_rail_code_cannot_contain_the_payload_separator(db: psycopg.Connection[Any]) -> None:
    assert (
        _sqlstate(db, "UPDATE public.outbox_rails SET rail_code = 'RT:GS' WHERE rail_code = 'RTGS'")
        == "23514"
    )


@pytest.mark.parametrize(("rank", "workers"), [(0, 0), (-1, 2), (2, 2), (0, -1)])
def test_r6_wait_for_work_refuses_impossible_ranks(
    db: psycopg.Connection[Any], rank: int, workers: int
) -> None:
    worker = _reference_worker()
    with pytest.raises(ValueError, match="rank must be in"):
        worker.wait_for_work(db, 0.1, rank=rank, workers=workers)


def test_r6_a_hint_naming_a_rank_nobody_runs_is_taken_over(
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    worker = _reference_worker()
    conn, other = connect(), connect()
    worker.listen(conn)
    # Hint 3 of 4 workers names rank 3, which nobody runs; rank 0 is one rank after it
    # ((0 - 3) mod 4 = 1): it claims after one takeover delay, long before its poll.
    other.execute("SELECT pg_notify(%s, 'RTGS:3')", (worker.CHANNEL,))
    started = time.monotonic()
    woken = worker.wait_for_work(conn, 30.0, rank=0, workers=4, takeover_seconds=0.2)
    took = time.monotonic() - started
    assert woken is False
    assert 0.15 < took < 5.0, took
    # Any login may NOTIFY on the channel: a hostile hint does not end the worker (it was a
    # ValueError out of serve()); it is read as a notification without hint, which wakes
    # every worker (a spurious claim, nothing more).
    other.execute("SELECT pg_notify(%s, %s)", (worker.CHANNEL, "RTGS:\u00b2"))
    assert worker.wait_for_work(conn, 5.0, rank=1, workers=4) is True


# --------------------------------------------------------------------------------------------
# 4. The P7005 guards restated by 0035, on one node
# --------------------------------------------------------------------------------------------


def test_r6_a_hand_written_ledger_row_for_a_queued_job_is_p7005(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    before = _snapshot(db)
    state = _sqlstate(
        db,
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, attempt_no, state, claimed_at, completed_at,"
        " worker_id, recorded_by)"
        " SELECT outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,"
        " rail_type, 1, 'FAILED', now(), now(), 'hand', session_user"
        " FROM public.payment_outbox_pending",
    )
    assert state == "P7005"
    assert _snapshot(db) == before


def test_r6_a_hand_written_queue_row_for_a_finished_job_is_p7005(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    db.execute(*_complete_query(True, "p-1", job, "FAILED"))
    before = _snapshot(db)
    state = _sqlstate(
        db,
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload)"
        " SELECT outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,"
        " rail_type, %s::jsonb FROM public.payment_outbox_attempts",
        (PAYLOAD,),
    )
    assert state == "P7005"
    assert _snapshot(db) == before


# --------------------------------------------------------------------------------------------
# 1 and 2. More differential cases: the twins answer alike and write nothing on refusal
# --------------------------------------------------------------------------------------------


def _enqueue_batch(db: psycopg.Connection[Any], first: bool, rows: list[tuple[str, str]]) -> Any:
    """Both batch enqueues for participant p-1; rows are (instruction, payload)."""
    ins = [r[0] for r in rows]
    keys = [f"k-{r[0]}" for r in rows]
    rails = ["rtgs"] * len(rows)
    payloads = [r[1] for r in rows]
    if first:
        return db.execute(
            "SELECT ordinality, outbox_id, state FROM"
            " public.enqueue_payment_outbox_batch_for_participant('p-1', %s, %s, %s,"
            " %s::jsonb[])",
            (ins, keys, rails, payloads),
        ).fetchall()
    return db.execute(
        "SELECT ordinality, outbox_id, state FROM public.enqueue_payment_outbox_batch(%s, %s, %s,"
        " %s, %s::jsonb[])",
        (ins, ["p-1"] * len(rows), keys, rails, payloads),
    ).fetchall()


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_batch_enqueue_twins_on_a_key_given_twice(
    db: psycopg.Connection[Any], first: bool
) -> None:
    other = '{"amount": 101, "currency": "ZAR"}'
    before = _snapshot(db)
    with pytest.raises(psycopg.Error) as info:
        _enqueue_batch(db, first, [("i-1", PAYLOAD), ("i-2", PAYLOAD), ("i-1", other)])
    assert info.value.sqlstate == "P7004"
    assert _snapshot(db) == before
    rows = _enqueue_batch(db, first, [("i-1", PAYLOAD), ("i-1", PAYLOAD)])
    assert len(rows) == 2 and rows[0][1] == rows[1][1]
    count = db.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone()
    assert count is not None and count[0] == 1


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_batch_completion_twins_on_rail_references(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    outbox.enqueue("i-2", participant_id="p-1")
    job = _claim(db, "p-1")
    name = (
        "complete_outbox_attempts_batch_for_participant('p-1', "
        if first
        else "complete_outbox_attempts_batch("
    )
    before = _snapshot(db)
    # A dispatch without its reference on a rail that returns references: 22023.
    state = _sqlstate(
        db,
        f"SELECT * FROM public.{name}'w-1', ARRAY[%s]::uuid[], ARRAY[%s]::uuid[],"
        " ARRAY['DISPATCHED'], ARRAY[NULL]::text[])",
        (job.outbox_id, job.lease_token),
    )
    assert state == "22023"
    # A reference too long, an error message too long, a negative latency: 22023.
    for extra in (
        "p_rail_references => ARRAY[repeat('r', 1025)]",
        "p_rail_references => ARRAY['r'], p_error_messages => ARRAY[repeat('m', 4097)]",
        "p_rail_references => ARRAY['r'], p_latency_ms => ARRAY[-1]",
    ):
        state = _sqlstate(
            db,
            f"SELECT * FROM public.{name}'w-1', ARRAY[%s]::uuid[], ARRAY[%s]::uuid[],"
            f" ARRAY['DISPATCHED'], {extra})",
            (job.outbox_id, job.lease_token),
        )
        assert state == "22023", extra
    assert _snapshot(db) == before
    # A reference another job of the rail reported: P7013, nothing recorded.
    db.execute(*_complete_query(first, "p-1", job, "DISPATCHED"))
    second = _claim(db, "p-1")
    before = _snapshot(db)
    state = _sqlstate(
        db,
        f"SELECT * FROM public.{name}'w-1', ARRAY[%s]::uuid[], ARRAY[%s]::uuid[],"
        " ARRAY['DISPATCHED'], ARRAY[%s])",
        (second.outbox_id, second.lease_token, f"ref-{job.outbox_id}"),
    )
    assert state == "P7013"
    assert _snapshot(db) == before


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_single_completion_twins_on_oversized_and_null_arguments(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    name = "complete_outbox_attempt_for_participant" if first else "complete_outbox_attempt"
    lead = "'p-1', " if first else ""
    before = _snapshot(db)
    for args, expected in (
        (f"{lead}%s, %s, repeat('w', 1025), 'FAILED'", "22023"),
        (f"{lead}%s, %s, 'w-1', NULL", "22023"),
        (f"{lead}%s, %s, 'w-1', 'FAILED', p_error_message => repeat('m', 4097)", "22023"),
        (f"{lead}%s, %s, 'w-1', 'FAILED', p_latency_ms => -1", "22023"),
        (f"{lead}%s, %s, 'w-1', 'CANCELLED'", "P7003"),
        (f"{lead}%s, %s, 'w-2', 'FAILED'", "P7002"),
        (f"{lead}%s, gen_random_uuid(), 'w-1', 'FAILED'", "P7002"),
    ):
        params = (job.outbox_id,) if "gen_random_uuid" in args else (job.outbox_id, job.lease_token)
        state = _sqlstate(db, f"SELECT * FROM public.{name}({args})", params)
        assert state == expected, (args, state)
    state = _sqlstate(
        db, f"SELECT * FROM public.{name}({lead}NULL, %s, 'w-1', 'FAILED')", (job.lease_token,)
    )
    assert state == "22023"
    assert _snapshot(db) == before


def test_r6_extend_of_another_participants_lease_is_p7002(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-a", participant_id="p-a")
    job = _claim(db, "p-a")
    before = _snapshot(db)
    expiry = db.execute(
        "SELECT lease_expires_at FROM public.payment_outbox_pending WHERE outbox_id = %s",
        (job.outbox_id,),
    ).fetchone()
    state = _sqlstate(
        db,
        "SELECT public.extend_outbox_lease_for_participant('p-b', %s, %s, 'w-1', 600)",
        (job.outbox_id, job.lease_token),
    )
    assert state == "P7002"
    after = db.execute(
        "SELECT lease_expires_at FROM public.payment_outbox_pending WHERE outbox_id = %s",
        (job.outbox_id,),
    ).fetchone()
    assert after == expiry
    assert _snapshot(db) == before


_HAND_ATTEMPT = (
    "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
    " sequence_id, idempotency_key, rail_type, attempt_no, state, claimed_at, completed_at,"
    " worker_id, recorded_by) VALUES (%s, %s, %s, 1, %s, 'RTGS', %s, %s, now(), now(), 'hand',"
    " session_user)"
)


def test_r6_a_hand_written_ledger_row_naming_another_participant_is_refused(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    before = _snapshot(db)
    # Still queued: the one-node guard finds the queue row by outbox_id alone (P7005), whatever
    # participant the hand-written row names.
    state = _sqlstate(
        db, _HAND_ATTEMPT, (job.outbox_id, "i-1", "p-2", job.idempotency_key, 1, "FAILED")
    )
    assert state == "P7005"
    assert _snapshot(db) == before
    db.execute(*_complete_query(True, "p-1", job, "FAILED"))
    before = _snapshot(db)
    # Finished: an attempt naming another participant is 23505 (guard_attempt_participant).
    state = _sqlstate(
        db, _HAND_ATTEMPT, (job.outbox_id, "i-1", "p-2", job.idempotency_key, 2, "RETRYABLE")
    )
    assert state == "23505"
    assert _snapshot(db) == before


def test_r6_a_key_row_a_guard_writes_records_the_participant_and_stays_global(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    job_id = uuid.uuid4()
    db.execute(_HAND_ATTEMPT, (job_id, "i-9", "p-9", "k-9", 1, "FAILED"))
    row = db.execute(
        "SELECT outbox_id, participant_id FROM public.payment_outbox_idempotency_keys"
        " WHERE instruction_id = 'i-9' AND idempotency_key = 'k-9'"
    ).fetchone()
    assert row == (job_id, "p-9")
    before = _snapshot(db)
    with outbox.raises("P7004"):
        outbox.enqueue("i-9", participant_id="p-8", idempotency_key="k-9")
    with outbox.raises("P7004"):
        db.execute(
            "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant('p-8',"
            " ARRAY['i-9'], ARRAY['k-9'], ARRAY['rtgs'], ARRAY[%s::jsonb])",
            (PAYLOAD,),
        )
    assert _snapshot(db) == before


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r6_completion_waiting_for_a_take_over_claim_is_p7002(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    first: bool,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    outbox.expire_leases()
    take_over = (
        ("SELECT * FROM public.claim_outbox_batch_for_participant('p-1', 10, 'w-2', 30)",)
        if first
        else ("SELECT * FROM public.claim_outbox_batch(10, 'w-2', 30)",)
    )
    got = _race(
        connect(), connect(), take_over, _complete_query(not first, "p-1", job, "DISPATCHED")
    )
    assert got == "P7002"
    assert _terminal(db, job.outbox_id) == []
    row = outbox.pending(job.outbox_id)
    assert row is not None and row["claimed_by"] == "w-2" and row["in_doubt"]


def test_r6_a_job_claimed_by_the_single_node_claim_completes_only_for_its_participant(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    (job,) = outbox.claim(10, "w-1")
    before = _snapshot(db)
    assert _sqlstate(db, *_complete_query(True, "p-2", job, "DISPATCHED")) == "P7002"
    assert _snapshot(db) == before
    db.execute(*_complete_query(True, "p-1", job, "DISPATCHED"))
    assert _terminal(db, job.outbox_id) == ["DISPATCHED"]


def test_r6_a_hand_deleted_head_still_promotes_the_next_job(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    # promote_outbox_head() now goes through outbox_promote_participant_head (0034): a head
    # deleted by hand, even under a live lease, still hands the head to the participant's next
    # job, and another participant's head is untouched.
    for n in range(3):
        outbox.enqueue(f"i-{n}", participant_id="p-1")
    outbox.enqueue("i-x", participant_id="p-2")
    job = _claim(db, "p-1")
    db.execute("DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s", (job.outbox_id,))
    heads = db.execute(
        "SELECT participant_id, instruction_id FROM public.payment_outbox_pending"
        " WHERE is_head ORDER BY participant_id"
    ).fetchall()
    assert heads == [("p-1", "i-1"), ("p-2", "i-x")]


def test_r6_no_security_definer_function_is_executable_by_a_login_without_role(
    login: LoginFactory,
) -> None:
    who = login()
    rows = who.conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND p.prosecdef"
        " AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1"
    ).fetchall()
    assert rows == []
    assert _sqlstate(who.conn, "SELECT public.outbox_promote_participant_head('p-1')") == "42501"


@pytest.mark.parametrize("delay", [None, -5, 0, 2147483647])
def test_r6_retry_delays_at_the_edges_are_scheduled_alike_by_both_twins(
    outbox: Outbox, db: psycopg.Connection[Any], delay: int | None
) -> None:
    outcomes = []
    for first, participant in ((True, "p-1"), (False, "p-2")):
        outbox.enqueue(f"i-{participant}", participant_id=participant)
        job = _claim(db, participant)
        name = "complete_outbox_attempt_for_participant" if first else "complete_outbox_attempt"
        lead = "%s, " if first else ""
        params = ((participant,) if first else ()) + (job.outbox_id, job.lease_token, delay)
        state = _sqlstate(
            db,
            f"SELECT * FROM public.{name}({lead}%s, %s, 'w-1', 'RETRYABLE',"
            " p_retry_delay_seconds => %s)",
            params,
        )
        row = db.execute(
            "SELECT round(extract(epoch FROM next_attempt_at - now()) / 60)"
            " FROM public.payment_outbox_pending WHERE outbox_id = %s",
            (job.outbox_id,),
        ).fetchone()
        assert row is not None
        outcomes.append((state, row[0], [a["state"] for a in outbox.attempts(job.outbox_id)]))
    assert outcomes[0] == outcomes[1], outcomes


@pytest.mark.parametrize("operation", ["cancel_outbox_job", "redrive_outbox_job"])
def test_r6_cancel_and_redrive_twins_on_bad_reasons_and_tickets(
    outbox: Outbox, db: psycopg.Connection[Any], operation: str
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    job = _claim(db, "p-1")
    if operation == "redrive_outbox_job":
        db.execute(*_complete_query(True, "p-1", job, "FAILED"))
    else:
        outbox.expire_leases()
    before = _snapshot(db)
    for reason, ticket in (
        (None, "T"),
        (" ", "T"),
        ("r" * 5000, "T"),
        ("r", None),
        ("r", "t" * 5000),
    ):
        single = _sqlstate(
            db, f"SELECT * FROM public.{operation}(%s, %s, %s)", (job.outbox_id, reason, ticket)
        )
        first = _sqlstate(
            db,
            f"SELECT * FROM public.{operation}_for_participant('p-1', %s, %s, %s)",
            (job.outbox_id, reason, ticket),
        )
        assert single == first, (reason and len(reason), ticket and len(ticket), single, first)
        assert single is not None and single.startswith("22"), single
    assert _snapshot(db) == before
    # The same arguments under another participant: an unknown job (P7010), nothing written.
    state = _sqlstate(
        db,
        f"SELECT * FROM public.{operation}_for_participant('p-2', %s, 'r', 'T')",
        (job.outbox_id,),
    )
    assert state == "P7010"
    assert _snapshot(db) == before


def _batch_query(first: bool, participant: str, job: ClaimedRow, state: str) -> Any:
    lead = "%s, " if first else ""
    name = (
        "complete_outbox_attempts_batch_for_participant"
        if first
        else "complete_outbox_attempts_batch"
    )
    return (
        f"SELECT * FROM public.{name}({lead}'w-1', ARRAY[%s]::uuid[], ARRAY[%s]::uuid[],"
        " ARRAY[%s], ARRAY[%s])",
        ((participant,) if first else ())
        + (job.outbox_id, job.lease_token, state, f"ref-{job.outbox_id}"),
    )


@pytest.mark.parametrize(
    ("holder", "waiter"),
    [("batch-first", "one-single"), ("one-single", "batch-first"), ("batch-single", "one-first")],
)
def test_r6_a_batch_and_a_single_completion_of_one_job_race(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    holder: str,
    waiter: str,
) -> None:
    outbox.enqueue("i-1", participant_id="p-1")
    outbox.enqueue("i-2", participant_id="p-1")
    job = _claim(db, "p-1")

    def call(kind: str) -> Any:
        shape, api = kind.split("-")
        make = _batch_query if shape == "batch" else _complete_query
        return make(api == "first", "p-1", job, "DISPATCHED")

    got = _race(connect(), connect(), call(holder), call(waiter))
    assert got == "P7002"
    assert _terminal(db, job.outbox_id) == ["DISPATCHED"]
    heads = db.execute(
        "SELECT instruction_id FROM public.payment_outbox_pending WHERE is_head"
    ).fetchall()
    assert heads == [("i-2",)]
