"""Completion, round three (revision 0037, ADR 0165): the batched completion records its rail
references through the rule's one writer in one call, the single completion runs no rule helper,
and the contract of both stays (all or nothing, the same SQLSTATEs, FIFO and promotion).

The call-count tests fail on 0036's bodies (one writer call and one outbox_require_ids call per
DISPATCHED element; the single completion called four helpers); the hostile tests pin the
contract the set-based statements must keep.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import ClaimedRow, LoginFactory, Outbox

pytestmark = pytest.mark.integration

BATCH = (
    "SELECT outbox_id, attempt_no, state::text FROM public.complete_outbox_attempts_batch("
    "%s, %s::uuid[], %s::uuid[], %s::text[], p_rail_references => %s::text[])"
)


def _calls(db: psycopg.Connection[Any]) -> dict[str, int]:
    """Function calls of this transaction (track_functions = 'all')."""
    rows = db.execute(
        "SELECT funcname, calls FROM pg_catalog.pg_stat_xact_user_functions"
        " WHERE schemaname = 'public'"
    ).fetchall()
    return {str(name): int(calls) for name, calls in rows}


def _claim_one_per_participant(outbox: Outbox, count: int, worker: str = "w-1") -> list[Any]:
    tag = uuid.uuid4().hex[:8]
    outbox.conn.execute(
        "SELECT count(*) FROM pg_catalog.generate_series(1, %s) AS g,"
        " LATERAL public.enqueue_payment_outbox(%s || g, %s || g, 'k-' || %s || g, 'rtgs',"
        " '{\"a\": 1}'::jsonb) AS e",
        (count, f"i-{tag}-", f"p-{tag}-", tag),
    )
    rows = outbox.claim(count, worker, lease_seconds=60)
    assert len(rows) == count
    return sorted(rows, key=lambda r: r.instruction_id)


def _batch(
    conn: psycopg.Connection[Any],
    worker: str,
    rows: Sequence[ClaimedRow],
    states: Sequence[str],
    references: Sequence[str | None] | None = None,
) -> list[tuple[Any, int, str]]:
    if references is None:
        references = [
            f"ref-{r.outbox_id}" if s == "DISPATCHED" else None
            for r, s in zip(rows, states, strict=True)
        ]
    got = conn.execute(
        BATCH,
        (
            worker,
            [r.outbox_id for r in rows],
            [r.lease_token for r in rows],
            list(states),
            list(references),
        ),
    ).fetchall()
    return [(g[0], int(g[1]), str(g[2])) for g in got]


def _written(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Everything a completion writes: the queue rows (with lease and head flag), the ledger and
    the rail references."""
    return (
        conn.execute(
            "SELECT outbox_id, lease_token, is_head, attempt_count FROM"
            " public.payment_outbox_pending ORDER BY outbox_id"
        ).fetchall(),
        conn.execute(
            "SELECT outbox_id, attempt_no, state::text FROM public.payment_outbox_attempts"
            " ORDER BY outbox_id, attempt_no"
        ).fetchall(),
        conn.execute(
            "SELECT rail_code, rail_reference, outbox_id FROM public.outbox_rail_references"
            " ORDER BY rail_code, rail_reference"
        ).fetchall(),
    )


# -- cost, stated through the functions a call runs ------------------------------------------


def test_a_batch_of_100_dispatches_calls_the_reference_writer_once(outbox: Outbox) -> None:
    """0036 called record_outbox_rail_reference and outbox_require_ids once per DISPATCHED
    element (200 nested calls for 100 jobs)."""
    rows = _claim_one_per_participant(outbox, 100)
    outbox.conn.execute("SET track_functions = 'all'")
    with outbox.conn.transaction():
        got = _batch(outbox.conn, "w-1", rows, ["DISPATCHED"] * 100)
        calls = _calls(outbox.conn)
    assert [g[2] for g in got] == ["DISPATCHED"] * 100
    assert calls.get("record_outbox_rail_references") == 1, calls
    for helper in (
        "record_outbox_rail_reference",
        "outbox_require_ids",
        "outbox_pin_plan_settings",
        "outbox_restore_plan_settings",
    ):
        assert helper not in calls, f"the batch called {helper}: {calls}"
    count = outbox.conn.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone()
    assert count == (100,)


