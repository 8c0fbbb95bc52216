"""The benchmark harness's reset empties every table of ours, the payload table too, and leaves
the append-only triggers of ledger and payloads enabled ALWAYS again."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from benchmarks import db as bench_db

pytestmark = pytest.mark.integration


def _enqueue(conn: psycopg.Connection[Any], n: int) -> None:
    for i in range(n):
        conn.execute(
            "SELECT public.enqueue_payment_outbox(%s, 'p-1', %s, 'rtgs', '{\"amount\": 1}'::jsonb)",
            (f"i-{i}", f"k-{i}"),
        )


def test_reset_ours_empties_payloads_and_keeps_them_append_only(
    db: psycopg.Connection[Any],
) -> None:
    _enqueue(db, 3)
    assert db.execute("SELECT count(*) FROM public.payment_outbox_payloads").fetchone() == (3,)
    bench_db.reset_ours(db)
    for table in (*bench_db.OURS_TABLES, "public.payment_outbox_payloads"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    states = dict(
        db.execute(
            "SELECT tgname, tgenabled FROM pg_trigger"
            " WHERE tgrelid = 'public.payment_outbox_payloads'::regclass AND NOT tgisinternal"
        ).fetchall()
    )
    assert states == {
        "trg_deny_outbox_payloads_mutation": "A",
        "trg_deny_outbox_payloads_truncate": "A",
    }
    with pytest.raises(psycopg.errors.RaiseException):
        db.execute("TRUNCATE public.payment_outbox_payloads")
    # The queue works after the reset: the next enqueue gets sequence 1 again.
    _enqueue(db, 1)
    assert db.execute("SELECT sequence_id FROM public.payment_outbox_pending").fetchone() == (1,)
