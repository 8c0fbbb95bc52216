"""Sabotages of gate:work-notification-wired (INV-070, revisions 0026 and 0033, ADRs 0151 and
0159): each breaks the wake-up notification in one way on a real migrated database and the gate
fails with INV-070 (see test_gate.py for the conventions)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import Database
from tests.invariants.conftest import failure, gate_on

pytestmark = pytest.mark.integration

PENDING = "public.payment_outbox_pending"


def test_work_notification_wired_passes_on_a_migrated_database(migrated_db: Database) -> None:
    results = gate_on(migrated_db.conninfo)
    assert [r.failed for r in results if r.invariant_id == "INV-070"] == [False]


@pytest.mark.parametrize(
    ("sabotage", "expected"),
    [
        (
            f"DROP TRIGGER trg_notify_outbox_work ON {PENDING}",
            f"trg_notify_outbox_work is missing on {PENDING}",
        ),
        (
            f"ALTER TABLE {PENDING} DISABLE TRIGGER trg_notify_outbox_work",
            f"trg_notify_outbox_work on {PENDING} is not enabled ALWAYS",
        ),
        (
            # The trigger without its WHEN clause: every insert (jobs behind a head, value-dated
            # jobs) would wake the workers for nothing.
            f"DROP TRIGGER trg_notify_outbox_work ON {PENDING};"
            f" CREATE TRIGGER trg_notify_outbox_work AFTER INSERT ON {PENDING} FOR EACH ROW"
            " EXECUTE FUNCTION public.notify_outbox_work();"
            f" ALTER TABLE {PENDING} ENABLE ALWAYS TRIGGER trg_notify_outbox_work",
            f"trg_notify_outbox_work on {PENDING} no longer fires for claimable heads only",
        ),
        (
            # The 0026 payload (the rail code alone): every listener claims on every job.
            "DO $$ BEGIN EXECUTE pg_catalog.replace(pg_catalog.pg_get_functiondef("
            "'public.notify_outbox_work()'::regprocedure),"
            " 'pg_catalog.pg_current_xact_id()::text::bigint % 1024', '0'); END $$",
            "public.notify_outbox_work() no longer notifies symphony_outbox_work with the hint",
        ),
    ],
)
def test_work_notification_wired_fails_when_unwired(
    db: psycopg.Connection[object], migrated_db: Database, sabotage: str, expected: str
) -> None:
    db.execute(sabotage)
    result = failure(gate_on(migrated_db.conninfo), "INV-070")
    assert any(d.startswith(expected) for d in result.details), result.details