def test_a_single_completion_runs_none_of_the_rule_helpers(outbox: Outbox) -> None:
    """0036's single completion called outbox_require_ids, outbox_limit_bytes, the pin/restore
    pair and record_outbox_rail_reference (which the writer now is, called directly)."""
    (row,) = _claim_one_per_participant(outbox, 1)
    outbox.conn.execute("SET track_functions = 'all'")
    outbox.conn.execute("SET plan_cache_mode = 'force_custom_plan'")
    with outbox.conn.transaction():
        assert outbox.complete(row.outbox_id, row.lease_token, "w-1", "DISPATCHED") == (
            1,
            "DISPATCHED",
        )
        calls = _calls(outbox.conn)
        setting = outbox.conn.execute("SHOW plan_cache_mode").fetchone()
    assert setting == ("force_custom_plan",), "the caller's plan_cache_mode was not restored"
    assert calls.get("record_outbox_rail_references") == 1, calls
    for helper in (
        "outbox_require_ids",
        "outbox_limit_bytes",
        "outbox_pin_plan_settings",
        "outbox_restore_plan_settings",
        "record_outbox_rail_reference",
        "outbox_id_ok",  # inlined: never called as a function
    ):
        assert helper not in calls, f"the completion called {helper}: {calls}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"p_outbox_id": None}, "p_outbox_id must not be NULL"),
        ({"p_lease_token": None}, "p_lease_token must not be NULL"),
        ({"p_worker_id": " \t"}, "p_worker_id must be a non-empty string"),
        ({"p_worker_id": None}, "p_worker_id must be a non-empty string"),
        ({"p_state": None}, "p_state must not be NULL"),
        ({"p_worker_id": "w" * 1025}, "p_worker_id must be at most 1024 bytes, got 1025"),
        ({"p_rail_reference": "r" * 1025}, "p_rail_reference must be at most 1024 bytes"),
        ({"p_rail_code": "c" * 1025}, "p_rail_code must be at most 1024 bytes"),
        ({"p_error_code": "c" * 1025}, "p_error_code must be at most 1024 bytes"),
        ({"p_error_message": "m" * 4097}, "p_error_message must be at most 4096 bytes, got 4097"),
        ({"p_latency_ms": -1}, r"p_latency_ms must be NULL or >= 0, got -1"),
    ],
)
def test_the_inlined_checks_name_the_argument_as_before(
    outbox: Outbox, args: dict[str, Any], message: str
) -> None:
    (row,) = _claim_one_per_participant(outbox, 1)
    call: dict[str, Any] = {
        "p_outbox_id": row.outbox_id,
        "p_lease_token": row.lease_token,
        "p_worker_id": "w-1",
        "p_state": "DISPATCHED",
        "p_rail_reference": "ref-1",
        "p_rail_code": None,
        "p_error_code": None,
        "p_error_message": None,
        "p_latency_ms": None,
        **args,
    }
    before = _written(outbox.conn)
    with outbox.raises("22023", match=message):
        outbox.conn.execute(
            "SELECT * FROM public.complete_outbox_attempt(%(p_outbox_id)s, %(p_lease_token)s,"
            " %(p_worker_id)s, %(p_state)s::public.outbox_attempt_state, %(p_rail_reference)s,"
            " %(p_rail_code)s, %(p_error_code)s, %(p_error_message)s, %(p_latency_ms)s)",
            call,
        )
    assert _written(outbox.conn) == before


@pytest.mark.parametrize(
    ("value", "max_bytes"),
    [
        (None, None),
        ("", None),
        (" \t\n\r\f\x0b", 1024),
        ("\u00a0", None),
        ("x", 1),
        ("xy", 1),
        ("é" * 512, 1024),
        ("é" * 513, 1024),
        ("y" * 5000, None),
        (" a ", 3),
    ],
)
def test_the_id_predicate_agrees_with_the_id_rule(
    db: psycopg.Connection[Any], value: str | None, max_bytes: int | None
) -> None:
    """outbox_id_ok (the inlined fast path) is true exactly when outbox_require_ids raises
    nothing, so the fast path can never let through what the rule refuses."""
    row = db.execute("SELECT public.outbox_id_ok(%s, %s)", (value, max_bytes)).fetchone()
    assert row is not None
    try:
        with db.transaction():
            db.execute(
                "SELECT public.outbox_require_ids(ARRAY['p_x'], ARRAY[%s], %s)", (value, max_bytes)
            )
        refused = False
    except psycopg.errors.InvalidParameterValue:
        refused = True
    assert row[0] is not refused


# -- hostile: all or nothing over 100 ----------------------------------------------------------


