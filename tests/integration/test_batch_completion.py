"""complete_outbox_attempts_batch (revision 0007, ADR 0040): many completions of one worker in one
call, with the fencing and SQLSTATE contract of complete_outbox_attempt, all or nothing.

Leases are expired by moving lease_expires_at into the past, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import ClaimedRow, LoginFactory, Outbox

pytestmark = pytest.mark.integration

BATCH_SQL = (
    "SELECT outbox_id, attempt_no, state::text FROM public.complete_outbox_attempts_batch("
    "p_worker_id => %(worker)s, p_outbox_ids => %(ids)s::uuid[],"
    " p_lease_tokens => %(tokens)s::uuid[], p_states => %(states)s::text[],"
    " p_rail_references => %(rail_references)s::text[], p_rail_codes => %(rail_codes)s::text[],"
    " p_error_codes => %(error_codes)s::text[], p_error_messages => %(error_messages)s::text[],"
    " p_latency_ms => %(latency_ms)s::integer[],"
    " p_retry_delay_seconds => %(retry_delay_seconds)s::integer[])"
)


def complete_batch(
    conn: psycopg.Connection[Any],
    worker: str | None,
    ids: Sequence[Any] | None,
    tokens: Sequence[Any] | None,
    states: Sequence[str | None] | None,
    **optional: Sequence[Any] | None,
) -> list[tuple[Any, int, str]]:
    """Call the batch function with named arguments; optional arrays default to NULL, except
    the rail references: a DISPATCHED element reports ``ref-<outbox_id>`` unless
    ``rail_references`` is given (the registered rails return references, revision 0023)."""
    params: dict[str, Any] = {
        "worker": worker,
        "ids": None if ids is None else list(ids),
        "tokens": None if tokens is None else list(tokens),
        "states": None if states is None else list(states),
        "rail_references": None,
        "rail_codes": None,
        "error_codes": None,
        "error_messages": None,
        "latency_ms": None,
        "retry_delay_seconds": None,
    }
    for key, value in optional.items():
        assert key in params, key
        params[key] = None if value is None else list(value)
    dispatches = states is not None and "DISPATCHED" in states
    if "rail_references" not in optional and ids is not None and states is not None and dispatches:
        params["rail_references"] = [
            f"ref-{outbox_id}" if state == "DISPATCHED" else None
            for outbox_id, state in zip(ids, states, strict=False)
        ]
    rows = conn.execute(BATCH_SQL, params).fetchall()
    return [(row[0], int(row[1]), str(row[2])) for row in rows]


def _claim(outbox: Outbox, count: int, worker: str = "worker-1") -> list[ClaimedRow]:
    for i in range(count):
        instruction = f"instr-{uuid.uuid4().hex[:8]}-{i}"
        outbox.enqueue(instruction, participant_id=f"p-{instruction}")
    rows = outbox.claim(count, worker, lease_seconds=60)
    assert len(rows) == count
    return rows


def _snapshot(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
    pending = conn.execute("SELECT * FROM public.payment_outbox_pending ORDER BY outbox_id")
    attempts = conn.execute("SELECT * FROM public.payment_outbox_attempts ORDER BY attempt_id")
    return pending.fetchall(), attempts.fetchall()


def _now(conn: psycopg.Connection[Any]) -> dt.datetime:
    row = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


def test_batch_records_every_outcome_and_returns_them_in_input_order(outbox: Outbox) -> None:
    rows = _claim(outbox, 4)
    before = _now(outbox.conn)
    order = [rows[2], rows[0], rows[3], rows[1]]

    result = complete_batch(
        outbox.conn,
        "worker-1",
        [r.outbox_id for r in order],
        [r.lease_token for r in order],
        ["DISPATCHED", "FAILED", "RETRYABLE", "DISPATCHED"],
        rail_references=["ref-a", None, None, "ref-d"],
        rail_codes=["00", "51", None, "00"],
        error_codes=[None, "E51", "TIMEOUT", None],
        error_messages=[None, "declined", "rail timeout", None],
        latency_ms=[120, 80, None, 0],
        retry_delay_seconds=[None, None, 120, None],
    )

    assert result == [
        (order[0].outbox_id, 1, "DISPATCHED"),
        (order[1].outbox_id, 1, "FAILED"),
        (order[2].outbox_id, 1, "RETRYABLE"),
        (order[3].outbox_id, 1, "DISPATCHED"),
    ]
    for job in (order[0], order[1], order[3]):
        assert outbox.pending(job.outbox_id) is None, "terminal jobs leave the queue"
    retried = outbox.pending(order[2].outbox_id)
    assert retried is not None
    assert (retried["claimed_by"], retried["lease_token"], retried["lease_expires_at"]) == (
        None,
        None,
        None,
    )
    assert retried["attempt_count"] == 1
    delay = retried["next_attempt_at"] - before
    assert dt.timedelta(seconds=119) < delay < dt.timedelta(seconds=121)

    (failed,) = outbox.attempts(order[1].outbox_id)
    assert {
        key: failed[key]
        for key in ("state", "rail_code", "error_code", "error_message", "latency_ms", "worker_id")
    } == {
        "state": "FAILED",
        "rail_code": "51",
        "error_code": "E51",
        "error_message": "declined",
        "latency_ms": 80,
        "worker_id": "worker-1",
    }
    assert failed["completed_at"] >= before
    (retry,) = outbox.attempts(order[2].outbox_id)
    assert (retry["state"], retry["completed_at"], retry["error_code"]) == (
        "RETRYABLE",
        None,
        "TIMEOUT",
    )
    (dispatched,) = outbox.attempts(order[0].outbox_id)
    assert (dispatched["rail_reference"], dispatched["instruction_id"]) == (
        "ref-a",
        order[0].instruction_id,
    )
    # Revision 0024: the ledger row carries no copy; the payload is stored once per job.
    assert dispatched["payload"] is None


def _ledger_view(outbox: Outbox, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
    """What a completion recorded, without ids and timestamps, one tuple per attempt."""
    rows = outbox.conn.execute(
        "SELECT a.instruction_id, a.attempt_no, a.state::text, a.completed_at IS NOT NULL,"
        " regexp_replace(a.rail_reference, '^(single|batch):', ''), a.rail_code, a.error_code,"
        " a.error_message, a.latency_ms, a.worker_id,"
        " p.attempt_count, p.lease_token IS NULL,"
        " round(extract(epoch FROM p.next_attempt_at - a.created_at))"
        " FROM public.payment_outbox_attempts AS a"
        " LEFT JOIN public.payment_outbox_pending AS p ON p.outbox_id = a.outbox_id"
        " WHERE a.outbox_id = ANY(%s::uuid[]) ORDER BY a.instruction_id, a.attempt_no",
        (list(ids),),
    ).fetchall()
    return [(str(row[0]).split(":")[1], *row[1:]) for row in rows]


def test_batch_records_exactly_what_single_completions_record(outbox: Outbox) -> None:
    outcomes: list[tuple[str, dict[str, Any]]] = [
        ("DISPATCHED", {"rail_reference": "r1", "rail_code": "00", "latency_ms": 5}),
        ("FAILED", {"error_code": "E1", "error_message": "no"}),
        ("RETRYABLE", {"retry_delay_seconds": 30, "error_code": "T"}),
        ("RETRYABLE", {"retry_delay_seconds": -4}),
        ("DISPATCHED", {"rail_reference": "r5"}),
    ]

    def side(name: str, extra: dict[str, Any]) -> dict[str, Any]:
        # A rail reference is unique per rail (revision 0023): each side reports its own.
        if "rail_reference" not in extra:
            return extra
        return {**extra, "rail_reference": f"{name}:{extra['rail_reference']}"}

    for i in range(len(outcomes)):
        outbox.enqueue(f"single:{i}", f"p-single:{i}")
        outbox.enqueue(f"batch:{i}", f"p-batch:{i}")
    single = {r.instruction_id: r for r in outbox.claim(100, "worker-1")}
    batch_rows = [single.pop(f"batch:{i}") for i in range(len(outcomes))]

    for i, (state, extra) in enumerate(outcomes):
        job = single[f"single:{i}"]
        outbox.complete(job.outbox_id, job.lease_token, "worker-1", state, **side("single", extra))
    arrays = {
        "rail_references": [side("batch", extra).get("rail_reference") for _, extra in outcomes],
        "rail_codes": [extra.get("rail_code") for _, extra in outcomes],
        "error_codes": [extra.get("error_code") for _, extra in outcomes],
        "error_messages": [extra.get("error_message") for _, extra in outcomes],
        "latency_ms": [extra.get("latency_ms") for _, extra in outcomes],
        "retry_delay_seconds": [extra.get("retry_delay_seconds", 1) for _, extra in outcomes],
    }
    complete_batch(
        outbox.conn,
        "worker-1",
        [r.outbox_id for r in batch_rows],
        [r.lease_token for r in batch_rows],
        [state for state, _ in outcomes],
        **arrays,
    )

    single_ids = [r.outbox_id for r in single.values()]
    batch_ids = [r.outbox_id for r in batch_rows]
    recorded = _ledger_view(outbox, batch_ids)
    assert len(recorded) == len(outcomes)
    assert recorded == _ledger_view(outbox, single_ids)


def test_batch_attempt_numbers_come_from_the_ledger_and_honour_the_ceiling(
    outbox: Outbox,
) -> None:
    first, second = _claim(outbox, 2)
    complete_batch(
        outbox.conn,
        "worker-1",
        [first.outbox_id, second.outbox_id],
        [first.lease_token, second.lease_token],
        ["RETRYABLE", "RETRYABLE"],
    )
    # A repair event of the first job counts as an attempt too.
    outbox.make_due()
    outbox.claim(1, "worker-crashed")
    outbox.expire_leases()
    assert outbox.repair(10, "repairer") == [(first.outbox_id, 2)]
    outbox.make_due()
    again = {r.outbox_id: r for r in outbox.claim(10, "worker-1")}
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(3)")

    result = complete_batch(
        outbox.conn,
        "worker-1",
        [first.outbox_id, second.outbox_id],
        [again[first.outbox_id].lease_token, again[second.outbox_id].lease_token],
        ["RETRYABLE", "RETRYABLE"],
    )

    assert result == [(first.outbox_id, 3, "FAILED"), (second.outbox_id, 2, "RETRYABLE")]
    assert outbox.pending(first.outbox_id) is None, "the ceiling makes the retry terminal"
    (*_, last) = outbox.attempts(first.outbox_id)
    assert (last["state"], last["completed_at"] is not None) == ("FAILED", True)
    assert [a["state"] for a in outbox.attempts(first.outbox_id)] == [
        "RETRYABLE",
        "ZOMBIE_REQUEUE",
        "FAILED",
    ]


def test_a_batch_of_1000_is_accepted(outbox: Outbox) -> None:
    outbox.conn.execute(
        "SELECT public.enqueue_payment_outbox('bulk-' || g, 'p-' || g, 'k', 'rtgs',"
        " '{\"n\": 1}'::jsonb) FROM generate_series(1, 1000) AS g"
    )
    rows = outbox.claim(1000, "worker-1")

    result = complete_batch(
        outbox.conn,
        "worker-1",
        [r.outbox_id for r in rows],
        [r.lease_token for r in rows],
        ["DISPATCHED"] * len(rows),
    )

    assert [r[0] for r in result] == [r.outbox_id for r in rows]
    counts = outbox.counts()
    assert (counts.pending, counts.attempts) == (0, 1000)


# --------------------------------------------------------------------------------------------
# All or nothing: P7002 and P7003
# --------------------------------------------------------------------------------------------

STALE_CASES = [
    pytest.param("expired", id="expired-and-repaired-lease"),
    pytest.param("token", id="other-token"),
    pytest.param("unknown", id="unknown-outbox"),
    pytest.param("completed", id="already-completed"),
    pytest.param("reclaimed", id="claimed-again"),
]


@pytest.mark.parametrize("case", STALE_CASES)
def test_one_stale_lease_refuses_the_whole_batch_with_p7002(outbox: Outbox, case: str) -> None:
    rows = _claim(outbox, 3)
    ids = [r.outbox_id for r in rows]
    tokens = [r.lease_token for r in rows]
    if case == "expired":
        # An expired lease nobody replaced still completes (revision 0014); a repaired one not.
        outbox.expire_leases([ids[1]])
        outbox.repair(10, "repairer")
    elif case == "token":
        tokens[1] = uuid.uuid4()
    elif case == "unknown":
        ids[1] = uuid.uuid4()
    elif case == "completed":
        outbox.complete(ids[1], tokens[1], "worker-1", "DISPATCHED")
    elif case == "reclaimed":
        outbox.expire_leases([ids[1]])
        assert [r.outbox_id for r in outbox.claim(1, "worker-2")] == [ids[1]]
    before = _snapshot(outbox.conn)

    with outbox.raises("P7002", match=f"LEASE_LOST: no live lease on outbox {ids[1]}"):
        complete_batch(outbox.conn, "worker-1", ids, tokens, ["DISPATCHED"] * 3)

    assert _snapshot(outbox.conn) == before, "a refused batch writes nothing"


def test_p7002_names_the_first_stale_outbox_and_lists_them_all(outbox: Outbox) -> None:
    rows = _claim(outbox, 4)
    ids = [r.outbox_id for r in rows]
    outbox.expire_leases([ids[3], ids[1]])
    outbox.repair(10, "repairer")

    with pytest.raises(psycopg.Error) as info:
        complete_batch(
            outbox.conn, "worker-1", ids, [r.lease_token for r in rows], ["DISPATCHED"] * 4
        )

    error = info.value
    assert error.sqlstate == "P7002"
    assert f"outbox {ids[1]} " in str(error)
    assert "2 of 4 completions in the batch are stale" in str(error)
    assert error.diag.message_detail == f"stale outbox ids: {ids[1]}, {ids[3]}"
    assert "complete the other jobs again" in (error.diag.message_hint or "")


def test_another_workers_batch_is_refused(outbox: Outbox) -> None:
    rows = _claim(outbox, 2)
    with outbox.raises("P7002", match="worker 'worker-2'"):
        complete_batch(
            outbox.conn,
            "worker-2",
            [r.outbox_id for r in rows],
            [r.lease_token for r in rows],
            ["DISPATCHED", "DISPATCHED"],
        )
    assert outbox.counts().attempts == 0


@pytest.mark.parametrize("state", ["DISPATCHING", "ZOMBIE_REQUEUE"])
def test_a_state_a_worker_cannot_report_refuses_the_batch_with_p7003(
    outbox: Outbox, state: str
) -> None:
    rows = _claim(outbox, 2)
    before = _snapshot(outbox.conn)

    with outbox.raises("P7003", match=f"invalid completion state {state} for outbox"):
        complete_batch(
            outbox.conn,
            "worker-1",
            [r.outbox_id for r in rows],
            [r.lease_token for r in rows],
            ["DISPATCHED", state],
        )

    assert _snapshot(outbox.conn) == before


def test_the_lease_check_comes_before_the_state_check(outbox: Outbox) -> None:
    rows = _claim(outbox, 2)
    with outbox.raises("P7002"):
        complete_batch(
            outbox.conn,
            "worker-1",
            [r.outbox_id for r in rows],
            [rows[0].lease_token, uuid.uuid4()],
            ["ZOMBIE_REQUEUE", "DISPATCHED"],
        )


def test_a_retry_ceiling_setting_is_ignored_by_the_batch(outbox: Outbox) -> None:
    """Since 0011 the ceiling is stored in the database (ADR 0061): the old setting, even with a
    value that used to raise 22023, changes nothing."""
    rows = _claim(outbox, 2)
    outbox.conn.execute("SET symphony.outbox_retry_ceiling = 'abc'")

    result = complete_batch(
        outbox.conn,
        "worker-1",
        [r.outbox_id for r in rows],
        [r.lease_token for r in rows],
        ["DISPATCHED", "RETRYABLE"],
    )

    assert [state for _, _, state in result] == ["DISPATCHED", "RETRYABLE"]


# --------------------------------------------------------------------------------------------
# Invalid arguments: 22023 naming the argument, nothing written
# --------------------------------------------------------------------------------------------


def _args(rows: Sequence[ClaimedRow]) -> dict[str, Any]:
    return {
        "worker": "worker-1",
        "ids": [r.outbox_id for r in rows],
        "tokens": [r.lease_token for r in rows],
        "states": ["DISPATCHED", "DISPATCHED"],
    }


INVALID_CASES: list[tuple[str, str, Any]] = [
    ("p_worker_id", "worker", lambda rows: None),
    ("p_worker_id", "worker", lambda rows: "  "),
    ("p_outbox_ids", "ids", lambda rows: None),
    ("p_outbox_ids", "ids", lambda rows: []),
    ("p_outbox_ids", "ids", lambda rows: [uuid.uuid4() for _ in range(1001)]),
    ("p_outbox_ids", "ids", lambda rows: [rows[0].outbox_id, None]),
    ("p_outbox_ids", "ids", lambda rows: [rows[0].outbox_id, rows[0].outbox_id]),
    ("p_lease_tokens", "tokens", lambda rows: None),
    ("p_lease_tokens", "tokens", lambda rows: [rows[0].lease_token]),
    ("p_lease_tokens", "tokens", lambda rows: [rows[0].lease_token, None]),
    ("p_states", "states", lambda rows: None),
    ("p_states", "states", lambda rows: ["DISPATCHED"]),
    ("p_states", "states", lambda rows: ["DISPATCHED", None]),
    ("p_states", "states", lambda rows: ["DISPATCHED", "SUCCEEDED"]),
    ("p_rail_references", "rail_references", lambda rows: ["x"]),
    ("p_rail_codes", "rail_codes", lambda rows: ["x", "y", "z"]),
    ("p_error_codes", "error_codes", lambda rows: ["x"]),
    ("p_error_messages", "error_messages", lambda rows: ["x"]),
    ("p_latency_ms", "latency_ms", lambda rows: [1]),
    ("p_latency_ms", "latency_ms", lambda rows: [5, -1]),
    ("p_retry_delay_seconds", "retry_delay_seconds", lambda rows: [1]),
]


@pytest.mark.parametrize(
    ("argument", "key", "value"),
    [pytest.param(*case, id=f"{case[0]}-{n}") for n, case in enumerate(INVALID_CASES)],
)
def test_invalid_arguments_raise_22023_naming_the_argument(
    outbox: Outbox, argument: str, key: str, value: Any
) -> None:
    rows = _claim(outbox, 2)
    args = _args(rows)
    args[key] = value(rows)
    required = [args.pop(name) for name in ("worker", "ids", "tokens", "states")]
    before = _snapshot(outbox.conn)

    with outbox.raises("22023", match=argument):
        complete_batch(outbox.conn, *required, **args)

    assert _snapshot(outbox.conn) == before


def test_a_two_dimensional_array_is_an_invalid_argument(outbox: Outbox) -> None:
    rows = _claim(outbox, 2)
    with outbox.raises("22023", match="p_outbox_ids"):
        outbox.conn.execute(
            "SELECT * FROM public.complete_outbox_attempts_batch('worker-1',"
            " ARRAY[ARRAY[%s::uuid], ARRAY[%s::uuid]], ARRAY[%s::uuid, %s::uuid],"
            " ARRAY['DISPATCHED', 'DISPATCHED'])",
            (rows[0].outbox_id, rows[1].outbox_id, rows[0].lease_token, rows[1].lease_token),
        )


# --------------------------------------------------------------------------------------------
# Privileges: the executor calls it as a non-superuser login
# --------------------------------------------------------------------------------------------


def test_the_executor_completes_a_batch_and_the_ingest_role_cannot(
    outbox: Outbox, outbox_for: type[Outbox], login: LoginFactory
) -> None:
    rows = _claim(outbox, 2)
    executor = login("symphony_executor")
    ingest = login("symphony_ingest")
    call = (
        executor.conn,
        "worker-1",
        [r.outbox_id for r in rows],
        [r.lease_token for r in rows],
        ["DISPATCHED", "RETRYABLE"],
    )

    with outbox_for(ingest.conn).raises("42501"):
        complete_batch(ingest.conn, *call[1:])
    assert [state for _, _, state in complete_batch(*call)] == ["DISPATCHED", "RETRYABLE"]
