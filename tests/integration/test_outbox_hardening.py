"""Revision 0011 (issue 11 items 1-4 and the size limits of item 10): each test reproduces an
attack that succeeded on 0010 and checks the documented answer (ADRs 0060-0063).

1. A lease that expired counts as an attempt however it is found (claim or repair), and a crash
   loop ends FAILED at the retry ceiling.
2. The retry ceiling lives in the database; no session, role or database setting changes it.
3. Enqueue takes no advisory lock: a login holding the old advisory key blocks nobody.
4. The control plane cannot record an attempt of a job that is still queued (P7005), so the real
   completion never fails with 23505.
5. Payload, error message and the other caller-supplied texts have documented size limits (22023).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.privileges import AUDITOR, CONTROL, EXECUTOR, INGEST, READONLY
from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration


def _ceiling(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT public.outbox_retry_ceiling()").fetchone()
    assert row is not None
    return int(row[0])


def _set_ceiling(conn: psycopg.Connection[Any], value: int | None) -> int:
    row = conn.execute("SELECT public.set_outbox_retry_ceiling(%s)", (value,)).fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------
# 1. A crash loop reaches the retry ceiling
# --------------------------------------------------------------------------------------------


def _crash_loop(outbox: Outbox, claims: int) -> list[int]:
    """The issue's repro: claim with a 1 s lease, never complete, wait past the expiry."""
    claimed = []
    for i in range(claims):
        claimed.append(len(outbox.claim(10, f"w{i}", 1)))
        time.sleep(1.2)
    return claimed


def test_a_lease_taken_over_by_claim_counts_as_an_attempt(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]

    assert _crash_loop(outbox, 5) == [1, 1, 1, 1, 1]

    attempts = outbox.attempts(outbox_id)
    assert [(a["attempt_no"], a["state"]) for a in attempts] == [
        (n, "ZOMBIE_REQUEUE") for n in (1, 2, 3, 4)
    ]
    # The same row repair writes: the worker that lost the lease, LEASE_EXPIRED, the taker.
    assert [a["worker_id"] for a in attempts] == ["w0", "w1", "w2", "w3"]
    assert {a["error_code"] for a in attempts} == {"LEASE_EXPIRED"}
    assert all("requeued by w" in a["error_message"] for a in attempts)
    assert {a["completed_at"] for a in attempts} == {None}
    pending = outbox.pending(outbox_id)
    assert pending is not None
    assert (pending["attempt_count"], pending["claimed_by"]) == (4, "w4")


def test_a_crash_loop_ends_failed_at_the_retry_ceiling(outbox: Outbox) -> None:
    other_id = outbox.enqueue("instr-other", participant_id="participant-2")[0]
    assert [r.outbox_id for r in outbox.claim(1, "other", 3600)] == [other_id]
    outbox_id = outbox.enqueue("instr-1")[0]
    _set_ceiling(outbox.conn, 3)

    # Attempts 1 and 2 are zombies; the third expiry reaches the ceiling: FAILED, not leased.
    assert _crash_loop(outbox, 5) == [1, 1, 1, 0, 0]

    attempts = outbox.attempts(outbox_id)
    assert [(a["attempt_no"], a["state"]) for a in attempts] == [
        (1, "ZOMBIE_REQUEUE"),
        (2, "ZOMBIE_REQUEUE"),
        (3, "FAILED"),
    ]
    last = attempts[-1]
    assert last["error_code"] == "LEASE_EXPIRED"
    assert "retry ceiling 3 reached; failed by w3" in last["error_message"]
    assert last["completed_at"] is not None
    assert last["worker_id"] == "w2", "the worker that lost the last lease"
    assert outbox.pending(outbox_id) is None, "terminal: the job left the queue"
    other = outbox.pending(other_id)
    assert other is not None
    assert (other["claimed_by"], other["attempt_count"]) == ("other", 0), "nothing else changed"
    assert outbox.attempts(other_id) == []
    assert outbox.enqueue("instr-1")[3] == "FAILED", "and it is never queued again"


