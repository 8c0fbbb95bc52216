"""The Symphony privilege matrix, declared once as data (docs/contract/schema.md §5 and §6).

Revisions 0003 (roles), 0004 and 0005 (grants) implement what this module declares. The tests, the
invariant gate, the drift check and ``baseline/privileges.md`` compare the live catalog against it,
in both directions: nothing missing, nothing extra.

Shape of a grant matrix: ``{(grantee, object_kind, object_name): frozenset(privileges)}`` where

* ``grantee`` is a role name or :data:`PUBLIC`;
* ``object_kind`` is one of :class:`ObjectKind` (``"table"``, ``"sequence"``, ``"function"``,
  ``"schema"``, ``"column"``);
* ``object_name`` is schema-qualified and independent of ``search_path``:
  ``public.policy_versions`` for relations; for functions the regprocedure-style signature
  ``public.claim_outbox_batch(integer,text,integer)`` (argument types as ``format_type`` prints
  them, non-catalog types qualified); the bare schema name (``public``) for schemas;
  ``public.payment_outbox_pending.state`` (relation, then column) for a column-level grant, which
  lives in ``pg_attribute.attacl`` rather than in the table's ACL;
* privileges are PostgreSQL's names (``SELECT``, ``EXECUTE``, ``USAGE`` ...). A privilege held
  WITH GRANT OPTION is reported as ``"<PRIV> WITH GRANT OPTION"`` so that it differs from the plain
  privilege and shows up in a diff (nobody is meant to hold grant options).

An object owner's own privileges are left out on both sides: an owner always holds everything on
its objects, which says nothing about the matrix. Everybody else, including the owner role on
objects it does not own (schema ``public``, the migration ledger), is compared.

The module is the declaration only. :mod:`symphony_schema.privilege_catalog` reads the live
catalog into the same shapes (ACLs, role attributes, memberships, effective privileges through
memberships and predefined roles) and :mod:`symphony_schema.privilege_diff` compares the two
(ADR 0070), one line per difference with its fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "AUDITOR",
    "COMMON_ROLE_ATTRIBUTES",
    "CONTROL",
    "EXECUTOR",
    "FUNCTIONS",
    "GRANTEES",
    "GRANT_OPTION",
    "INGEST",
    "KIND_PRIVILEGES",
    "LEDGER_TABLE",
    "OWNER",
    "PUBLIC",
    "READONLY",
    "ROLES",
    "RUNTIME_ROLES",
    "SCHEMA",
    "TABLES",
    "TEST_USER",
    "FunctionArg",
    "FunctionSpec",
    "GrantKey",
    "GrantMatrix",
    "ObjectKind",
    "RoleSpec",
    "declared_objects",
    "expected_grants",
    "function",
    "table_name",
]

#: The pseudo-role every role belongs to; ``aclexplode`` reports it as grantee 0.
PUBLIC: Final = "PUBLIC"

#: The one schema Symphony lives in.
SCHEMA: Final = "public"


class ObjectKind(StrEnum):
    """Kinds of objects whose ACLs the matrix covers."""

    TABLE = "table"
    SEQUENCE = "sequence"
    FUNCTION = "function"
    SCHEMA = "schema"
    COLUMN = "column"


GrantKey = tuple[str, ObjectKind, str]
"""``(grantee, object_kind, object_name)``."""

GrantMatrix = Mapping[GrantKey, frozenset[str]]
"""A complete or partial grant matrix; a missing key means "no privileges"."""


# --------------------------------------------------------------------------------------------
# Roles (0003)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A Symphony role: whether it may log in and what it is for."""

    name: str
    login: bool
    purpose: str

    def attributes(self) -> Mapping[str, bool]:
        """Expected ``pg_roles`` attribute columns for this role."""
        return MappingProxyType({"rolcanlogin": self.login, **COMMON_ROLE_ATTRIBUTES})


#: Attributes every Symphony role must have (``pg_roles`` column -> expected value):
#: NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS.
COMMON_ROLE_ATTRIBUTES: Final[Mapping[str, bool]] = MappingProxyType(
    {
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolreplication": False,
        "rolbypassrls": False,
    }
)

OWNER: Final = "symphony_owner"
INGEST: Final = "symphony_ingest"
EXECUTOR: Final = "symphony_executor"
CONTROL: Final = "symphony_control"
READONLY: Final = "symphony_readonly"
AUDITOR: Final = "symphony_auditor"
TEST_USER: Final = "test_user"

ROLES: Final[tuple[RoleSpec, ...]] = (
    RoleSpec(OWNER, login=False, purpose="owns every Symphony object; definer functions run as it"),
    RoleSpec(INGEST, login=False, purpose="enqueue through the function only"),
    RoleSpec(EXECUTOR, login=False, purpose="claim/complete/repair; reads the boot policy"),
    RoleSpec(CONTROL, login=False, purpose="control plane; never mutates the attempts ledger"),
    RoleSpec(READONLY, login=False, purpose="dashboards"),
    RoleSpec(AUDITOR, login=False, purpose="audit reads, including the migration ledger"),
    RoleSpec(TEST_USER, login=True, purpose="test/CI login; password set outside migrations"),
)

