"""A DISPATCHED attempt carries a rail reference, unique per rail (issue 20 item 4, ops3).

Revision 0023 wires public.record_outbox_rail_reference() (0019, ADR 0123) into
complete_outbox_attempt() and complete_outbox_attempts_batch() (ADR 0141): a rail registered with
returns_reference requires a non-blank reference (22023 naming the argument), a reference another
job of the same rail reported is P7013 RAIL_REFERENCE_REUSED, and a refused completion writes
nothing (the job stays leased). The reference lands on the ledger row (as before) and in
public.outbox_rail_references (the uniqueness rule, kept when ledger partitions are archived).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.privileges import AUDITOR, CONTROL, EXECUTOR, INGEST, READONLY

if TYPE_CHECKING:
    from tests.integration.conftest import ClaimedRow, LoginFactory, Outbox

pytestmark = pytest.mark.integration

SINGLE = (
    "SELECT attempt_no, state::text FROM public.complete_outbox_attempt(%s, %s, %s, 'DISPATCHED',"
    " p_rail_reference => %s)"
)
BATCH = (
    "SELECT outbox_id, attempt_no, state::text FROM public.complete_outbox_attempts_batch("
    "%s, %s::uuid[], %s::uuid[], %s::text[], p_rail_references => %s::text[])"
)


def _leased(outbox: Outbox, *jobs: tuple[str, str], worker: str = "w-1") -> list[ClaimedRow]:
    """Enqueue one job per (instruction, rail), each its own participant, and lease them all."""
    for instruction, rail in jobs:
        outbox.enqueue(instruction, participant_id=f"p-{instruction}", rail_type=rail)
    claimed = outbox.claim(len(jobs), worker)
    assert len(claimed) == len(jobs)
    order = [instruction for instruction, _ in jobs]
    return sorted(claimed, key=lambda row: order.index(row.instruction_id))


def _state(outbox: Outbox) -> tuple[Any, ...]:
    """Everything a completion writes: queue leases, ledger and references."""
    return (
        outbox.conn.execute(
            "SELECT outbox_id, lease_token FROM public.payment_outbox_pending ORDER BY 1"
        ).fetchall(),
        outbox.conn.execute("SELECT count(*) FROM public.payment_outbox_attempts").fetchone(),
        outbox.conn.execute(
            "SELECT * FROM public.outbox_rail_references ORDER BY rail_code, rail_reference"
        ).fetchall(),
    )


def _references(outbox: Outbox) -> list[tuple[Any, ...]]:
    return outbox.conn.execute(
        "SELECT rail_code, rail_reference, outbox_id, attempt_no"
        " FROM public.outbox_rail_references ORDER BY rail_code, rail_reference"
    ).fetchall()


def test_a_dispatch_records_its_reference_in_the_ledger_and_the_references(
    outbox: Outbox,
) -> None:
    (job,) = _leased(outbox, ("i-1", "rtgs"))
    assert outbox.conn.execute(
        SINGLE, (job.outbox_id, job.lease_token, "w-1", "RT-1")
    ).fetchone() == (
        1,
        "DISPATCHED",
    )
    assert _references(outbox) == [("RTGS", "RT-1", job.outbox_id, 1)]
    assert outbox.attempts(job.outbox_id)[0]["rail_reference"] == "RT-1"


@pytest.mark.parametrize("reference", [None, "", "   ", "\t\n"])
def test_a_dispatch_without_a_reference_is_refused_and_writes_nothing(
    outbox: Outbox, reference: str | None
) -> None:
    (job,) = _leased(outbox, ("i-1", "RTGS"))
    before = _state(outbox)
    with outbox.raises("22023", match="p_rail_reference must be given .* on rail RTGS"):
        outbox.conn.execute(SINGLE, (job.outbox_id, job.lease_token, "w-1", reference))
    assert _state(outbox) == before
    # The job is still this worker's: it completes once the reference is given.
    assert outbox.conn.execute(
        SINGLE, (job.outbox_id, job.lease_token, "w-1", "RT-1")
    ).fetchone() == (
        1,
        "DISPATCHED",
    )


def test_an_over_long_reference_is_refused(outbox: Outbox) -> None:
    (job,) = _leased(outbox, ("i-1", "RTGS"))
    before = _state(outbox)
    with outbox.raises("22023", match="p_rail_reference must be at most 1024 bytes"):
        outbox.conn.execute(SINGLE, (job.outbox_id, job.lease_token, "w-1", "x" * 1025))
    assert _state(outbox) == before


def test_a_reference_reused_by_another_job_of_the_rail_is_p7013(outbox: Outbox) -> None:
    first, second, other_rail = _leased(outbox, ("i-1", "RTGS"), ("i-2", "rtgs"), ("i-3", "ACH"))
    outbox.conn.execute(SINGLE, (first.outbox_id, first.lease_token, "w-1", "REF-42"))
    before = _state(outbox)
    with outbox.raises(
        "P7013", match=f"RAIL_REFERENCE_REUSED: .*'REF-42'.*RTGS.*{first.outbox_id}"
    ):
        outbox.conn.execute(SINGLE, (second.outbox_id, second.lease_token, "w-1", "REF-42"))
    assert _state(outbox) == before
    # The same reference on another rail is another key.
    outbox.conn.execute(SINGLE, (other_rail.outbox_id, other_rail.lease_token, "w-1", "REF-42"))
    assert [(r[0], r[1], r[2]) for r in _references(outbox)] == [
        ("ACH", "REF-42", other_rail.outbox_id),
        ("RTGS", "REF-42", first.outbox_id),
    ]


def test_a_rail_without_references_accepts_none(outbox: Outbox, login: LoginFactory) -> None:
    login(CONTROL).conn.execute("SELECT public.register_outbox_rail('CARD', false)")
    (job,) = _leased(outbox, ("i-1", "card"))
    outbox.conn.execute(SINGLE, (job.outbox_id, job.lease_token, "w-1", None))
    assert _references(outbox) == []
    assert outbox.attempts(job.outbox_id)[0]["state"] == "DISPATCHED"


def test_failed_and_retryable_outcomes_need_no_reference(outbox: Outbox) -> None:
    retry, failed = _leased(outbox, ("i-1", "RTGS"), ("i-2", "RTGS"))
    assert outbox.complete(retry.outbox_id, retry.lease_token, "w-1", "RETRYABLE")[1] == "RETRYABLE"
    assert outbox.complete(failed.outbox_id, failed.lease_token, "w-1", "FAILED")[1] == "FAILED"
    assert _references(outbox) == []


def test_a_late_but_current_completion_records_its_reference(outbox: Outbox) -> None:
    (job,) = _leased(outbox, ("i-1", "RTGS"))
    outbox.expire_leases()  # past lease_expires_at, but nobody replaced the token (ADR 0118)
    outbox.conn.execute(SINGLE, (job.outbox_id, job.lease_token, "w-1", "LATE-1"))
    assert _references(outbox) == [("RTGS", "LATE-1", job.outbox_id, 1)]


def test_a_replaced_token_is_p7002_and_the_stale_outcome_keeps_its_reference(
    outbox: Outbox,
) -> None:
    (job,) = _leased(outbox, ("i-1", "RTGS"))
    outbox.expire_leases()
    outbox.repair(10, "repairer")  # the token is replaced: attempt 1 is the lost lease
    with outbox.raises("P7002", match="LEASE_LOST"):
        outbox.conn.execute(SINGLE, (job.outbox_id, job.lease_token, "w-1", "STALE-1"))
    assert _references(outbox) == []
    outbox.conn.execute(
        "SELECT public.record_stale_outbox_outcome(%s, %s, 'w-1', 'DISPATCHED',"
        " p_rail_reference => 'STALE-1')",
        (job.outbox_id, job.lease_token),
    )
    assert outbox.conn.execute(
        "SELECT rail_reference FROM public.payment_outbox_stale_outcomes WHERE outbox_id = %s",
        (job.outbox_id,),
    ).fetchone() == ("STALE-1",)
    # The job's next worker finds the payment at the rail and reports the same reference.
    outbox.make_due()
    (again,) = outbox.claim(1, "w-2")
    assert outbox.conn.execute(
        SINGLE, (again.outbox_id, again.lease_token, "w-2", "STALE-1")
    ).fetchone() == (
        2,
        "DISPATCHED",
    )
    assert _references(outbox) == [("RTGS", "STALE-1", job.outbox_id, 2)]


def test_a_control_login_completing_gets_the_same_rules(
    outbox: Outbox, login: LoginFactory
) -> None:
    first, second = _leased(outbox, ("i-1", "RTGS"), ("i-2", "RTGS"))
    control = login(CONTROL).conn
    control.execute(SINGLE, (first.outbox_id, first.lease_token, "w-1", "C-1"))
    with outbox.raises("P7013"):
        control.execute(SINGLE, (second.outbox_id, second.lease_token, "w-1", "C-1"))
    with outbox.raises("22023"):
        control.execute(SINGLE, (second.outbox_id, second.lease_token, "w-1", None))


@pytest.mark.parametrize("role", [CONTROL, EXECUTOR, INGEST, READONLY, AUDITOR])
def test_no_runtime_role_writes_references_directly(
    outbox: Outbox, login: LoginFactory, role: str
) -> None:
    conn = login(role).conn
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO public.outbox_rail_references (rail_code, rail_reference, outbox_id,"
            " attempt_no) VALUES ('RTGS', 'forged', %s, 1)",
            (uuid.uuid4(),),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "SELECT public.record_outbox_rail_reference(%s, 1, 'RTGS', 'forged')", (uuid.uuid4(),)
        )
    assert _references(outbox) == []


def test_a_batch_names_the_element_without_a_reference_and_writes_nothing(
    outbox: Outbox,
) -> None:
    jobs = _leased(outbox, ("i-1", "RTGS"), ("i-2", "RTGS"), ("i-3", "RTGS"))
    ids = [j.outbox_id for j in jobs]
    tokens = [j.lease_token for j in jobs]
    before = _state(outbox)
    with outbox.raises(
        "22023",
        match=r"p_rail_references element 2 \(outbox .*, DISPATCHED on rail RTGS\) must be a "
        "non-empty",
    ):
        outbox.conn.execute(BATCH, ("w-1", ids, tokens, ["DISPATCHED"] * 3, ["B-1", " ", "B-3"]))
    with outbox.raises("22023", match=r"p_rail_references element 1 .* must be a non-empty"):
        outbox.conn.execute(BATCH, ("w-1", ids, tokens, ["DISPATCHED"] * 3, None))
    assert _state(outbox) == before


def test_a_batch_reusing_a_reference_is_p7013_and_writes_nothing(outbox: Outbox) -> None:
    jobs = _leased(outbox, ("i-1", "RTGS"), ("i-2", "RTGS"), ("i-3", "ACH"))
    ids = [j.outbox_id for j in jobs]
    tokens = [j.lease_token for j in jobs]
    before = _state(outbox)
    # Two jobs of one rail with one reference inside one batch.
    with outbox.raises("P7013", match=f"already reported by outbox {ids[0]}"):
        outbox.conn.execute(BATCH, ("w-1", ids, tokens, ["DISPATCHED"] * 3, ["DUP", "DUP", "A-1"]))
    assert _state(outbox) == before
    # Another rail may carry the same reference; a FAILED element needs none.
    rows = outbox.conn.execute(
        BATCH, ("w-1", ids, tokens, ["DISPATCHED", "FAILED", "DISPATCHED"], ["DUP", None, "DUP"])
    ).fetchall()
    assert [r[2] for r in rows] == ["DISPATCHED", "FAILED", "DISPATCHED"]
    assert [(r[0], r[1], r[2]) for r in _references(outbox)] == [
        ("ACH", "DUP", ids[2]),
        ("RTGS", "DUP", ids[0]),
    ]
