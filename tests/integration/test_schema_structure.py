"""Structure of the migrated database: UUID generation, types, names, comments, and the claim
and repair plans staying proportional to the batch size.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import sqlalchemy as sa

from symphony_schema import models, privileges

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------------------------
# UUIDs
# --------------------------------------------------------------------------------------------


def test_uuid_strategy_is_uuidv7_on_postgresql_18(db: psycopg.Connection[Any]) -> None:
    assert db.execute("SELECT public.uuid_strategy()").fetchone() == ("uuidv7",)
    body = db.execute(
        "SELECT prosrc FROM pg_catalog.pg_proc"
        " WHERE oid = 'public.uuid_v7_or_random()'::regprocedure"
    ).fetchone()
    assert body is not None
    assert "pg_catalog.uuidv7()" in body[0], "the generator must call the built-in uuidv7()"


def test_generated_uuids_are_version_7_and_time_ordered(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT public.uuid_v7_or_random() FROM generate_series(1, 2000) ORDER BY generate_series"
    ).fetchall()
    values = [uuid.UUID(str(row[0])) for row in rows]

    assert {value.version for value in values} == {7}
    assert {value.variant for value in values} == {uuid.RFC_4122}
    assert values == sorted(values, key=lambda v: v.bytes), "uuidv7 must be monotonic"
    assert len(set(values)) == len(values)


def test_outbox_ids_follow_enqueue_order(outbox: Outbox) -> None:
    ids = [uuid.UUID(str(outbox.enqueue(f"instr-{i}")[0])) for i in range(50)]
    assert ids == sorted(ids, key=lambda v: v.bytes)
    timestamps = outbox.conn.execute(
        "SELECT pg_catalog.uuid_extract_timestamp(outbox_id), created_at"
        " FROM public.payment_outbox_pending"
    ).fetchall()
    for embedded, created_at in timestamps:
        assert abs((embedded - created_at).total_seconds()) < 5


# --------------------------------------------------------------------------------------------
# Types, names, comments
# --------------------------------------------------------------------------------------------


def test_enum_labels_are_declared_in_order(db: psycopg.Connection[Any]) -> None:
    def labels(type_name: str) -> tuple[str, ...]:
        rows = db.execute(
            "SELECT e.enumlabel FROM pg_catalog.pg_enum AS e"
            " WHERE e.enumtypid = %s::regtype ORDER BY e.enumsortorder",
            (type_name,),
        ).fetchall()
        return tuple(row[0] for row in rows)

    assert labels("public.outbox_attempt_state") == models.OUTBOX_ATTEMPT_STATES
    assert labels("public.policy_version_status") == models.POLICY_VERSION_STATUSES


def test_constraint_and_index_names_match_the_models(migrated_db: Any) -> None:
    engine = sa.create_engine(migrated_db.url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table in models.metadata.tables.values():
                live_columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
                assert live_columns == {c.name: c.nullable for c in table.columns}, table.name

                live_names = {
                    inspector.get_pk_constraint(table.name)["name"],
                    *(c["name"] for c in inspector.get_check_constraints(table.name)),
                    *(c["name"] for c in inspector.get_unique_constraints(table.name)),
                    *(i["name"] for i in inspector.get_indexes(table.name)),
                }
                model_names = {str(c.name) for c in table.constraints if c.name is not None} | {
                    str(i.name) for i in table.indexes
                }
                assert live_names == model_names, table.name
    finally:
        engine.dispose()


def test_every_table_function_and_type_has_a_comment(db: psycopg.Connection[Any]) -> None:
    missing = db.execute(
        "SELECT 'table ' || c.relname FROM pg_catalog.pg_class AS c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        " AND c.relname <> 'alembic_version'"
        " AND pg_catalog.obj_description(c.oid, 'pg_class') IS NULL"
        " UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p"
        " WHERE p.pronamespace = 'public'::regnamespace"
        " AND pg_catalog.obj_description(p.oid, 'pg_proc') IS NULL"
        " UNION ALL SELECT 'type ' || t.typname FROM pg_catalog.pg_type AS t"
        " WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'e'"
        " AND pg_catalog.obj_description(t.oid, 'pg_type') IS NULL"
    ).fetchall()
    assert missing == []


def test_declared_roles_have_comments(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE r.rolname = ANY(%s)"
        " AND pg_catalog.shobj_description(r.oid, 'pg_authid') IS NULL",
        ([role.name for role in privileges.ROLES],),
    ).fetchall()
    assert rows == []


def test_lease_columns_are_all_or_nothing(outbox: Outbox) -> None:
    outbox.enqueue("instr-1")
    for assignment in (
        "claimed_by = 'w'",
        "lease_token = gen_random_uuid()",
        "lease_expires_at = now()",
        "claimed_by = 'w', lease_token = gen_random_uuid()",
    ):
        with outbox.raises("23514", match="ck_payment_outbox_pending_lease_all_or_nothing"):
            outbox.conn.execute(f"UPDATE public.payment_outbox_pending SET {assignment}")


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        (
            "UPDATE public.payment_outbox_pending SET attempt_count = -1",
            "ck_payment_outbox_pending_attempt_count_nonnegative",
        ),
        (
            "UPDATE public.payment_outbox_pending SET payload = '[]'",
            "ck_payment_outbox_pending_payload_is_object",
        ),
        (
            "UPDATE public.participant_outbox_sequences SET next_sequence_id = 0",
            "ck_participant_outbox_sequences_next_sequence_id_positive",
        ),
        (
            "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
            " sequence_id, idempotency_key, rail_type, payload)"
            " VALUES ('other', 'participant-1', 1, 'k', 'rtgs', '{}')",
            "uq_payment_outbox_pending_participant_sequence",
        ),
        (
            "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
            " sequence_id, idempotency_key, rail_type, payload)"
            " VALUES ('instr-1', 'participant-9', 9, 'key-instr-1', 'rtgs', '{}')",
            "uq_payment_outbox_pending_instruction_idempotency",
        ),
    ],
)
def test_pending_constraints(outbox: Outbox, statement: str, constraint: str) -> None:
    outbox.enqueue("instr-1")
    with outbox.raises("23514" if constraint.startswith("ck_") else "23505", match=constraint):
        outbox.conn.execute(statement)


ATTEMPT_INSERT = (
    "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
    " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, latency_ms)"
    " VALUES (%s, 'i', 'p', 1, 'k', 'rtgs', %s::jsonb, %s, %s, %s)"
)


@pytest.mark.parametrize(
    ("args", "sqlstate", "constraint"),
    [
        (("{}", 0, "FAILED", None), "23514", "ck_payment_outbox_attempts_attempt_no_positive"),
        (("[]", 1, "FAILED", None), "23514", "ck_payment_outbox_attempts_payload_is_object"),
        (("{}", 1, "FAILED", -1), "23514", "ck_payment_outbox_attempts_latency_ms_nonnegative"),
        (("{}", 1, "RETRYABLE", None), "23505", "uq_payment_outbox_attempts_outbox_attempt_no"),
        (("{}", 2, "DISPATCHED", None), "23505", "uq_payment_outbox_attempts_one_outcome"),
    ],
)
def test_attempt_constraints(
    outbox: Outbox, args: tuple[Any, ...], sqlstate: str, constraint: str
) -> None:
    outbox_id = uuid.uuid4()
    outbox.conn.execute(ATTEMPT_INSERT, (outbox_id, "{}", 1, "FAILED", None))
    with outbox.raises(sqlstate, match=constraint):
        outbox.conn.execute(ATTEMPT_INSERT, (outbox_id, *args))


def test_several_non_terminal_attempts_are_allowed(outbox: Outbox) -> None:
    outbox_id = uuid.uuid4()
    for attempt_no, state in enumerate(["RETRYABLE", "ZOMBIE_REQUEUE", "RETRYABLE", "FAILED"], 1):
        outbox.conn.execute(ATTEMPT_INSERT, (outbox_id, "{}", attempt_no, state, None))
    assert len(outbox.attempts(outbox_id)) == 4


# --------------------------------------------------------------------------------------------
# Claim and repair cost stays proportional to the batch (docs/contract/quality.md P3)
# --------------------------------------------------------------------------------------------

BACKLOG = 5000
#: The oldest 2,700 due rows (54% of the backlog, the whole head) hold leases; six of those
#: leases (rows 1, 501, ..., 2501) have expired.
LEASED_HEAD = 2700
EXPIRED_LEASES = 6


def _backlog(conn: psycopg.Connection[Any]) -> None:
    """5,000 due rows whose oldest 2,700 are leased (a few of those leases expired); each is its
    participant's head (per-participant FIFO, revision 0014: only heads are ever leased)."""
    conn.execute(
        "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload, next_attempt_at, claimed_by, lease_token,"
        " lease_expires_at)"
        " SELECT 'i' || g, 'p' || g, 1, 'k' || g, 'rtgs', '{}',"
        "        now() - interval '1 hour' + g * interval '1 ms',"
        "        CASE WHEN leased THEN 'busy-worker' END,"
        "        CASE WHEN leased THEN gen_random_uuid() END,"
        "        CASE WHEN leased THEN now() + CASE WHEN g %% 500 = 1 THEN interval '-1 minute'"
        "                                           ELSE interval '1 hour' END END"
        " FROM generate_series(1, %(n)s) AS g,"
        " LATERAL (SELECT g <= %(leased)s) AS l (leased)",
        {"n": BACKLOG, "leased": LEASED_HEAD},
    )
    conn.execute("VACUUM ANALYZE public.payment_outbox_pending")


