"""Issue 20 phase 2 (revision 0020): enqueue normalises the rail and checks payload numbers.

Enqueue stores the canonical rail code (outbox_rail_code: 22023 for an unknown or disabled rail)
and refuses payload numbers a JSON consumer cannot represent exactly (check_outbox_payload_numbers:
22023 naming the JSON path). A replay is compared against what was stored, by canonical rail: a
replay spelled `rtgs` after `RTGS` (or of a job stored as `rtgs` before 0020) is the same job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration


def _counts(outbox: Outbox) -> tuple[Any, ...]:
    row = outbox.conn.execute(
        "SELECT (SELECT count(*) FROM public.payment_outbox_pending),"
        "       (SELECT count(*) FROM public.payment_outbox_idempotency_keys),"
        "       (SELECT count(*) FROM public.participant_outbox_sequences)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_enqueue_stores_the_canonical_rail_code(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("i-1", rail_type="rTgS")[0]
    assert outbox.conn.execute(
        "SELECT rail_type FROM public.payment_outbox_pending WHERE outbox_id = %s", (outbox_id,)
    ).fetchone() == ("RTGS",)


@pytest.mark.parametrize("rail", ["fps", "RTGS ", "\u0131"])
def test_enqueue_refuses_an_unknown_rail_and_writes_nothing(outbox: Outbox, rail: str) -> None:
    with outbox.raises("22023", match="p_rail_type .* is not a registered rail"):
        outbox.enqueue("i-1", rail_type=rail)
    assert _counts(outbox) == (0, 0, 0)


def test_enqueue_refuses_a_disabled_rail(outbox: Outbox, login: LoginFactory) -> None:
    login("symphony_control").conn.execute("SELECT public.disable_outbox_rail('ach')")
    with outbox.raises("22023", match="is not an enabled rail"):
        outbox.enqueue("i-1", rail_type="ach")
    assert _counts(outbox) == (0, 0, 0)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ('{"amount": 9007199254740993}', "$.amount"),
        ('{"items": [1, {"v": 0.30000000000000001}]}', "$.items[1].v"),
    ],
)
def test_enqueue_refuses_inexact_payload_numbers_naming_the_path(
    outbox: Outbox, payload: str, path: str
) -> None:
    with outbox.raises("22023", match=path.replace("$", r"\$").replace("[", r"\[")):
        outbox.enqueue("i-1", payload=payload)
    assert _counts(outbox) == (0, 0, 0)


def test_a_replay_in_another_spelling_is_the_same_job(outbox: Outbox) -> None:
    first = outbox.enqueue("i-1", rail_type="RTGS")
    assert outbox.enqueue("i-1", rail_type="rtgs") == first
    with outbox.raises("P7004"):
        outbox.enqueue("i-1", rail_type="ACH")


def test_a_replay_of_a_job_stored_before_0020_in_lower_case_is_the_same_job(
    outbox: Outbox,
) -> None:
    outbox_id = outbox.enqueue("i-1", rail_type="RTGS")[0]
    # A job queued before 0020 kept its spelling: make it so (as the owner, the test superuser).
    outbox.conn.execute("ALTER TABLE public.payment_outbox_pending DISABLE TRIGGER USER")
    outbox.conn.execute(
        "UPDATE public.payment_outbox_pending SET rail_type = 'rtgs' WHERE outbox_id = %s",
        (outbox_id,),
    )
    outbox.conn.execute("ALTER TABLE public.payment_outbox_pending ENABLE TRIGGER USER")
    assert outbox.enqueue("i-1", rail_type="Rtgs")[0] == outbox_id
    assert outbox.enqueue("i-1", rail_type="rtgs")[0] == outbox_id


def test_a_replay_after_the_rail_was_disabled_returns_the_stored_job(
    outbox: Outbox, login: LoginFactory
) -> None:
    first = outbox.enqueue("i-1", rail_type="ach")
    login("symphony_control").conn.execute("SELECT public.disable_outbox_rail('ACH')")
    assert outbox.enqueue("i-1", rail_type="ach") == first
    with outbox.raises("22023", match="is not an enabled rail"):
        outbox.enqueue("i-2", rail_type="ach")


def test_a_rail_scoped_claim_matches_any_spelling(outbox: Outbox) -> None:
    outbox_id = outbox.enqueue("i-1", rail_type="swift")[0]
    rows = outbox.conn.execute(
        "SELECT outbox_id, rail_type FROM public.claim_outbox_batch(10, 'w-1', 30, %s)",
        (["Swift"],),
    ).fetchall()
    assert rows == [(outbox_id, "SWIFT")]
