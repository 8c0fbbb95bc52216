"""The payload leaves the queue row (issue 17 P1/P4/P4b, revision 0038, ADR 0167).

Every enqueue wrote the payload twice (queue row and payload row, ADR 0142) and every claim,
head promotion and requeue rewrote it with the whole queue row (non-HOT updates). Since 0038 the
payload row is its one copy: no function writes ``payment_outbox_pending.payload`` (nullable;
rows queued before keep theirs) and the claims return the payload row's payload, falling back to
the queue row's copy only for a job without a payload row.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.migration import api
from symphony_schema.privileges import CONTROL, EXECUTOR, INGEST

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

# Keys in an order jsonb reorders, escapes, non-ASCII, a long exact decimal, nesting: what the
# claim returns must be the very jsonb that was enqueued.
PAYLOADS = [
    '{"z": 1, "a": "x", "memo": "caf\\u00e9 \\"q\\" \\\\ \\n", "amount": "100.00"}',
    '{"amount": 123456789012345, "n": [1, 2, {"deep": null}], "e": {}, "t": true}',
    '{"amount": "0.10", "name": "\\u65e5\\u672c", "x": -0.5}',
]


def _send(conn: psycopg.Connection[Any], payload: str) -> bytes:
    """The jsonb's binary form (jsonb_send): equal bytes, equal document."""
    row = conn.execute("SELECT jsonb_send(%s::jsonb)", (payload,)).fetchone()
    assert row is not None
    return bytes(row[0])


def _claimed_bytes(
    conn: psycopg.Connection[Any], call: str, args: tuple[Any, ...] = ()
) -> dict[Any, bytes]:
    rows = conn.execute(
        f"SELECT c.outbox_id, jsonb_send(c.payload) FROM {call} AS c",
        args,
    ).fetchall()
    return {row[0]: bytes(row[1]) for row in rows}


def _queue_copies(conn: psycopg.Connection[Any]) -> list[Any]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT payload FROM public.payment_outbox_pending ORDER BY outbox_id"
        ).fetchall()
    ]


def test_enqueue_writes_no_queue_copy_and_the_claim_returns_the_payload_byte_for_byte(
    outbox: Outbox,
) -> None:
    ids = {
        outbox.enqueue(f"i-{n}", participant_id=f"p-{n}", payload=payload)[0]: payload
        for n, payload in enumerate(PAYLOADS)
    }
    assert _queue_copies(outbox.conn) == [None, None, None]
    claimed = _claimed_bytes(outbox.conn, "public.claim_outbox_batch(10, 'w', 30)")
    assert claimed == {outbox_id: _send(outbox.conn, p) for outbox_id, p in ids.items()}
    # The take-over statement (an expired lease) returns it the same way.
    outbox.expire_leases()
    claimed = _claimed_bytes(outbox.conn, "public.claim_outbox_batch(10, 'w2', 30)")
    assert claimed == {outbox_id: _send(outbox.conn, p) for outbox_id, p in ids.items()}


