"""Revision 0031 (issue 17 P4/P4b, ADRs 0135, 0136): a cheaper single enqueue, a set-based batch
enqueue with the same rules, and participant_id on the key table (issue 16 prerequisite).

The cost claims are stated through the functions each call runs (pg_stat_xact_user_functions
with track_functions = all): a plain enqueue runs none of the rule helpers, a batch does not call
enqueue once per element. The behaviour claims are hostile: twins inside one batch, replays of
queued and finished jobs mixed with new ones, refusals in every step, concurrent batches."""

from __future__ import annotations

import json
import random
import threading
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.migration import api

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

ENQUEUE = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, %s, %s::jsonb)"
BATCH = (
    "SELECT * FROM public.enqueue_payment_outbox_batch(%s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::jsonb[])"
)
PAYLOAD = {"amount": 100, "currency": "ZAR"}


def _batch(
    conn: psycopg.Connection[Any],
    instructions: list[str],
    participants: list[str],
    payloads: list[Any] | None = None,
    rails: list[str] | None = None,
    keys: list[str] | None = None,
) -> list[tuple[Any, ...]]:
    count = len(instructions)
    return conn.execute(
        BATCH,
        (
            instructions,
            participants,
            keys or [f"key-{i}" for i in instructions],
            rails or ["rtgs"] * count,
            [json.dumps(p) for p in (payloads or [PAYLOAD] * count)],
        ),
    ).fetchall()


