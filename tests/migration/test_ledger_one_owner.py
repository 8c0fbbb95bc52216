"""One reader of the ledger and ``alembic_version``, one at-head answer, one INVALID-index query
(issue 13 items 2 and 3, ADR 0110)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from symphony_schema import policy
from symphony_schema.invariants import gate
from symphony_schema.migration import MigrationRefused, api, ledger

HEAD = api.head_revision()


def test_the_ledger_readers_take_a_psycopg_and_a_sqlalchemy_connection_alike(
    migrated_db: Any,
) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as raw:
        from_psycopg = (
            ledger.read_ledger(raw),
            ledger.read_ledger_records(raw),
            ledger.read_alembic_heads(raw),
            ledger.alembic_version_readable(raw),
        )
    engine = sa.create_engine(migrated_db.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            from_sqlalchemy = (
                ledger.read_ledger(conn),
                ledger.read_ledger_records(conn),
                ledger.read_alembic_heads(conn),
                ledger.alembic_version_readable(conn),
            )
    finally:
        engine.dispose()
    assert from_psycopg == from_sqlalchemy
    assert from_psycopg[2] == [HEAD]
    assert [row.version for row in from_psycopg[0]][-1] == HEAD
    assert [row.version for row in from_psycopg[1]] == [row.version for row in from_psycopg[0]]


def _step_back(conninfo: str) -> str:
    """Make the database look one revision behind head (ledger and alembic_version agree)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        previous = conn.execute(
            "SELECT max(version) FROM public.schema_migrations WHERE version < %s", (HEAD,)
        ).fetchone()
        assert previous is not None and previous[0]
        conn.execute("DELETE FROM public.schema_migrations WHERE version = %s", (HEAD,))
        conn.execute("UPDATE public.alembic_version SET version_num = %s", (previous[0],))
        return str(previous[0])


def test_boot_check_and_gate_give_one_answer_about_a_database_behind_head(
    migrated_db: Any,
) -> None:
    previous = _step_back(migrated_db.conninfo)
    with gate.connect(migrated_db.conninfo) as conn:
        gate_problems = gate.check_ledger_matches_files(conn)
    boot_reasons = policy.boot_check(migrated_db.conninfo)

    assert gate_problems, "the gate passed a database behind head"
    assert any(f"it is at {previous}, head is {HEAD}" in p for p in gate_problems), gate_problems
    assert set(gate_problems) <= set(boot_reasons), (gate_problems, boot_reasons)


def test_boot_check_and_gate_give_one_answer_about_an_edited_ledger(migrated_db: Any) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE public.schema_migrations SET checksum = 'sha256:' || repeat('0', 64) "
            "WHERE version = %s",
            (HEAD,),
        )
    with gate.connect(migrated_db.conninfo) as conn:
        gate_problems = gate.check_ledger_matches_files(conn)
    boot_reasons = policy.boot_check(migrated_db.conninfo)

    assert any(f"applied revision {HEAD} was edited" in p for p in gate_problems), gate_problems
    assert set(gate_problems) <= set(boot_reasons), (gate_problems, boot_reasons)


def test_the_engine_refuses_the_invalid_index_the_gate_fails_on_in_any_schema(
    migrated_db: Any,
) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA elsewhere")
        conn.execute("CREATE TABLE elsewhere.dup (v int)")
        conn.execute("INSERT INTO elsewhere.dup VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_dup_v ON elsewhere.dup (v)")
    with gate.connect(migrated_db.conninfo) as conn:
        gate_problems = gate.check_no_invalid_index(conn)
    assert len(gate_problems) == 1 and "elsewhere.ix_dup_v" in gate_problems[0], gate_problems

    with pytest.raises(MigrationRefused) as refused:
        api.upgrade(migrated_db.url)

    assert gate_problems[0] in str(refused.value)