def test_the_batch_writes_no_queue_copy_and_each_job_gets_its_own_payload(
    outbox: Outbox,
) -> None:
    # Two participants, a twin (same key twice: one job), payloads all different.
    rows = outbox.conn.execute(
        "SELECT ordinality, outbox_id FROM public.enqueue_payment_outbox_batch("
        "%s, %s, %s, %s, %s::jsonb[])",
        (
            ["i-1", "i-2", "i-3", "i-1"],
            ["p-b", "p-a", "p-b", "p-b"],
            ["k-1", "k-2", "k-3", "k-1"],
            ["RTGS", "rtgs", "RTGS", "rtgs"],
            [PAYLOADS[0], PAYLOADS[1], PAYLOADS[2], PAYLOADS[0]],
        ),
    ).fetchall()
    by_element = dict(rows)
    assert by_element[1] == by_element[4]
    assert _queue_copies(outbox.conn) == [None, None, None]
    stored = dict(
        outbox.conn.execute(
            "SELECT outbox_id, jsonb_send(payload) FROM public.payment_outbox_payloads"
        ).fetchall()
    )
    assert {k: bytes(v) for k, v in stored.items()} == {
        by_element[1]: _send(outbox.conn, PAYLOADS[0]),
        by_element[2]: _send(outbox.conn, PAYLOADS[1]),
        by_element[3]: _send(outbox.conn, PAYLOADS[2]),
    }
    # p-b's second job becomes claimable after its head completes.
    first = _claimed_bytes(outbox.conn, "public.claim_outbox_batch(10, 'w', 30)")
    assert first == {
        by_element[1]: _send(outbox.conn, PAYLOADS[0]),
        by_element[2]: _send(outbox.conn, PAYLOADS[1]),
    }
    head = outbox.pending(by_element[1])
    assert head is not None
    outbox.complete(by_element[1], head["lease_token"], "w", "DISPATCHED")
    assert _claimed_bytes(
        outbox.conn,
        "public.claim_outbox_batch_for_participant('p-b', 10, 'w', 30)",
    ) == {by_element[3]: _send(outbox.conn, PAYLOADS[2])}


def test_the_participant_claim_returns_the_payload_row(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[1])[0]
    assert _queue_copies(outbox.conn) == [None]
    assert _claimed_bytes(
        outbox.conn, "public.claim_outbox_batch_for_participant('p-1', 1, 'w', 30)"
    ) == {outbox_id: _send(outbox.conn, PAYLOADS[1])}
    outbox.expire_leases()
    assert _claimed_bytes(
        outbox.conn, "public.claim_outbox_batch_for_participant('p-1', 1, 'w2', 30)"
    ) == {outbox_id: _send(outbox.conn, PAYLOADS[1])}


def test_a_job_without_a_payload_row_is_claimed_with_its_queue_copy(outbox: Outbox) -> None:
    # Queued before 0024's back-fill, or written around the functions: only the queue row has it.
    outbox.conn.execute(
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, is_head)"
        " VALUES ('01a20000-0000-7000-8000-0000000000a1', 'i-h', 'p-h', 1, 'k-h', 'RTGS',"
        " %s::jsonb, true)",
        (PAYLOADS[2],),
    )
    for call in (
        "public.claim_outbox_batch(10, 'w', 30)",
        "public.claim_outbox_batch_for_participant('p-h', 1, 'w', 30)",
    ):
        outbox.expire_leases()
        assert list(_claimed_bytes(outbox.conn, call).values()) == [_send(outbox.conn, PAYLOADS[2])]


def test_a_replay_with_another_payload_is_still_p7004_and_the_same_one_is_the_job(
    outbox: Outbox,
) -> None:
    first = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[0])
    with outbox.raises("P7004", match="IDEMPOTENCY_CONFLICT"):
        outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[1])
    with outbox.raises("P7004", match="element 1 of the batch: IDEMPOTENCY_CONFLICT"):
        outbox.conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox_batch(%s, %s, %s, %s, %s::jsonb[])",
            (["i-1"], ["p-1"], ["key-i-1"], ["rtgs"], [PAYLOADS[1]]),
        )
    assert outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[0]) == first
    # The same document spelled differently (key order, spacing) is the same payload.
    respelled = '{"amount":"100.00","memo":"caf\\u00e9 \\"q\\" \\\\ \\n","a":"x","z":1}'
    assert outbox.enqueue("i-1", participant_id="p-1", payload=respelled) == first
    assert outbox.counts().pending == 1


