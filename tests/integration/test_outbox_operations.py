"""Issue 20: operating the outbox (revisions 0017-0019, ADRs 0120-0124).

Audited interventions (cancel, redrive), metrics, the rails table, the JSON number check and the
rail reference rule, each with its happy path, every refusal with its SQLSTATE, and what each
role may do - as non-superuser logins. The CLI commands are tested at the end, the Prometheus
output through prometheus_client's own text parser.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.rows
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from symphony_schema.cli import main
from symphony_schema.privileges import AUDITOR, CONTROL, EXECUTOR, INGEST, READONLY, TEST_USER

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

DENIED = "42501"
REASON = "customer withdrew the instruction"
TICKET = "OPS-1234"


def _cancel(
    conn: psycopg.Connection[Any], outbox_id: Any, reason: Any = REASON, ticket: Any = TICKET
) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT outbox_id, attempt_no, state::text FROM public.cancel_outbox_job(%s, %s, %s)",
        (outbox_id, reason, ticket),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _redrive(
    conn: psycopg.Connection[Any], outbox_id: Any, reason: Any = REASON, ticket: Any = TICKET
) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT * FROM public.redrive_outbox_job(%s, %s, %s)", (outbox_id, reason, ticket)
    ).fetchone()
    assert row is not None
    return tuple(row)


def _failed_job(outbox: Outbox, instruction: str = "instr-1") -> Any:
    """A FAILED job of its own participant (``p-<instruction>``): under per-participant FIFO a
    job queued behind another job of its participant is not claimable."""
    outbox_id = outbox.enqueue(instruction, participant_id=f"p-{instruction}")[0]
    (row,) = [r for r in outbox.claim(10, "w1") if r.outbox_id == outbox_id]
    assert outbox.complete(row.outbox_id, row.lease_token, "w1", "FAILED") == (1, "FAILED")
    return outbox_id


def _key_job(outbox: Outbox, instruction: str) -> Any:
    row = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_idempotency_keys WHERE instruction_id = %s",
        (instruction,),
    ).fetchone()
    assert row is not None
    return row[0]


# --------------------------------------------------------------------------------------------
# Cancel
# --------------------------------------------------------------------------------------------


def test_control_cancels_a_queued_job_with_an_audited_ledger_row(
    outbox: Outbox, login: LoginFactory
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    control = login(CONTROL)

    assert _cancel(control.conn, outbox_id) == (outbox_id, 1, "CANCELLED")

    assert outbox.pending(outbox_id) is None
    (row,) = outbox.attempts(outbox_id)
    assert (row["state"], row["acted_by"], row["reason"], row["ticket"]) == (
        "CANCELLED",
        control.name,
        REASON,
        TICKET,
    )
    assert row["completed_at"] is not None and row["worker_id"] is None
    # A replay of the key answers with the outcome; it does not queue the payment again.
    assert outbox.enqueue("instr-1")[::3] == (outbox_id, "CANCELLED")
    assert outbox.counts()[:2] == (0, 1)


@pytest.mark.parametrize(
    ("reason", "ticket", "argument"),
    [
        (None, TICKET, "p_reason"),
        ("", TICKET, "p_reason"),
        (" \t\n", TICKET, "p_reason"),
        (REASON, None, "p_ticket"),
        (REASON, "  ", "p_ticket"),
        ("x" * 4097, TICKET, "p_reason"),
        (REASON, "x" * 1025, "p_ticket"),
    ],
)
def test_cancel_requires_a_reason_and_a_ticket(
    outbox: Outbox, login: LoginFactory, reason: Any, ticket: Any, argument: str
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    control = login(CONTROL).conn
    with outbox.raises("22023", match=argument):
        _cancel(control, outbox_id, reason, ticket)
    assert outbox.pending(outbox_id) is not None
    assert outbox.counts()[1] == 0


def test_cancel_refuses_null_ids_unknown_and_finished_jobs(
    outbox: Outbox, login: LoginFactory
) -> None:
    control = login(CONTROL).conn
    with outbox.raises("22023", match="p_outbox_id"):
        _cancel(control, None)
    with outbox.raises("P7010", match="JOB_NOT_FOUND"):
        _cancel(control, uuid.uuid4())
    failed = _failed_job(outbox)
    with outbox.raises("P7005", match="JOB_ALREADY_TERMINAL.*FAILED"):
        _cancel(control, failed)
    queued = outbox.enqueue("instr-2")[0]
    _cancel(control, queued)
    with outbox.raises("P7005", match="CANCELLED"):
        _cancel(control, queued)
    assert [a["state"] for a in outbox.attempts(failed)] == ["FAILED"]


def test_cancel_refuses_a_job_under_a_live_lease_and_the_worker_completes_it(
    outbox: Outbox, login: LoginFactory
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    (row,) = outbox.claim(1, "w1")
    control = login(CONTROL).conn

    with outbox.raises("P7011", match="JOB_LEASED.*'w1'"):
        _cancel(control, outbox_id)

    assert outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED") == (1, "DISPATCHED")


def test_cancel_of_an_expired_lease_records_the_lost_lease_first(
    outbox: Outbox, login: LoginFactory
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    (row,) = outbox.claim(1, "w1")
    outbox.expire_leases()
    control = login(CONTROL).conn

    assert _cancel(control, outbox_id) == (outbox_id, 2, "CANCELLED")

    states = [(a["attempt_no"], a["state"], a["worker_id"]) for a in outbox.attempts(outbox_id)]
    assert states == [(1, "ZOMBIE_REQUEUE", "w1"), (2, "CANCELLED", None)]
    # The worker that lost the lease cannot record anything afterwards.
    with outbox.raises("P7002"):
        outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")


def test_a_completion_in_flight_finishes_before_a_cancel(
    outbox: Outbox, outbox_for: type[Outbox], login: LoginFactory, connect: Any
) -> None:
    """The cancel locks the queue row: it waits for the worker's uncommitted completion, then
    finds the job finished (P7005), never a second outcome."""
    outbox_id = outbox.enqueue("instr-1")[0]
    (row,) = outbox.claim(1, "w1")
    worker = connect()
    worker.autocommit = False
    outbox_for(worker).complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    control = login(CONTROL).conn
    control.execute("SET lock_timeout = '20s'")

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_cancel, control, outbox_id)
        finished, _ = wait([future], timeout=1)
        worker.commit()
        with pytest.raises(psycopg.Error) as refused:
            future.result(timeout=30)
    assert not finished, "the cancel waited for the completion"
    assert refused.value.sqlstate == "P7005", refused.value
    assert [a["state"] for a in outbox.attempts(outbox_id)] == ["DISPATCHED"]


# --------------------------------------------------------------------------------------------
# Redrive
# --------------------------------------------------------------------------------------------


def test_control_redrives_a_failed_job_as_a_new_linked_job(
    outbox: Outbox, login: LoginFactory
) -> None:
    old = _failed_job(outbox)
    old_queue_seq = outbox.attempts(old)[0]["sequence_id"]
    control = login(CONTROL)

    new, sequence_id, _created, state = _redrive(control.conn, old)

    assert new != old and state == "PENDING"
    assert sequence_id == old_queue_seq + 1, "the participant's next sequence number"
    queued = outbox.pending(new)
    assert queued is not None
    # Since 0038 the payload's one copy is the new job's payload row (ADR 0167).
    assert (queued["instruction_id"], queued["idempotency_key"], queued["payload"]) == (
        "instr-1",
        "key-instr-1",
        None,
    )
    assert outbox.conn.execute(
        "SELECT payload FROM public.payment_outbox_payloads WHERE outbox_id = %s", (new,)
    ).fetchone() == ({"amount": 100, "currency": "ZAR"},)
    audit = outbox.attempts(old)[-1]
    assert (audit["attempt_no"], audit["state"], audit["related_outbox_id"]) == (2, "REDRIVEN", new)
    assert (audit["acted_by"], audit["reason"], audit["ticket"]) == (control.name, REASON, TICKET)
    assert _key_job(outbox, "instr-1") == new

    # Idempotency: a replay of the original key answers with the new job, never a third one.
    assert outbox.enqueue("instr-1", participant_id="p-instr-1")[::3] == (new, "PENDING")
    (row,) = outbox.claim(1, "w2")  # its participant's head: redrive joins the line (0021)
    assert row.outbox_id == new
    outbox.complete(row.outbox_id, row.lease_token, "w2", "DISPATCHED")
    assert outbox.enqueue("instr-1", participant_id="p-instr-1")[::3] == (new, "DISPATCHED")
    assert outbox.counts()[0] == 0


def test_a_cancelled_job_can_be_redriven(outbox: Outbox, login: LoginFactory) -> None:
    old = outbox.enqueue("instr-1")[0]
    control = login(CONTROL).conn
    _cancel(control, old)
    new = _redrive(control, old)[0]
    assert outbox.pending(new) is not None
    assert [a["state"] for a in outbox.attempts(old)] == ["CANCELLED", "REDRIVEN"]


def test_redrive_refusals(outbox: Outbox, login: LoginFactory) -> None:
    control = login(CONTROL).conn
    with outbox.raises("22023", match="p_outbox_id"):
        _redrive(control, None)
    with outbox.raises("P7010", match="JOB_NOT_FOUND"):
        _redrive(control, uuid.uuid4())
    queued = outbox.enqueue("instr-q")[0]
    with outbox.raises("P7012", match="still queued"):
        _redrive(control, queued)
    dispatched = outbox.enqueue("instr-d", participant_id="p-instr-d")[0]
    (row,) = [r for r in outbox.claim(10, "w1") if r.outbox_id == dispatched]
    outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    with outbox.raises("P7012", match="DISPATCHED"):
        _redrive(control, dispatched)
    failed = _failed_job(outbox, "instr-f")
    for reason, ticket, argument in ((" ", TICKET, "p_reason"), (REASON, None, "p_ticket")):
        with outbox.raises("22023", match=argument):
            _redrive(control, failed, reason, ticket)
    new = _redrive(control, failed)[0]
    with outbox.raises("P7012", match=f"already redriven as outbox {new}"):
        _redrive(control, failed)
    # The new job fails too: it can be redriven, the old one still cannot.
    (row,) = [r for r in outbox.claim(10, "w1") if r.outbox_id == new]
    outbox.complete(row.outbox_id, row.lease_token, "w1", "FAILED")
    with outbox.raises("P7012"):
        _redrive(control, failed)
    newest = _redrive(control, new)[0]
    assert _key_job(outbox, "instr-f") == newest
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE instruction_id = 'instr-f'"
    ).fetchone() == (1,)


def test_only_the_latest_job_of_a_key_can_be_redriven(outbox: Outbox, login: LoginFactory) -> None:
    """A job superseded by a later job of the same key (queued by hand before 0019) must not
    come back: two live jobs of one payment would pay twice."""
    old = _failed_job(outbox)
    outbox.conn.execute(
        "UPDATE public.payment_outbox_idempotency_keys SET outbox_id = gen_random_uuid()"
    )
    with outbox.raises("P7012", match="not the latest job"):
        _redrive(login(CONTROL).conn, old)
    assert outbox.counts()[0] == 0


def test_two_concurrent_redrives_of_one_job_queue_it_once(
    outbox: Outbox, login: LoginFactory
) -> None:
    old = _failed_job(outbox)
    first, second = (login(CONTROL, autocommit=False).conn for _ in range(2))
    _redrive(first, old)

    def racing() -> None:
        second.execute("SET lock_timeout = '20s'")
        _redrive(second, old)

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(racing)
        finished, _ = wait([future], timeout=1)
        first.commit()
        with pytest.raises(psycopg.Error) as refused:
            future.result(timeout=30)
    second.rollback()
    assert not finished, "the second redrive waited on the key row"
    assert refused.value.sqlstate == "P7012", refused.value
    assert outbox.counts()[0] == 1


@pytest.mark.parametrize("role", [INGEST, EXECUTOR, READONLY, AUDITOR, TEST_USER])
def test_only_control_may_cancel_or_redrive(outbox: Outbox, login: LoginFactory, role: str) -> None:
    queued = outbox.enqueue("instr-1")[0]
    failed = _failed_job(outbox, "instr-2")
    conn = login(role).conn
    with outbox.raises(DENIED):
        _cancel(conn, queued)
    with outbox.raises(DENIED):
        _redrive(conn, failed)
    assert outbox.pending(queued) is not None
    assert len(outbox.attempts(failed)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM public.payment_outbox_pending",
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now()",
        "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload) VALUES ('i', 'p', 99, 'k', 'RTGS', '{}')",
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, acted_by)"
        " VALUES (gen_random_uuid(), 'i', 'p', 1, 'k', 'RTGS', '{}', 1, 'DISPATCHED',"
        " 'executor-42')",
        "UPDATE public.participant_outbox_sequences SET next_sequence_id = 1",
        "INSERT INTO public.outbox_rails (rail_code) VALUES ('FAKE')",
        "INSERT INTO public.outbox_rail_references (rail_code, rail_reference, outbox_id,"
        " attempt_no) VALUES ('RTGS', 'r', gen_random_uuid(), 1)",
    ],
)
def test_control_has_no_raw_dml_left(outbox: Outbox, login: LoginFactory, statement: str) -> None:
    """Issue 20: a control DELETE cancelled a payment without a trace, and control inserted a
    DISPATCHED row "from executor-42". Both are refused now."""
    outbox.enqueue("instr-1")
    conn = login(CONTROL).conn
    with outbox.raises(DENIED):
        conn.execute(statement)
    assert outbox.counts() == (1, 0, 1)


# --------------------------------------------------------------------------------------------
# Rails
# --------------------------------------------------------------------------------------------


def test_a_fresh_database_registers_the_four_rails(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT rail_code, returns_reference, enabled FROM public.outbox_rails ORDER BY 1"
    ).fetchall()
    assert rows == [(code, True, True) for code in ("ACH", "CARD", "RTGS", "SWIFT")]


@pytest.mark.parametrize(
    ("given", "canonical"), [("rtgs", "RTGS"), ("RTGS", "RTGS"), ("sWiFt", "SWIFT")]
)
def test_rail_input_is_matched_case_insensitively(
    db: psycopg.Connection[Any], given: str, canonical: str
) -> None:
    assert db.execute("SELECT public.outbox_rail_code(%s)", (given,)).fetchone() == (canonical,)


@pytest.mark.parametrize("given", ["fps", "RTGS ", "rtgs\n", "ﬀ", "\u0131", "", None, "x" * 1025])
def test_unknown_rails_are_refused_with_22023(outbox: Outbox, given: str | None) -> None:
    with outbox.raises("22023", match="p_rail_type"):
        outbox.conn.execute("SELECT public.outbox_rail_code(%s)", (given,))


def test_control_registers_and_disables_rails(outbox: Outbox, login: LoginFactory) -> None:
    control = login(CONTROL)
    row = control.conn.execute(
        "SELECT * FROM public.register_outbox_rail('fps', false, 'Faster Payments')"
    ).fetchone()
    assert row == ("FPS", False, True)
    assert outbox.conn.execute("SELECT public.outbox_rail_code('Fps')").fetchone() == ("FPS",)
    assert control.conn.execute(
        "SELECT * FROM public.register_outbox_rail('FPS', true)"
    ).fetchone() == ("FPS", True, True)
    assert outbox.conn.execute(
        "SELECT count(*), min(description), min(updated_by) FROM public.outbox_rails"
        " WHERE rail_code = 'FPS'"
    ).fetchone() == (1, "Faster Payments", control.name)

    assert control.conn.execute("SELECT * FROM public.disable_outbox_rail('fps')").fetchone() == (
        "FPS",
        True,
        False,
    )
    with outbox.raises("22023", match="not an enabled rail"):
        outbox.conn.execute("SELECT public.outbox_rail_code('FPS')")
    control.conn.execute("SELECT * FROM public.register_outbox_rail('FPS', true)")
    assert outbox.conn.execute("SELECT public.outbox_rail_code('fps')").fetchone() == ("FPS",)


@pytest.mark.parametrize("code", [None, "", "rtgs!", "1ABC", "A" * 33, "\u0131", "ß", "RT GS", "ﬀ"])
def test_bad_rail_codes_are_refused(outbox: Outbox, login: LoginFactory, code: str | None) -> None:
    control = login(CONTROL).conn
    with outbox.raises("22023", match="p_rail_code"):
        control.execute("SELECT * FROM public.register_outbox_rail(%s, true)", (code,))
    assert outbox.conn.execute("SELECT count(*) FROM public.outbox_rails").fetchone() == (4,)


def test_rail_management_refusals(outbox: Outbox, login: LoginFactory) -> None:
    control = login(CONTROL).conn
    with outbox.raises("22023", match="p_returns_reference"):
        control.execute("SELECT * FROM public.register_outbox_rail('FPS', NULL)")
    with outbox.raises("22023", match="p_description"):
        control.execute("SELECT * FROM public.register_outbox_rail('FPS', true, repeat('d', 1025))")
    with outbox.raises("22023", match="not a registered rail"):
        control.execute("SELECT * FROM public.disable_outbox_rail('FPS')")
    with outbox.raises("22023", match="p_rail_code"):
        control.execute("SELECT * FROM public.disable_outbox_rail(' ')")


@pytest.mark.parametrize("role", [INGEST, EXECUTOR, READONLY, AUDITOR, TEST_USER])
def test_only_control_manages_rails(outbox: Outbox, login: LoginFactory, role: str) -> None:
    conn = login(role).conn
    for statement in (
        "SELECT * FROM public.register_outbox_rail('FPS', true)",
        "SELECT * FROM public.disable_outbox_rail('RTGS')",
        "SELECT public.outbox_rail_code('RTGS')",
        "SELECT public.check_outbox_payload_numbers('{}')",
        "SELECT public.record_outbox_rail_reference(gen_random_uuid(), 1, 'RTGS', 'r')",
    ):
        with outbox.raises(DENIED):
            conn.execute(statement)


# --------------------------------------------------------------------------------------------
# JSON numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        '{"amount": 9007199254740992, "minus": -9007199254740992}',
        '{"amount": "9007199254740993"}',
        '{"a": 0.1, "b": 100.10, "c": 1.2345678901234567, "d": 1e15, "e": -0.0, "f": 1e-300}',
        '{"nested": [[1, 2.5], {"x": {"y": [0.3]}}], "s": "1e400", "t": true, "n": null}',
        "{}",
    ],
)
def test_numbers_a_json_consumer_reads_exactly_are_accepted(
    db: psycopg.Connection[Any], payload: str
) -> None:
    db.execute("SELECT public.check_outbox_payload_numbers(%s::jsonb)", (payload,))


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ('{"amount": 9007199254740993}', r"\$\.amount"),
        ('{"amount": -9007199254740993}', r"\$\.amount"),
        ('{"amount": 1e400}', r"\$\.amount"),
        ('{"amount": 1e300}', r"\$\.amount"),
        ('{"tiny": 5e-324}', r"\$\.tiny"),
        ('{"fee": 0.30000000000000001}', r"\$\.fee"),
        ('{"items": [{"v": 1}, {"v": 12345678901234567.5}]}', r"\$\.items\[1\]\.v"),
        ('{"odd key": {"x-y": [0, 1e-400]}}', r'\$\."odd key"\."x-y"\[1\]'),
        ('{"a": {"b": [[1, 2, 3.00000000000000000001]]}}', r"\$\.a\.b\[0\]\[2\]"),
    ],
)
def test_numbers_a_json_consumer_cannot_represent_are_refused_with_their_path(
    outbox: Outbox, payload: str, path: str
) -> None:
    with outbox.raises("22023", match=rf"at {path} cannot be represented exactly"):
        outbox.conn.execute("SELECT public.check_outbox_payload_numbers(%s::jsonb)", (payload,))


def test_the_number_check_does_not_depend_on_the_session_and_restores_it(
    db: psycopg.Connection[Any],
) -> None:
    """With extra_float_digits = 0 a double prints with 15 digits only: a round-trip check made
    with the session's setting would refuse 1.2345678901234567, which a double holds exactly."""
    with db.transaction():
        db.execute("SET LOCAL extra_float_digits = 0")
        db.execute("SELECT public.check_outbox_payload_numbers('{\"a\": 1.2345678901234567}')")
        assert db.execute("SHOW extra_float_digits").fetchone() == ("0",)


