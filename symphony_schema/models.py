"""SQLAlchemy Core table definitions mirroring the migrated Symphony schema.

The revisions under ``alembic/versions`` are the source of truth; these definitions describe the
database they produce so that application code can build queries and the drift check can compare
them against the live catalog (columns, types, nullability, server defaults, constraints, indexes
and enums). Every constraint and index carries the exact name the SQL gives it: names are wrapped
in :func:`~sqlalchemy.sql.elements.conv` so the naming convention below never rewrites them, while
the convention still names anything added later without an explicit name.

Revisions never import this module (a revision is frozen in time); a schema change is a new
revision first, then the matching edit here.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, ENUM, JSONB, UUID
from sqlalchemy.sql.elements import conv

__all__ = [
    "NAMING_CONVENTION",
    "OUTBOX_ATTEMPT_STATES",
    "POLICY_VERSION_STATUSES",
    "archived_ledger_partitions",
    "metadata",
    "outbox_attempt_state",
    "outbox_rail_references",
    "outbox_rails",
    "outbox_settings",
    "participant_outbox_sequences",
    "payment_outbox_attempts",
    "payment_outbox_idempotency_keys",
    "payment_outbox_payloads",
    "payment_outbox_pending",
    "policy_version_status",
    "policy_versions",
    "schema_migrations",
]

#: Convention for constraints and indexes declared without an explicit name.
NAMING_CONVENTION: Final[dict[str, str]] = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}

metadata: Final = MetaData(naming_convention=NAMING_CONVENTION)

# Server-side expressions, written as the revisions write them.
_UUID_DEFAULT: Final = text("public.uuid_v7_or_random()")
_NOW: Final = text("now()")

#: Values of ``public.outbox_attempt_state`` in declaration order (0001; CANCELLED and REDRIVEN:
#: 0017, issue 20).
OUTBOX_ATTEMPT_STATES: Final[tuple[str, ...]] = (
    "DISPATCHING",
    "DISPATCHED",
    "RETRYABLE",
    "FAILED",
    "ZOMBIE_REQUEUE",
    "CANCELLED",
    "REDRIVEN",
)

#: Values of ``public.policy_version_status`` in declaration order (0005).
POLICY_VERSION_STATUSES: Final[tuple[str, ...]] = ("ACTIVE", "GRACE", "RETIRED")

# The types are created by the revisions; metadata.create_all() must never emit CREATE TYPE.
outbox_attempt_state: Final = ENUM(
    *OUTBOX_ATTEMPT_STATES,
    name="outbox_attempt_state",
    metadata=metadata,
    create_type=False,
)

policy_version_status: Final = ENUM(
    *POLICY_VERSION_STATUSES,
    name="policy_version_status",
    metadata=metadata,
    create_type=False,
)


participant_outbox_sequences: Final = Table(
    "participant_outbox_sequences",
    metadata,
    Column("participant_id", Text, nullable=False),
    Column("next_sequence_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("participant_id", name=conv("pk_participant_outbox_sequences")),
    CheckConstraint(
        "next_sequence_id >= 1",
        name=conv("ck_participant_outbox_sequences_next_sequence_id_positive"),
    ),
    comment=(
        "Next sequence number to hand out per participant. Written only by the allocator "
        "upsert, in public.bump_participant_outbox_seq() and inlined in "
        "public.enqueue_payment_outbox()."
    ),
)


payment_outbox_pending: Final = Table(
    "payment_outbox_pending",
    metadata,
    Column("outbox_id", UUID(as_uuid=True), nullable=False, server_default=_UUID_DEFAULT),
    Column("instruction_id", Text, nullable=False),
    Column("participant_id", Text, nullable=False),
    Column("sequence_id", BigInteger, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("rail_type", Text, nullable=False),
    # Revision 0038 (ADR 0167): nullable and unwritten; the payload table holds the one copy.
    Column(
        "payload",
        JSONB,
        nullable=True,
        comment="The job's payload, copied into rows queued before revision 0038; NULL since "
        "(ADR 0167): the job's row in payment_outbox_payloads is its one copy, which the claim "
        "returns.",
    ),
    Column("attempt_count", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("claimed_by", Text, nullable=True),
    Column("lease_token", UUID(as_uuid=True), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    # Revision 0014 (issue 19, ADRs 0116-0119).
    Column(
        "is_head",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="True for the participant's queued job with the lowest sequence_id: the only one "
        "of its jobs a claim may lease (per-participant FIFO). Maintained by enqueue, the "
        "completions and trg_promote_outbox_head.",
    ),
    Column(
        "priority",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="Enqueue priority (higher is claimed first across participants; never within one).",
    ),
    Column(
        "in_doubt",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="True once an earlier lease of the job ended without a recorded outcome (a "
        "ZOMBIE_REQUEUE attempt is in the ledger): the rail may already have the payment.",
    ),
    Column(
        "claimed_at",
        DateTime(timezone=True),
        nullable=True,
        comment="When the current lease was taken (NULL without a lease, and for leases taken "
        "before 0014).",
    ),
    PrimaryKeyConstraint("outbox_id", name=conv("pk_payment_outbox_pending")),
    UniqueConstraint(
        "participant_id",
        "sequence_id",
        name=conv("uq_payment_outbox_pending_participant_sequence"),
    ),
    UniqueConstraint(
        "instruction_id",
        "idempotency_key",
        name=conv("uq_payment_outbox_pending_instruction_idempotency"),
    ),
    CheckConstraint(
        "jsonb_typeof(payload) = 'object'",
        name=conv("ck_payment_outbox_pending_payload_is_object"),
    ),
    CheckConstraint(
        "attempt_count >= 0",
        name=conv("ck_payment_outbox_pending_attempt_count_nonnegative"),
    ),
    CheckConstraint(
        "(claimed_by IS NULL AND lease_token IS NULL AND lease_expires_at IS NULL)"
        " OR (claimed_by IS NOT NULL AND lease_token IS NOT NULL"
        " AND lease_expires_at IS NOT NULL)",
        name=conv("ck_payment_outbox_pending_lease_all_or_nothing"),
    ),
    # Claim (revision 0015, ADR 0116): claimable heads, highest priority then oldest due first;
    # leased heads and the jobs queued behind a head never enter these indexes.
    Index(
        conv("ix_payment_outbox_pending_claimable"),
        text("priority DESC"),
        "next_attempt_at",
        "outbox_id",
        postgresql_where=text("is_head AND lease_token IS NULL"),
    ),
    Index(
        conv("ix_payment_outbox_pending_claimable_rail"),
        "rail_type",
        text("priority DESC"),
        "next_attempt_at",
        "outbox_id",
        postgresql_where=text("is_head AND lease_token IS NULL"),
    ),
    # Claim and repair: the expired prefix of the leased rows.
    Index(
        conv("ix_payment_outbox_pending_lease_expires"),
        "lease_expires_at",
        "outbox_id",
        postgresql_where=text("lease_token IS NOT NULL"),
    ),
    comment=(
        "Outbox work queue: one row per enqueued payment instruction until its terminal "
        "attempt. attempt_count caches the highest attempt number; payment_outbox_attempts "
        "is the truth."
    ),
)


payment_outbox_attempts: Final = Table(
    "payment_outbox_attempts",
    metadata,
    Column("attempt_id", UUID(as_uuid=True), nullable=False, server_default=_UUID_DEFAULT),
    Column("outbox_id", UUID(as_uuid=True), nullable=False),
    Column("instruction_id", Text, nullable=False),
    Column("participant_id", Text, nullable=False),
    Column("sequence_id", BigInteger, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("rail_type", Text, nullable=False),
    # NULL since revision 0024: the payload is stored once, in payment_outbox_payloads.
    Column(
        "payload",
        JSONB,
        nullable=True,
        comment="The job's payload, copied into rows written before revision 0024; NULL since "
        "then (the payload is stored once in public.payment_outbox_payloads).",
    ),
    Column("attempt_no", Integer, nullable=False),
    Column("state", outbox_attempt_state, nullable=False),
    Column(
        "claimed_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=_NOW,
        comment="When the lease of the attempt was taken (since 0014; before, when the attempt "
        "was recorded).",
    ),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("rail_reference", Text, nullable=True),
    Column("rail_code", Text, nullable=True),
    Column("error_code", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("worker_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    # Revision 0014 (ADR 0119): the lease the attempt ran under and the login that recorded it.
    Column(
        "lease_token",
        UUID(as_uuid=True),
        nullable=True,
        comment="The lease the attempt ran under (for a ZOMBIE_REQUEUE or a lost lease FAILED: "
        "the lease that expired). NULL for rows recorded before 0014 and for rows inserted by "
        "the control plane.",
    ),
    Column(
        "recorded_by",
        Text,
        nullable=True,
        server_default=text("SESSION_USER"),
        comment="session_user of the transaction that recorded the row (the login, not the "
        "worker's self-reported worker_id). NULL for rows recorded before 0014.",
    ),
    # Revision 0017 (issue 20, ADR 0120): who cancelled or redrove the job, why, under which
    # ticket, and (REDRIVEN rows) the job that replaced it.
    Column(
        "acted_by",
        Text,
        nullable=True,
        comment=(
            "session_user of the operator who cancelled or redrove the job (CANCELLED and "
            "REDRIVEN rows)."
        ),
    ),
    Column(
        "reason",
        Text,
        nullable=True,
        comment="Why the operator intervened (required for CANCELLED and REDRIVEN rows).",
    ),
    Column(
        "ticket",
        Text,
        nullable=True,
        comment=(
            "The change or incident ticket of the intervention (required for CANCELLED and "
            "REDRIVEN rows)."
        ),
    ),
    Column(
        "related_outbox_id",
        UUID(as_uuid=True),
        nullable=True,
        comment="On a REDRIVEN row: the new job that replaced this one.",
    ),
    # Revision 0025 (ADR 0130, 0134): partitioned by RANGE (outbox_id); unique keys hold the
    # partition key and participant_id (the Citus distribution column, ADR 0126).
    PrimaryKeyConstraint(
        "outbox_id", "participant_id", "attempt_id", name=conv("pk_payment_outbox_attempts")
    ),
    UniqueConstraint(
        "outbox_id",
        "participant_id",
        "attempt_no",
        name=conv("uq_payment_outbox_attempts_outbox_attempt_no"),
    ),
    CheckConstraint(
        "jsonb_typeof(payload) = 'object'",
        name=conv("ck_payment_outbox_attempts_payload_is_object"),
    ),
    CheckConstraint(
        "attempt_no >= 1",
        name=conv("ck_payment_outbox_attempts_attempt_no_positive"),
    ),
    CheckConstraint(
        "latency_ms IS NULL OR latency_ms >= 0",
        name=conv("ck_payment_outbox_attempts_latency_ms_nonnegative"),
    ),
    # At most one outcome per job: a second one would be a double dispatch (0018 added
    # CANCELLED; it replaced uq_payment_outbox_attempts_one_terminal).
    Index(
        conv("uq_payment_outbox_attempts_one_outcome"),
        "outbox_id",
        "participant_id",
        unique=True,
        postgresql_where=text("state IN ('DISPATCHED', 'FAILED', 'CANCELLED')"),
    ),
    # A job is redriven at most once (0018).
    Index(
        conv("uq_payment_outbox_attempts_one_redrive"),
        "outbox_id",
        "participant_id",
        unique=True,
        postgresql_where=text("state = 'REDRIVEN'"),
    ),
    # outbox show: the job a redriven job came from (0018).
    Index(
        conv("ix_payment_outbox_attempts_related_outbox"),
        "related_outbox_id",
        postgresql_where=text("related_outbox_id IS NOT NULL"),
    ),
    # outbox_metrics(): the last hour's retries, failures, cancellations and lost leases (0018).
    Index(
        conv("ix_payment_outbox_attempts_recent_trouble"),
        "created_at",
        postgresql_where=text("state IN ('RETRYABLE', 'FAILED', 'CANCELLED', 'ZOMBIE_REQUEUE')"),
    ),
    # No index on (instruction_id, idempotency_key) since 0032: enqueue reads the ledger by the
    # key row's outbox_id (0028), the key table holds the key's uniqueness (ADR 0158).
    comment=(
        "Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001, on every "
        "partition too), written only by the outbox functions. At most one outcome (DISPATCHED, "
        "FAILED or CANCELLED) per outbox_id; a REDRIVEN row after FAILED or CANCELLED names the "
        "job that replaced it. All rows of a job name its participant. Partitioned by RANGE "
        "(outbox_id), one partition per UTC enqueue day in schema symphony_ledger (ADR 0130)."
    ),
    postgresql_partition_by="RANGE (outbox_id)",
)


policy_versions: Final = Table(
    "policy_versions",
    metadata,
    Column("version", Text, nullable=False),
    Column("status", policy_version_status, nullable=False),
    Column(
        "is_active",
        Boolean,
        Computed("status = 'ACTIVE'::public.policy_version_status", persisted=True),
        nullable=False,
    ),
    Column("grace_expires_at", DateTime(timezone=True), nullable=True),
    Column("checksum", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("version", name=conv("pk_policy_versions")),
    CheckConstraint(
        "checksum ~ '^[0-9a-f]{64}$'",
        name=conv("ck_policy_versions_checksum_sha256_hex"),
    ),
    CheckConstraint(
        "status <> 'ACTIVE'::public.policy_version_status OR grace_expires_at IS NULL",
        name=conv("ck_policy_versions_active_without_grace"),
    ),
    CheckConstraint(
        "status <> 'GRACE'::public.policy_version_status OR grace_expires_at IS NOT NULL",
        name=conv("ck_policy_versions_grace_with_expiry"),
    ),
    # At most one ACTIVE row: a unique index over a constant, filtered on ACTIVE.
    Index(
        conv("uq_policy_versions_one_active"),
        text("(true)"),
        unique=True,
        postgresql_where=text("status = 'ACTIVE'::public.policy_version_status"),
    ),
    comment=(
        "Boot policy versions. Exactly one ACTIVE row once seeded (at most one: "
        "uq_policy_versions_one_active; never none again: trg_policy_versions_keep_one_active). "
        "Rotated with rotate_policy_version(); rows are immutable but for ACTIVE -> GRACE -> "
        "RETIRED."
    ),
)


# Revision 0011 (ADR 0061): the retry ceiling, one row, read and written only through functions.
outbox_settings: Final = Table(
    "outbox_settings",
    metadata,
    Column("singleton", Boolean, nullable=False, server_default=text("true")),
    Column("retry_ceiling", Integer, nullable=False, server_default=text("20")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("updated_by", Text, nullable=False, server_default=text("SESSION_USER")),
    PrimaryKeyConstraint("singleton", name=conv("pk_outbox_settings")),
    CheckConstraint("singleton", name=conv("ck_outbox_settings_singleton")),
    CheckConstraint(
        "retry_ceiling >= 1",
        name=conv("ck_outbox_settings_retry_ceiling_positive"),
    ),
    comment=(
        "Outbox settings, one row: retry_ceiling (attempt number from which a retry or a lost "
        "lease is recorded as FAILED; default 20). Changed only with "
        "public.set_outbox_retry_ceiling()."
    ),
)


# Revision 0011 (ADR 0062): every idempotency key ever enqueued; its primary key serialises
# enqueues of one key.
payment_outbox_idempotency_keys: Final = Table(
    "payment_outbox_idempotency_keys",
    metadata,
    Column("instruction_id", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("outbox_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    # Revision 0031 (ADR 0135): the job's participant, written by both enqueues; nullable (keys
    # whose job left no trace, rows of the P7005 guards and redrive).
    Column(
        "participant_id",
        Text,
        nullable=True,
        comment="The participant of the job the key names (revision 0031): written by both "
        "enqueues and, since 0035, by the P7005 guards (hand writes); back-filled from the queue, "
        "the ledger or the payload row. NULL for keys whose job had left no trace when 0031 ran "
        "(archived, or removed by hand) and for key rows inserted by redrive_outbox_job (a job "
        "without a key row).",
    ),
    PrimaryKeyConstraint(
        "instruction_id",
        "idempotency_key",
        name=conv("pk_payment_outbox_idempotency_keys"),
    ),
    comment=(
        "Every idempotency key ever enqueued, with the job it queued last. Written only by "
        "public.enqueue_payment_outbox(); its primary key serialises enqueues of one key."
    ),
)


# Revision 0014 (ADR 0118): what a rail said under a lease that had been replaced.
payment_outbox_stale_outcomes: Final = Table(
    "payment_outbox_stale_outcomes",
    metadata,
    Column("stale_outcome_id", UUID(as_uuid=True), nullable=False, server_default=_UUID_DEFAULT),
    Column("outbox_id", UUID(as_uuid=True), nullable=False),
    Column("lease_token", UUID(as_uuid=True), nullable=False),
    Column("worker_id", Text, nullable=False),
    Column("state", outbox_attempt_state, nullable=False),
    Column("rail_reference", Text, nullable=True),
    Column("rail_code", Text, nullable=True),
    Column("error_code", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column(
        "reported_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("recorded_by", Text, nullable=False, server_default=text("SESSION_USER")),
    PrimaryKeyConstraint("stale_outcome_id", name=conv("pk_payment_outbox_stale_outcomes")),
    Index(conv("ix_payment_outbox_stale_outcomes_outbox"), "outbox_id"),
    comment=(
        "What a rail said for an attempt whose lease had been replaced (the completion got "
        "P7002): written only by public.record_stale_outbox_outcome(); for reconciliation, "
        "never applied to the queue or the ledger."
    ),
)


# Revision 0025 (ADR 0130): the ledger's default partition, with its indexes named after the
# parent's as public.protect_ledger_partition() names them (the daily partitions live in schema
# symphony_ledger, outside the models and the baseline).
event.listen(
    payment_outbox_attempts,
    "after_create",
    DDL(  # type: ignore[no-untyped-call]
        "CREATE TABLE public.payment_outbox_attempts_default "
        "PARTITION OF public.payment_outbox_attempts DEFAULT; "
        "COMMENT ON TABLE public.payment_outbox_attempts_default IS "
        "'Default partition of the attempts ledger: rows whose outbox_id falls in no daily "
        "partition. Must stay empty (the invariants gate reports rows here).'; "
        "DO $$ DECLARE r record; BEGIN FOR r IN "
        "SELECT ci.oid::pg_catalog.regclass AS child, pi.relname || '_default' AS wanted "
        "FROM pg_catalog.pg_index AS x JOIN pg_catalog.pg_class AS ci ON ci.oid = x.indexrelid "
        "JOIN pg_catalog.pg_inherits AS h ON h.inhrelid = x.indexrelid "
        "JOIN pg_catalog.pg_class AS pi ON pi.oid = h.inhparent "
        "WHERE x.indrelid = 'public.payment_outbox_attempts_default'::pg_catalog.regclass "
        "LOOP EXECUTE pg_catalog.format('ALTER INDEX %%s RENAME TO %%I', r.child, r.wanted); "
        "END LOOP; END $$"
    ),
)


# Revision 0019 (issue 20, ADR 0122): registered rails, canonical upper-case codes.
outbox_rails: Final = Table(
    "outbox_rails",
    metadata,
    Column("rail_code", Text, nullable=False),
    Column("returns_reference", Boolean, nullable=False, server_default=text("true")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("description", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("updated_by", Text, nullable=False, server_default=text("SESSION_USER")),
    PrimaryKeyConstraint("rail_code", name=conv("pk_outbox_rails")),
    CheckConstraint(
        "rail_code COLLATE \"C\" ~ '^[A-Z][A-Z0-9_]{0,31}$'",
        name=conv("ck_outbox_rails_rail_code_canonical"),
    ),
    CheckConstraint(
        "description IS NULL OR octet_length(description) <= 1024",
        name=conv("ck_outbox_rails_description_length"),
    ),
    comment=(
        "Registered payment rails: canonical upper-case codes (input is matched "
        "case-insensitively), whether a DISPATCHED attempt must carry a rail reference, and "
        "whether enqueue accepts the rail. Written only by public.register_outbox_rail() and "
        "public.disable_outbox_rail()."
    ),
)


# Revision 0019 (ADR 0123): every rail reference reported by a DISPATCHED attempt, unique per rail.
outbox_rail_references: Final = Table(
    "outbox_rail_references",
    metadata,
    Column("rail_code", Text, nullable=False),
    Column("rail_reference", Text, nullable=False),
    Column("outbox_id", UUID(as_uuid=True), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("rail_code", "rail_reference", name=conv("pk_outbox_rail_references")),
    CheckConstraint(
        "attempt_no >= 1",
        name=conv("ck_outbox_rail_references_attempt_no_positive"),
    ),
    comment=(
        "Every rail reference reported by a DISPATCHED attempt, unique per rail (P7013 "
        "otherwise), with its job. Written only by public.record_outbox_rail_references()."
    ),
)


# Revision 0024 (ADR 0124): every job's payload, stored once; append-only like the ledger.
payment_outbox_payloads: Final = Table(
    "payment_outbox_payloads",
    metadata,
    Column("participant_id", Text, nullable=False),
    Column("outbox_id", UUID(as_uuid=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("participant_id", "outbox_id", name=conv("pk_payment_outbox_payloads")),
    CheckConstraint(
        "jsonb_typeof(payload) = 'object'",
        name=conv("ck_payment_outbox_payloads_payload_is_object"),
    ),
    comment=(
        "The payload of every outbox job, stored once (ledger rows since 0024 carry none). "
        "Append-only (UPDATE, DELETE and TRUNCATE raise P0001); written only by "
        "enqueue_payment_outbox() and redrive_outbox_job(). Keyed (participant_id, outbox_id): "
        "distributed by participant_id and partitioned by outbox_id with the ledger."
    ),
)


# Revision 0025 (ADR 0132): ledger partitions written to a verified archive file and dropped.
archived_ledger_partitions: Final = Table(
    "archived_ledger_partitions",
    metadata,
    Column("partition_name", Text, nullable=False),
    Column("range_from", UUID(as_uuid=True), nullable=False),
    Column("range_to", UUID(as_uuid=True), nullable=False),
    Column("state", Text, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("columns", ARRAY(Text), nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("archived_by", Text, nullable=False, server_default=text("SESSION_USER")),
    Column("restored_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("partition_name", name=conv("pk_archived_ledger_partitions")),
    CheckConstraint(
        "state IN ('ARCHIVED', 'RESTORED')", name=conv("ck_archived_ledger_partitions_state")
    ),
    CheckConstraint("range_from < range_to", name=conv("ck_archived_ledger_partitions_range")),
    CheckConstraint("row_count >= 0", name=conv("ck_archived_ledger_partitions_row_count")),
    CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=conv("ck_archived_ledger_partitions_sha256")),
    CheckConstraint(
        "(state = 'RESTORED') = (restored_at IS NOT NULL)",
        name=conv("ck_archived_ledger_partitions_restored_at"),
    ),
    comment=(
        "One row per ledger partition written to a verified archive file and dropped (state "
        "ARCHIVED), or brought back from it (RESTORED): its outbox_id range, row count and the "
        "sha256 of the file."
    ),
)


# The migration ledger is created by the migration engine (symphony_schema.migration.ledger), not
# by a revision; mirrored here with the engine's names so the drift check covers it too.
schema_migrations: Final = Table(
    "schema_migrations",
    metadata,
    Column("version", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("checksum", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("applied_by", Text, nullable=False, server_default=text("CURRENT_USER")),
    Column("execution_ms", Integer, nullable=True),
    PrimaryKeyConstraint("version", name=conv("schema_migrations_pkey")),
    CheckConstraint(
        "checksum ~ '^sha256:[0-9a-f]{64}$'",
        name=conv("ck_schema_migrations_checksum"),
    ),
    CheckConstraint(
        "execution_ms IS NULL OR execution_ms >= 0",
        name=conv("ck_schema_migrations_execution_ms"),
    ),
    comment=(
        "Migration ledger written by the Symphony migration engine: one row per applied revision "
        "with the checksum of its files. Applied revisions are immutable."
    ),
)
