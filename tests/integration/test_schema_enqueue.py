"""enqueue_payment_outbox and bump_participant_outbox_seq against the migrated database.

docs/contract/schema.md §4: idempotent enqueue keyed on (instruction_id, idempotency_key),
per-participant gapless sequences, P7004 on key reuse with different content, 22023 on invalid
arguments with nothing written.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration


def test_enqueue_inserts_a_pending_row_and_returns_it(outbox: Outbox) -> None:
    outbox_id, sequence_id, created_at, state = outbox.enqueue("instr-1", "participant-a")

    assert state == "PENDING"
    assert sequence_id == 1
    assert uuid.UUID(str(outbox_id)).version == 7
    row = outbox.pending(outbox_id)
    assert row is not None
    assert {k: row[k] for k in row if k not in {"outbox_id", "next_attempt_at"}} == {
        "instruction_id": "instr-1",
        "participant_id": "participant-a",
        "sequence_id": 1,
        "idempotency_key": "key-instr-1",
        "rail_type": "RTGS",  # the canonical code of the rail given as "rtgs" (0020)
        "payload": None,  # since 0038 the payload row is the one copy (ADR 0167)
        "attempt_count": 0,
        "created_at": created_at,
        "claimed_by": None,
        "lease_token": None,
        "lease_expires_at": None,
        "is_head": True,
        "priority": 0,
        "in_doubt": False,
        "claimed_at": None,
    }
    assert row["next_attempt_at"] <= created_at, "a new job is due immediately"


def test_sequences_are_allocated_per_participant(outbox: Outbox) -> None:
    a1 = outbox.enqueue("i-1", "participant-a")
    a2 = outbox.enqueue("i-2", "participant-a")
    b1 = outbox.enqueue("i-3", "participant-b")
    a3 = outbox.enqueue("i-4", "participant-a")

    assert [a1[1], a2[1], b1[1], a3[1]] == [1, 2, 1, 3]
    assert outbox.conn.execute(
        "SELECT participant_id, next_sequence_id FROM public.participant_outbox_sequences"
        " ORDER BY participant_id"
    ).fetchall() == [("participant-a", 4), ("participant-b", 2)]


def test_enqueue_is_idempotent_while_pending(outbox: Outbox) -> None:
    first = outbox.enqueue("instr-1")
    # Same document with another key order and spacing: jsonb equality, not text equality.
    again = outbox.enqueue("instr-1", payload='{ "currency": "ZAR",  "amount": 100 }')

    assert again == first
    assert outbox.counts() == OutboxCounts(pending=1, attempts=0, sequences=1)
    assert outbox.enqueue("instr-2")[1] == 2, "the duplicate must not consume a sequence number"


def test_same_idempotency_key_for_another_instruction_is_a_new_job(outbox: Outbox) -> None:
    first = outbox.enqueue("instr-1", idempotency_key="shared-key")
    second = outbox.enqueue("instr-2", idempotency_key="shared-key")

    assert first[0] != second[0]
    assert (first[1], second[1]) == (1, 2)


CONFLICTS = [
    pytest.param({"participant_id": "participant-other"}, id="participant"),
    pytest.param({"rail_type": "swift"}, id="rail_type"),
    pytest.param({"payload": '{"amount": 101, "currency": "ZAR"}'}, id="payload"),
]


@pytest.mark.parametrize("change", CONFLICTS)
def test_key_reuse_with_different_content_raises_p7004(
    outbox: Outbox, change: dict[str, str]
) -> None:
    outbox.enqueue("instr-1", participant_id="participant-1")
    before = outbox.counts()

    with outbox.raises("P7004", match="IDEMPOTENCY_CONFLICT"):
        outbox.enqueue("instr-1", **{"participant_id": "participant-1", **change})

    assert outbox.counts() == before, "a conflicting enqueue must write nothing"


def test_enqueue_after_terminal_attempt_returns_the_latest_attempt(outbox: Outbox) -> None:
    outbox_id, sequence_id, _, _ = outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED")
    (attempt,) = outbox.attempts(outbox_id)
    before = outbox.counts()

    again = outbox.enqueue("instr-1")

    assert again == (outbox_id, sequence_id, attempt["created_at"], "DISPATCHED")
    assert outbox.counts() == before, "re-enqueueing a dispatched payment must not queue it again"


def test_enqueue_reports_the_latest_attempt_when_the_pending_row_is_gone(outbox: Outbox) -> None:
    outbox_id, _, _, _ = outbox.enqueue("instr-1")
    for expected_attempt in (1, 2):
        outbox.make_due()
        (row,) = outbox.claim(1, "worker-1")
        assert outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE") == (
            expected_attempt,
            "RETRYABLE",
        )
    outbox.conn.execute("DELETE FROM public.payment_outbox_pending")  # e.g. by the control plane

    result = outbox.enqueue("instr-1")

    assert (result[0], result[3]) == (outbox_id, "RETRYABLE")
    assert result[2] == outbox.attempts(outbox_id)[-1]["created_at"]


@pytest.mark.parametrize("change", CONFLICTS)
def test_key_reuse_after_terminal_attempt_raises_p7004(
    outbox: Outbox, change: dict[str, str]
) -> None:
    outbox.enqueue("instr-1", participant_id="participant-1")
    (row,) = outbox.claim(1, "worker-1")
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "FAILED")
    before = outbox.counts()

    with outbox.raises("P7004", match="IDEMPOTENCY_CONFLICT"):
        outbox.enqueue("instr-1", **{"participant_id": "participant-1", **change})
    assert outbox.counts() == before


VALID = {
    "p_instruction_id": "instr-x",
    "p_participant_id": "participant-x",
    "p_idempotency_key": "key-x",
    "p_rail_type": "rtgs",
    "p_payload": '{"amount": 1}',
}

INVALID_ARGUMENTS = [
    *[
        pytest.param(name, value, id=f"{name}={value!r}")
        for name in ("p_instruction_id", "p_participant_id", "p_idempotency_key", "p_rail_type")
        for value in (None, "", "   ")
    ],
    *[
        pytest.param("p_payload", value, id=f"p_payload={value!r}")
        for value in (None, "[1, 2]", '"text"', "42", "null", "true")
    ],
]


@pytest.mark.parametrize(("argument", "value"), INVALID_ARGUMENTS)
def test_invalid_arguments_raise_22023_naming_the_argument_and_write_nothing(
    outbox: Outbox, argument: str, value: str | None
) -> None:
    outbox.enqueue("existing-instruction")
    before = outbox.counts()

    with outbox.raises("22023", match=argument):
        outbox.conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox(%(p_instruction_id)s,"
            " %(p_participant_id)s, %(p_idempotency_key)s, %(p_rail_type)s, %(p_payload)s::jsonb)",
            {**VALID, argument: value},
        )

    assert outbox.counts() == before


def test_bump_participant_outbox_seq_starts_at_one_and_counts_up(
    db: psycopg.Connection[Any],
) -> None:
    def bump(participant: str) -> Any:
        row = db.execute("SELECT public.bump_participant_outbox_seq(%s)", (participant,)).fetchone()
        assert row is not None
        return row[0]

    assert [bump("p-1"), bump("p-1"), bump("p-1"), bump("p-2")] == [1, 2, 3, 1]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_bump_participant_outbox_seq_rejects_an_empty_participant(
    outbox: Outbox, value: str | None
) -> None:
    with outbox.raises("22023", match="p_participant_id"):
        outbox.conn.execute("SELECT public.bump_participant_outbox_seq(%s)", (value,))
    assert outbox.counts() == OutboxCounts(pending=0, attempts=0, sequences=0)


def test_a_rolled_back_enqueue_leaves_no_gap(outbox: Outbox) -> None:
    outbox.enqueue("instr-1")
    with outbox.conn.transaction():
        outbox.enqueue("instr-2")
        raise psycopg.Rollback

    assert outbox.enqueue("instr-3")[1] == 2
    assert outbox.counts() == OutboxCounts(pending=2, attempts=0, sequences=1)