@pytest.mark.parametrize("second_payload", [0, 1], ids=["same", "different"])
def test_a_replay_racing_the_first_enqueue_is_one_job_or_p7004(
    connect: Callable[[], psycopg.Connection[Any]], outbox: Outbox, second_payload: int
) -> None:
    first = connect()
    second = connect()
    enqueue = "SELECT outbox_id FROM public.enqueue_payment_outbox('i-r', 'p-r', 'k-r', 'RTGS', %s)"
    first.execute("BEGIN")
    (job,) = first.execute(enqueue, (PAYLOADS[0],)).fetchone()  # type: ignore[misc]
    result: dict[str, Any] = {}

    def replay() -> None:
        try:
            result["row"] = second.execute(enqueue, (PAYLOADS[second_payload],)).fetchone()
        except psycopg.Error as exc:
            result["error"] = exc

    thread = threading.Thread(target=replay)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the replay waits for the first enqueue's key row"
    first.execute("COMMIT")
    thread.join(10)
    if second_payload == 0:
        assert result == {"row": (job,)}
    else:
        assert result["error"].sqlstate == "P7004"
    assert outbox.counts().pending == 1
    assert _queue_copies(outbox.conn) == [None]
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_payloads"
    ).fetchone() == (1,)


def test_redrive_queues_no_copy_from_a_payload_row_or_a_pre_0024_ledger_copy(
    outbox: Outbox, login: LoginFactory
) -> None:
    control = login(CONTROL).conn
    redrive = "SELECT outbox_id FROM public.redrive_outbox_job(%s, 'rail fixed', 'OPS-1')"
    # A job with a payload row.
    old = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[0])[0]
    (job,) = outbox.claim(1, "w")
    outbox.complete(job.outbox_id, job.lease_token, "w", "FAILED")
    (new,) = control.execute(redrive, (old,)).fetchone()  # type: ignore[misc]
    # A job finished before 0024: only its ledger row holds the payload.
    older = "01a20000-0000-7000-8000-0000000000bb"
    outbox.conn.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, completed_at)"
        " VALUES (%s, 'i-old', 'p-old', 1, 'k-old', 'RTGS', %s::jsonb, 1, 'FAILED', now())",
        (older, PAYLOADS[1]),
    )
    (newer,) = (
        login(CONTROL)
        .conn.execute(
            "SELECT outbox_id FROM public.redrive_outbox_job_for_participant("
            "'p-old', %s, 'rail fixed', 'OPS-2')",
            (older,),
        )
        .fetchone()
    )  # type: ignore[misc]
    assert _queue_copies(outbox.conn) == [None, None]
    assert _claimed_bytes(outbox.conn, "public.claim_outbox_batch(10, 'w', 30)") == {
        new: _send(outbox.conn, PAYLOADS[0]),
        newer: _send(outbox.conn, PAYLOADS[1]),
    }


def test_a_role_that_cannot_read_the_payload_table_claims_through_the_functions(
    outbox: Outbox, login: LoginFactory
) -> None:
    ingest = login(INGEST).conn
    (job,) = ingest.execute(
        "SELECT outbox_id FROM public.enqueue_payment_outbox('i-1', 'p-1', 'k-1', 'RTGS', %s)",
        (PAYLOADS[0],),
    ).fetchone()  # type: ignore[misc]
    executor = login(EXECUTOR).conn
    assert _claimed_bytes(executor, "public.claim_outbox_batch(1, 'w', 30)") == {
        job: _send(outbox.conn, PAYLOADS[0])
    }
    outbox.expire_leases()
    assert _claimed_bytes(
        executor, "public.claim_outbox_batch_for_participant('p-1', 1, 'w', 30)"
    ) == {job: _send(outbox.conn, PAYLOADS[0])}
    for conn in (executor, ingest):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT payload FROM public.payment_outbox_payloads")


def test_jobs_queued_before_the_revision_keep_their_copy_and_are_claimed(empty_db: Any) -> None:
    api.upgrade(empty_db.url, "0036_distribute_on_citus")
    enqueue = "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, %s, %s, 'RTGS', %s)"
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        old = conn.execute(enqueue, ("i-o", "p-o", "k-o", PAYLOADS[0])).fetchone()[0]  # type: ignore[index]
    api.upgrade(empty_db.url, "0038_lean_queue_row")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        new = conn.execute(enqueue, ("i-n", "p-n", "k-n", PAYLOADS[1])).fetchone()[0]  # type: ignore[index]
        copies = dict(
            conn.execute("SELECT outbox_id, payload IS NOT NULL FROM public.payment_outbox_pending")
        )
        assert copies == {old: True, new: False}
        assert _claimed_bytes(conn, "public.claim_outbox_batch(10, 'w', 30)") == {
            old: _send(conn, PAYLOADS[0]),
            new: _send(conn, PAYLOADS[1]),
        }
        # A replay of the old job compares against its payload row: still P7004 when it differs.
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(enqueue, ("i-o", "p-o", "k-o", PAYLOADS[1]))
        assert refused.value.sqlstate == "P7004"