#: Roles that services assume at run time (via membership of a login); all get USAGE on public.
RUNTIME_ROLES: Final[tuple[str, ...]] = (INGEST, EXECUTOR, CONTROL, READONLY, AUDITOR)

# --------------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------------


def table_name(name: str) -> str:
    """Qualified name of a Symphony relation, as used in grant keys."""
    return f"{SCHEMA}.{name}"


PENDING: Final = table_name("payment_outbox_pending")
ATTEMPTS: Final = table_name("payment_outbox_attempts")
SEQUENCES: Final = table_name("participant_outbox_sequences")
POLICY_VERSIONS: Final = table_name("policy_versions")
#: Revision 0011: the stored retry ceiling (ADR 0061) and the permanent key table (ADR 0062).
OUTBOX_SETTINGS: Final = table_name("outbox_settings")
IDEMPOTENCY_KEYS: Final = table_name("payment_outbox_idempotency_keys")
#: Revision 0014: outcomes reported under a replaced lease (issue 19 item 5, ADR 0118).
STALE_OUTCOMES: Final = table_name("payment_outbox_stale_outcomes")
#: Revision 0019 (issue 20): registered rails (ADR 0122) and rail references (ADR 0123).
OUTBOX_RAILS: Final = table_name("outbox_rails")
RAIL_REFERENCES: Final = table_name("outbox_rail_references")
#: Revision 0024 (issue 20 item 5, ADR 0124): every job's payload, stored once.
PAYLOADS: Final = table_name("payment_outbox_payloads")
#: The migration ledger: created by the engine, owned by the migrating user, read by the auditor.
LEDGER_TABLE: Final = table_name("schema_migrations")
#: Revision 0025 (ADR 0130): the ledger's default partition and the archive record (owner only).
ATTEMPTS_DEFAULT: Final = table_name("payment_outbox_attempts_default")
ARCHIVED_PARTITIONS: Final = table_name("archived_ledger_partitions")

#: Every relation the matrix covers.
TABLES: Final[tuple[str, ...]] = (
    SEQUENCES,
    PENDING,
    ATTEMPTS,
    POLICY_VERSIONS,
    LEDGER_TABLE,
    OUTBOX_SETTINGS,
    IDEMPOTENCY_KEYS,
    STALE_OUTCOMES,
    OUTBOX_RAILS,
    RAIL_REFERENCES,
    PAYLOADS,
    ATTEMPTS_DEFAULT,
    ARCHIVED_PARTITIONS,
)


@dataclass(frozen=True, slots=True)
class FunctionArg:
    """One input argument: its name and its type as ``format_type`` prints it, with types outside
    ``pg_catalog`` schema-qualified (``integer``, ``jsonb``, ``public.outbox_attempt_state``)."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A Symphony function and how it must be defined."""

    name: str
    args: tuple[FunctionArg, ...]
    security_definer: bool

    @property
    def signature(self) -> str:
        """regprocedure-style identity, independent of ``search_path``:
        ``public.enqueue_payment_outbox(text,text,text,text,jsonb)``."""
        types = ",".join(arg.type for arg in self.args)
        return f"{SCHEMA}.{self.name}({types})"

    @property
    def identity_arguments(self) -> str:
        """The arguments as ``pg_get_function_identity_arguments`` prints them with the default
        ``search_path`` (``"$user", public``), e.g. ``p_participant_id text``."""
        prefix = f"{SCHEMA}."
        return ", ".join(f"{arg.name} {arg.type.removeprefix(prefix)}" for arg in self.args)


def function(name: str, *args: tuple[str, str], security_definer: bool = True) -> FunctionSpec:
    """Shorthand for declaring a :class:`FunctionSpec`: ``function("f", ("p_x", "text"))``."""
    return FunctionSpec(
        name=name,
        args=tuple(FunctionArg(arg_name, arg_type) for arg_name, arg_type in args),
        security_definer=security_definer,
    )