def test_the_worker_that_lost_the_lease_gets_p7002_after_a_take_over(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    (old,) = outbox.claim(1, "w-old")
    outbox.expire_leases()
    (new,) = outbox.claim(1, "w-new")
    assert (new.outbox_id, new.attempt_count) == (outbox_id, 1)

    with outbox.raises("P7002"):
        outbox.complete(old.outbox_id, old.lease_token, "w-old", "DISPATCHED")
    assert outbox.complete(new.outbox_id, new.lease_token, "w-new", "DISPATCHED") == (
        2,
        "DISPATCHED",
    )


def test_repair_fails_an_expired_job_at_the_retry_ceiling(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    _set_ceiling(outbox.conn, 2)
    outbox.claim(1, "w1")
    outbox.expire_leases()
    assert outbox.repair(10, "repairer") == [(outbox_id, 1)]
    outbox.claim(1, "w2")
    outbox.expire_leases()

    assert outbox.repair(10, "repairer") == [(outbox_id, 2)]

    assert [(a["attempt_no"], a["state"]) for a in outbox.attempts(outbox_id)] == [
        (1, "ZOMBIE_REQUEUE"),
        (2, "FAILED"),
    ]
    assert outbox.pending(outbox_id) is None
    assert outbox.claim(10, "w3") == []


def test_a_claim_takes_over_only_what_it_leases(outbox: Outbox) -> None:
    """Expired leases beyond the batch are not recorded (the claim's cost stays bounded by the
    batch); repair or a later claim records them."""
    ids = [outbox.enqueue(f"instr-{i}", participant_id=f"p-{i}")[0] for i in range(3)]
    outbox.claim(3, "w-old")
    outbox.expire_leases()

    (taken,) = outbox.claim(1, "w-new")

    assert taken.outbox_id == ids[0]
    assert outbox.counts().attempts == 1
    assert sorted(o for o, _ in outbox.repair(10, "repairer")) == sorted(ids[1:])


# --------------------------------------------------------------------------------------------
# 2. The retry ceiling lives in the database
# --------------------------------------------------------------------------------------------


def test_a_session_setting_does_not_lift_the_retry_ceiling(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    outbox.conn.execute("SET symphony.outbox_retry_ceiling = '2147483647'")
    results = []
    for _ in range(20):
        outbox.make_due()
        (row,) = outbox.claim(1, "w1")
        results.append(outbox.complete(row.outbox_id, row.lease_token, "w1", "RETRYABLE"))

    assert results[-1] == (20, "FAILED"), "the default ceiling of 20 holds"
    assert outbox.pending(outbox_id) is None


def test_database_and_role_settings_do_not_change_the_retry_ceiling(
    db: psycopg.Connection[Any], migrated_db: Any
) -> None:
    db.execute(f"ALTER DATABASE \"{migrated_db.name}\" SET symphony.outbox_retry_ceiling = '3'")
    db.execute("ALTER ROLE symphony_owner SET symphony.outbox_retry_ceiling = '4'")
    try:
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as fresh:
            assert _ceiling(fresh) == 20
            fresh.execute("SET symphony.outbox_retry_ceiling = 'abc'")
            assert _ceiling(fresh) == 20, "a bad setting is ignored, not an error"
    finally:
        db.execute("ALTER ROLE symphony_owner RESET symphony.outbox_retry_ceiling")


def test_the_ceiling_set_in_the_database_applies_to_every_session(
    db: psycopg.Connection[Any], migrated_db: Any, login: LoginFactory
) -> None:
    control = login(CONTROL).conn
    assert _set_ceiling(control, 7) == 20, "returns the ceiling it replaced"
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as fresh:
        assert _ceiling(fresh) == 7
    assert _set_ceiling(control, 1) == 7
    assert _ceiling(db) == 1
    row = db.execute("SELECT retry_ceiling, updated_by FROM public.outbox_settings").fetchone()
    assert row == (1, control.info.user)


@pytest.mark.parametrize("role", [INGEST, EXECUTOR, READONLY, AUDITOR])
def test_only_control_may_set_the_retry_ceiling(
    outbox: Outbox, login: LoginFactory, role: str
) -> None:
    conn = login(role).conn
    with outbox.raises("42501"):
        _set_ceiling(conn, 1000)
    for statement in (
        "SELECT * FROM public.outbox_settings",
        "UPDATE public.outbox_settings SET retry_ceiling = 1000",
        "SELECT public.outbox_retry_ceiling()",
    ):
        with outbox.raises("42501"):
            conn.execute(statement)
    assert _ceiling(outbox.conn) == 20


@pytest.mark.parametrize("value", [None, 0, -1, -2147483648])
def test_bad_retry_ceilings_raise_22023_and_change_nothing(
    outbox: Outbox, login: LoginFactory, value: int | None
) -> None:
    conn = login(CONTROL).conn
    with outbox.raises("22023", match="p_ceiling"):
        _set_ceiling(conn, value)
    assert _ceiling(outbox.conn) == 20


# --------------------------------------------------------------------------------------------
# 3. Enqueue takes no advisory lock
# --------------------------------------------------------------------------------------------


def test_a_readonly_login_holding_the_old_advisory_key_does_not_block_enqueue(
    outbox: Outbox, outbox_for: type[Outbox], login: LoginFactory, connect: Any
) -> None:
    reader = login(READONLY).conn
    reader.execute(
        "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtextextended("
        "'instr-1' || pg_catalog.chr(31) || 'key-instr-1', 1))"
    )
    caller = connect()
    caller.execute("SET lock_timeout = '500ms'")
    caller.execute("SET statement_timeout = '5s'")

    row = outbox_for(caller).enqueue("instr-1")

    assert row[1:4:2] == (1, "PENDING")
    assert outbox_for(caller).enqueue("instr-1") == row, "and duplicates are still recognised"


def test_no_symphony_function_calls_an_advisory_lock_function(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.prosrc ~* 'pg_advisory'"
    ).fetchall()
    assert rows == []


def test_runtime_roles_cannot_touch_the_idempotency_keys(
    outbox: Outbox, login: LoginFactory
) -> None:
    outbox.enqueue("instr-1")
    for role in (INGEST, EXECUTOR, CONTROL, READONLY, AUDITOR):
        conn = login(role).conn
        for statement in (
            "SELECT * FROM public.payment_outbox_idempotency_keys",
            "SELECT 1 FROM public.payment_outbox_idempotency_keys FOR UPDATE",
            "LOCK TABLE public.payment_outbox_idempotency_keys IN ACCESS SHARE MODE",
        ):
            with outbox.raises("42501"), conn.transaction():
                conn.execute(statement)


def test_a_job_removed_by_hand_without_attempts_is_queued_again(outbox: Outbox) -> None:
    """As before 0011: the key is remembered, but nothing says the job ever ran."""
    first = outbox.enqueue("instr-1")
    outbox.conn.execute("DELETE FROM public.payment_outbox_pending")

    again = outbox.enqueue("instr-1")

    assert again[0] != first[0]
    assert again[1:4:2] == (2, "PENDING")
    row = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_idempotency_keys"
        " WHERE instruction_id = 'instr-1'"
    ).fetchone()
    assert row == (again[0],), "the key names the job it queued last"


def test_a_pending_row_written_by_the_control_plane_is_returned_by_enqueue(
    outbox: Outbox,
) -> None:
    outbox.conn.execute(
        "INSERT INTO public.payment_outbox_pending"
        " (instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload)"
        " VALUES ('instr-1', 'participant-1', 41, 'key-instr-1', 'rtgs',"
        ' \'{"amount": 100, "currency": "ZAR"}\')'
    )
    row = outbox.enqueue("instr-1")
    assert row[1:4:2] == (41, "PENDING")
    assert outbox.counts().pending == 1


# --------------------------------------------------------------------------------------------
# 4. Late or replayed manual inserts
# --------------------------------------------------------------------------------------------
# Since 0019 (issue 20) symphony_control has no DML on the queue or the ledger (it intervenes
# through cancel_outbox_job and redrive_outbox_job; tests/integration/test_outbox_operations.py).
# The guards still bind every writer but the owner, e.g. a DBA's hot fix as a superuser, which is
# who writes below.

_CONTROL_ATTEMPT = (
    "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
    " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, completed_at)"
    " SELECT outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,"
    " payload, %s, %s, now() FROM public.payment_outbox_pending WHERE outbox_id = %s"
)


@pytest.mark.parametrize(("state", "attempt_no"), [("DISPATCHED", 1), ("RETRYABLE", 1)])
def test_a_manual_attempt_of_a_queued_job_is_refused(
    outbox: Outbox, connect: Any, state: str, attempt_no: int
) -> None:
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "w1")
    control = connect()

    with outbox.raises("P7005", match="still queued"):
        control.execute(_CONTROL_ATTEMPT, (attempt_no, state, row.outbox_id))

    assert outbox.counts().attempts == 0
    # The real completion is recorded as usual.
    assert outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED") == (
        1,
        "DISPATCHED",
    )


