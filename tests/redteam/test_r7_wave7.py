"""Red team of the seventh wave (revisions 0037 set-based completion, 0038 lean queue row) on
one node: the inlined argument checks against the bodies they replaced, the set-based
rail-reference writer (owner only, batch rules, concurrent batches), the payload's one copy
(claims, jobs queued with and without a queue copy, a missing payload row) and the batched
completion under concurrency."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[2] / "alembic" / "versions"

# The bodies 0037/0038 replaced, from the revisions that last stated them (immutable files).
_OLD_BODIES = {
    "complete_outbox_attempt": "0032_hot_path_round_two.sql",
    "complete_outbox_attempts_batch": "0032_hot_path_round_two.sql",
    "claim_outbox_batch": "0033_wake_one_worker.sql",
    "claim_outbox_batch_for_participant": "0029_claim_for_participant.sql",
    "complete_outbox_attempt_for_participant": "0034_participant_first.sql",
    "complete_outbox_attempts_batch_for_participant": "0034_participant_first.sql",
}


def _install_old_bodies(db: psycopg.Connection[Any]) -> None:
    """The pre-0037/0038 bodies as r7old.<name>, reading and writing the same tables."""
    db.execute("CREATE SCHEMA r7old")
    for name, file in _OLD_BODIES.items():
        text = (VERSIONS / file).read_text()
        starts = [
            m.start()
            for m in re.finditer(rf"CREATE (?:OR REPLACE )?FUNCTION public\.{name}\(", text)
        ]
        assert starts, (name, file)
        start = starts[-1]
        end = text.index("$$;", text.index("AS $$", start) + 5) + 3
        body = text[start:end].replace(f"public.{name}(", f"r7old.{name}(", 1)
        db.execute(body.encode())


def _outcome(
    conn: psycopg.Connection[Any], query: str, params: Any = None
) -> tuple[str | None, str | None, int]:
    """(SQLSTATE, primary message, rows) of ``query`` run in a transaction rolled back after."""
    try:
        with conn.transaction(force_rollback=True):
            rows = conn.execute(query, params).fetchall()
    except psycopg.Error as exc:
        return exc.sqlstate, exc.diag.message_primary, 0
    return None, None, len(rows)


def _snapshot(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM public.payment_outbox_attempts),"
        " (SELECT count(*) FROM public.outbox_rail_references),"
        " (SELECT coalesce(string_agg(outbox_id::text || ':' || coalesce(lease_token::text, '-')"
        "   || ':' || attempt_count, ',' ORDER BY outbox_id), '')"
        "   FROM public.payment_outbox_pending)"
    ).fetchone()
    assert row is not None
    return tuple(row)


# --------------------------------------------------------------------------------------------
# 1. The inlined argument checks against the bodies they replaced
# --------------------------------------------------------------------------------------------

_VALUES: list[Any] = [
    None,
    "",
    " ",
    " \t\n\r\f\x0b",
    "\u00a0",  # no-break space
    "\u2003",  # em space
    "\u3000",  # ideographic space
    "\u200b",  # zero-width space
    "\u0085",  # next line
    "\u2028",  # line separator
    "\x01",
    "\x7f",
    "\x1f \x1e",
    "w",
    "\u00e9" * 512,  # 1024 bytes
    "\u00e9" * 512 + "x",  # 1025 bytes
    "\u20ac" * 341 + "x",  # 1024 bytes
    "\u20ac" * 342,  # 1026 bytes
    "\U0001f600" * 256,  # 1024 bytes
    "\U0001f600" * 256 + " ",  # 1025 bytes
    "\u20ac" * 1365 + "x",  # 4096 bytes
    "\u20ac" * 1366,  # 4098 bytes
]

# (name, call with {} for the attacked argument); the leased job is $1/$2, claimed by 'w-1'.
_CALLS: list[tuple[str, str]] = [
    ("complete_outbox_attempt", "{f}(%(id)s, %(tok)s, %(v)s, 'FAILED')"),
    (
        "complete_outbox_attempt",
        "{f}(%(id)s, %(tok)s, 'w-1', 'DISPATCHED', p_rail_reference => %(v)s)",
    ),
    ("complete_outbox_attempt", "{f}(%(id)s, %(tok)s, 'w-1', 'FAILED', p_rail_code => %(v)s)"),
    ("complete_outbox_attempt", "{f}(%(id)s, %(tok)s, 'w-1', 'FAILED', p_error_code => %(v)s)"),
    (
        "complete_outbox_attempt",
        "{f}(%(id)s, %(tok)s, 'w-1', 'RETRYABLE', p_error_message => %(v)s)",
    ),
    ("complete_outbox_attempt", "{f}(%(id)s, %(tok)s, %(v)s, NULL)"),
    ("complete_outbox_attempt", "{f}(NULL, %(tok)s, %(v)s, 'FAILED')"),
    (
        "complete_outbox_attempts_batch",
        "{f}(%(v)s, ARRAY[%(id)s]::uuid[], ARRAY[%(tok)s]::uuid[], ARRAY['FAILED'])",
    ),
    (
        "complete_outbox_attempts_batch",
        "{f}(%(v)s, ARRAY[%(id)s]::uuid[], ARRAY[NULL]::uuid[], ARRAY['FAILED'])",
    ),
    (
        "complete_outbox_attempts_batch",
        "{f}('w-1', ARRAY[%(id)s]::uuid[], ARRAY[%(tok)s]::uuid[], ARRAY['DISPATCHED'],"
        " p_rail_references => ARRAY[%(v)s])",
    ),
    (
        "complete_outbox_attempts_batch",
        "{f}('w-1', ARRAY[%(id)s]::uuid[], ARRAY[%(tok)s]::uuid[], ARRAY['RETRYABLE'],"
        " p_error_messages => ARRAY[%(v)s])",
    ),
    ("claim_outbox_batch", "{f}(10, %(v)s, 30)"),
    ("claim_outbox_batch", "{f}(0, %(v)s, 30)"),
    ("claim_outbox_batch", "{f}(10, %(v)s, 30, ARRAY['rtgs'])"),
    ("claim_outbox_batch", "{f}(10, 'w-2', 30, ARRAY[%(v)s])"),
    ("claim_outbox_batch_for_participant", "{f}(%(v)s, 10, 'w-2', 30)"),
    ("claim_outbox_batch_for_participant", "{f}('p-q', 10, %(v)s, 30)"),
    ("claim_outbox_batch_for_participant", "{f}(%(v)s, 10, %(v)s, 0)"),
    ("claim_outbox_batch_for_participant", "{f}('p-q', 10, 'w-2', 30, ARRAY[%(v)s])"),
]


def test_r7_argument_checks_answer_as_the_bodies_they_replaced(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("i-l", participant_id="p-l")
    (leased,) = outbox.claim(10, "w-1")
    outbox.enqueue("i-q", participant_id="p-q")  # queued: a claim that passes leases it
    _install_old_bodies(db)
    before = _snapshot(db)
    checked = 0
    for name, call in _CALLS:
        for value in _VALUES:
            params = {"id": leased.outbox_id, "tok": leased.lease_token, "v": value}
            new = _outcome(db, "SELECT * FROM " + call.format(f=f"public.{name}"), params)
            old = _outcome(db, "SELECT * FROM " + call.format(f=f"r7old.{name}"), params)
            # The old bodies live outside public, so the ledger's guard refuses their writes
            # (P7005): the argument checks are what is compared, exactly.
            if "22023" in (new[0], old[0]):
                assert new == old, (name, call, value, new, old)
            checked += 1
    assert checked == len(_CALLS) * len(_VALUES)
    assert _snapshot(db) == before


def test_r7_the_predicate_and_the_writer_are_owner_only(
    login: LoginFactory, db: psycopg.Connection[Any]
) -> None:
    for roles in [(), ("symphony_executor",), ("symphony_control",), ("symphony_ingest",)]:
        who = login(*roles)
        for query in (
            "SELECT public.outbox_id_ok('x', 1)",
            "SELECT public.record_outbox_rail_references(ARRAY[gen_random_uuid()], ARRAY[1],"
            " ARRAY['RTGS'], ARRAY['r'])",
            "CREATE OR REPLACE FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer)"
            " RETURNS boolean LANGUAGE sql RETURN true",
            "CREATE FUNCTION public.outbox_id_ok(p_value varchar, p_max_bytes integer)"
            " RETURNS boolean LANGUAGE sql RETURN true",
        ):
            state, _, _ = _outcome(who.conn, query)
            assert state == "42501", (roles, query, state)
    assert db.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone() == (0,)


def test_r7_objects_in_the_callers_temp_schema_do_not_change_the_checks(
    login: LoginFactory, outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    """A login shadows what the SET-clause functions use: a temp table named like the queue and
    temp functions named like the predicate and btrim. Same answers as for a clean session."""
    outbox.enqueue("i-1", participant_id="p-1")
    executor = login("symphony_executor")
    conn = executor.conn
    clean = login("symphony_executor").conn
    conn.execute("CREATE TEMP TABLE payment_outbox_pending (outbox_id uuid)")
    conn.execute("CREATE TEMP TABLE outbox_rail_references (x int)")
    conn.execute(
        "CREATE FUNCTION pg_temp.outbox_id_ok(p_value text, p_max_bytes integer)"
        " RETURNS boolean LANGUAGE sql RETURN true"
    )
    conn.execute("CREATE FUNCTION pg_temp.btrim(text, text) RETURNS text LANGUAGE sql RETURN 'x'")
    conn.execute("SET search_path = pg_temp, public, pg_catalog")
    # Nothing of its own earlier in the path: no schema of its own, nothing in public.
    for query in (
        "CREATE SCHEMA r7_evil",
        "CREATE FUNCTION public.btrim(text, text) RETURNS text LANGUAGE sql RETURN 'x'",
        "CREATE TABLE public.payment_outbox_payloads_x (x int)",
    ):
        assert _outcome(conn, query)[0] == "42501", query
    calls = [
        "SELECT * FROM public.complete_outbox_attempt(%(id)s, %(id)s, %(v)s, 'FAILED')",
        "SELECT * FROM public.complete_outbox_attempts_batch(%(v)s, ARRAY[%(id)s]::uuid[],"
        " ARRAY[%(id)s]::uuid[], ARRAY['FAILED'])",
        "SELECT count(*) FROM public.claim_outbox_batch_for_participant(%(v)s, 10, 'w', 30)",
        "SELECT count(*) FROM public.claim_outbox_batch(10, %(v)s, 30)",
    ]
    for query in calls:
        for value in (" ", "", "x" * 1025, "w"):
            params = {"v": value, "id": uuid.uuid4()}
            got = _outcome(conn, query, params)
            want = _outcome(clean, query, params)
            assert got == want, (query, value, got, want)
    assert outbox.counts().attempts == 0


# --------------------------------------------------------------------------------------------
# 2. The set-based rail-reference writer through the batch
# --------------------------------------------------------------------------------------------


def _leased(outbox: Outbox, db: psycopg.Connection[Any], n: int, tag: str) -> list[Any]:
    for i in range(n):
        outbox.enqueue(f"{tag}-{i}", participant_id=f"{tag}-p{i}")
    rows = db.execute(
        "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(1000, 'w-1', 300)"
        " WHERE instruction_id LIKE %s",
        (f"{tag}-%",),
    ).fetchall()
    assert len(rows) == n
    by_instruction = {
        r[0]: (r[1], r[2])
        for r in db.execute(
            "SELECT instruction_id, outbox_id, lease_token FROM public.payment_outbox_pending"
            " WHERE instruction_id LIKE %s",
            (f"{tag}-%",),
        ).fetchall()
    }
    return [by_instruction[f"{tag}-{i}"] for i in range(n)]


_BATCH = (
    "SELECT * FROM public.complete_outbox_attempts_batch('w-1', %s::uuid[], %s::uuid[],"
    " %s::text[], p_rail_references => %s::text[])"
)


def _batch(jobs: list[Any], refs: list[Any], states: list[str] | None = None) -> tuple[Any, ...]:
    return (
        [j[0] for j in jobs],
        [j[1] for j in jobs],
        states or ["DISPATCHED"] * len(jobs),
        refs,
    )


def test_r7_batch_reference_rules_all_or_nothing(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    jobs = _leased(outbox, db, 57, "b")
    before = _snapshot(db)
    # The same reference twice in one batch: P7013 naming the first holder, nothing written.
    refs = [f"r-{i}" for i in range(57)]
    refs[40] = "r-3"
    state, message, _ = _outcome(db, _BATCH, _batch(jobs, refs))
    assert state == "P7013", message
    assert str(jobs[3][0]) in (message or "")
    # The 57th element alone breaks the rule (a blank reference on a rail that returns one).
    refs = [f"r-{i}" for i in range(56)] + ["\t "]
    state, message, _ = _outcome(db, _BATCH, _batch(jobs, refs))
    assert state == "22023", message
    assert "element 57" in (message or ""), message
    assert _snapshot(db) == before
    # A reference another job already reported, at the 57th element.
    (other,) = _leased(outbox, db, 1, "o")
    db.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'held')",
        other,
    )
    before = _snapshot(db)
    refs = [f"r-{i}" for i in range(56)] + ["held"]
    state, message, _ = _outcome(db, _BATCH, _batch(jobs, refs))
    assert state == "P7013", message
    assert str(other[0]) in (message or "")
    assert _snapshot(db) == before
    # All good: 57 attempts, 57 references, in one call.
    rows = db.execute(_BATCH, _batch(jobs, [f"r-{i}" for i in range(57)])).fetchall()
    assert len(rows) == 57
    assert db.execute(
        "SELECT count(*) FROM public.outbox_rail_references WHERE rail_reference LIKE 'r-%%'"
    ).fetchone() == (57,)


def test_r7_blank_references_on_a_rail_that_needs_none(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    db.execute("SELECT * FROM public.register_outbox_rail('NOREF', false, 'no references')")
    for i in range(3):
        outbox.enqueue(f"n-{i}", participant_id=f"n-p{i}", rail_type="noref")
    jobs = [(c.outbox_id, c.lease_token) for c in outbox.claim(10, "w-1")]
    rows = db.execute(_BATCH, _batch(jobs, [None, " ", "given"])).fetchall()
    assert len(rows) == 3
    held = db.execute(
        "SELECT rail_code, rail_reference, outbox_id FROM public.outbox_rail_references"
    ).fetchall()
    assert held == [("NOREF", "given", jobs[2][0])]


def test_r7_batches_in_opposite_orders_wait_instead_of_deadlocking(
    outbox: Outbox, db: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    rounds = 8
    jobs = _leased(outbox, db, 4 * rounds, "x")
    results: list[str | None] = []
    for k in range(rounds):
        a = jobs[4 * k : 4 * k + 2]
        b = jobs[4 * k + 2 : 4 * k + 4]
        refs = [f"x-{k}-{i}" for i in range(2)]
        conns = [connect(), connect()]
        barrier = threading.Barrier(2)

        def run(
            conn: psycopg.Connection[Any],
            mine: list[Any],
            order: list[str],
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            try:
                conn.execute(_BATCH, _batch(mine, order))
                results.append(None)
            except psycopg.Error as exc:
                results.append(exc.sqlstate)

        threads = [
            threading.Thread(target=run, args=(conns[0], a, refs)),
            threading.Thread(target=run, args=(conns[1], b, refs[::-1])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
    # Each round: one batch wins, the other is P7013 (never a deadlock).
    assert sorted(results, key=str) == sorted([None, "P7013"] * rounds, key=str), results
    assert db.execute(
        "SELECT count(*) FROM public.outbox_rail_references WHERE rail_reference LIKE 'x-%%'"
    ).fetchone() == (2 * rounds,)


# --------------------------------------------------------------------------------------------
# 3. The payload's one copy
# --------------------------------------------------------------------------------------------

_PAYLOADS = [
    '{"amount": 100, "currency": "ZAR"}',
    '{"b": 1.10, "a": [1, 2.50, {"z": null}], "\u00e9": "\u20ac \\u0001x"}',
    '{"n": 9007199254740991, "e": 0.5e-3, "s": "1.10", "t": true}',
    '{"k": "' + "\U0001f600" * 300 + '"}',
]


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r7_claims_return_the_payload_byte_for_byte(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool
) -> None:
    for i, payload in enumerate(_PAYLOADS):
        outbox.enqueue(f"p-{i}", participant_id=f"pp-{i}", payload=payload)
    for i, payload in enumerate(_PAYLOADS):
        if first:
            query = (
                "SELECT jsonb_send(c.payload) = jsonb_send(%s::jsonb), c.payload IS NULL"
                " FROM public.claim_outbox_batch_for_participant(%s, 10, 'w', 30) AS c"
            )
            rows = db.execute(query, (payload, f"pp-{i}")).fetchall()
        else:
            rows = db.execute(
                "SELECT jsonb_send(c.payload) = jsonb_send(%s::jsonb), c.payload IS NULL"
                " FROM public.claim_outbox_batch(1, 'w', 30) AS c"
                " WHERE c.participant_id = %s",
                (payload, f"pp-{i}"),
            ).fetchall()
        assert rows == [(True, False)], (i, rows)
    # The queue rows carry no copy.
    assert db.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE payload IS NOT NULL"
    ).fetchone() == (0,)


def _old_style(db: psycopg.Connection[Any], outbox_id: Any, drop_payload_row: bool) -> None:
    """A job as queued before 0038 (a queue copy); optionally without its payload row (written
    by hand as the owner, around the append-only trigger)."""
    db.execute("SET session_replication_role = replica")
    try:
        db.execute(
            "UPDATE public.payment_outbox_pending AS p SET payload = x.payload"
            " FROM public.payment_outbox_payloads AS x"
            " WHERE x.outbox_id = p.outbox_id AND p.outbox_id = %s",
            (outbox_id,),
        )
    finally:
        db.execute("RESET session_replication_role")
    if drop_payload_row:
        trigger = "public.payment_outbox_payloads {} TRIGGER trg_deny_outbox_payloads_mutation"
        db.execute("ALTER TABLE " + trigger.format("DISABLE"))
        try:
            db.execute(
                "DELETE FROM public.payment_outbox_payloads WHERE outbox_id = %s", (outbox_id,)
            )
        finally:
            db.execute("ALTER TABLE " + trigger.format("ENABLE ALWAYS"))


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
@pytest.mark.parametrize("drop", [False, True], ids=["with-payload-row", "queue-copy-only"])
def test_r7_jobs_queued_before_0038_claim_complete_repair_and_redrive(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool, drop: bool
) -> None:
    payload = '{"amount": 7, "note": "old"}'
    job = outbox.enqueue("old-1", participant_id="po", payload=payload)[0]
    _old_style(db, job, drop)

    def claim() -> Any:
        if first:
            q = "SELECT * FROM public.claim_outbox_batch_for_participant('po', 10, 'w-1', 30)"
        else:
            q = "SELECT * FROM public.claim_outbox_batch(10, 'w-1', 30)"
        rows = db.execute(q).fetchall()
        assert len(rows) == 1
        return rows[0]

    row = claim()
    assert row[6] == {"amount": 7, "note": "old"}
    # An expired lease repaired, claimed again: still the payload.
    outbox.expire_leases()
    assert len(outbox.repair(10, "w-r")) == 1
    outbox.make_due()
    row = claim()
    assert row[6] == {"amount": 7, "note": "old"}
    # A terminal failure, then redrive: the new job carries the payload.
    outbox.complete(row[0], row[8], "w-1", "FAILED")
    redrive = "SELECT * FROM public.redrive_outbox_job(%s, 'r', 'T-1')"
    if drop:
        # Neither a payload row nor a ledger copy (as before 0038): redrive says so.
        assert _outcome(db, redrive, (row[0],))[0] == "P7012"
        return
    assert db.execute(redrive, (row[0],)).fetchone() is not None
    row = claim()
    assert row[6] == {"amount": 7, "note": "old"}


def test_r7_executor_reads_payloads_only_through_the_claim(
    login: LoginFactory, outbox: Outbox
) -> None:
    outbox.enqueue("s-1", participant_id="ps", payload='{"secret": 1}')
    executor = login("symphony_executor").conn
    for query in (
        "SELECT payload FROM public.payment_outbox_payloads",
        "SELECT payload FROM public.payment_outbox_pending",
        "SELECT * FROM public.payment_outbox_pending",
    ):
        assert _outcome(executor, query)[0] == "42501", query
    rows = executor.execute(
        "SELECT payload FROM public.claim_outbox_batch_for_participant('ps', 10, 'w', 30)"
    ).fetchall()
    assert rows == [({"secret": 1},)]


# --------------------------------------------------------------------------------------------
# 4. The batched completion under concurrency
# --------------------------------------------------------------------------------------------


def test_r7_two_batches_on_overlapping_ids_one_terminal_attempt_each(
    outbox: Outbox, db: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    jobs = _leased(outbox, db, 6, "ov")
    first, second = jobs[:4], jobs[2:]
    holder, waiter = connect(), connect()
    holder.execute("BEGIN")
    holder.execute(_BATCH, _batch(first, [f"ov-a{i}" for i in range(4)]))
    got: list[Any] = []

    def run() -> None:
        try:
            waiter.execute(_BATCH, _batch(second, [f"ov-b{i}" for i in range(4)]))
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc.sqlstate)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1)
    holder.execute("COMMIT")
    thread.join(30)
    assert not thread.is_alive()
    assert got == ["P7002"]  # all or nothing: the two jobs it lost leave its others leased
    for job in jobs:
        terminal = db.execute(
            "SELECT count(*) FROM public.payment_outbox_attempts WHERE outbox_id = %s"
            " AND state::text IN ('DISPATCHED', 'FAILED', 'CANCELLED')",
            (job[0],),
        ).fetchone()
        assert terminal == ((1,) if job in first else (0,)), job
    assert outbox.counts().pending == 2


def test_r7_fifo_head_and_successor_in_one_batch(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    for i in range(3):
        outbox.enqueue(f"f-{i}", participant_id="pf")
    (head,) = outbox.claim(10, "w-1")
    assert head.instruction_id == "f-0"
    successor = db.execute(
        "SELECT outbox_id, gen_random_uuid() FROM public.payment_outbox_pending"
        " WHERE instruction_id = 'f-1'"
    ).fetchone()
    assert successor is not None
    # The successor was never leased: the whole batch is refused, the head stays leased.
    state, _, _ = _outcome(
        db,
        _BATCH,
        _batch([(head.outbox_id, head.lease_token), tuple(successor)], ["fa", "fb"]),
    )
    assert state == "P7002"
    assert outbox.pending(head.outbox_id) is not None
    db.execute(_BATCH, _batch([(head.outbox_id, head.lease_token)], ["fa"]))
    (nxt,) = outbox.claim(10, "w-1")
    assert nxt.instruction_id == "f-1"
    assert [
        r[0]
        for r in db.execute(
            "SELECT instruction_id FROM public.payment_outbox_pending ORDER BY sequence_id"
        ).fetchall()
    ] == ["f-1", "f-2"]
    assert uuid.UUID(str(nxt.outbox_id)) == successor[0]


def test_r7_metrics_and_show_count_jobs_of_both_kinds(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    old = outbox.enqueue("k-old", participant_id="pk", payload='{"v": 1}')[0]
    _old_style(db, old, drop_payload_row=False)
    new = outbox.enqueue("k-new", participant_id="pk", payload='{"v": 2}')[0]
    total = db.execute(
        "SELECT queue_depth, due_now FROM public.outbox_metrics() WHERE is_total"
    ).fetchall()
    assert total == [(2, 2)], total
    from symphony_schema import outbox_ops

    for job, payload in ((old, '{"v": 1}'), (new, '{"v": 2}')):
        history = outbox_ops.job_history(db, job)
        assert history.found and history.payload == payload, (job, history.payload)


def _expired_pair(outbox: Outbox, db: psycopg.Connection[Any]) -> list[Any]:
    jobs = _leased(outbox, db, 2, "rc")
    outbox.expire_leases()
    return jobs


@pytest.mark.parametrize("rival", ["repair", "cancel"])
def test_r7_batch_waiting_for_repair_or_cancel_is_p7002_and_writes_nothing(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    rival: str,
) -> None:
    jobs = _expired_pair(outbox, db)
    holder, waiter = connect(), connect()
    holder.execute("BEGIN")
    if rival == "repair":
        assert (
            len(holder.execute("SELECT * FROM public.repair_expired_leases(10, 'w-r')").fetchall())
            == 2
        )
    else:
        holder.execute("SELECT * FROM public.cancel_outbox_job(%s, 'r', 'T-9')", (jobs[1][0],))
    got: list[Any] = []

    def run() -> None:
        try:
            waiter.execute(_BATCH, _batch(jobs, ["rc-a", "rc-b"]))
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc.sqlstate)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1)
    holder.execute("COMMIT")
    thread.join(30)
    assert not thread.is_alive()
    assert got == ["P7002"]
    assert db.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts"
        " WHERE state::text IN ('DISPATCHED', 'FAILED')"
    ).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone() == (0,)
    if rival == "cancel":
        # The job the cancel did not touch keeps its (expired) lease for a repair.
        assert outbox.pending(jobs[0][0]) is not None
        assert len(outbox.repair(10, "w-r")) == 1


def test_r7_redrive_racing_the_batch_that_fails_the_job(
    outbox: Outbox, db: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    jobs = _leased(outbox, db, 2, "rd")
    holder, waiter = connect(), connect()
    holder.execute("BEGIN")
    holder.execute(_BATCH, _batch(jobs, [None, None], ["FAILED", "FAILED"]))
    got: list[Any] = []

    def run() -> None:
        try:
            waiter.execute("SELECT * FROM public.redrive_outbox_job(%s, 'r', 'T-2')", (jobs[0][0],))
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc.sqlstate)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1)
    holder.execute("COMMIT")
    thread.join(30)
    assert not thread.is_alive()
    assert got[0] in (None, "P7012"), got
    states = [a["state"] for a in outbox.attempts(jobs[0][0])]
    assert states[0] == "FAILED" and states.count("FAILED") == 1, states
    assert states[1:] == (["REDRIVEN"] if got[0] is None else []), states


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
def test_r7_a_job_without_any_payload_copy_can_still_be_finished(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool
) -> None:
    job = outbox.enqueue("np-1", participant_id="pn", payload='{"v": 3}')[0]
    trigger = "public.payment_outbox_payloads {} TRIGGER trg_deny_outbox_payloads_mutation"
    db.execute("ALTER TABLE " + trigger.format("DISABLE"))
    db.execute("DELETE FROM public.payment_outbox_payloads WHERE outbox_id = %s", (job,))
    db.execute("ALTER TABLE " + trigger.format("ENABLE ALWAYS"))
    if first:
        q = "SELECT * FROM public.claim_outbox_batch_for_participant('pn', 10, 'w-1', 30)"
    else:
        q = "SELECT * FROM public.claim_outbox_batch(10, 'w-1', 30)"
    (row,) = db.execute(q).fetchall()
    # What the claim hands out for such a job is left to the report (no copy to return); the
    # job can still be finished under its lease, with one terminal attempt.
    assert outbox.complete(row[0], row[8], "w-1", "FAILED") == (1, "FAILED")
    assert [a["state"] for a in outbox.attempts(job)] == ["FAILED"]
    assert outbox.pending(job) is None


def test_r7_batch_and_multi_job_enqueues_never_deadlock(
    outbox: Outbox, db: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    participants = ["dz-a", "dz-b", "dz-c"]
    for p in participants:
        outbox.enqueue(f"{p}-seed", participant_id=p)
    errors: list[str] = []
    stop = threading.Event()

    def enqueuer(conn: psycopg.Connection[Any], order: list[str]) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with conn.transaction():
                    for p in order:
                        conn.execute(
                            "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs',"
                            " '{\"a\": 1}'::jsonb)",
                            (f"{p}-{id(conn)}-{n}", p, f"k-{p}-{id(conn)}-{n}"),
                        )
            except psycopg.Error as exc:
                errors.append(f"enqueue {exc.sqlstate}: {exc}")

    def completer(conn: psycopg.Connection[Any]) -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                rows = conn.execute(
                    "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(10, 'w-1', 60)"
                ).fetchall()
                if rows:
                    conn.execute(
                        _BATCH,
                        _batch([tuple(r) for r in rows], [f"dz-{k}-{i}" for i in range(len(rows))]),
                    )
            except psycopg.Error as exc:
                errors.append(f"batch {exc.sqlstate}: {exc}")

    threads = [
        threading.Thread(target=enqueuer, args=(connect(), participants)),
        threading.Thread(target=enqueuer, args=(connect(), participants)),
        threading.Thread(target=completer, args=(connect(),)),
    ]
    for t in threads:
        t.start()
    stop.wait(4)
    stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert not [e for e in errors if "40P01" in e], "\n".join(errors[:3])
    done = db.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts WHERE state::text = 'DISPATCHED'"
    ).fetchone()
    assert done is not None and done[0] > 0


@pytest.mark.parametrize("drop", [False, True], ids=["with-payload-row", "queue-copy-only"])
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_r7_idempotent_replay_of_a_job_queued_before_0038(
    outbox: Outbox, db: psycopg.Connection[Any], drop: bool, batch: bool
) -> None:
    payload = '{"amount": 5, "currency": "ZAR"}'
    job = outbox.enqueue("rp-1", participant_id="pr", payload=payload)[0]
    _old_style(db, job, drop)
    before = _snapshot(db)

    def replay(body: str) -> tuple[str | None, str | None, int]:
        if batch:
            return _outcome(
                db,
                "SELECT * FROM public.enqueue_payment_outbox_batch(ARRAY['rp-1'], ARRAY['pr'],"
                " ARRAY['key-rp-1'], ARRAY['rtgs'], ARRAY[%s::jsonb])",
                (body,),
            )
        return _outcome(
            db,
            "SELECT * FROM public.enqueue_payment_outbox('rp-1', 'pr', 'key-rp-1', 'rtgs',"
            " %s::jsonb)",
            (body,),
        )

    assert replay('{"currency": "ZAR", "amount": 5}') == (None, None, 1)
    assert replay('{"amount": 6, "currency": "ZAR"}')[0] == "P7004"
    assert _snapshot(db) == before


@pytest.mark.parametrize("first", [True, False], ids=["participant", "single"])
@pytest.mark.parametrize("old", [False, True], ids=["after-0038", "before-0038"])
def test_r7_a_claim_taking_over_an_expired_lease_returns_the_payload(
    outbox: Outbox, db: psycopg.Connection[Any], first: bool, old: bool
) -> None:
    job = outbox.enqueue("to-1", participant_id="pt", payload='{"v": 9}')[0]
    if old:
        _old_style(db, job, drop_payload_row=False)
    if first:
        q = "SELECT * FROM public.claim_outbox_batch_for_participant('pt', 10, %s, 30)"
    else:
        q = "SELECT * FROM public.claim_outbox_batch(10, %s, 30)"
    (row,) = db.execute(q, ("w-1",)).fetchall()
    assert row[6] == {"v": 9}
    outbox.expire_leases()
    (row,) = db.execute(q, ("w-2",)).fetchall()
    assert row[6] == {"v": 9}, row
    assert row[10] is True  # in doubt: the first lease ended without an outcome


@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
def test_r7_batch_waiting_for_a_single_completion_holding_its_reference(
    outbox: Outbox,
    db: psycopg.Connection[Any],
    connect: Callable[[], psycopg.Connection[Any]],
    end: str,
) -> None:
    jobs = _leased(outbox, db, 3, "hz")
    holder, waiter = connect(), connect()
    holder.execute("BEGIN")
    holder.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'hz-shared')",
        jobs[0],
    )
    got: list[Any] = []

    def run() -> None:
        try:
            waiter.execute(_BATCH, _batch(jobs[1:], ["hz-own", "hz-shared"]))
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc.sqlstate)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1)
    assert thread.is_alive()  # it waits for the holder's reference
    holder.execute(end)
    thread.join(30)
    assert not thread.is_alive()
    held = dict(
        db.execute("SELECT rail_reference, outbox_id FROM public.outbox_rail_references").fetchall()
    )
    if end == "COMMIT":
        assert got == ["P7013"]
        assert held == {"hz-shared": jobs[0][0]}
        assert outbox.pending(jobs[1][0]) is not None and outbox.pending(jobs[2][0]) is not None
    else:
        assert got == [None]
        assert held == {"hz-own": jobs[1][0], "hz-shared": jobs[2][0]}
        assert outbox.pending(jobs[0][0]) is not None


def test_r7_batch_reference_errors_answer_as_the_body_they_replaced(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    jobs = _leased(outbox, db, 3, "df")
    (other,) = _leased(outbox, db, 1, "dh")
    db.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'held')",
        other,
    )
    _install_old_bodies(db)
    before = _snapshot(db)
    cases: list[tuple[list[Any], list[str]]] = [
        ([" ", "a", "b"], ["DISPATCHED"] * 3),
        (["a", None, "b"], ["DISPATCHED"] * 3),
        (["a", "b", "\t"], ["DISPATCHED"] * 3),
        (["a", "b", "a"], ["DISPATCHED"] * 3),
        (["held", "b", "c"], ["DISPATCHED"] * 3),
        (["a", "b", "held"], ["DISPATCHED"] * 3),
        (["a", " ", "held"], ["DISPATCHED"] * 3),
        (["held", " ", "c"], ["DISPATCHED"] * 3),
        ([None, "held", None], ["FAILED", "DISPATCHED", "RETRYABLE"]),
        ([None, " ", None], ["FAILED", "DISPATCHED", "RETRYABLE"]),
        (["x", "x", "x"], ["FAILED", "DISPATCHED", "DISPATCHED"]),
    ]
    compared = 0
    for refs, states in cases:
        params = _batch(jobs, refs, states)
        new = _outcome(db, _BATCH, params)
        old = _outcome(db, _BATCH.replace("public.", "r7old."), params)
        if new[0] is not None or old[0] != "P7005":
            assert new == old, (refs, states, new, old)
            compared += 1
    assert compared == len(cases)  # every case fails, in both bodies, the same way
    assert _snapshot(db) == before


def test_r7_cancel_waiting_for_a_batch_sees_the_finished_job(
    outbox: Outbox, db: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    jobs = _leased(outbox, db, 2, "cb")
    outbox.expire_leases()  # an expired lease: cancel is allowed
    holder, waiter = connect(), connect()
    holder.execute("BEGIN")
    holder.execute(_BATCH, _batch(jobs, [None, None], ["FAILED", "FAILED"]))
    got: list[Any] = []

    def run() -> None:
        try:
            waiter.execute("SELECT * FROM public.cancel_outbox_job(%s, 'r', 'T-3')", (jobs[1][0],))
            got.append(None)
        except psycopg.Error as exc:
            got.append(exc.sqlstate)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(1)
    holder.execute("COMMIT")
    thread.join(30)
    assert not thread.is_alive()
    assert got == ["P7005"]
    assert [a["state"] for a in outbox.attempts(jobs[1][0])] == ["FAILED"]


def test_r7_a_batch_of_heads_promotes_every_successor(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    for p in ("ha", "hb", "hc"):
        for i in range(2):
            outbox.enqueue(f"{p}-{i}", participant_id=p, payload=f'{{"i": {i}}}')
    heads = outbox.claim(10, "w-1")
    assert sorted(h.instruction_id for h in heads) == ["ha-0", "hb-0", "hc-0"]
    states = ["DISPATCHED", "FAILED", "RETRYABLE"]
    db.execute(
        _BATCH.replace(
            "p_rail_references => %s::text[]",
            "p_rail_references => %s::text[], p_retry_delay_seconds => ARRAY[1, 1, 1]",
        ),
        _batch([(h.outbox_id, h.lease_token) for h in heads], ["h-0", None, None], states),
    )
    outbox.make_due()
    again = outbox.claim(10, "w-1")
    # The retried head stays its participant's head; the other two hand over to their successors.
    retried = heads[2].instruction_id
    want = sorted(
        [retried] + [f"{h.participant_id}-1" for h in heads if h.instruction_id != retried]
    )
    assert sorted(r.instruction_id for r in again) == want
    assert all(r.payload == {"i": int(r.instruction_id[-1])} for r in again)


def test_r7_participant_completions_answer_as_the_bodies_they_replaced(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    """0037 has the participant-first completions call the writer directly (without
    record_outbox_rail_reference()'s checks): same answers as their 0034 bodies."""
    outbox.enqueue("pf-1", participant_id="pf")
    (job,) = outbox.claim(10, "w-1")
    (other,) = _leased(outbox, db, 1, "ph")
    db.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'held')",
        other,
    )
    _install_old_bodies(db)
    before = _snapshot(db)
    single = (
        "SELECT * FROM {}.complete_outbox_attempt_for_participant(%(p)s, %(id)s, %(tok)s,"
        " %(w)s, 'DISPATCHED', p_rail_reference => %(v)s)"
    )
    batch = (
        "SELECT * FROM {}.complete_outbox_attempts_batch_for_participant(%(p)s, %(w)s,"
        " ARRAY[%(id)s]::uuid[], ARRAY[%(tok)s]::uuid[], ARRAY['DISPATCHED'],"
        " p_rail_references => ARRAY[%(v)s])"
    )
    compared = 0
    for query in (single, batch):
        for participant in ("pf", " ", None):
            for worker in ("w-1", "\u3000", ""):
                for value in [None, "", " \t", "held", "\u00e9" * 512 + "x", "\u20ac" * 341 + "x"]:
                    params = {
                        "p": participant,
                        "id": job.outbox_id,
                        "tok": job.lease_token,
                        "w": worker,
                        "v": value,
                    }
                    new = _outcome(db, query.format("public"), params)
                    old = _outcome(db, query.format("r7old"), params)
                    if new[0] is not None or old[0] != "P7005":
                        assert new == old, (query, participant, worker, value, new, old)
                        compared += 1
    assert compared > 50
    assert _snapshot(db) == before