UUID_V7_OR_RANDOM: Final = function("uuid_v7_or_random", security_definer=False)
UUID_STRATEGY: Final = function("uuid_strategy", security_definer=False)
DENY_ATTEMPTS_MUTATION: Final = function("deny_outbox_attempts_mutation", security_definer=False)
OUTBOX_RETRY_CEILING: Final = function("outbox_retry_ceiling")
BUMP_PARTICIPANT_OUTBOX_SEQ: Final = function(
    "bump_participant_outbox_seq", ("p_participant_id", "text")
)
ENQUEUE_PAYMENT_OUTBOX: Final = function(
    "enqueue_payment_outbox",
    ("p_instruction_id", "text"),
    ("p_participant_id", "text"),
    ("p_idempotency_key", "text"),
    ("p_rail_type", "text"),
    ("p_payload", "jsonb"),
    # Revision 0014 (issue 19 item 6).
    ("p_not_before", "timestamp with time zone"),
    ("p_priority", "smallint"),
)
CLAIM_OUTBOX_BATCH: Final = function(
    "claim_outbox_batch",
    ("p_batch_size", "integer"),
    ("p_worker_id", "text"),
    ("p_lease_seconds", "integer"),
    # Revision 0014 (issue 19 item 2).
    ("p_rail_types", "text[]"),
)
COMPLETE_OUTBOX_ATTEMPT: Final = function(
    "complete_outbox_attempt",
    ("p_outbox_id", "uuid"),
    ("p_lease_token", "uuid"),
    ("p_worker_id", "text"),
    ("p_state", "public.outbox_attempt_state"),
    ("p_rail_reference", "text"),
    ("p_rail_code", "text"),
    ("p_error_code", "text"),
    ("p_error_message", "text"),
    ("p_latency_ms", "integer"),
    ("p_retry_delay_seconds", "integer"),
)
REPAIR_EXPIRED_LEASES: Final = function(
    "repair_expired_leases", ("p_batch_size", "integer"), ("p_worker_id", "text")
)
#: Revision 0007: many completions of one worker in one call (ADR 0040).
COMPLETE_OUTBOX_ATTEMPTS_BATCH: Final = function(
    "complete_outbox_attempts_batch",
    ("p_worker_id", "text"),
    ("p_outbox_ids", "uuid[]"),
    ("p_lease_tokens", "uuid[]"),
    ("p_states", "text[]"),
    ("p_rail_references", "text[]"),
    ("p_rail_codes", "text[]"),
    ("p_error_codes", "text[]"),
    ("p_error_messages", "text[]"),
    ("p_latency_ms", "integer[]"),
    ("p_retry_delay_seconds", "integer[]"),
)

#: Revision 0011: the control plane's way to change the stored retry ceiling (ADR 0061).
SET_OUTBOX_RETRY_CEILING: Final = function("set_outbox_retry_ceiling", ("p_ceiling", "integer"))
#: Revision 0011: trigger function refusing ledger rows of queued jobs from outside (ADR 0063);
#: SECURITY DEFINER since 0012, serialised on the payment's key row (ADR 0100).
GUARD_ATTEMPTS_INSERT: Final = function("guard_outbox_attempts_insert")
#: Revision 0011: trigger function refusing queue rows of finished jobs from outside (ADR 0063);
#: SECURITY DEFINER since 0012, serialised on the payment's key row (ADR 0100).
GUARD_PENDING_WRITE: Final = function("guard_outbox_pending_write")
#: Revision 0013: the SQL rule helpers of the outbox functions (ADR 0115), owner only.
OUTBOX_LIMIT_BYTES: Final = function(
    "outbox_limit_bytes",
    ("p_names", "text[]"),
    ("p_values", "text[]"),
    ("p_max_bytes", "integer[]"),
    security_definer=False,
)
OUTBOX_REQUIRE_IDS: Final = function(
    "outbox_require_ids",
    ("p_names", "text[]"),
    ("p_values", "text[]"),
    ("p_max_bytes", "integer"),
    security_definer=False,
)
OUTBOX_PIN_PLAN_SETTINGS: Final = function("outbox_pin_plan_settings", security_definer=False)
#: Revision 0014: heartbeat (issue 19 item 3).
EXTEND_OUTBOX_LEASE: Final = function(
    "extend_outbox_lease",
    ("p_outbox_id", "uuid"),
    ("p_lease_token", "uuid"),
    ("p_worker_id", "text"),
    ("p_lease_seconds", "integer"),
)
#: Revision 0014: outcomes under a replaced lease, kept for reconciliation (issue 19 item 5).
RECORD_STALE_OUTBOX_OUTCOME: Final = function(
    "record_stale_outbox_outcome",
    ("p_outbox_id", "uuid"),
    ("p_lease_token", "uuid"),
    ("p_worker_id", "text"),
    ("p_state", "public.outbox_attempt_state"),
    ("p_rail_reference", "text"),
    ("p_rail_code", "text"),
    ("p_error_code", "text"),
    ("p_error_message", "text"),
    ("p_latency_ms", "integer"),
)
#: Revision 0014: trigger functions keeping the per-participant head (issue 19 item 1).
PROMOTE_OUTBOX_HEAD: Final = function("promote_outbox_head")
PLACE_OUTBOX_HEAD: Final = function("place_outbox_head")
OUTBOX_RESTORE_PLAN_SETTINGS: Final = function(
    "outbox_restore_plan_settings", ("p_saved", "text[]"), security_definer=False
)