def test_a_manual_outcome_after_removing_the_job_from_the_queue_is_recorded(
    outbox: Outbox, connect: Any
) -> None:
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "w1")
    control = connect()
    with control.transaction():
        pending = control.execute(
            "DELETE FROM public.payment_outbox_pending WHERE outbox_id = %s RETURNING *",
            (row.outbox_id,),
        ).fetchone()
        assert pending is not None
        control.execute(
            "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
            " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no,"
            " state, completed_at, error_code)"
            " VALUES (%s, 'instr-1', 'participant-1', 1, 'key-instr-1', 'rtgs',"
            " '{\"amount\": 100, \"currency\": \"ZAR\"}', 1, 'FAILED', now(), 'MANUAL')",
            (row.outbox_id,),
        )

    # The late completion is refused with the documented P7002, and the job is not queued again.
    with outbox.raises("P7002"):
        outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    assert outbox.enqueue("instr-1")[3] == "FAILED"
    counts = outbox.counts()
    assert (counts.pending, counts.attempts) == (0, 1)


@pytest.mark.parametrize("how", ["insert", "update"])
def test_a_finished_job_cannot_be_queued_again_by_hand(
    outbox: Outbox, connect: Any, how: str
) -> None:
    """The other direction: a queue row for a job that has its terminal attempt would be
    dispatched again and its completion would fail for ever with 23505."""
    done_id = outbox.enqueue("instr-done")[0]
    (row,) = outbox.claim(1, "w1")
    outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    queued_id = outbox.enqueue("instr-queued")[0]
    control = connect()
    statement = {
        "insert": "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id,"
        " participant_id, sequence_id, idempotency_key, rail_type, payload)"
        " VALUES (%(done)s, 'instr-done', 'participant-1', 1, 'key-instr-done', 'rtgs', '{}')",
        "update": "UPDATE public.payment_outbox_pending SET outbox_id = %(done)s"
        " WHERE outbox_id = %(queued)s",
    }[how]

    with outbox.raises("P7005", match="JOB_ALREADY_TERMINAL"):
        control.execute(statement, {"done": done_id, "queued": queued_id})

    assert outbox.pending(done_id) is None
    assert outbox.pending(queued_id) is not None