def test_one_stale_token_among_100_writes_nothing(outbox: Outbox) -> None:
    rows = _claim_one_per_participant(outbox, 100)
    stale = rows[63]._replace(lease_token=uuid.uuid4())
    before = _written(outbox.conn)
    with outbox.raises("P7002", match=f"LEASE_LOST: no live lease on outbox {stale.outbox_id}"):
        _batch(outbox.conn, "w-1", [*rows[:63], stale, *rows[64:]], ["DISPATCHED"] * 100)
    assert _written(outbox.conn) == before


def test_a_reference_conflict_in_row_57_of_100_writes_nothing(outbox: Outbox) -> None:
    (holder,) = _claim_one_per_participant(outbox, 1, worker="w-0")
    outbox.complete(
        holder.outbox_id, holder.lease_token, "w-0", "DISPATCHED", rail_reference="REF-TAKEN"
    )
    rows = _claim_one_per_participant(outbox, 100)
    references: list[str | None] = [f"ref-{r.outbox_id}" for r in rows]
    references[56] = "REF-TAKEN"
    before = _written(outbox.conn)
    with outbox.raises(
        "P7013",
        match=f"RAIL_REFERENCE_REUSED: rail reference 'REF-TAKEN' on rail RTGS was already "
        f"reported by outbox {holder.outbox_id}",
    ):
        _batch(outbox.conn, "w-1", rows, ["DISPATCHED"] * 100, references)
    assert _written(outbox.conn) == before


def test_a_reference_repeated_inside_a_batch_is_p7013_naming_the_earlier_element(
    outbox: Outbox,
) -> None:
    rows = _claim_one_per_participant(outbox, 100)
    references: list[str | None] = [f"ref-{r.outbox_id}" for r in rows]
    references[9] = references[56] = "REF-TWICE"
    before = _written(outbox.conn)
    with outbox.raises("P7013", match=f"already reported by outbox {rows[9].outbox_id}"):
        _batch(outbox.conn, "w-1", rows, ["DISPATCHED"] * 100, references)
    assert _written(outbox.conn) == before


def test_the_first_broken_element_decides_between_22023_and_p7013(outbox: Outbox) -> None:
    """Element order, as 0036's loop checked them: a missing reference before a reused one is
    22023 naming it; a reused one before a missing one is P7013."""
    (holder,) = _claim_one_per_participant(outbox, 1, worker="w-0")
    outbox.complete(
        holder.outbox_id, holder.lease_token, "w-0", "DISPATCHED", rail_reference="REF-TAKEN"
    )
    rows = _claim_one_per_participant(outbox, 100)
    before = _written(outbox.conn)
    references: list[str | None] = [f"ref-{r.outbox_id}" for r in rows]
    references[29] = " "
    references[56] = "REF-TAKEN"
    with outbox.raises(
        "22023",
        match=rf"p_rail_references element 30 \(outbox {rows[29].outbox_id}, DISPATCHED on rail "
        r"RTGS\) must be a non-empty string",
    ):
        _batch(outbox.conn, "w-1", rows, ["DISPATCHED"] * 100, references)
    references[29] = "REF-TAKEN"
    references[56] = None
    with outbox.raises("P7013", match=f"reported by outbox {holder.outbox_id}"):
        _batch(outbox.conn, "w-1", rows, ["DISPATCHED"] * 100, references)
    assert _written(outbox.conn) == before


def test_failed_and_retryable_elements_need_no_reference_among_dispatches(
    outbox: Outbox,
) -> None:
    rows = _claim_one_per_participant(outbox, 100)
    states = ["DISPATCHED", "FAILED", "RETRYABLE", "DISPATCHED"] * 25
    references = [
        f"ref-{r.outbox_id}" if s == "DISPATCHED" else None
        for r, s in zip(rows, states, strict=True)
    ]
    got = _batch(outbox.conn, "w-1", rows, states, references)
    assert got == [(r.outbox_id, 1, s) for r, s in zip(rows, states, strict=True)]
    recorded = outbox.conn.execute(
        "SELECT outbox_id, attempt_no FROM public.outbox_rail_references ORDER BY outbox_id"
    ).fetchall()
    assert recorded == sorted(
        (r.outbox_id, 1) for r, s in zip(rows, states, strict=True) if s == "DISPATCHED"
    )


# -- hostile: FIFO, promotion and the ceiling ----------------------------------------------------