#: Revision 0016: policy rotation (issue 14, ADRs 0105-0107). The sort key is internal.
POLICY_VERSION_SORT_KEY: Final = function(
    "policy_version_sort_key", ("p_version", "text"), security_definer=False
)
ROTATE_POLICY_VERSION: Final = function(
    "rotate_policy_version",
    ("p_version", "text"),
    ("p_checksum", "text"),
    ("p_grace", "interval"),
)
POLICY_VERSION_ACCEPTED: Final = function("policy_version_accepted", ("p_version", "text"))
RETIRE_EXPIRED_POLICY_VERSIONS: Final = function("retire_expired_policy_versions")
#: Revision 0016: trigger functions keeping policy versions immutable (INV-052, INV-053) and
#: never without an ACTIVE version (INV-050, a deferred constraint trigger reading the table).
GUARD_POLICY_VERSION_IDENTITY: Final = function(
    "guard_policy_version_identity", security_definer=False
)
GUARD_POLICY_VERSION_LIFECYCLE: Final = function(
    "guard_policy_version_lifecycle", security_definer=False
)
KEEP_ONE_ACTIVE_POLICY_VERSION: Final = function("keep_one_active_policy_version")
#: Revision 0019 (issue 20, ADR 0120): the audited interventions of the control plane.
CANCEL_OUTBOX_JOB: Final = function(
    "cancel_outbox_job", ("p_outbox_id", "uuid"), ("p_reason", "text"), ("p_ticket", "text")
)
REDRIVE_OUTBOX_JOB: Final = function(
    "redrive_outbox_job", ("p_outbox_id", "uuid"), ("p_reason", "text"), ("p_ticket", "text")
)
#: Revision 0019 (ADR 0121): queue health for dashboards and the CLI.
OUTBOX_METRICS: Final = function("outbox_metrics")
#: Revision 0019 (ADR 0122): rail management (control) and the internal rail and number checks.
OUTBOX_RAIL_CODE: Final = function("outbox_rail_code", ("p_rail_type", "text"))
REGISTER_OUTBOX_RAIL: Final = function(
    "register_outbox_rail",
    ("p_rail_code", "text"),
    ("p_returns_reference", "boolean"),
    ("p_description", "text"),
)
DISABLE_OUTBOX_RAIL: Final = function("disable_outbox_rail", ("p_rail_code", "text"))
CHECK_OUTBOX_PAYLOAD_NUMBERS: Final = function(
    "check_outbox_payload_numbers", ("p_payload", "jsonb")
)
#: Revision 0019 (ADR 0123): the uniqueness rule of rail references (internal).
RECORD_OUTBOX_RAIL_REFERENCE: Final = function(
    "record_outbox_rail_reference",
    ("p_outbox_id", "uuid"),
    ("p_attempt_no", "integer"),
    ("p_rail_type", "text"),
    ("p_rail_reference", "text"),
)
#: Revision 0024: the payload table's append-only trigger function.
DENY_PAYLOADS_MUTATION: Final = function("deny_outbox_payloads_mutation", security_definer=False)
#: Revision 0025 (issue 17 P6, ADR 0151): the work notification's trigger function (SECURITY
#: DEFINER: it locks the rail's outbox_rails row as its notification gate, whoever inserts).
NOTIFY_OUTBOX_WORK: Final = function("notify_outbox_work")
#: Revision 0026 (issue 17 P4b, ADR 0152): batch enqueue, each element through enqueue.
ENQUEUE_PAYMENT_OUTBOX_BATCH: Final = function(
    "enqueue_payment_outbox_batch",
    ("p_instruction_ids", "text[]"),
    ("p_participant_ids", "text[]"),
    ("p_idempotency_keys", "text[]"),
    ("p_rail_types", "text[]"),
    ("p_payloads", "jsonb[]"),
    ("p_not_before", "timestamp with time zone[]"),
    ("p_priorities", "smallint[]"),
)
#: Revision 0031 (issue 17 P4/P4b, ADR 0135): enqueue's rules once each, for one row and for a
#: set (an inlinable predicate, the helper that raises its message, the plain-numbers test).
_ENQUEUE_ARGS: Final = (
    ("p_instruction_id", "text"),
    ("p_participant_id", "text"),
    ("p_idempotency_key", "text"),
    ("p_rail_type", "text"),
    ("p_payload", "jsonb"),
    ("p_not_before", "timestamp with time zone"),
    ("p_priority", "smallint"),
)
ENQUEUE_RULE_FUNCTIONS: Final[tuple[FunctionSpec, ...]] = (
    function("outbox_enqueue_args_ok", *_ENQUEUE_ARGS, security_definer=False),
    function("outbox_check_enqueue_args", *_ENQUEUE_ARGS, security_definer=False),
    function("outbox_payload_numbers_plain", ("p_payload", "jsonb"), security_definer=False),
)

