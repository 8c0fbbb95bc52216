"""Attack tests (docs/contract/quality.md S3) and the append-only ledger.

Runtime-role logins try to redirect the SECURITY DEFINER functions with temporary tables, to
TRUNCATE, to disable the append-only triggers and to rewrite the attempts ledger; a superuser
tries to rewrite the ledger too (the triggers hold even for superusers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.privileges import CONTROL, EXECUTOR, INGEST
from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

DENIED = "42501"

LEDGER_MUTATIONS = {
    "update": "UPDATE public.payment_outbox_attempts SET error_message = 'rewritten'",
    "delete": "DELETE FROM public.payment_outbox_attempts",
    "truncate": "TRUNCATE public.payment_outbox_attempts",
}


def _ledger(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT * FROM public.payment_outbox_attempts ORDER BY attempt_id"
    ).fetchall()


@pytest.fixture
def ledger_with_rows(outbox: Outbox) -> list[tuple[Any, ...]]:
    """Two attempts in the ledger: one retry, one dispatch."""
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "worker-1")
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE")
    outbox.make_due()
    (row,) = outbox.claim(1, "worker-1")
    outbox.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED")
    rows = _ledger(outbox.conn)
    assert len(rows) == 2
    return rows


# --------------------------------------------------------------------------------------------
# Append-only ledger
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation", list(LEDGER_MUTATIONS))
def test_superuser_cannot_mutate_the_attempts_ledger(
    outbox: Outbox, ledger_with_rows: list[tuple[Any, ...]], mutation: str
) -> None:
    with outbox.raises("P0001", match="append-only"):
        outbox.conn.execute(LEDGER_MUTATIONS[mutation])
    assert _ledger(outbox.conn) == ledger_with_rows


@pytest.mark.parametrize("mutation", list(LEDGER_MUTATIONS))
def test_replica_mode_does_not_switch_the_ledger_triggers_off(
    outbox: Outbox, ledger_with_rows: list[tuple[Any, ...]], mutation: str
) -> None:
    # Ordinary triggers do not fire with session_replication_role = replica; these are ALWAYS.
    outbox.conn.execute("SET session_replication_role = replica")
    with outbox.raises("P0001", match="append-only"):
        outbox.conn.execute(LEDGER_MUTATIONS[mutation])
    outbox.conn.execute("RESET session_replication_role")
    assert _ledger(outbox.conn) == ledger_with_rows


def test_ledger_triggers_exist_and_always_fire(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT t.tgname, t.tgenabled, t.tgfoid::regproc::text,"
        " pg_catalog.pg_get_triggerdef(t.oid)"
        " FROM pg_catalog.pg_trigger AS t"
        " WHERE t.tgrelid = 'public.payment_outbox_attempts'::regclass AND NOT t.tgisinternal"
        " ORDER BY t.tgname"
    ).fetchall()
    assert [(name, enabled, fn) for name, enabled, fn, _ in rows] == [
        ("trg_deny_outbox_attempts_mutation", "A", "deny_outbox_attempts_mutation"),
        ("trg_deny_outbox_attempts_truncate", "A", "deny_outbox_attempts_mutation"),
        ("trg_guard_archived_outbox_id", "A", "guard_archived_outbox_id"),
        ("trg_guard_attempt_participant", "A", "guard_attempt_participant"),
        ("trg_guard_outbox_attempts_insert", "A", "guard_outbox_attempts_insert"),
    ]
    assert "BEFORE DELETE OR UPDATE" in rows[0][3] and "FOR EACH ROW" in rows[0][3]
    assert "BEFORE TRUNCATE" in rows[1][3] and "FOR EACH STATEMENT" in rows[1][3]
    assert "BEFORE INSERT" in rows[3][3] and "FOR EACH ROW" in rows[3][3]
    # The participant guard (ADR 0134) fires for every writer, the owner included.
    assert "WHEN" not in rows[3][3]
    assert "BEFORE INSERT" in rows[4][3] and "FOR EACH ROW" in rows[4][3]


def test_the_queue_guard_trigger_always_fires(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT t.tgname, t.tgenabled, t.tgfoid::regproc::text,"
        " pg_catalog.pg_get_triggerdef(t.oid)"
        " FROM pg_catalog.pg_trigger AS t"
        " WHERE t.tgrelid = 'public.payment_outbox_pending'::regclass AND NOT t.tgisinternal"
        " ORDER BY t.tgname"
    ).fetchall()
    # Revision 0014 added the head triggers of per-participant FIFO (ADR 0116); all fire ALWAYS.
    assert [(name, enabled, fn) for name, enabled, fn, _ in rows] == [
        ("trg_guard_archived_outbox_id", "A", "guard_archived_outbox_id"),
        ("trg_guard_outbox_pending_write", "A", "guard_outbox_pending_write"),
        ("trg_notify_outbox_work", "A", "notify_outbox_work"),
        ("trg_place_outbox_head", "A", "place_outbox_head"),
        ("trg_promote_outbox_head", "A", "promote_outbox_head"),
    ]
    assert all("BEFORE INSERT OR UPDATE OF outbox_id" in row[3] for row in rows[:2])


@pytest.mark.parametrize("mutation", list(LEDGER_MUTATIONS))
def test_control_cannot_mutate_the_attempts_ledger(
    outbox: Outbox,
    outbox_for: type[Outbox],
    login: LoginFactory,
    ledger_with_rows: list[tuple[Any, ...]],
    mutation: str,
) -> None:
    conn = login(CONTROL).conn
    with outbox_for(conn).raises(DENIED):
        conn.execute(LEDGER_MUTATIONS[mutation])
    assert _ledger(outbox.conn) == ledger_with_rows


@pytest.mark.parametrize("role", [CONTROL, EXECUTOR, INGEST])
@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE public.payment_outbox_attempts"
        " DISABLE TRIGGER trg_deny_outbox_attempts_mutation",
        "ALTER TABLE public.payment_outbox_attempts DISABLE TRIGGER ALL",
        "DROP TRIGGER trg_deny_outbox_attempts_truncate ON public.payment_outbox_attempts",
        "ALTER FUNCTION public.deny_outbox_attempts_mutation() RENAME TO t_gone",
        "CREATE OR REPLACE FUNCTION public.deny_outbox_attempts_mutation() RETURNS trigger"
        " LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
    ],
)
def test_runtime_roles_cannot_switch_the_ledger_protection_off(
    outbox_for: type[Outbox], login: LoginFactory, role: str, statement: str
) -> None:
    conn = login(role).conn
    with outbox_for(conn).raises(DENIED):
        conn.execute(statement)


def test_control_cannot_append_to_the_ledger(
    outbox: Outbox, outbox_for: type[Outbox], login: LoginFactory
) -> None:
    """Option A let the control plane INSERT ledger rows; since 0019 (issue 20) nobody but the
    outbox functions writes the ledger: control records an outcome with cancel_outbox_job."""
    conn = login(CONTROL).conn
    with outbox_for(conn).raises(DENIED):
        conn.execute(
            "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
            " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no, state)"
            " VALUES (gen_random_uuid(), 'i', 'p', 1, 'k', 'rtgs', '{}', 1, 'FAILED')"
        )
    assert outbox.counts().attempts == 0


@pytest.mark.parametrize("role", [CONTROL, EXECUTOR, INGEST])
def test_runtime_roles_cannot_truncate_any_table(
    outbox_for: type[Outbox], login: LoginFactory, role: str
) -> None:
    conn = login(role).conn
    for table in (
        "payment_outbox_pending",
        "payment_outbox_attempts",
        "participant_outbox_sequences",
        "policy_versions",
    ):
        with outbox_for(conn).raises(DENIED):
            conn.execute(f"TRUNCATE public.{table}")


# --------------------------------------------------------------------------------------------
# search_path hijacking
# --------------------------------------------------------------------------------------------

# Same column names as the real tables (LIKE would need SELECT on them, which these roles lack).
SHADOW_TABLES = """
CREATE TEMP TABLE payment_outbox_pending (
    outbox_id uuid, instruction_id text, participant_id text, sequence_id bigint,
    idempotency_key text, rail_type text, payload jsonb, attempt_count int,
    next_attempt_at timestamptz, created_at timestamptz, claimed_by text, lease_token uuid,
    lease_expires_at timestamptz
);
CREATE TEMP TABLE payment_outbox_attempts (
    attempt_id uuid, outbox_id uuid, instruction_id text, participant_id text,
    sequence_id bigint, idempotency_key text, rail_type text, payload jsonb, attempt_no int,
    state text, claimed_at timestamptz, completed_at timestamptz, rail_reference text,
    rail_code text, error_code text, error_message text, latency_ms int, worker_id text,
    created_at timestamptz
);
CREATE TEMP TABLE participant_outbox_sequences (participant_id text, next_sequence_id bigint);
"""


@pytest.mark.parametrize("search_path", ["pg_temp, public", "pg_temp, pg_catalog, public", None])
def test_temporary_tables_do_not_redirect_the_functions(
    outbox: Outbox,
    outbox_for: type[Outbox],
    login: LoginFactory,
    search_path: str | None,
) -> None:
    conn = login(INGEST, EXECUTOR).conn
    conn.execute(SHADOW_TABLES)
    if search_path is not None:
        conn.execute(f"SET search_path = {search_path}")
    # Unqualified names now resolve to the caller's temporary tables...
    conn.execute(
        "INSERT INTO payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_count, next_attempt_at,"
        " created_at) VALUES (gen_random_uuid(), 'fake', 'p', 1, 'k', 'rtgs', '{}', 0,"
        " now() - interval '1 day', now())"
    )
    api = outbox_for(conn)

    # ...but every function keeps working on the real tables.
    outbox_id, sequence_id, _, _ = api.enqueue("instr-real")
    assert sequence_id == 1
    (row,) = api.claim(10, "worker-1")
    assert (row.outbox_id, row.instruction_id) == (outbox_id, "instr-real")
    assert api.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED") == (
        1,
        "DISPATCHED",
    )
    assert api.repair(10, "repairer") == []

    shadow = conn.execute(
        "SELECT (SELECT count(*) FROM pg_temp.payment_outbox_pending),"
        " (SELECT count(*) FROM pg_temp.payment_outbox_attempts),"
        " (SELECT count(*) FROM pg_temp.participant_outbox_sequences)"
    ).fetchone()
    assert shadow == (1, 0, 0), "a function wrote to the caller's temporary tables"
    assert outbox.counts() == OutboxCounts(pending=0, attempts=1, sequences=1)
    assert [a["instruction_id"] for a in outbox.attempts(outbox_id)] == ["instr-real"]


def test_a_temporary_function_cannot_replace_the_uuid_generator(
    outbox: Outbox, outbox_for: type[Outbox], login: LoginFactory
) -> None:
    conn = login(INGEST).conn
    conn.execute(
        "CREATE FUNCTION pg_temp.uuid_v7_or_random() RETURNS uuid LANGUAGE sql"
        " AS $$SELECT '00000000-0000-0000-0000-000000000000'::uuid$$"
    )
    conn.execute("SET search_path = pg_temp, public")

    outbox_id = outbox_for(conn).enqueue("instr-1")[0]

    assert str(outbox_id) != "00000000-0000-0000-0000-000000000000"