def test_a_manual_insert_waits_for_a_completion_in_flight(
    outbox: Outbox, outbox_for: type[Outbox], connect: Any
) -> None:
    """The guard locks the queue row: a completion in flight finishes first, and the manual
    insert then sees the job gone (and meets the one-outcome index, the double-payment guard)."""
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "w1")
    worker = connect()
    worker.autocommit = False
    outbox_for(worker).complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    control = connect()
    control.execute("SET lock_timeout = '300ms'")
    with outbox.raises("55P03"):
        control.execute(
            "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
            " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no,"
            " state) VALUES (%s, 'i', 'p', 1, 'k', 'rtgs', '{}', 2, 'FAILED')",
            (row.outbox_id,),
        )
    worker.commit()
    with outbox.raises("23505", match="uq_payment_outbox_attempts_one_outcome"):
        control.execute(
            "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
            " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no,"
            " state) VALUES (%s, 'i', 'p', 1, 'k', 'rtgs', '{}', 2, 'FAILED')",
            (row.outbox_id,),
        )


# --------------------------------------------------------------------------------------------
# 5. Size limits
# --------------------------------------------------------------------------------------------

PAYLOAD_LIMIT = 65536
ERROR_MESSAGE_LIMIT = 4096
SHORT_TEXT_LIMIT = 1024


