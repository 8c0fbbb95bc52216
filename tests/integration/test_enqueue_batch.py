"""enqueue_payment_outbox_batch (issue 17 P4b, revision 0027, ADR 0152): each element goes
through enqueue_payment_outbox (same validation, idempotency, rails, per-participant sequencing),
results come back in array order, and the call is all or nothing, naming the failing element."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory

pytestmark = pytest.mark.integration

BATCH = (
    "SELECT * FROM public.enqueue_payment_outbox_batch(%s::text[], %s::text[], %s::text[],"
    " %s::text[], %s::jsonb[])"
)
PAYLOAD = {"amount": 100, "currency": "ZAR"}


def _args(
    instructions: list[str],
    participants: list[str],
    rails: list[str] | None = None,
    payloads: list[Any] | None = None,
) -> tuple[Any, ...]:
    count = len(instructions)
    return (
        instructions,
        participants,
        [f"key-{i}" for i in instructions],
        rails or ["rtgs"] * count,
        [json.dumps(p) for p in (payloads or [PAYLOAD] * count)],
    )


def _queue(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT instruction_id, participant_id, sequence_id, is_head, rail_type"
        " FROM public.payment_outbox_pending ORDER BY participant_id, sequence_id"
    ).fetchall()


def _written(db: psycopg.Connection[Any]) -> tuple[int, int, int]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM public.payment_outbox_pending),"
        " (SELECT count(*) FROM public.payment_outbox_idempotency_keys),"
        " (SELECT count(*) FROM public.participant_outbox_sequences)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_a_batch_enqueues_in_participant_order_and_answers_in_array_order(
    db: psycopg.Connection[Any], login: LoginFactory
) -> None:
    ingest = login("symphony_ingest")
    rows = ingest.conn.execute(
        BATCH, _args(["b-1", "a-1", "b-2", "a-2"], ["p-b", "p-a", "p-b", "p-a"])
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert [r[2] for r in rows] == [1, 1, 2, 2]  # each participant's jobs in array order
    assert {r[4] for r in rows} == {"PENDING"}
    assert _queue(db) == [
        ("a-1", "p-a", 1, True, "RTGS"),
        ("a-2", "p-a", 2, False, "RTGS"),
        ("b-1", "p-b", 1, True, "RTGS"),
        ("b-2", "p-b", 2, False, "RTGS"),
    ]

    # A replay of the batch returns the same jobs and writes nothing.
    again = ingest.conn.execute(
        BATCH, _args(["b-1", "a-1", "b-2", "a-2"], ["p-b", "p-a", "p-b", "p-a"])
    ).fetchall()
    assert [r[1] for r in again] == [r[1] for r in rows]
    assert _written(db) == (4, 4, 2)


def test_a_refused_element_fails_the_whole_batch_and_names_it(db: psycopg.Connection[Any]) -> None:
    db.execute(BATCH, _args(["x-1"], ["p-x"])).fetchall()
    before = _written(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue) as blank:
        db.execute(BATCH, _args(["ok-1", "bad", "ok-3"], ["p-1", " ", "p-2"])).fetchall()
    assert str(blank.value).startswith(
        "element 2 of the batch: p_participant_id must be a non-empty string"
    )
    with pytest.raises(psycopg.Error) as conflict:
        db.execute(
            BATCH,
            _args(["ok-1", "x-1"], ["p-1", "p-x"], payloads=[PAYLOAD, {"amount": 5}]),
        ).fetchall()
    assert conflict.value.sqlstate == "P7004"
    assert str(conflict.value).startswith("element 2 of the batch: IDEMPOTENCY_CONFLICT")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="element 1 of the batch"):
        db.execute(BATCH, _args(["r-1"], ["p-r"], rails=["no-such-rail"])).fetchall()
    assert _written(db) == before  # nothing of any refused batch stayed, allocators included


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, ["p"], ["k"], ["rtgs"], ["{}"]), "p_instruction_ids must be"),
        (([], [], [], [], []), "p_instruction_ids must be"),
        ((["i"] * 1001, ["p"] * 1001, ["k"] * 1001, ["r"] * 1001, ["{}"] * 1001), "1 to 1000"),
        ((["i", "j"], ["p"], ["k", "l"], ["rtgs", "rtgs"], ["{}", "{}"]), "p_participant_ids 1"),
        ((["i"], ["p"], ["k"], ["rtgs"], None), "p_payloads NULL"),
    ],
)
def test_malformed_arrays_are_refused_before_anything_is_written(
    db: psycopg.Connection[Any], args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute(BATCH, args).fetchall()
    assert _written(db) == (0, 0, 0)


def test_options_per_element_and_the_executor_cannot_enqueue(
    db: psycopg.Connection[Any], login: LoginFactory
) -> None:
    rows = db.execute(
        "SELECT * FROM public.enqueue_payment_outbox_batch(ARRAY['n-1', 'n-2'],"
        " ARRAY['p-1', 'p-2'], ARRAY['k-1', 'k-2'], ARRAY['rtgs', 'ach'],"
        " ARRAY['{}'::jsonb, '{}'::jsonb], ARRAY[now() + interval '1 hour', NULL],"
        " ARRAY[0, 5]::smallint[])"
    ).fetchall()
    assert len(rows) == 2
    stored = db.execute(
        "SELECT instruction_id, priority, next_attempt_at > now() + interval '50 minutes'"
        " FROM public.payment_outbox_pending ORDER BY instruction_id"
    ).fetchall()
    assert stored == [("n-1", 0, True), ("n-2", 5, False)]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"element 1 .*p_priority"):
        db.execute(
            "SELECT * FROM public.enqueue_payment_outbox_batch(ARRAY['q'], ARRAY['p'],"
            " ARRAY['k'], ARRAY['rtgs'], ARRAY['{}'::jsonb], NULL, ARRAY[NULL]::smallint[])"
        ).fetchall()
    executor = login("symphony_executor")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        executor.conn.execute(BATCH, _args(["e-1"], ["p-e"])).fetchall()