def _inexact(text: str) -> bool:
    """The oracle: Python reads a JSON number the way a consumer does (the nearest double, whose
    repr is the shortest text that reads back to it)."""
    number = Decimal(text)
    if abs(number) > 2**53 or (number != 0 and abs(number) < Decimal("1e-307")):
        return True
    return Decimal(repr(float(number))) != number


JSON_NUMBERS = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.integers(2**53 - 3, 2**53 + 3).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: str(d).replace("e", "E")),
    st.builds(
        lambda digits, exponent: f"{digits}E{exponent}",
        st.integers(-(10**20), 10**20),
        st.integers(-330, 330),
    ),
    st.sampled_from(["0.1", "0.30000000000000001", "1.2345678901234567", "-0", "5e-324"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(numbers=st.lists(JSON_NUMBERS, min_size=1, max_size=20))
def test_the_number_check_agrees_with_a_json_consumer(
    db: psycopg.Connection[Any], numbers: list[str]
) -> None:
    """Fuzz: for any JSON number, the SQL check refuses it exactly when a consumer reading
    doubles would not get the same number back (Python as the consumer)."""
    for text in numbers:
        try:
            db.execute(
                "SELECT public.check_outbox_payload_numbers(%s::jsonb)", (f'{{"n": [{text}]}}',)
            )
            refused = False
        except psycopg.Error as exc:
            assert exc.sqlstate == "22023", (text, exc)
            assert "at $.n[0] cannot be represented exactly" in str(exc), (text, exc)
            refused = True
        assert refused == _inexact(text), text


# --------------------------------------------------------------------------------------------
# Rail references
# --------------------------------------------------------------------------------------------


def _reference(conn: psycopg.Connection[Any], outbox_id: Any, rail: str, ref: str | None) -> None:
    conn.execute(
        "SELECT public.record_outbox_rail_reference(%s, 1, %s, %s)", (outbox_id, rail, ref)
    )


def test_a_rail_reference_is_unique_per_rail(outbox: Outbox) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    _reference(outbox.conn, first, "RTGS", "REF-1")
    _reference(outbox.conn, first, "rtgs", "REF-1")  # the same job again: accepted
    _reference(outbox.conn, second, "SWIFT", "REF-1")  # another rail: its own namespace
    with outbox.raises("P7013", match=f"RAIL_REFERENCE_REUSED.*'REF-1' on rail RTGS.*{first}"):
        _reference(outbox.conn, second, "rtgs", "REF-1")
    rows = outbox.conn.execute(
        "SELECT rail_code, rail_reference, outbox_id FROM public.outbox_rail_references ORDER BY 1"
    ).fetchall()
    assert rows == [("RTGS", "REF-1", first), ("SWIFT", "REF-1", second)]


def test_a_reference_is_required_unless_the_rail_returns_none(
    outbox: Outbox, login: LoginFactory
) -> None:
    for missing in (None, "", "  "):
        with outbox.raises("22023", match="p_rail_reference must be given .* rail RTGS"):
            _reference(outbox.conn, uuid.uuid4(), "RTGS", missing)
    login(CONTROL).conn.execute("SELECT * FROM public.register_outbox_rail('CASH', false)")
    _reference(outbox.conn, uuid.uuid4(), "cash", None)
    _reference(outbox.conn, uuid.uuid4(), "LEGACY_UNREGISTERED", None)
    with outbox.raises("22023", match="at most 1024 bytes"):
        _reference(outbox.conn, uuid.uuid4(), "RTGS", "r" * 1025)
    assert outbox.conn.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone() == (
        0,
    )


def test_concurrent_reports_of_one_reference_by_two_jobs_store_one(
    db: psycopg.Connection[Any], connect: Any, outbox_for: type[Outbox]
) -> None:
    one, two = connect(), connect()
    one.autocommit = two.autocommit = False
    _reference(one, uuid.uuid4(), "RTGS", "REF-RACE")
    errors: list[str | None] = []

    def racing() -> None:
        two.execute("SET lock_timeout = '20s'")
        try:
            _reference(two, uuid.uuid4(), "RTGS", "REF-RACE")
        except psycopg.Error as exc:
            errors.append(exc.sqlstate)
        finally:
            two.rollback()

    thread = threading.Thread(target=racing)
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive(), "the second report waits on the first one's key"
    one.commit()
    thread.join(timeout=30)
    assert errors == ["P7013"]
    assert db.execute("SELECT count(*) FROM public.outbox_rail_references").fetchone() == (1,)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _metrics(conn: psycopg.Connection[Any]) -> dict[tuple[Any, Any], dict[str, Any]]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("SELECT * FROM public.outbox_metrics()").fetchall()
    return {(r.pop("rail_type"), r.pop("participant_id")): r for r in rows}


def _busy_outbox(outbox: Outbox, login: LoginFactory) -> dict[str, Any]:
    """RTGS/p1: a leased job, an expired lease, an in-doubt job (lost lease repaired), a retry
    due later, a failure and a cancellation; ACH/p2: one due job."""
    ids = {
        name: outbox.enqueue(name, participant_id="p1", rail_type="RTGS")[0]
        for name in ("leased", "expired", "doubt", "retry", "failed", "cancelled")
    }
    # Under per-participant FIFO only p1's first job is claimable; the metrics count states, not
    # order, so the owner (whose writes trg_place_outbox_head leaves alone) plants all six as
    # heads to lease them at once.
    outbox.conn.execute("SET ROLE symphony_owner")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET is_head = true WHERE participant_id = 'p1'"
    )
    outbox.conn.execute("RESET ROLE")
    claimed = {r.outbox_id: r for r in outbox.claim(10, "w1")}
    for name in ("retry", "failed", "cancelled"):
        row = claimed[ids[name]]
        state = "FAILED" if name == "failed" else "RETRYABLE"
        outbox.complete(row.outbox_id, row.lease_token, "w1", state, retry_delay_seconds=600)
    _cancel(login(CONTROL).conn, ids["cancelled"])
    outbox.expire_leases([ids["doubt"], ids["expired"]])
    outbox.conn.execute(
        "SELECT * FROM public.repair_expired_leases(1, 'repairer')"
    )  # the older expired lease: doubt or expired, whichever repair takes first
    repaired = outbox.conn.execute(
        "SELECT outbox_id FROM public.payment_outbox_pending WHERE lease_token IS NULL"
        " AND attempt_count = 1 AND outbox_id = ANY(%s)",
        ([ids["doubt"], ids["expired"]],),
    ).fetchone()
    assert repaired is not None
    if repaired[0] != ids["doubt"]:
        ids["doubt"], ids["expired"] = ids["expired"], ids["doubt"]
    ids["ach"] = outbox.enqueue("ach", participant_id="p2", rail_type="ACH")[0]
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '30 s'"
        " WHERE outbox_id = %s",
        (ids["ach"],),
    )
    return ids


