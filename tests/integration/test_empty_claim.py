"""Revision 0033 (issue 17 P6, ADR 0160): a claim that finds nothing stays cheap.

Before 0033 a claim that came up short always ran its take-over statement (0032, ADR 0158), whose
plan reads and appends the partitioned ledger and so locks and opens the ledger and every one of
its partitions at executor start, even when there is no expired lease to take over. Now a probe
of the lease index decides: the take-over statement runs only when an expired lease of a due head
exists. What the executor start-up of that plan leaves behind is visible: the ledger's locks,
held by the claim's transaction until it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration


def _claim_locking_the_ledger(conn: psycopg.Connection[Any], batch: int) -> tuple[int, int]:
    """(rows claimed, ledger relations the claim locked) of one claim in its own transaction."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT * FROM public.claim_outbox_batch(%s, 'w-empty', 30)", (batch,)
        ).fetchall()
        (locked,) = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_locks AS l"
            " JOIN pg_catalog.pg_class AS c ON c.oid = l.relation"
            " WHERE l.pid = pg_catalog.pg_backend_pid()"
            "   AND c.relname LIKE 'payment_outbox_attempts%%'"
        ).fetchone()
    return len(rows), int(locked)


def test_an_empty_claim_does_not_open_the_ledger(outbox: Outbox) -> None:
    conn = outbox.conn
    for _ in range(3):  # the plan cache of the function: the first calls and the generic plan
        assert _claim_locking_the_ledger(conn, 10) == (0, 0)
    # A live lease (not expired) is nothing to take over either.
    outbox.enqueue("live", participant_id="p-live")
    assert _claim_locking_the_ledger(conn, 1) == (1, 0)
    assert _claim_locking_the_ledger(conn, 10) == (0, 0)
    # An unleased head that does not fill the batch: no take-over either.
    outbox.enqueue("short", participant_id="p-short")
    assert _claim_locking_the_ledger(conn, 10) == (1, 0)


def test_an_expired_lease_is_still_taken_over_by_a_short_claim(outbox: Outbox) -> None:
    a = outbox.enqueue("a-1", participant_id="pa")[0]
    b = outbox.enqueue("b-1", participant_id="pb")[0]
    (first,) = outbox.claim(1, "w-1")
    assert first.outbox_id == a
    outbox.expire_leases([a])
    taken = outbox.claim(10, "w-2")
    assert [(r.outbox_id, r.in_doubt) for r in taken] == [(b, False), (a, True)]
    assert [r["state"] for r in outbox.attempts(a)] == ["ZOMBIE_REQUEUE"]
    # An expired lease of a job that is not due (a retry's delay) is not taken over.
    outbox.expire_leases([a])
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() + interval '1 hour'"
        " WHERE outbox_id = %s",
        (a,),
    )
    assert _claim_locking_the_ledger(outbox.conn, 10) == (0, 0)