def test_a_batch_with_a_head_and_its_successor_is_stale_and_the_heads_stay(
    outbox: Outbox,
) -> None:
    """Only heads are leased: a successor in the batch has no live lease, so the batch is P7002
    and promotes nothing; without it, each participant's next job becomes its head, a retried
    head stays the head, and the participants drain in sequence order."""
    tag = uuid.uuid4().hex[:6]
    jobs: dict[str, list[Any]] = {}
    for participant, count in (("a", 3), ("b", 2), ("c", 1)):
        for n in range(count):
            row = outbox.enqueue(f"{tag}-{participant}-{n}", participant_id=f"{tag}-{participant}")
            jobs.setdefault(participant, []).append(row[0])
    heads = outbox.claim(10, "w-1", lease_seconds=60)
    assert sorted(h.outbox_id for h in heads) == sorted(jobs[p][0] for p in "abc")
    by_id = {h.outbox_id: h for h in heads}
    a0, b0, c0 = (by_id[jobs[p][0]] for p in "abc")
    successor = a0._replace(outbox_id=jobs["a"][1])
    before = _written(outbox.conn)
    with outbox.raises("P7002", match=f"outbox {jobs['a'][1]}"):
        _batch(
            outbox.conn,
            "w-1",
            [a0, b0, successor, c0],
            ["DISPATCHED", "RETRYABLE", "DISPATCHED", "FAILED"],
        )
    assert _written(outbox.conn) == before

    got = _batch(outbox.conn, "w-1", [c0, a0, b0], ["FAILED", "DISPATCHED", "RETRYABLE"])
    assert got == [
        (c0.outbox_id, 1, "FAILED"),
        (a0.outbox_id, 1, "DISPATCHED"),
        (b0.outbox_id, 1, "RETRYABLE"),
    ]
    flagged = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_pending WHERE is_head ORDER BY outbox_id"
    ).fetchall()
    assert sorted(f[0] for f in flagged) == sorted([jobs["a"][1], jobs["b"][0]])
    outbox.make_due()
    again = outbox.claim(10, "w-1")
    assert sorted(r.outbox_id for r in again) == sorted([jobs["a"][1], jobs["b"][0]])


def test_a_retry_at_the_ceiling_inside_a_batch_fails_once_and_promotes(outbox: Outbox) -> None:
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(2)")
    others = _claim_one_per_participant(outbox, 98)
    tag = uuid.uuid4().hex[:6]
    first = outbox.enqueue(f"{tag}-0", participant_id=tag)[0]
    second = outbox.enqueue(f"{tag}-1", participant_id=tag)[0]
    (lead,) = [r for r in outbox.claim(10, "w-1") if r.outbox_id == first]
    outbox.complete(lead.outbox_id, lead.lease_token, "w-1", "RETRYABLE")  # attempt 1
    outbox.make_due()
    (lead,) = [r for r in outbox.claim(10, "w-1") if r.outbox_id == first]
    rows = [*others[:40], lead, *others[40:]]
    states = ["DISPATCHED"] * 40 + ["RETRYABLE"] + ["RETRYABLE", "DISPATCHED"] * 29
    got = _batch(outbox.conn, "w-1", rows, states)
    assert got[40] == (first, 2, "FAILED")
    assert [g[1:] for g in got[41:]] == [(1, s) for s in states[41:]]
    terminal = outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts WHERE outbox_id = %s"
        " AND state IN ('FAILED', 'DISPATCHED')",
        (first,),
    ).fetchone()
    assert terminal == (1,)
    assert outbox.pending(first) is None
    promoted = outbox.pending(second)
    assert promoted is not None and promoted["is_head"]


# -- hostile: races ----------------------------------------------------------------------------