def test_outbox_metrics_per_rail_and_participant_and_total(
    outbox: Outbox, login: LoginFactory
) -> None:
    _busy_outbox(outbox, login)
    metrics = _metrics(login(READONLY).conn)

    rtgs = metrics[("RTGS", "p1")]
    assert {k: v for k, v in rtgs.items() if k != "oldest_due_age_seconds"} == {
        "is_total": False,
        "queue_depth": 4,  # leased, expired, doubt, retry
        "due_now": 2,  # expired (its lease is over) and doubt (repaired, due now)
        "leased": 1,
        "expired_leases": 1,
        "in_doubt": 1,
        "retries_5m": 2,
        "retries_60m": 2,
        "lost_leases_5m": 1,
        "lost_leases_60m": 1,
        "failures_5m": 1,
        "failures_60m": 1,
        "cancellations_5m": 1,
        "cancellations_60m": 1,
    }
    ach = metrics[("ACH", "p2")]
    assert (ach["queue_depth"], ach["due_now"], ach["leased"], ach["retries_60m"]) == (1, 1, 0, 0)
    assert 29 <= ach["oldest_due_age_seconds"] < 120
    total = metrics[(None, None)]
    assert total["is_total"] and total["queue_depth"] == 5 and total["due_now"] == 3
    assert total["oldest_due_age_seconds"] == max(
        rtgs["oldest_due_age_seconds"], ach["oldest_due_age_seconds"]
    )