#: Revision 0025 (ADR 0130-0133): the partitioned ledger's maintenance and guards, owner only.
LEDGER_FUNCTIONS: Final[tuple[FunctionSpec, ...]] = (
    function(
        "ledger_uuid_lower_bound", ("p_at", "timestamp with time zone"), security_definer=False
    ),
    function("protect_ledger_partition", ("p_partition", "regclass")),
    function("ensure_ledger_partitions", ("p_days_ahead", "integer")),
    function(
        "archive_ledger_partition",
        ("p_partition", "text"),
        ("p_row_count", "bigint"),
        ("p_sha256", "text"),
        ("p_file_name", "text"),
        ("p_columns", "text[]"),
    ),
    function("mark_ledger_partition_restored", ("p_partition", "text")),
    function("guard_idempotency_key_archived"),
    function("guard_archived_outbox_id"),
    function("guard_attempt_participant"),
)

#: Revision 0029 (issue 16, ADR 0126): the claim of one participant (one shard on Citus).
CLAIM_OUTBOX_BATCH_FOR_PARTICIPANT: Final = function(
    "claim_outbox_batch_for_participant",
    ("p_participant_id", "text"),
    ("p_batch_size", "integer"),
    ("p_worker_id", "text"),
    ("p_lease_seconds", "integer"),
    ("p_rail_types", "text[]"),
)


#: Revision 0034 (issue 16, ADR 0147): the participant-first functions (the participant first,
#: then exactly the single-node function's arguments; one shard on Citus) and the completions'
#: head promotion (owner only).
def _for_participant(spec: FunctionSpec) -> FunctionSpec:
    return function(
        f"{spec.name}_for_participant",
        ("p_participant_id", "text"),
        *((arg.name, arg.type) for arg in spec.args),
    )


COMPLETE_OUTBOX_ATTEMPT_FOR_PARTICIPANT: Final = _for_participant(COMPLETE_OUTBOX_ATTEMPT)
COMPLETE_OUTBOX_ATTEMPTS_BATCH_FOR_PARTICIPANT: Final = _for_participant(
    COMPLETE_OUTBOX_ATTEMPTS_BATCH
)
REPAIR_EXPIRED_LEASES_FOR_PARTICIPANT: Final = _for_participant(REPAIR_EXPIRED_LEASES)
CANCEL_OUTBOX_JOB_FOR_PARTICIPANT: Final = _for_participant(CANCEL_OUTBOX_JOB)
REDRIVE_OUTBOX_JOB_FOR_PARTICIPANT: Final = _for_participant(REDRIVE_OUTBOX_JOB)
EXTEND_OUTBOX_LEASE_FOR_PARTICIPANT: Final = _for_participant(EXTEND_OUTBOX_LEASE)
ENQUEUE_PAYMENT_OUTBOX_BATCH_FOR_PARTICIPANT: Final = function(
    "enqueue_payment_outbox_batch_for_participant",
    ("p_participant_id", "text"),
    *(
        (arg.name, arg.type)
        for arg in ENQUEUE_PAYMENT_OUTBOX_BATCH.args
        if arg.name != "p_participant_ids"
    ),
)
OUTBOX_PROMOTE_PARTICIPANT_HEAD: Final = function(
    "outbox_promote_participant_head", ("p_participant_id", "text")
)
#: Revision 0037 (ADR 0165): the id rule as an inlined predicate (internal).
OUTBOX_ID_OK: Final = function(
    "outbox_id_ok", ("p_value", "text"), ("p_max_bytes", "integer"), security_definer=False
)
#: Revision 0037 (ADR 0165): the rail-reference rule's one writer, set-based (internal).
RECORD_OUTBOX_RAIL_REFERENCES: Final = function(
    "record_outbox_rail_references",
    ("p_outbox_ids", "uuid[]"),
    ("p_attempt_nos", "integer[]"),
    ("p_rail_types", "text[]"),
    ("p_rail_references", "text[]"),
    ("p_elements", "integer[]"),
)
PARTICIPANT_FIRST_FUNCTIONS: Final[tuple[FunctionSpec, ...]] = (
    OUTBOX_PROMOTE_PARTICIPANT_HEAD,
    COMPLETE_OUTBOX_ATTEMPT_FOR_PARTICIPANT,
    COMPLETE_OUTBOX_ATTEMPTS_BATCH_FOR_PARTICIPANT,
    REPAIR_EXPIRED_LEASES_FOR_PARTICIPANT,
    CANCEL_OUTBOX_JOB_FOR_PARTICIPANT,
    REDRIVE_OUTBOX_JOB_FOR_PARTICIPANT,
    EXTEND_OUTBOX_LEASE_FOR_PARTICIPANT,
    ENQUEUE_PAYMENT_OUTBOX_BATCH_FOR_PARTICIPANT,
)