def test_r7_the_writer_refuses_arrays_of_different_shapes(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    call = "SELECT public.record_outbox_rail_references(%s::uuid[], %s::int[], %s, %s, %s)"
    a, b = uuid.uuid4(), uuid.uuid4()
    for args in [
        (None, [1], ["RTGS"], ["r"], None),
        ([a], None, ["RTGS"], ["r"], None),
        ([a, b], [1], ["RTGS", "RTGS"], ["r", "s"], None),
        ([a], [1], ["RTGS"], ["r", "s"], None),
        ([a], [1], ["RTGS"], ["r"], [1, 2]),
        ([[a]], [[1]], [["RTGS"]], [["r"]], None),
    ]:
        state, message, _ = _outcome(db, call, args)
        assert state == "22023", (args, state, message)
    assert _outcome(db, call, ([], [], [], [], None)) == (None, None, 1)
    assert db.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone() == (0,)


def test_r7_a_batch_pairs_its_arrays_by_position_whatever_their_bounds(
    outbox: Outbox, db: psycopg.Connection[Any]
) -> None:
    jobs = _leased(outbox, db, 2, "lb")
    ids = f"[0:1]={{{jobs[0][0]},{jobs[1][0]}}}"
    toks = f"[5:6]={{{jobs[0][1]},{jobs[1][1]}}}"
    rows = db.execute(
        "SELECT outbox_id, state::text FROM public.complete_outbox_attempts_batch('w-1',"
        " %s::uuid[], %s::uuid[], '[-3:-2]={DISPATCHED,FAILED}'::text[],"
        " p_rail_references => '[7:8]={lb-ref,NULL}'::text[])",
        (ids, toks),
    ).fetchall()
    assert rows == [(jobs[0][0], "DISPATCHED"), (jobs[1][0], "FAILED")]
    assert db.execute(
        "SELECT rail_reference, outbox_id FROM public.outbox_rail_references"
    ).fetchall() == [("lb-ref", jobs[0][0])]