def _payload(conn: psycopg.Connection[Any], size: int) -> str:
    """A JSON object whose jsonb text form is exactly ``size`` bytes."""
    empty = conn.execute('SELECT octet_length(\'{"p": ""}\'::jsonb::text)').fetchone()
    assert empty is not None
    payload = '{"p": "' + "x" * (size - int(empty[0])) + '"}'
    measured = conn.execute("SELECT octet_length(%s::jsonb::text)", (payload,)).fetchone()
    assert measured == (size,)
    return payload


def test_a_payload_at_the_limit_is_accepted_and_one_byte_more_is_22023(outbox: Outbox) -> None:
    at_limit = _payload(outbox.conn, PAYLOAD_LIMIT)
    over = _payload(outbox.conn, PAYLOAD_LIMIT + 1)

    assert outbox.enqueue("instr-1", payload=at_limit)[3] == "PENDING"
    with outbox.raises("22023", match="p_payload must be at most 65536 bytes"):
        outbox.enqueue("instr-2", payload=over)
    assert outbox.counts() == OutboxCounts(pending=1, attempts=0, sequences=1)


@pytest.mark.parametrize(
    ("argument", "limit"),
    [
        ("error_message", ERROR_MESSAGE_LIMIT),
        ("rail_reference", SHORT_TEXT_LIMIT),
        ("rail_code", SHORT_TEXT_LIMIT),
        ("error_code", SHORT_TEXT_LIMIT),
    ],
)
def test_completion_texts_at_the_limit_are_accepted_and_one_byte_more_is_22023(
    outbox: Outbox, argument: str, limit: int
) -> None:
    outbox.enqueue("instr-1", "p-1")
    outbox.enqueue("instr-2", "p-2")
    first, second = outbox.claim(2, "w1")

    with outbox.raises("22023", match=f"p_{argument} must be at most {limit} bytes"):
        outbox.complete(
            first.outbox_id,
            first.lease_token,
            "w1",
            "FAILED",
            **{argument: "é" * (limit // 2) + "x"},
        )
    assert outbox.counts().attempts == 0
    assert outbox.complete(
        first.outbox_id, first.lease_token, "w1", "FAILED", **{argument: "é" * (limit // 2)}
    ) == (1, "FAILED")

    batch = (
        "SELECT state::text FROM public.complete_outbox_attempts_batch("
        f"'w1', ARRAY[%s]::uuid[], ARRAY[%s]::uuid[], ARRAY['FAILED'], p_{argument}s => %s)"
    )
    with outbox.raises("22023", match=f"p_{argument}s element 1 must be at most {limit} bytes"):
        outbox.conn.execute(batch, (second.outbox_id, second.lease_token, ["y" * (limit + 1)]))
    assert outbox.conn.execute(
        batch, (second.outbox_id, second.lease_token, ["y" * limit])
    ).fetchall() == [("FAILED",)]


@pytest.mark.parametrize(
    "call",
    [
        "SELECT * FROM public.claim_outbox_batch(1, %s, 30)",
        "SELECT * FROM public.repair_expired_leases(1, %s)",
        "SELECT * FROM public.complete_outbox_attempt(gen_random_uuid(), gen_random_uuid(), %s,"
        " 'DISPATCHED')",
        "SELECT * FROM public.complete_outbox_attempts_batch(%s, ARRAY[gen_random_uuid()],"
        " ARRAY[gen_random_uuid()], ARRAY['DISPATCHED'])",
    ],
)
def test_worker_ids_over_1024_bytes_are_22023(outbox: Outbox, call: str) -> None:
    outbox.enqueue("instr-1")
    with outbox.raises("22023", match="p_worker_id must be at most 1024 bytes"):
        outbox.conn.execute(call, ("w" * (SHORT_TEXT_LIMIT + 1),))
    assert len(outbox.claim(1, "w" * SHORT_TEXT_LIMIT)) == 1


def test_rail_types_over_1024_bytes_are_22023(outbox: Outbox) -> None:
    with outbox.raises("22023", match="p_rail_type must be at most 1024 bytes"):
        outbox.enqueue("instr-1", rail_type="r" * (SHORT_TEXT_LIMIT + 1))
    # 1024 bytes pass the length rule and reach the rails table (0020), which knows no such rail.
    with outbox.raises("22023", match="is not a registered rail"):
        outbox.enqueue("instr-1", rail_type="r" * SHORT_TEXT_LIMIT)