#: Every Symphony function, in creation order.
FUNCTIONS: Final[tuple[FunctionSpec, ...]] = (
    UUID_V7_OR_RANDOM,
    UUID_STRATEGY,
    DENY_ATTEMPTS_MUTATION,
    OUTBOX_RETRY_CEILING,
    BUMP_PARTICIPANT_OUTBOX_SEQ,
    ENQUEUE_PAYMENT_OUTBOX,
    CLAIM_OUTBOX_BATCH,
    COMPLETE_OUTBOX_ATTEMPT,
    REPAIR_EXPIRED_LEASES,
    COMPLETE_OUTBOX_ATTEMPTS_BATCH,
    SET_OUTBOX_RETRY_CEILING,
    GUARD_ATTEMPTS_INSERT,
    GUARD_PENDING_WRITE,
    OUTBOX_LIMIT_BYTES,
    OUTBOX_REQUIRE_IDS,
    OUTBOX_PIN_PLAN_SETTINGS,
    OUTBOX_RESTORE_PLAN_SETTINGS,
    EXTEND_OUTBOX_LEASE,
    RECORD_STALE_OUTBOX_OUTCOME,
    PROMOTE_OUTBOX_HEAD,
    PLACE_OUTBOX_HEAD,
    POLICY_VERSION_SORT_KEY,
    ROTATE_POLICY_VERSION,
    POLICY_VERSION_ACCEPTED,
    RETIRE_EXPIRED_POLICY_VERSIONS,
    GUARD_POLICY_VERSION_IDENTITY,
    GUARD_POLICY_VERSION_LIFECYCLE,
    KEEP_ONE_ACTIVE_POLICY_VERSION,
    OUTBOX_RAIL_CODE,
    REGISTER_OUTBOX_RAIL,
    DISABLE_OUTBOX_RAIL,
    CHECK_OUTBOX_PAYLOAD_NUMBERS,
    RECORD_OUTBOX_RAIL_REFERENCE,
    CANCEL_OUTBOX_JOB,
    REDRIVE_OUTBOX_JOB,
    OUTBOX_METRICS,
    DENY_PAYLOADS_MUTATION,
    NOTIFY_OUTBOX_WORK,
    ENQUEUE_PAYMENT_OUTBOX_BATCH,
    *LEDGER_FUNCTIONS,
    CLAIM_OUTBOX_BATCH_FOR_PARTICIPANT,
    *ENQUEUE_RULE_FUNCTIONS,
    *PARTICIPANT_FIRST_FUNCTIONS,
    OUTBOX_ID_OK,
    RECORD_OUTBOX_RAIL_REFERENCES,
)

# --------------------------------------------------------------------------------------------
# The matrix (docs/contract/schema.md §6)
# --------------------------------------------------------------------------------------------

_SELECT: Final = frozenset({"SELECT"})
_EXECUTE: Final = frozenset({"EXECUTE"})

