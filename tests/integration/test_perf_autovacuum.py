"""Revision 0009 (ADR 0042): the queue table is vacuumed after a fixed number of dead rows, not
after a share of its size, so a long backlog does not pile dead rows up in front of the claims."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.integration


def _options(db: psycopg.Connection[Any], table: str) -> dict[str, str]:
    row = db.execute(
        "SELECT COALESCE(c.reloptions, '{}') FROM pg_catalog.pg_class AS c"
        " WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()
    assert row is not None
    return dict(option.split("=", 1) for option in row[0])


def test_the_queue_table_is_vacuumed_after_a_fixed_number_of_dead_rows(
    db: psycopg.Connection[Any],
) -> None:
    assert _options(db, "public.payment_outbox_pending") == {
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "10000",
    }
    # The append-only ledger and the other tables keep the server's defaults.
    for table in (
        "public.payment_outbox_attempts",
        "public.participant_outbox_sequences",
        "public.policy_versions",
    ):
        assert _options(db, table) == {}, table


def test_the_vacuum_trigger_does_not_grow_with_the_backlog(db: psycopg.Connection[Any]) -> None:
    """What autovacuum computes for a 1,000,000-row queue: the threshold, not 20% of it."""
    row = db.execute(
        "SELECT COALESCE((SELECT split_part(o, '=', 2)::float8"
        "                   FROM unnest(c.reloptions) AS o"
        "                  WHERE o LIKE 'autovacuum_vacuum_threshold=%%'),"
        "                current_setting('autovacuum_vacuum_threshold')::float8)"
        "     + COALESCE((SELECT split_part(o, '=', 2)::float8"
        "                   FROM unnest(c.reloptions) AS o"
        "                  WHERE o LIKE 'autovacuum_vacuum_scale_factor=%%'),"
        "                current_setting('autovacuum_vacuum_scale_factor')::float8) * 1000000"
        " FROM pg_catalog.pg_class AS c WHERE c.oid = 'public.payment_outbox_pending'::regclass"
    ).fetchone()
    assert row == (10000.0,)