def test_outbox_metrics_counts_only_the_window(outbox: Outbox, login: LoginFactory) -> None:
    """Attempts older than 5 (60) minutes leave the 5m (60m) counts. The ledger is append-only,
    so the rows are aged by disabling its triggers as the superuser, in a rolled-back
    transaction."""
    _busy_outbox(outbox, login)
    with outbox.conn.transaction():
        outbox.conn.execute("ALTER TABLE public.payment_outbox_attempts DISABLE TRIGGER ALL")
        outbox.conn.execute(
            "UPDATE public.payment_outbox_attempts SET created_at = created_at - interval '10 min'"
            " WHERE state = 'RETRYABLE'"
        )
        outbox.conn.execute(
            "UPDATE public.payment_outbox_attempts SET created_at = created_at - interval '2 h'"
            " WHERE state = 'FAILED'"
        )
        rtgs = _metrics(outbox.conn)[("RTGS", "p1")]
        assert (rtgs["retries_5m"], rtgs["retries_60m"]) == (0, 2)
        assert (rtgs["failures_5m"], rtgs["failures_60m"]) == (0, 0)
        raise psycopg.Rollback


def test_outbox_metrics_of_an_empty_outbox_is_one_zero_total(db: psycopg.Connection[Any]) -> None:
    metrics = _metrics(db)
    assert list(metrics) == [(None, None)]
    assert set(metrics[(None, None)].values()) <= {0, True}


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (READONLY, True),
        (AUDITOR, True),
        (CONTROL, True),
        (INGEST, False),
        (EXECUTOR, False),
        (TEST_USER, False),
    ],
)
def test_who_may_read_the_metrics(
    outbox: Outbox, login: LoginFactory, role: str, allowed: bool
) -> None:
    outbox.enqueue("instr-1")
    conn = login(role).conn
    if allowed:
        assert _metrics(conn)[(None, None)]["queue_depth"] == 1
    else:
        with outbox.raises(DENIED):
            _metrics(conn)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _url(pg_server: Any, migrated_db: Any, name: str) -> str:
    return str(pg_server.sqlalchemy_url(migrated_db.name, user=name))