#: Object -> grantee -> privileges. Anything not listed is "nothing", for PUBLIC too.
_MATRIX: Final[Mapping[tuple[ObjectKind, str], Mapping[str, frozenset[str]]]] = {
    (ObjectKind.SCHEMA, SCHEMA): {
        role: frozenset({"USAGE"}) for role in (OWNER, *RUNTIME_ROLES, TEST_USER)
    },
    # Revision 0019 (issue 20): the control plane reads the queue, the ledger and the allocator;
    # it intervenes only through cancel_outbox_job() and redrive_outbox_job(), which leave a
    # ledger row. Nobody but the functions writes them.
    (ObjectKind.TABLE, PENDING): {
        CONTROL: _SELECT,
        READONLY: _SELECT,
        AUDITOR: _SELECT,
    },
    (ObjectKind.TABLE, ATTEMPTS): {
        CONTROL: _SELECT,
        READONLY: _SELECT,
        AUDITOR: _SELECT,
    },
    (ObjectKind.TABLE, SEQUENCES): {
        CONTROL: _SELECT,
    },
    (ObjectKind.TABLE, POLICY_VERSIONS): {
        EXECUTOR: _SELECT,
        CONTROL: frozenset({"SELECT", "INSERT", "UPDATE"}),
        READONLY: _SELECT,
        AUDITOR: _SELECT,
    },
    (ObjectKind.TABLE, LEDGER_TABLE): {
        AUDITOR: _SELECT,
    },
    (ObjectKind.FUNCTION, ENQUEUE_PAYMENT_OUTBOX.signature): {
        INGEST: _EXECUTE,
        CONTROL: _EXECUTE,
        TEST_USER: _EXECUTE,
    },
    **{
        (ObjectKind.FUNCTION, spec.signature): {
            EXECUTOR: _EXECUTE,
            CONTROL: _EXECUTE,
            TEST_USER: _EXECUTE,
        }
        for spec in (
            CLAIM_OUTBOX_BATCH,
            COMPLETE_OUTBOX_ATTEMPT,
            REPAIR_EXPIRED_LEASES,
            COMPLETE_OUTBOX_ATTEMPTS_BATCH,
            EXTEND_OUTBOX_LEASE,
            RECORD_STALE_OUTBOX_OUTCOME,
            CLAIM_OUTBOX_BATCH_FOR_PARTICIPANT,
        )
    },
    **{
        (ObjectKind.FUNCTION, spec.signature): {
            role: _EXECUTE for role in (*RUNTIME_ROLES, TEST_USER)
        }
        for spec in (UUID_V7_OR_RANDOM, UUID_STRATEGY)
    },
    # Internal: owner only (enqueue and complete call them as the owner).
    (ObjectKind.FUNCTION, BUMP_PARTICIPANT_OUTBOX_SEQ.signature): {},
    (ObjectKind.FUNCTION, OUTBOX_RETRY_CEILING.signature): {},
    # Trigger functions fire without EXECUTE; nobody calls this one.
    (ObjectKind.FUNCTION, DENY_ATTEMPTS_MUTATION.signature): {},
    # Revision 0011: no runtime role touches the settings or the key table (functions only; a
    # row lock on a key would block that payment's enqueue); only control sets the ceiling.
    (ObjectKind.TABLE, OUTBOX_SETTINGS): {},
    (ObjectKind.TABLE, IDEMPOTENCY_KEYS): {},
    (ObjectKind.FUNCTION, SET_OUTBOX_RETRY_CEILING.signature): {CONTROL: _EXECUTE},
    (ObjectKind.FUNCTION, GUARD_ATTEMPTS_INSERT.signature): {},
    (ObjectKind.FUNCTION, GUARD_PENDING_WRITE.signature): {},
    # Revision 0013: the SQL rule helpers run only inside the outbox functions (ADR 0115).
    (ObjectKind.FUNCTION, OUTBOX_LIMIT_BYTES.signature): {},
    (ObjectKind.FUNCTION, OUTBOX_REQUIRE_IDS.signature): {},
    (ObjectKind.FUNCTION, OUTBOX_PIN_PLAN_SETTINGS.signature): {},
    (ObjectKind.FUNCTION, OUTBOX_RESTORE_PLAN_SETTINGS.signature): {},
    # Revision 0014: the stale outcomes are read like the ledger; only the function writes them.
    (ObjectKind.TABLE, STALE_OUTCOMES): {CONTROL: _SELECT, READONLY: _SELECT, AUDITOR: _SELECT},
    (ObjectKind.FUNCTION, PROMOTE_OUTBOX_HEAD.signature): {},
    (ObjectKind.FUNCTION, PLACE_OUTBOX_HEAD.signature): {},
    # Revision 0016: control rotates and retires; services ask whether a version is accepted.
    (ObjectKind.FUNCTION, ROTATE_POLICY_VERSION.signature): {CONTROL: _EXECUTE},
    (ObjectKind.FUNCTION, RETIRE_EXPIRED_POLICY_VERSIONS.signature): {CONTROL: _EXECUTE},
    (ObjectKind.FUNCTION, POLICY_VERSION_ACCEPTED.signature): {
        role: _EXECUTE for role in (INGEST, EXECUTOR, CONTROL)
    },
    (ObjectKind.FUNCTION, POLICY_VERSION_SORT_KEY.signature): {},
    (ObjectKind.FUNCTION, GUARD_POLICY_VERSION_IDENTITY.signature): {},
    (ObjectKind.FUNCTION, GUARD_POLICY_VERSION_LIFECYCLE.signature): {},
    (ObjectKind.FUNCTION, KEEP_ONE_ACTIVE_POLICY_VERSION.signature): {},
    # Revision 0019 (issue 20): interventions and rail management for control, metrics for the
    # readers (and control); rails and references are readable, written only by functions; the
    # rail, number and reference checks are internal to the outbox functions.
    (ObjectKind.TABLE, OUTBOX_RAILS): {CONTROL: _SELECT, READONLY: _SELECT, AUDITOR: _SELECT},
    (ObjectKind.TABLE, RAIL_REFERENCES): {CONTROL: _SELECT, READONLY: _SELECT, AUDITOR: _SELECT},
    **{
        (ObjectKind.FUNCTION, spec.signature): {CONTROL: _EXECUTE}
        for spec in (
            CANCEL_OUTBOX_JOB,
            REDRIVE_OUTBOX_JOB,
            REGISTER_OUTBOX_RAIL,
            DISABLE_OUTBOX_RAIL,
        )
    },
    (ObjectKind.FUNCTION, OUTBOX_METRICS.signature): {
        READONLY: _EXECUTE,
        AUDITOR: _EXECUTE,
        CONTROL: _EXECUTE,
    },
    (ObjectKind.FUNCTION, OUTBOX_RAIL_CODE.signature): {},
    (ObjectKind.FUNCTION, CHECK_OUTBOX_PAYLOAD_NUMBERS.signature): {},
    (ObjectKind.FUNCTION, RECORD_OUTBOX_RAIL_REFERENCE.signature): {},
    # Revision 0024: the payloads are readable like the ledger, written only by the functions.
    (ObjectKind.TABLE, PAYLOADS): {CONTROL: _SELECT, READONLY: _SELECT, AUDITOR: _SELECT},
    (ObjectKind.FUNCTION, DENY_PAYLOADS_MUTATION.signature): {},
    # Revision 0025: a trigger function only.
    (ObjectKind.FUNCTION, NOTIFY_OUTBOX_WORK.signature): {},
    # Revision 0026: who may enqueue may enqueue a batch.
    (ObjectKind.FUNCTION, ENQUEUE_PAYMENT_OUTBOX_BATCH.signature): {
        INGEST: _EXECUTE,
        CONTROL: _EXECUTE,
        TEST_USER: _EXECUTE,
    },
    # Revision 0025: the ledger's default partition, the archive record and the maintenance
    # functions belong to the owner alone (ADR 0130-0134).
    (ObjectKind.TABLE, ATTEMPTS_DEFAULT): {},
    (ObjectKind.TABLE, ARCHIVED_PARTITIONS): {},
    **{(ObjectKind.FUNCTION, spec.signature): {} for spec in LEDGER_FUNCTIONS},
    # Revision 0031: enqueue's rule helpers are internal (owner only).
    **{(ObjectKind.FUNCTION, spec.signature): {} for spec in ENQUEUE_RULE_FUNCTIONS},
    # Revision 0034 (ADR 0147): each participant-first function has its single-node twin's grants.
    **{
        (ObjectKind.FUNCTION, spec.signature): {
            EXECUTOR: _EXECUTE,
            CONTROL: _EXECUTE,
            TEST_USER: _EXECUTE,
        }
        for spec in (
            COMPLETE_OUTBOX_ATTEMPT_FOR_PARTICIPANT,
            COMPLETE_OUTBOX_ATTEMPTS_BATCH_FOR_PARTICIPANT,
            REPAIR_EXPIRED_LEASES_FOR_PARTICIPANT,
            EXTEND_OUTBOX_LEASE_FOR_PARTICIPANT,
        )
    },
    **{
        (ObjectKind.FUNCTION, spec.signature): {CONTROL: _EXECUTE}
        for spec in (CANCEL_OUTBOX_JOB_FOR_PARTICIPANT, REDRIVE_OUTBOX_JOB_FOR_PARTICIPANT)
    },
    (ObjectKind.FUNCTION, ENQUEUE_PAYMENT_OUTBOX_BATCH_FOR_PARTICIPANT.signature): {
        INGEST: _EXECUTE,
        CONTROL: _EXECUTE,
        TEST_USER: _EXECUTE,
    },
    (ObjectKind.FUNCTION, OUTBOX_PROMOTE_PARTICIPANT_HEAD.signature): {},
    # Revision 0037: internal, owner only.
    (ObjectKind.FUNCTION, OUTBOX_ID_OK.signature): {},
    (ObjectKind.FUNCTION, RECORD_OUTBOX_RAIL_REFERENCES.signature): {},
}

