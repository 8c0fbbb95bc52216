"""The payload is stored once per job (issue 20 item 5, ops3, revision 0024, ADRs 0124, 0142).

public.payment_outbox_payloads holds one row per job (primary key (participant_id, outbox_id)),
written by enqueue and by redrive for the new job; ledger rows carry no copy any more; the P7004
comparison and `outbox show` read the payload table; it is append-only for everyone, also the
owner under session_replication_role = replica; only the functions write it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.cli import main
from symphony_schema.migration import api
from symphony_schema.privileges import AUDITOR, CONTROL, EXECUTOR, INGEST, READONLY, TEST_USER

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

PAYLOAD = '{"amount": "100.00", "currency": "ZAR", "memo": "x"}'
OTHER = '{"amount": "999.00", "currency": "ZAR", "memo": "x"}'
STORED = json.loads(PAYLOAD)
STORED_OTHER = json.loads(OTHER)


def _payload_rows(outbox: Outbox) -> list[tuple[Any, ...]]:
    return outbox.conn.execute(
        "SELECT participant_id, outbox_id, payload FROM public.payment_outbox_payloads"
        " ORDER BY created_at, outbox_id"
    ).fetchall()


def _text(outbox: Outbox, payload: str) -> str:
    """The payload as PostgreSQL prints a jsonb (keys by length, then bytes)."""
    row = outbox.conn.execute("SELECT %s::jsonb::text", (payload,)).fetchone()
    assert row is not None
    return str(row[0])


def _fail(outbox: Outbox, outbox_id: Any, worker: str = "w-1") -> None:
    (job,) = [j for j in outbox.claim(10, worker) if j.outbox_id == outbox_id]
    outbox.complete(job.outbox_id, job.lease_token, worker, "FAILED")


def test_enqueue_stores_the_payload_once_and_the_ledger_carries_no_copy(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[0]
    assert _payload_rows(outbox) == [("p-1", outbox_id, STORED)]
    outbox.conn.execute("SELECT public.set_outbox_retry_ceiling(3)")
    for _ in range(3):
        outbox.make_due()
        (job,) = outbox.claim(1, "w-1")
        assert job.payload == {"amount": "100.00", "currency": "ZAR", "memo": "x"}
        outbox.complete(job.outbox_id, job.lease_token, "w-1", "RETRYABLE")
    attempts = outbox.attempts(outbox_id)
    assert [a["state"] for a in attempts] == ["RETRYABLE", "RETRYABLE", "FAILED"]
    assert [a["payload"] for a in attempts] == [None, None, None]
    assert len(_payload_rows(outbox)) == 1, "written once, not per attempt"


def test_a_replay_is_the_same_job_and_writes_no_second_row(outbox: Outbox) -> None:
    first = outbox.enqueue("i-1", payload=PAYLOAD)
    assert outbox.enqueue("i-1", payload=PAYLOAD) == first
    assert len(_payload_rows(outbox)) == 1


def test_a_different_payload_after_the_ledger_lost_its_copy_is_still_p7004(
    outbox: Outbox,
) -> None:
    outbox_id = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[0]
    _fail(outbox, outbox_id)
    assert outbox.pending(outbox_id) is None
    assert [a["payload"] for a in outbox.attempts(outbox_id)] == [None]
    with outbox.raises("P7004", match="IDEMPOTENCY_CONFLICT"):
        outbox.enqueue("i-1", participant_id="p-1", payload=OTHER)
    # The same payload is the same job (its latest attempt's state).
    assert outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[3] == "FAILED"
    assert len(_payload_rows(outbox)) == 1


def test_redrive_writes_one_payload_row_for_the_new_job(
    outbox: Outbox, login: LoginFactory
) -> None:
    old = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[0]
    _fail(outbox, old)
    new = (
        login(CONTROL)
        .conn.execute(
            "SELECT outbox_id FROM public.redrive_outbox_job(%s, 'rail fixed', 'OPS-1')", (old,)
        )
        .fetchone()[0]
    )  # type: ignore[index]
    assert _payload_rows(outbox) == [("p-1", old, STORED), ("p-1", new, STORED)]
    assert [a["payload"] for a in outbox.attempts(old)] == [None, None]  # FAILED, REDRIVEN
    (job,) = outbox.claim(1, "w-2")
    assert (job.outbox_id, job.payload["amount"]) == (new, "100.00")


def test_cancel_writes_no_payload_copy(outbox: Outbox, login: LoginFactory) -> None:
    outbox_id = outbox.enqueue("i-1", payload=PAYLOAD)[0]
    login(CONTROL).conn.execute(
        "SELECT * FROM public.cancel_outbox_job(%s, 'dup', 'OPS-2')", (outbox_id,)
    )
    assert [a["payload"] for a in outbox.attempts(outbox_id)] == [None]


@pytest.mark.parametrize("role", [CONTROL, EXECUTOR, INGEST, READONLY, AUDITOR, TEST_USER])
def test_no_other_role_writes_the_payload_table(
    outbox: Outbox, login: LoginFactory, role: str
) -> None:
    outbox_id = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[0]
    conn = login(role).conn
    for statement in (
        "INSERT INTO public.payment_outbox_payloads (participant_id, outbox_id, payload)"
        " VALUES ('p-1', gen_random_uuid(), '{}')",
        "UPDATE public.payment_outbox_payloads SET payload = '{}'",
        "DELETE FROM public.payment_outbox_payloads",
        "TRUNCATE public.payment_outbox_payloads",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    assert _payload_rows(outbox) == [("p-1", outbox_id, STORED)]


@pytest.mark.parametrize("readers", [(CONTROL, READONLY, AUDITOR)])
def test_control_readonly_and_auditor_read_it(
    outbox: Outbox, login: LoginFactory, readers: tuple[str, ...]
) -> None:
    outbox.enqueue("i-1", payload=PAYLOAD)
    for role in readers:
        assert login(role).conn.execute(
            "SELECT count(*) FROM public.payment_outbox_payloads"
        ).fetchone() == (1,)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE public.payment_outbox_payloads SET payload = '{\"amount\": 1}'",
        "DELETE FROM public.payment_outbox_payloads",
        "TRUNCATE public.payment_outbox_payloads",
    ],
)
def test_it_is_append_only_for_the_owner_even_as_a_replica(outbox: Outbox, statement: str) -> None:
    outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)
    conn = outbox.conn
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET ROLE symphony_owner")
    try:
        with outbox.raises("P0001", match="payment_outbox_payloads is append-only"):
            conn.execute(statement)
    finally:
        conn.execute("RESET ROLE")
        conn.execute("RESET session_replication_role")
    assert len(_payload_rows(outbox)) == 1


def test_outbox_show_prints_the_payload_and_falls_back_to_an_old_ledger_copy(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = str(pg_server.sqlalchemy_url(migrated_db.name, user=login(READONLY).name))
    new = outbox.enqueue("i-1", participant_id="p-1", payload=PAYLOAD)[0]
    assert main(["outbox", "show", str(new), "--url", url]) == 0
    assert f"payload: {_text(outbox, PAYLOAD)}" in capsys.readouterr().out
    # A job finished before 0024: only its ledger rows hold the payload.
    old = "01a20000-0000-7000-8000-0000000000aa"
    outbox.conn.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, completed_at)"
        " VALUES (%s, 'i-old', 'p-old', 1, 'k-old', 'RTGS', %s::jsonb, 1, 'FAILED', now())",
        (old, OTHER),
    )
    assert main(["outbox", "show", old, "--url", url]) == 0
    assert f"payload: {_text(outbox, OTHER)}" in capsys.readouterr().out


def test_the_revision_back_fills_jobs_queued_and_finished_before_it(empty_db: Any) -> None:
    api.upgrade(empty_db.url, "0023_completion_rail_references")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        enqueue = "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, %s, %s, 'RTGS', %s)"
        queued = conn.execute(enqueue, ("i-q", "p-q", "k-q", PAYLOAD)).fetchone()[0]  # type: ignore[index]
        done = conn.execute(enqueue, ("i-d", "p-d", "k-d", OTHER)).fetchone()[0]  # type: ignore[index]
        rows = conn.execute("SELECT * FROM public.claim_outbox_batch(10, 'w', 30)").fetchall()
        token = next(r[8] for r in rows if r[0] == done)
        conn.execute("SELECT public.complete_outbox_attempt(%s, %s, 'w', 'FAILED')", (done, token))
    api.upgrade(empty_db.url, "0024_payload_stored_once")
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT participant_id, outbox_id, payload FROM public.payment_outbox_payloads"
            " ORDER BY participant_id"
        ).fetchall()
    assert rows == [("p-d", done, STORED_OTHER), ("p-q", queued, STORED)]
