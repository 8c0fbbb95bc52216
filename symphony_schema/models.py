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
    "outbox_settings",
    "participant_outbox_sequences",
    "payment_outbox_attempts",
    "payment_outbox_idempotency_keys",
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

#: Values of ``public.outbox_attempt_state`` in declaration order (0001).
OUTBOX_ATTEMPT_STATES: Final[tuple[str, ...]] = (
    "DISPATCHING",
    "DISPATCHED",
    "RETRYABLE",
    "FAILED",
    "ZOMBIE_REQUEUE",
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
    Column("payload", JSONB, nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("claimed_by", Text, nullable=True),
    Column("lease_token", UUID(as_uuid=True), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
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
    # Claim: due rows without a lease, oldest first; leased rows never enter this index.
    Index(
        conv("ix_payment_outbox_pending_due_unleased"),
        "next_attempt_at",
        "outbox_id",
        postgresql_where=text("lease_token IS NULL"),
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
    Column("payload", JSONB, nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("state", outbox_attempt_state, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("rail_reference", Text, nullable=True),
    Column("rail_code", Text, nullable=True),
    Column("error_code", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("worker_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    # Revision 0013 (ADR 0130): partitioned by RANGE (outbox_id); unique keys hold the key.
    PrimaryKeyConstraint("outbox_id", "attempt_id", name=conv("pk_payment_outbox_attempts")),
    UniqueConstraint(
        "outbox_id",
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
    # At most one terminal attempt per job: a second one would be a double dispatch.
    Index(
        conv("uq_payment_outbox_attempts_one_terminal"),
        "outbox_id",
        unique=True,
        postgresql_where=text("state IN ('DISPATCHED', 'FAILED')"),
    ),
    # Enqueue looks the ledger up by idempotency key once the pending row is gone.
    Index(
        conv("ix_payment_outbox_attempts_instruction_idempotency"),
        "instruction_id",
        "idempotency_key",
    ),
    comment=(
        "Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001, on every "
        "partition too). At most one terminal attempt (DISPATCHED or FAILED) per outbox_id. "
        "Partitioned by RANGE (outbox_id), one partition per UTC enqueue day in schema "
        "symphony_ledger (ADR 0130)."
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
        "Boot policy versions. Exactly one ACTIVE row is expected at boot (at most one is "
        "enforced by uq_policy_versions_one_active; at least one by the boot check, which "
        "fails closed)."
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


# Revision 0013 (ADR 0130): the ledger's default partition, with its indexes named after the
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


# Revision 0013 (ADR 0132): ledger partitions written to a verified archive file and dropped.
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
