"""Revision 0029 (issue 16, ADR 0126): keys that lead with participant_id and the single-shard
claim ``claim_outbox_batch_for_participant``, on plain PostgreSQL (the cluster suite runs the
same calls on Citus)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.rows
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

CLAIM_FOR = "SELECT * FROM public.claim_outbox_batch_for_participant(%s, %s, %s, %s, %s)"


def _claim_for(
    conn: psycopg.Connection[Any],
    participant: str,
    worker: str = "w-1",
    batch: int = 10,
    lease_seconds: int = 30,
    rails: list[str] | None = None,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(CLAIM_FOR, (participant, batch, worker, lease_seconds, rails)).fetchall()


def test_the_queue_keeps_its_single_node_keys(db: psycopg.Connection[Any]) -> None:
    # ADR 0163: the keys widen only where Citus needs them (the distribution revision); on one
    # node wider keys would cost the hot path two more unique indexes per row version.
    rows = db.execute(
        "SELECT c.conname, pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c"
        " WHERE c.conrelid IN ('public.payment_outbox_pending'::regclass,"
        " 'public.participant_outbox_sequences'::regclass) AND c.contype IN ('p', 'u')"
    ).fetchall()
    keys = dict(rows)
    assert keys == {
        "pk_payment_outbox_pending": "PRIMARY KEY (outbox_id)",
        "uq_payment_outbox_pending_instruction_idempotency": (
            "UNIQUE (instruction_id, idempotency_key)"
        ),
        "uq_payment_outbox_pending_participant_sequence": "UNIQUE (participant_id, sequence_id)",
        "pk_participant_outbox_sequences": "PRIMARY KEY (participant_id)",
    }


def test_idempotency_is_still_global_on_plain_postgresql(outbox: Outbox) -> None:
    # One instruction's key under two participants is one job: the key table serialises on
    # (instruction_id, idempotency_key).
    outbox.enqueue("instr-1", "p-a", "key-1")
    with pytest.raises(psycopg.Error) as raised:
        outbox.enqueue("instr-1", "p-b", "key-1")
    assert raised.value.sqlstate == "P7004"


def test_claims_only_the_participants_head_in_fifo_order(outbox: Outbox) -> None:
    first = outbox.enqueue("a-1", "p-a")[0]
    second = outbox.enqueue("a-2", "p-a")[0]
    other = outbox.enqueue("b-1", "p-b")[0]
    claimed = _claim_for(outbox.conn, "p-a")
    assert [r["outbox_id"] for r in claimed] == [first]
    assert claimed[0]["participant_id"] == "p-a"
    assert claimed[0]["lease_token"] is not None and claimed[0]["in_doubt"] is False
    # The head is leased: nothing else of p-a is claimable; p-b was never touched.
    assert _claim_for(outbox.conn, "p-a") == []
    assert outbox.conn.execute(
        "SELECT lease_token FROM public.payment_outbox_pending WHERE outbox_id = %s", (other,)
    ).fetchone() == (None,)
    outbox.complete(first, claimed[0]["lease_token"], "w-1", "DISPATCHED")
    assert [r["outbox_id"] for r in _claim_for(outbox.conn, "p-a")] == [second]


def test_the_token_is_fenced_like_claim_outbox_batch(outbox: Outbox) -> None:
    job = outbox.enqueue("a-1", "p-a")[0]
    claimed = _claim_for(outbox.conn, "p-a", lease_seconds=1)
    token = claimed[0]["lease_token"]
    stored = outbox.conn.execute(
        "SELECT lease_token, claimed_by FROM public.payment_outbox_pending WHERE outbox_id = %s",
        (job,),
    ).fetchone()
    assert stored == (token, "w-1")
    with pytest.raises(psycopg.Error) as raised:
        outbox.complete(job, token, "w-2", "DISPATCHED")
    assert raised.value.sqlstate == "P7002"


def test_an_expired_lease_is_taken_over_in_doubt_and_recorded(outbox: Outbox) -> None:
    job = outbox.enqueue("a-1", "p-a")[0]
    first = _claim_for(outbox.conn, "p-a", worker="w-1")[0]
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 second'"
        " WHERE outbox_id = %s",
        (job,),
    )
    again = _claim_for(outbox.conn, "p-a", worker="w-2")
    assert [r["outbox_id"] for r in again] == [job]
    assert again[0]["in_doubt"] is True and again[0]["attempt_count"] == 1
    assert again[0]["lease_token"] != first["lease_token"]
    ledger = outbox.conn.execute(
        "SELECT attempt_no, state::text, worker_id, lease_token FROM public.payment_outbox_attempts"
        " WHERE outbox_id = %s",
        (job,),
    ).fetchall()
    assert ledger == [(1, "ZOMBIE_REQUEUE", "w-1", first["lease_token"])]
    with pytest.raises(psycopg.Error) as raised:
        outbox.complete(job, first["lease_token"], "w-1", "DISPATCHED")
    assert raised.value.sqlstate == "P7002"
    assert outbox.complete(job, again[0]["lease_token"], "w-2", "DISPATCHED") == (2, "DISPATCHED")


def test_an_expired_lease_at_the_ceiling_fails_and_is_not_returned(outbox: Outbox) -> None:
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(1)")
    job = outbox.enqueue("a-1", "p-a")[0]
    nxt = outbox.enqueue("a-2", "p-a")[0]
    _claim_for(outbox.conn, "p-a")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 second'"
        " WHERE outbox_id = %s",
        (job,),
    )
    assert _claim_for(outbox.conn, "p-a", worker="w-2") == []
    assert outbox.conn.execute(
        "SELECT state::text FROM public.payment_outbox_attempts WHERE outbox_id = %s", (job,)
    ).fetchall() == [("FAILED",)]
    # The participant's next job was promoted and is claimable now.
    assert [r["outbox_id"] for r in _claim_for(outbox.conn, "p-a")] == [nxt]


def test_the_rail_filter_matches_any_spelling(outbox: Outbox) -> None:
    outbox.enqueue("a-1", "p-a", rail_type="ach")
    assert _claim_for(outbox.conn, "p-a", rails=["RTGS"]) == []
    assert len(_claim_for(outbox.conn, "p-a", rails=["ach"])) == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((None, 10, "w", 30, None), "p_participant_id"),
        (("p", 0, "w", 30, None), "p_batch_size"),
        (("p", 10, " ", 30, None), "p_worker_id"),
        (("p", 10, "w", 0, None), "p_lease_seconds"),
        (("p", 10, "w", 30, []), "p_rail_types"),
    ],
)
def test_bad_arguments_are_22023_naming_the_argument(
    outbox: Outbox, args: tuple[Any, ...], named: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=named):
        outbox.conn.execute(CLAIM_FOR, args)


def test_the_executor_may_call_it_and_ingest_may_not(login: LoginFactory, outbox: Outbox) -> None:
    outbox.enqueue("a-1", "p-a")
    executor = login("symphony_executor")
    assert len(_claim_for(executor.conn, "p-a")) == 1
    ingest = login("symphony_ingest")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _claim_for(ingest.conn, "p-a")