def test_cli_status_prints_a_table_with_a_total(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _busy_outbox(outbox, login)
    reader = login(READONLY)
    assert main(["outbox", "status", "--url", _url(pg_server, migrated_db, reader.name)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:8] == [
        "rail",
        "participant",
        "depth",
        "due",
        "leased",
        "expired",
        "in_doubt",
        "oldest_due_s",
    ]
    assert [line.split()[:7] for line in lines[1:3]] == [
        ["ACH", "p2", "1", "1", "0", "0", "0"],
        ["RTGS", "p1", "4", "2", "1", "1", "1"],
    ]
    assert lines[3].split()[:6] == ["TOTAL", "5", "3", "1", "1", "1"]
    assert lines[2].split()[-4:] == ["2/2", "1/1", "1/1", "1/1"]


def test_cli_metrics_is_valid_prometheus_text(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _busy_outbox(outbox, login)
    outbox.enqueue("odd", participant_id='p"3\\x\ny', rail_type="CARD")
    auditor = login(AUDITOR)
    url = _url(pg_server, migrated_db, auditor.name)
    assert main(["outbox", "metrics", "--format", "prometheus", "--url", url]) == 0
    text = capsys.readouterr().out

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "symphony_outbox_queue_depth",
        "symphony_outbox_due_now",
        "symphony_outbox_leased",
        "symphony_outbox_expired_leases",
        "symphony_outbox_in_doubt",
        "symphony_outbox_oldest_due_age_seconds",
        "symphony_outbox_recent_attempts",
    }
    assert all(f.type == "gauge" and f.documentation for f in families.values())
    depth = {
        (s.labels["rail"], s.labels["participant"]): s.value
        for s in families["symphony_outbox_queue_depth"].samples
    }
    assert depth == {("ACH", "p2"): 1, ("RTGS", "p1"): 4, ("CARD", 'p"3\\x\ny'): 1}
    recent = {
        (s.labels["outcome"], s.labels["window"]): s.value
        for s in families["symphony_outbox_recent_attempts"].samples
        if s.labels["rail"] == "RTGS"
    }
    assert recent == {
        ("retry", "5m"): 2,
        ("retry", "60m"): 2,
        ("lost_lease", "5m"): 1,
        ("lost_lease", "60m"): 1,
        ("failure", "5m"): 1,
        ("failure", "60m"): 1,
        ("cancellation", "5m"): 1,
        ("cancellation", "60m"): 1,
    }
    doubt = {s.labels["rail"]: s.value for s in families["symphony_outbox_in_doubt"].samples}
    assert doubt == {"ACH": 0, "RTGS": 1, "CARD": 0}


def test_cli_show_prints_the_full_history_and_the_lineage(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = _failed_job(outbox)
    control = login(CONTROL)
    url = _url(pg_server, migrated_db, control.name)
    assert (
        main(
            [
                "outbox",
                "redrive",
                str(old),
                "--reason",
                "rail fixed",
                "--ticket",
                "OPS-9",
                "--url",
                url,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    new = _key_job(outbox, "instr-1")
    assert f"redriven as outbox {new}" in out

    reader = _url(pg_server, migrated_db, login(READONLY).name)
    assert main(["outbox", "show", str(old), "--url", reader]) == 0
    shown = capsys.readouterr().out
    assert "ENDED: FAILED (attempt 1)" in shown
    assert "#1 FAILED" in shown and "#2 REDRIVEN" in shown
    assert f"by: {control.name}" in shown and "reason: rail fixed" in shown
    assert "ticket: OPS-9" in shown and f"redriven as outbox: {new}" in shown

    assert main(["outbox", "show", str(new), "--url", reader]) == 0
    shown = capsys.readouterr().out
    assert f"redriven from outbox {old}" in shown and "QUEUED: 0 attempt(s)" in shown


def test_cli_cancel_and_its_refusals(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    url = _url(pg_server, migrated_db, login(CONTROL).name)

    assert (
        main(["outbox", "cancel", "not-a-uuid", "--reason", "r", "--ticket", "t", "--url", url])
        == 2
    )
    assert "OUTBOX_ID must be a UUID" in capsys.readouterr().err
    assert (
        main(["outbox", "cancel", str(outbox_id), "--reason", " ", "--ticket", "t", "--url", url])
        == 2
    )
    err = capsys.readouterr().err
    assert "--reason" in err and "22023" in err and len(err.strip().splitlines()) == 1
    assert outbox.pending(outbox_id) is not None

    assert (
        main(
            [
                "outbox",
                "cancel",
                str(outbox_id),
                "--reason",
                "dup",
                "--ticket",
                "OPS-1",
                "--url",
                url,
            ]
        )
        == 0
    )
    assert "CANCELLED (attempt 1)" in capsys.readouterr().out
    assert (
        main(
            [
                "outbox",
                "cancel",
                str(outbox_id),
                "--reason",
                "dup",
                "--ticket",
                "OPS-1",
                "--url",
                url,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "SQLSTATE P7005" in err and "Traceback" not in err
    assert main(["outbox", "show", str(uuid.uuid4()), "--url", url]) == 1
    assert "no job with outbox id" in capsys.readouterr().err


def test_cli_cancel_as_a_reader_is_refused(
    outbox: Outbox,
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbox_id = outbox.enqueue("instr-1")[0]
    url = _url(pg_server, migrated_db, login(READONLY).name)
    assert (
        main(["outbox", "cancel", str(outbox_id), "--reason", "r", "--ticket", "t", "--url", url])
        == 1
    )
    assert "SQLSTATE 42501" in capsys.readouterr().err
    assert outbox.pending(outbox_id) is not None