#: Every grantee the matrix speaks about, PUBLIC included.
GRANTEES: Final[tuple[str, ...]] = (PUBLIC, *(role.name for role in ROLES))


def declared_objects() -> frozenset[tuple[ObjectKind, str]]:
    """Every (kind, object) the matrix speaks about."""
    return frozenset(_MATRIX)


def expected_grants() -> GrantMatrix:
    """The declared matrix, complete: one entry per grantee (PUBLIC included) and object, with an
    empty set where the grantee must hold nothing."""
    matrix: dict[GrantKey, frozenset[str]] = {}
    for (kind, name), grants in _MATRIX.items():
        for grantee in GRANTEES:
            matrix[(grantee, kind, name)] = grants.get(grantee, frozenset())
    return MappingProxyType(matrix)


#: Every privilege PostgreSQL knows per kind of object (MAINTAIN: PostgreSQL 17+).
KIND_PRIVILEGES: Final[Mapping[ObjectKind, tuple[str, ...]]] = MappingProxyType(
    {
        ObjectKind.TABLE: (
            "SELECT",
            "INSERT",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "REFERENCES",
            "TRIGGER",
            "MAINTAIN",
        ),
        ObjectKind.COLUMN: ("SELECT", "INSERT", "UPDATE", "REFERENCES"),
        ObjectKind.SEQUENCE: ("USAGE", "SELECT", "UPDATE"),
        ObjectKind.FUNCTION: ("EXECUTE",),
        ObjectKind.SCHEMA: ("USAGE", "CREATE"),
    }
)

#: How a privilege held WITH GRANT OPTION is labelled, so that it differs from the plain one.
GRANT_OPTION: Final = " WITH GRANT OPTION"