def _race_round(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> tuple[list[str], list[BaseException]]:
    """One round: 60 leases (20 of them expired); a batch of the first 40, a batch of the last
    40 and a repair start together."""
    rows = _claim_one_per_participant(outbox, 60)
    outbox.expire_leases([r.outbox_id for r in rows[20:40]])
    barrier = threading.Barrier(3)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def batch(part: Sequence[ClaimedRow], states: list[str]) -> None:
        conn = connect()
        try:
            barrier.wait(timeout=10)
            _batch(conn, "w-1", part, states)
            outcomes.append("ok")
        except psycopg.Error as exc:
            outcomes.append(str(exc.sqlstate))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    def repair() -> None:
        conn = connect()
        try:
            barrier.wait(timeout=10)
            conn.execute("SELECT * FROM public.repair_expired_leases(100, 'repairer')")
            outcomes.append("repaired")
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [
        threading.Thread(target=batch, args=(rows[:40], ["DISPATCHED"] * 40)),
        threading.Thread(target=batch, args=(rows[20:], ["FAILED", "RETRYABLE"] * 20)),
        threading.Thread(target=repair),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes, errors


def test_overlapping_batches_racing_repair_record_one_terminal_attempt_each(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """Two batches on overlapping ids and repair_expired_leases on the same (expired) leases, at
    once, five rounds: every call succeeds or is P7002 (all or nothing; ADR 0040's id-order
    locking leaves no deadlock), and no job gets two terminal attempts or two attempts with one
    number."""
    for _round in range(5):
        outcomes, errors = _race_round(outbox, connect)
        assert errors == []
        assert len(outcomes) == 3
        assert set(outcomes) <= {"ok", "P7002", "repaired"}, outcomes
    doubled = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_attempts"
        " GROUP BY outbox_id"
        " HAVING count(*) FILTER (WHERE state IN ('DISPATCHED', 'FAILED')) > 1"
        "     OR count(DISTINCT attempt_no) <> count(*)"
    ).fetchall()
    assert doubled == []
    # No job both left the queue and still has a queue row; every queued job is its
    # participant's only head.
    both = outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending AS p WHERE EXISTS ("
        " SELECT 1 FROM public.payment_outbox_attempts AS a WHERE a.outbox_id = p.outbox_id"
        " AND a.state IN ('DISPATCHED', 'FAILED'))"
    ).fetchone()
    assert both == (0,)
    heads = outbox.conn.execute(
        "SELECT participant_id FROM public.payment_outbox_pending GROUP BY participant_id"
        " HAVING count(*) FILTER (WHERE is_head) <> 1"
    ).fetchall()
    assert heads == []


def test_the_executor_completes_but_cannot_call_the_writer_or_the_predicate(
    login: LoginFactory, outbox: Outbox
) -> None:
    """Both new functions are owner only: the completions reach them as the owner."""
    rows = _claim_one_per_participant(outbox, 2, worker="w-login")
    executor = login("symphony_executor")
    got = _batch(executor.conn, "w-login", rows, ["DISPATCHED", "DISPATCHED"])
    assert [g[2] for g in got] == ["DISPATCHED", "DISPATCHED"]
    for call in (
        "SELECT public.record_outbox_rail_references(ARRAY[gen_random_uuid()], ARRAY[1],"
        " ARRAY['RTGS'], ARRAY['forged'])",
        "SELECT public.outbox_id_ok('x', 1)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            executor.conn.execute(call)


def _reversed_reference_round(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]], size: int
) -> list[str]:
    """Two workers' batches report the same ``size`` references (one job of the rail may hold
    each) in opposite element orders, at once. A test trigger makes the insert of the middle
    reference wait a second, so that each batch holds half of the references when it needs the
    other half: recorded in element order, the two batches deadlock."""
    first = _claim_one_per_participant(outbox, size, worker="w-a")
    second = _claim_one_per_participant(outbox, size, worker="w-b")
    references = [f"shared-{n:04d}" for n in range(size)]
    middle = references[size // 2]
    outbox.conn.execute(
        "CREATE FUNCTION public.test_wait_on_middle_reference() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_catalog.pg_sleep(1); RETURN NEW; END $$"
    )
    outbox.conn.execute(
        "CREATE TRIGGER test_wait_on_middle_reference BEFORE INSERT"
        " ON public.outbox_rail_references FOR EACH ROW"
        f" WHEN (NEW.rail_reference = '{middle}')"
        " EXECUTE FUNCTION public.test_wait_on_middle_reference()"
    )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def batch(worker: str, rows: Sequence[ClaimedRow], refs: list[str]) -> None:
        conn = connect()
        barrier.wait(timeout=10)
        try:
            _batch(conn, worker, rows, ["DISPATCHED"] * size, refs)
            outcomes.append("ok")
        except psycopg.Error as exc:
            outcomes.append(str(exc.sqlstate))

    threads = [
        threading.Thread(target=batch, args=("w-a", first, references)),
        threading.Thread(target=batch, args=("w-b", second, references[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_batches_reporting_the_same_references_in_opposite_orders_do_not_deadlock(
    outbox: Outbox, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """The writer inserts in key order, so one batch waits for the other and then finds the
    references taken (P7013); inserting in element order let them deadlock (40P01)."""
    outcomes = _reversed_reference_round(outbox, connect, 100)
    assert sorted(outcomes) == ["P7013", "ok"], outcomes