def _calls(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Function calls of the current transaction (track_functions = all)."""
    rows = conn.execute(
        "SELECT funcname, calls FROM pg_catalog.pg_stat_xact_user_functions"
        " WHERE schemaname = 'public'"
    ).fetchall()
    return {str(name): int(calls) for name, calls in rows}


def _written(db: psycopg.Connection[Any]) -> tuple[int, ...]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM public.payment_outbox_pending),"
        " (SELECT count(*) FROM public.payment_outbox_idempotency_keys),"
        " (SELECT coalesce(sum(next_sequence_id), 0) FROM public.participant_outbox_sequences),"
        " (SELECT count(*) FROM public.payment_outbox_payloads)"
    ).fetchone()
    assert row is not None
    return tuple(int(v) for v in row)


def _queue(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT participant_id, sequence_id, instruction_id, is_head"
        " FROM public.payment_outbox_pending ORDER BY participant_id, sequence_id"
    ).fetchall()


# -- cost, stated through the functions a call runs ------------------------------------------------


def test_a_plain_enqueue_runs_none_of_the_rule_helpers(db: psycopg.Connection[Any]) -> None:
    """Before 0031 every enqueue called outbox_require_ids, the pin/restore pair,
    outbox_rail_code and the exact number walk (five PL/pgSQL calls); now the inlined predicate
    and the plain-number test decide, and the helpers run only for what they must judge."""
    db.execute("SET track_functions = 'all'")
    with db.transaction():
        db.execute(ENQUEUE, ("i-1", "p-1", "k-1", "rtgs", json.dumps(PAYLOAD))).fetchall()
        calls = _calls(db)
    assert calls.get("enqueue_payment_outbox") == 1
    for helper in (
        "outbox_require_ids",
        "outbox_pin_plan_settings",
        "outbox_restore_plan_settings",
        "outbox_rail_code",
        "check_outbox_payload_numbers",
        "outbox_check_enqueue_args",
        # Inlined predicates are never called (0039 nests outbox_id_ok in the enqueue predicate).
        "outbox_enqueue_args_ok",
        "outbox_id_ok",
    ):
        assert helper not in calls, f"a plain enqueue called {helper}"
    # A payload with a decimal goes through the exact walk (and the rail check before it).
    with db.transaction():
        db.execute(ENQUEUE, ("i-2", "p-1", "k-2", "rtgs", '{"amount": 100.25}')).fetchall()
        calls = _calls(db)
    assert calls.get("check_outbox_payload_numbers") == 1
    assert calls.get("outbox_rail_code") == 1


def test_a_batch_does_not_call_enqueue_per_element(db: psycopg.Connection[Any]) -> None:
    db.execute("SET track_functions = 'all'")
    instructions = [f"b-{n}" for n in range(50)]
    with db.transaction():
        rows = _batch(db, instructions, [f"p-{n % 7}" for n in range(50)])
        calls = _calls(db)
    assert len(rows) == 50
    assert "enqueue_payment_outbox" not in calls, calls
    assert "check_outbox_payload_numbers" not in calls
    assert calls.get("enqueue_payment_outbox_batch") == 1


# -- the key table's participant -------------------------------------------------------------------


def test_both_enqueues_write_the_participant_into_the_key_row(outbox: Outbox) -> None:
    outbox.enqueue("s-1", participant_id="p-single")
    _batch(outbox.conn, ["b-1", "b-2"], ["p-batch", "p-other"])
    rows = outbox.conn.execute(
        "SELECT instruction_id, participant_id FROM public.payment_outbox_idempotency_keys"
        " ORDER BY instruction_id"
    ).fetchall()
    assert rows == [("b-1", "p-batch"), ("b-2", "p-other"), ("s-1", "p-single")]


def test_the_revision_back_fills_the_key_participant(empty_db: Any) -> None:
    api.upgrade(empty_db.url, "0030_citus_worker_defaults")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        for n, participant in enumerate(("p-queued", "p-done", "p-removed", "p-second")):
            conn.execute(ENQUEUE, (f"i-{n}", participant, f"k-{n}", "rtgs", "{}")).fetchall()
        rows = conn.execute("SELECT * FROM public.claim_outbox_batch(10, 'w', 30)").fetchall()
        done = next(r for r in rows if r[2] == "p-done")
        conn.execute(
            "SELECT public.complete_outbox_attempt(%s, %s, 'w', 'FAILED')", (done[0], done[8])
        )
        # Removed by hand before any attempt: only its payload row is left.
        conn.execute("DELETE FROM public.payment_outbox_pending WHERE participant_id = 'p-removed'")
        # A key row without any trace of its job (as after an archive): stays NULL.
        conn.execute(
            "INSERT INTO public.payment_outbox_idempotency_keys (instruction_id, idempotency_key,"
            " outbox_id) VALUES ('i-gone', 'k-gone', '01a20000-0000-7000-8000-0000000000aa')"
        )
    api.upgrade(empty_db.url, "0031_enqueue_set_based")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT instruction_id, participant_id FROM public.payment_outbox_idempotency_keys"
            " ORDER BY instruction_id"
        ).fetchall()
    assert rows == [
        ("i-0", "p-queued"),
        ("i-1", "p-done"),
        ("i-2", "p-removed"),
        ("i-3", "p-second"),
        ("i-gone", None),
    ]


# -- the batch's rules, hostile --------------------------------------------------------------------


def test_a_key_given_twice_in_one_batch_is_one_job_and_a_different_twin_is_refused(
    db: psycopg.Connection[Any],
) -> None:
    rows = _batch(
        db,
        ["t-1", "t-2", "t-1", "t-3"],
        ["p-a", "p-a", "p-a", "p-a"],
        rails=["rtgs", "rtgs", "RTGS", "rtgs"],
    )
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[0][1:] == rows[2][1:]  # the twin answers with the same job
    assert [r[2] for r in rows] == [1, 2, 1, 3]  # gapless: the twin took no number
    assert _queue(db) == [
        ("p-a", 1, "t-1", True),
        ("p-a", 2, "t-2", False),
        ("p-a", 3, "t-3", False),
    ]
    before = _written(db)
    for twin in (
        {"payloads": [PAYLOAD, PAYLOAD, {"amount": 5}]},
        {"participants": ["p-x", "p-x", "p-y"]},
        {"rails": ["rtgs", "rtgs", "ach"]},
    ):
        participants = twin.get("participants", ["p-x", "p-x", "p-x"])
        with pytest.raises(psycopg.Error) as refused:
            _batch(
                db,
                ["n-1", "n-2", "n-1"],
                participants,  # type: ignore[arg-type]
                payloads=twin.get("payloads"),  # type: ignore[arg-type]
                rails=twin.get("rails"),  # type: ignore[arg-type]
            )
        assert refused.value.sqlstate == "P7004"
        assert str(refused.value).startswith("element 3 of the batch: IDEMPOTENCY_CONFLICT")
        assert _written(db) == before


def test_a_batch_mixes_replays_of_queued_and_finished_jobs_with_new_jobs(
    db: psycopg.Connection[Any], outbox: Outbox
) -> None:
    queued = outbox.enqueue("q-1", participant_id="p-1", payload=json.dumps(PAYLOAD))
    done = outbox.enqueue("d-1", participant_id="p-2", payload=json.dumps(PAYLOAD))
    claimed = {row.outbox_id: row for row in outbox.claim(10, "w")}
    outbox.complete(done[0], claimed[done[0]].lease_token, "w", "DISPATCHED")
    before = _written(db)
    rows = _batch(db, ["n-1", "q-1", "d-1", "n-2", "n-3"], ["p-1", "p-1", "p-2", "p-2", "p-3"])
    assert rows[1][1:] == (queued[0], 1, queued[2], "PENDING")
    # A finished job answers as the single enqueue's replay does (its latest attempt).
    assert rows[2][1:] == outbox.enqueue("d-1", participant_id="p-2", payload=json.dumps(PAYLOAD))
    assert rows[2][4] == "DISPATCHED"
    # New jobs continue each participant's sequence; only a participant without a queued job
    # gets a head.
    assert [r[2] for r in rows] == [2, 1, 1, 2, 1]
    assert _queue(db) == [
        ("p-1", 1, "q-1", True),
        ("p-1", 2, "n-1", False),
        ("p-2", 2, "n-2", True),
        ("p-3", 1, "n-3", True),
    ]
    pending, keys, numbers, payloads = _written(db)
    assert (pending, keys, payloads) == (before[0] + 3, before[1] + 3, before[3] + 3)
    # Replaying the whole batch writes nothing and answers the same.
    assert (
        _batch(db, ["n-1", "q-1", "d-1", "n-2", "n-3"], ["p-1", "p-1", "p-2", "p-2", "p-3"]) == rows
    )
    assert _written(db) == (pending, keys, numbers, payloads)
    # A replay that changed its payload is refused, naming it, and nothing of the batch stays.
    with pytest.raises(psycopg.Error) as conflict:
        _batch(db, ["n-9", "d-1"], ["p-9", "p-2"], payloads=[PAYLOAD, {"amount": 1}])
    assert conflict.value.sqlstate == "P7004"
    assert str(conflict.value).startswith("element 2 of the batch: IDEMPOTENCY_CONFLICT")
    assert _written(db) == (pending, keys, numbers, payloads)


def test_a_queue_row_written_by_hand_is_found_although_new_keys_skip_the_look_up(
    db: psycopg.Connection[Any],
) -> None:
    """0031 looks a key up only when its key row existed: a queue row written around the
    functions (a superuser's repair) gets its key row from the P7005 guard, so enqueue and the
    batch still answer with it instead of queueing the key twice."""
    db.execute(
        "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload, is_head)"
        " VALUES ('h-1', 'p-h', 1, 'k-h', 'RTGS', %s::jsonb, true)",
        (json.dumps(PAYLOAD),),
    )
    queued = db.execute("SELECT outbox_id FROM public.payment_outbox_pending").fetchone()
    assert queued is not None
    row = db.execute(ENQUEUE, ("h-1", "p-h", "k-h", "rtgs", json.dumps(PAYLOAD))).fetchone()
    assert row is not None and (row[0], row[3]) == (queued[0], "PENDING")
    batch = _batch(db, ["h-1", "h-2"], ["p-h", "p-h2"], keys=["k-h", "k-h2"])
    assert batch[0][1] == queued[0]
    assert db.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone() == (2,)


def test_a_key_whose_job_was_removed_by_hand_gets_a_new_job_in_a_batch(
    db: psycopg.Connection[Any],
) -> None:
    _batch(db, ["r-1"], ["p-1"])
    db.execute("DELETE FROM public.payment_outbox_pending WHERE instruction_id = 'r-1'")
    rows = _batch(db, ["r-1", "r-2"], ["p-9", "p-9"])
    assert [r[2] for r in rows] == [1, 2]
    key = db.execute(
        "SELECT outbox_id, participant_id FROM public.payment_outbox_idempotency_keys"
        " WHERE instruction_id = 'r-1'"
    ).fetchone()
    assert key == (rows[0][1], "p-9")


@pytest.mark.parametrize(
    ("position", "change", "sqlstate", "message"),
    [
        (2, {"participant": ""}, "22023", "p_participant_id must be a non-empty string"),
        (3, {"payload": [1]}, "22023", "p_payload must be a JSON object, got array"),
        (
            2,
            {"payload": {"n": 9007199254740993}},
            "22023",
            "p_payload number 9007199254740993 at $.n",
        ),
        (
            3,
            {"rail": "no-such-rail"},
            "22023",
            "p_rail_type 'no-such-rail' is not a registered rail",
        ),
        (1, {"key": "x" * 1025}, "22023", "p_idempotency_key must be at most 1024 bytes, got 1025"),
    ],
)
def test_a_refused_element_is_named_and_nothing_of_the_batch_stays(
    db: psycopg.Connection[Any],
    position: int,
    change: dict[str, Any],
    sqlstate: str,
    message: str,
) -> None:
    _batch(db, ["old-1"], ["p-1"])
    before = _written(db)
    instructions = ["e-1", "e-2", "e-3"]
    participants = ["p-1", "p-2", "p-1"]
    payloads: list[Any] = [PAYLOAD, {"amount": 1.5}, PAYLOAD]
    rails = ["rtgs", "ach", "rtgs"]
    keys = [f"key-{i}" for i in instructions]
    at = position - 1
    if "participant" in change:
        participants[at] = change["participant"]
    if "payload" in change:
        payloads[at] = change["payload"]
    if "rail" in change:
        rails[at] = change["rail"]
    if "key" in change:
        keys[at] = change["key"]
    with pytest.raises(psycopg.Error) as refused:
        _batch(db, instructions, participants, payloads=payloads, rails=rails, keys=keys)
    assert refused.value.sqlstate == sqlstate
    assert str(refused.value).startswith(f"element {position} of the batch: {message}")
    assert _written(db) == before


def test_plain_number_shortcut_agrees_with_the_exact_check(db: psycopg.Connection[Any]) -> None:
    """Enqueue accepts a payload exactly when check_outbox_payload_numbers does, whichever path
    (the plain-integer shortcut or the exact walk) decided."""
    numbers = [
        "0", "-0", "1", "-1", "999999999999999", "-999999999999999", "1000000000000000",
        "9007199254740992", "9007199254740993", "-9007199254740993", "123456789012345678",
        "1e2", "1.5", "0.1", "100.10", "1e-308", "1e-300", "0.30000000000000004",
        "1.2345678901234567", "12345678901234567890", "5e15", "1e400",
    ]  # fmt: skip
    for n, number in enumerate(numbers):
        payload = f'{{"a": [{{"b": {number}}}], "c": "{number}"}}'
        try:
            db.execute("SELECT public.check_outbox_payload_numbers(%s::jsonb)", (payload,))
            exact = True
        except psycopg.errors.InvalidParameterValue:
            exact = False
        try:
            db.execute(ENQUEUE, (f"n-{n}", "p-1", f"k-{n}", "rtgs", payload)).fetchall()
            accepted = True
        except psycopg.errors.InvalidParameterValue:
            accepted = False
        assert accepted is exact, number


def test_concurrent_batches_over_shared_participants_and_keys_neither_deadlock_nor_leave_gaps(
    connect: Any,
) -> None:
    """Two writers enqueue batches over the same five participants in shuffled array orders,
    sharing half of their keys (same content: one job each), while single enqueues run too;
    no 40P01, every key is one job, every participant's numbers are 1..n with one head."""
    errors: list[BaseException] = []
    participants = [f"p-{n}" for n in range(5)]

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with connect() as conn:
                for round_no in range(15):
                    shared = [f"s-{round_no}-{n}" for n in range(6)]
                    own = [f"o{seed}-{round_no}-{n}" for n in range(6)]
                    items = [(i, participants[sum(i.encode()) % 5]) for i in shared + own]
                    rnd.shuffle(items)
                    _batch(conn, [i for i, _ in items], [p for _, p in items])
                    conn.execute(
                        ENQUEUE,
                        (f"single{seed}-{round_no}", rnd.choice(participants),
                         f"key-single{seed}-{round_no}", "rtgs", json.dumps(PAYLOAD)),
                    ).fetchall()  # fmt: skip
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with connect() as conn:
        jobs = conn.execute(
            "SELECT participant_id, array_agg(sequence_id ORDER BY sequence_id),"
            " count(*) FILTER (WHERE is_head), count(DISTINCT (instruction_id, idempotency_key))"
            " FROM public.payment_outbox_pending GROUP BY participant_id"
        ).fetchall()
        allocated = dict(
            conn.execute(
                "SELECT participant_id, next_sequence_id FROM public.participant_outbox_sequences"
            ).fetchall()
        )
        keys = conn.execute(
            "SELECT count(*) FROM public.payment_outbox_idempotency_keys"
        ).fetchone()
    total = 0
    for participant, numbers, heads, distinct in jobs:
        assert numbers == list(range(1, len(numbers) + 1)), participant
        assert heads == 1
        assert distinct == len(numbers)
        assert allocated[participant] == len(numbers) + 1
        total += len(numbers)
    # 15 rounds x (6 shared + 3 x 6 own + 3 singles)
    assert total == 15 * (6 + 18 + 3) == (keys or [0])[0]


def test_the_ingest_login_can_run_the_batch_but_not_the_rule_helpers(
    login: LoginFactory,
) -> None:
    ingest = login("symphony_ingest")
    assert len(_batch(ingest.conn, ["g-1"], ["p-g"])) == 1
    for call in (
        "SELECT public.outbox_enqueue_args_ok('i', 'p', 'k', 'r', '{}', NULL, 0::smallint)",
        "SELECT public.outbox_check_enqueue_args('i', 'p', 'k', 'r', '{}', NULL, 0::smallint)",
        "SELECT public.outbox_payload_numbers_plain('{}')",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ingest.conn.execute(call)