def _plans(conn: psycopg.Connection[Any], statement: str) -> list[dict[str, Any]]:
    """Run ``statement`` with auto_explain reporting every nested statement's plan as a NOTICE
    (EXPLAIN cannot see inside a function); returns the JSON plans."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting, value in {
        "auto_explain.log_min_duration": "0",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
        "auto_explain.log_timing": "off",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_format": "json",
        "auto_explain.log_level": "notice",
    }.items():
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (setting, value))
    conn.execute(statement)
    conn.execute("SET auto_explain.log_min_duration = -1")
    plans = []
    for notice in notices:
        _, _, document = notice.partition("plan:")
        if document.strip().startswith("{"):
            plans.append(json.loads(document)["Plan"])
    return plans


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _table_scans(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        node
        for plan in plans
        for node in _nodes(plan)
        if node.get("Relation Name") == "payment_outbox_pending"
    ]


def test_claim_reads_a_batch_not_the_leased_backlog(db: psycopg.Connection[Any]) -> None:
    _backlog(db)

    plans = _plans(db, "SELECT * FROM public.claim_outbox_batch(10, 'worker-1', 30)")

    scans = _table_scans(plans)
    assert scans, "auto_explain reported no plan for the claim query"
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"], "claim must not scan the table"
    by_index = {n.get("Index Name"): n for n in scans if n["Node Type"] == "Index Scan"}
    assert "ix_payment_outbox_pending_claimable" in by_index
    # Since 0032 (ADR 0158) unleased heads filled the batch, so the lease index is not read at
    # all (the take-over statement runs only for a claim that comes up short).
    assert "ix_payment_outbox_pending_lease_expires" not in by_index, by_index
    # Proportional to the batch: the scan reads at most a batch worth of rows and filters none
    # out, although the 2,700 oldest due rows are leased (an index over all rows would walk
    # past every one of them).
    name = "ix_payment_outbox_pending_claimable"
    assert by_index[name]["Actual Rows"] <= 10, by_index[name]
    assert by_index[name].get("Rows Removed by Filter", 0) == 0, by_index[name]
    # The claim statement's own buffers (the outer SELECT's plan would count them twice):
    # about 20 per claimed row (heap, five indexes, locks); walking the leased head would cost
    # thousands.
    (claim_plan,) = [p for p in plans if _table_scans([p])]
    hits = claim_plan.get("Shared Hit Blocks", 0) + claim_plan.get("Shared Read Blocks", 0)
    assert hits < 400, f"claim touched {hits} buffers for 10 rows"
    claimed = db.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE claimed_by = 'worker-1'"
    ).fetchone()
    assert claimed == (10,)


def test_repair_reads_only_the_expired_leases(db: psycopg.Connection[Any]) -> None:
    _backlog(db)

    plans = _plans(db, "SELECT * FROM public.repair_expired_leases(100, 'repairer')")

    scans = [n for n in _table_scans(plans) if n["Node Type"] in {"Index Scan", "Seq Scan"}]
    lease_scans = [
        n for n in scans if n.get("Index Name") == "ix_payment_outbox_pending_lease_expires"
    ]
    assert lease_scans, scans
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"]
    assert lease_scans[0]["Actual Rows"] == EXPIRED_LEASES, "repair read live leases"
    assert db.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts WHERE state = 'ZOMBIE_REQUEUE'"
    ).fetchone() == (EXPIRED_LEASES,)
