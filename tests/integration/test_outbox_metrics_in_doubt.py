"""outbox_metrics() counts in-doubt jobs from the queue's in_doubt flag (ops3, revision 0022).

The claim and repair set `payment_outbox_pending.in_doubt` when they record a lost lease (issue
19); 0019's metrics probed the ledger for a ZOMBIE_REQUEUE row of every queued job with attempts
instead (the cost at 1M pending, ADR 0121). The flag is the one owner of the fact: a job whose
flag is set is in doubt, a job whose flag is clear is not, whatever the ledger probe would say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration


def _in_doubt(outbox: Outbox) -> dict[Any, int]:
    rows = outbox.conn.execute(
        "SELECT participant_id, in_doubt FROM public.outbox_metrics()"
    ).fetchall()
    return {participant: int(count) for participant, count in rows}


def test_in_doubt_is_the_queue_flag_not_a_ledger_probe(outbox: Outbox) -> None:
    flagged = outbox.enqueue("i-flagged", participant_id="p-flagged")[0]
    zombie = outbox.enqueue("i-zombie", participant_id="p-zombie")[0]
    # A real lost lease: claimed, expired, repaired -> ZOMBIE_REQUEUE in the ledger and the flag.
    outbox.claim(10, "w-1")
    outbox.expire_leases([zombie])
    assert [row[0] for row in outbox.repair(10, "w-r")] == [zombie]
    assert outbox.pending(zombie)["in_doubt"] is True  # type: ignore[index]
    # The flag alone (no ZOMBIE_REQUEUE row): the metrics must follow the flag.
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET in_doubt = true WHERE outbox_id = %s",
        (flagged,),
    )
    assert _in_doubt(outbox) == {"p-flagged": 1, "p-zombie": 1, None: 2}
    # And a cleared flag is not in doubt, whatever the ledger says.
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET in_doubt = false WHERE outbox_id = %s",
        (zombie,),
    )
    assert _in_doubt(outbox) == {"p-flagged": 1, "p-zombie": 0, None: 1}