# -- the claims' wrapper (0038, ADR 0167) ---------------------------------------------------------


def _calls(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Function calls of the current transaction (track_functions = all)."""
    rows = conn.execute(
        "SELECT funcname, calls FROM pg_catalog.pg_stat_xact_user_functions"
        " WHERE schemaname = 'public'"
    ).fetchall()
    return {str(name): int(calls) for name, calls in rows}


@pytest.mark.parametrize(
    "claim",
    [
        "public.claim_outbox_batch(1, 'w', 30)",
        "public.claim_outbox_batch_for_participant('p-1', 1, 'w', 30)",
    ],
    ids=["claim", "claim-for-participant"],
)
def test_a_plain_claim_runs_none_of_the_wrapper_helpers(outbox: Outbox, claim: str) -> None:
    """Before 0038 every claim called outbox_require_ids (once or twice) and the pin/restore
    pair, three or four PL/pgSQL calls each switching search_path; the plan settings are now
    the claims' SET clauses and the id rule's helper runs only to name a broken argument."""
    outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[0])
    outbox.conn.execute("SET track_functions = 'all'")
    with outbox.conn.transaction():
        (row,) = outbox.conn.execute(f"SELECT c.payload FROM {claim} AS c").fetchall()
        calls = _calls(outbox.conn)
    assert row[0] is not None
    helpers = ("outbox_require_ids", "outbox_pin_plan_settings", "outbox_restore_plan_settings")
    for helper in helpers:
        assert helper not in calls, f"a plain claim called {helper}"
    # The plan settings hold inside the claim and are restored after it.
    assert outbox.conn.execute("SHOW plan_cache_mode").fetchone() == ("auto",)
    config = outbox.conn.execute(
        "SELECT proconfig FROM pg_catalog.pg_proc WHERE oid = %s::regprocedure",
        (
            "public.claim_outbox_batch(integer, text, integer, text[])"
            if claim.startswith("public.claim_outbox_batch(")
            else "public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])",
        ),
    ).fetchone()
    assert config is not None
    assert set(config[0][1:]) == {"plan_cache_mode=force_generic_plan", "enable_seqscan=off"}


@pytest.mark.parametrize(
    ("participant", "worker", "message"),
    [
        ("p-1", None, "p_worker_id must be a non-empty string"),
        ("p-1", " \t", "p_worker_id must be a non-empty string"),
        ("p-1", "w" * 1025, "p_worker_id must be at most 1024 bytes, got 1025"),
        (None, None, "p_participant_id must be a non-empty string"),
        ("", "w", "p_participant_id must be a non-empty string"),
        ("p" * 1025, "w", "p_participant_id must be at most 1024 bytes, got 1025"),
    ],
)
def test_the_claims_still_name_a_broken_id_with_22023_and_write_nothing(
    outbox: Outbox, participant: str | None, worker: str | None, message: str
) -> None:
    outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOADS[0])
    if participant == "p-1":
        with outbox.raises("22023", match=message):
            outbox.conn.execute("SELECT * FROM public.claim_outbox_batch(1, %s, 30)", (worker,))
    with outbox.raises("22023", match=message):
        outbox.conn.execute(
            "SELECT * FROM public.claim_outbox_batch_for_participant(%s, 1, %s, 30)",
            (participant, worker),
        )
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE lease_token IS NOT NULL"
    ).fetchone() == (0,)
