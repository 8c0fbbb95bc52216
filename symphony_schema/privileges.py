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

The ACLs are what was granted; what a role can *do* also comes from the roles it is a member of
(INHERIT, or SET ROLE), predefined roles included. :func:`read_memberships` with
:func:`diff_memberships` compares the memberships that involve a Symphony role with the contract
(ADR 0070), and :func:`read_effective_privileges` with :func:`diff_effective_privileges` compares
what each Symphony role - and each role that holds one - can effectively do with the matrix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import psycopg

__all__ = [
    "AUDITOR",
    "COMMON_ROLE_ATTRIBUTES",
    "CONTROL",
    "EXECUTOR",
    "FUNCTIONS",
    "GRANTEES",
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
    "EffectivePrivileges",
    "FunctionArg",
    "FunctionSpec",
    "GrantKey",
    "GrantMatrix",
    "ObjectKind",
    "RoleMembership",
    "RoleSpec",
    "allowed_effective",
    "diff_effective_privileges",
    "diff_grants",
    "diff_memberships",
    "diff_role_attributes",
    "expected_grants",
    "function",
    "membership_and_effective_lines",
    "read_actual_grants",
    "read_effective_privileges",
    "read_memberships",
    "read_migrating_user",
    "read_role_attributes",
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
#: The migration ledger: created by the engine, owned by the migrating user, read by the auditor.
LEDGER_TABLE: Final = table_name("schema_migrations")
#: Revision 0013 (ADR 0130): the ledger's default partition and the archive record (owner only).
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
)
CLAIM_OUTBOX_BATCH: Final = function(
    "claim_outbox_batch",
    ("p_batch_size", "integer"),
    ("p_worker_id", "text"),
    ("p_lease_seconds", "integer"),
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

#: Every Symphony function, in creation order.
#: Revision 0013 (ADR 0130-0133): the partitioned ledger's maintenance and guards, owner only.
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
)

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
    *LEDGER_FUNCTIONS,
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
    (ObjectKind.TABLE, PENDING): {
        CONTROL: frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"}),
        READONLY: _SELECT,
        AUDITOR: _SELECT,
    },
    (ObjectKind.TABLE, ATTEMPTS): {
        # Option A: the control plane appends and reads, never UPDATE/DELETE/TRUNCATE.
        CONTROL: frozenset({"SELECT", "INSERT"}),
        READONLY: _SELECT,
        AUDITOR: _SELECT,
    },
    (ObjectKind.TABLE, SEQUENCES): {
        CONTROL: frozenset({"SELECT", "INSERT", "UPDATE"}),
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
    # Revision 0013: the ledger's default partition, the archive record and the maintenance
    # functions belong to the owner alone (ADR 0130-0133).
    (ObjectKind.TABLE, ATTEMPTS_DEFAULT): {},
    (ObjectKind.TABLE, ARCHIVED_PARTITIONS): {},
    **{(ObjectKind.FUNCTION, spec.signature): {} for spec in LEDGER_FUNCTIONS},
}

#: Every grantee the matrix speaks about, PUBLIC included.
GRANTEES: Final[tuple[str, ...]] = (PUBLIC, *(role.name for role in ROLES))


def expected_grants() -> GrantMatrix:
    """The declared matrix, complete: one entry per grantee (PUBLIC included) and object, with an
    empty set where the grantee must hold nothing."""
    matrix: dict[GrantKey, frozenset[str]] = {}
    for (kind, name), grants in _MATRIX.items():
        for grantee in GRANTEES:
            matrix[(grantee, kind, name)] = grants.get(grantee, frozenset())
    return MappingProxyType(matrix)


# --------------------------------------------------------------------------------------------
# Reading the live catalog
# --------------------------------------------------------------------------------------------

# Every relation and routine in schema public (extension members excluded), each column of a
# relation, and the schema itself: (oid, kind, name, owner, acl, attnum). A NULL ACL means "the
# built-in default", which for functions includes EXECUTE for PUBLIC, hence acldefault(); a
# column's NULL ACL means "no column-level grant". Function signatures are rendered without
# depending on search_path: catalog types through format_type, other types as schema.name.
_OBJECTS_CTE: Final = """
relations AS (
    SELECT c.oid,
           CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS name,
           c.relowner AS owner,
           COALESCE(c.relacl,
                    pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                          c.relowner)) AS acl
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname = %(schema)s
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
),
objects AS (
    SELECT r.oid, r.kind, r.name, r.owner, r.acl, NULL::pg_catalog.int2 AS attnum
      FROM relations AS r
    UNION ALL
    SELECT r.oid, 'column', r.name || '.' || pg_catalog.quote_ident(a.attname), r.owner,
           a.attacl, a.attnum
      FROM relations AS r
      JOIN pg_catalog.pg_attribute AS a ON a.attrelid = r.oid
     WHERE r.kind = 'table' AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT p.oid, 'function',
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) || '(' ||
           COALESCE((SELECT pg_catalog.string_agg(
                                CASE WHEN tn.nspname = 'pg_catalog'
                                     THEN pg_catalog.format_type(t.oid, NULL)
                                     ELSE pg_catalog.quote_ident(tn.nspname) || '.'
                                          || pg_catalog.quote_ident(t.typname)
                                END, ',' ORDER BY a.ord)
                       FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])
                            WITH ORDINALITY AS a (typ, ord)
                       JOIN pg_catalog.pg_type AS t ON t.oid = a.typ
                       JOIN pg_catalog.pg_namespace AS tn ON tn.oid = t.typnamespace), '')
           || ')',
           p.proowner,
           COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner)),
           NULL
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname = %(schema)s
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT n.oid, 'schema', n.nspname::text, n.nspowner,
           COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner)), NULL
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname = %(schema)s
)"""

# The ACL entries of every object above, the owner's own left out.
_ACL_QUERY: Final = (
    "WITH "
    + _OBJECTS_CTE
    + """
SELECT o.kind,
       o.name,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
       x.privilege_type,
       x.is_grantable
  FROM objects AS o
 CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) AS x
 WHERE x.grantee <> o.owner
"""
)


def read_actual_grants(conn: psycopg.Connection[Any]) -> GrantMatrix:
    """Read the live ACLs of schema ``public``, its relations (and their columns) and functions.

    The result has the shape of :func:`expected_grants`: every declared (grantee, object) pair is
    present (empty when nothing is granted), plus an entry for any other grant found, e.g. on an
    undeclared object or to an undeclared role. Owners' own privileges are left out.
    """
    declared_objects = {(kind, name) for (kind, name) in _MATRIX}
    actual: dict[GrantKey, set[str]] = {}
    for kind, name in declared_objects:
        for grantee in GRANTEES:
            actual[(grantee, kind, name)] = set()

    rows = conn.execute(_ACL_QUERY, {"schema": SCHEMA}).fetchall()
    for kind, name, grantee, privilege, grantable in rows:
        key: GrantKey = (str(grantee), ObjectKind(kind), str(name))
        label = f"{privilege} WITH GRANT OPTION" if grantable else str(privilege)
        actual.setdefault(key, set()).add(label)
    return MappingProxyType({key: frozenset(privs) for key, privs in actual.items()})


def diff_grants(expected: GrantMatrix, actual: GrantMatrix) -> list[str]:
    """Human-readable differences, one line per privilege, sorted; empty when the matrices agree.

    ``missing: <grantee> <PRIV> on <kind> <object>`` - declared but not granted;
    ``extra: <grantee> <PRIV> on <kind> <object>`` - granted but not declared.
    A key absent from either side counts as "no privileges".
    """
    lines: list[str] = []
    for key in sorted(set(expected) | set(actual)):
        grantee, kind, name = key
        want = expected.get(key, frozenset())
        have = actual.get(key, frozenset())
        for privilege in sorted(want - have):
            lines.append(f"missing: {grantee} {privilege} on {kind} {name}")
        for privilege in sorted(have - want):
            lines.append(f"extra: {grantee} {privilege} on {kind} {name}")
    return lines


# --------------------------------------------------------------------------------------------
# Role attributes
# --------------------------------------------------------------------------------------------

_ROLE_QUERY: Final = """
SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
       r.rolreplication, r.rolbypassrls
  FROM pg_catalog.pg_roles AS r
 WHERE r.rolname = ANY(%(names)s)
"""

_ROLE_COLUMNS: Final[tuple[str, ...]] = ("rolcanlogin", *COMMON_ROLE_ATTRIBUTES)


def read_role_attributes(
    conn: psycopg.Connection[Any], names: Iterable[str] | None = None
) -> dict[str, dict[str, bool]]:
    """Live attributes (``pg_roles`` columns) of the given roles, default all Symphony roles.
    Roles that do not exist are absent from the result."""
    wanted = [role.name for role in ROLES] if names is None else list(names)
    rows = conn.execute(_ROLE_QUERY, {"names": wanted}).fetchall()
    return {
        str(row[0]): dict(zip(_ROLE_COLUMNS, (bool(v) for v in row[1:]), strict=True))
        for row in rows
    }


def diff_role_attributes(actual: Mapping[str, Mapping[str, bool]]) -> list[str]:
    """Differences between the declared roles and :func:`read_role_attributes` output."""
    lines: list[str] = []
    for role in ROLES:
        have = actual.get(role.name)
        if have is None:
            lines.append(f"missing role: {role.name}")
            continue
        for column, want in role.attributes().items():
            if have.get(column) != want:
                lines.append(f"role {role.name}: {column} is {have.get(column)}, expected {want}")
    return lines


# --------------------------------------------------------------------------------------------
# Memberships (ADR 0070)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleMembership:
    """One ``pg_auth_members`` row that involves a Symphony role (as the role or the member)."""

    role: str
    member: str
    admin: bool
    inherit: bool
    set: bool
    member_is_superuser: bool


_MEMBERSHIP_QUERY: Final = """
SELECT DISTINCT g.rolname, m.rolname, a.admin_option, a.inherit_option, a.set_option, m.rolsuper
  FROM pg_catalog.pg_auth_members AS a
  JOIN pg_catalog.pg_roles AS g ON g.oid = a.roleid
  JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
 WHERE g.rolname = ANY(%(names)s) OR m.rolname = ANY(%(names)s)
 ORDER BY 1, 2, 3, 4, 5
"""

#: The role that ran the migrations: the owner of the engine's ledger (None without a ledger).
_MIGRATING_USER_QUERY: Final = """
SELECT pg_catalog.pg_get_userbyid(c.relowner)
  FROM pg_catalog.pg_class AS c
 WHERE c.oid = pg_catalog.to_regclass(%(ledger)s)
"""


def read_memberships(conn: psycopg.Connection[Any]) -> list[RoleMembership]:
    """Every membership whose role or member is a Symphony role (logins and predefined roles
    included), one row per distinct (role, member, options)."""
    names = [role.name for role in ROLES]
    rows = conn.execute(_MEMBERSHIP_QUERY, {"names": names}).fetchall()
    return [
        RoleMembership(
            role=str(row[0]),
            member=str(row[1]),
            admin=bool(row[2]),
            inherit=bool(row[3]),
            set=bool(row[4]),
            member_is_superuser=bool(row[5]),
        )
        for row in rows
    ]


def read_migrating_user(conn: psycopg.Connection[Any]) -> str | None:
    """The role that ran the migrations (it owns ``public.schema_migrations``), or None."""
    row = conn.execute(_MIGRATING_USER_QUERY, {"ledger": LEDGER_TABLE}).fetchone()
    return str(row[0]) if row and row[0] is not None else None


#: Every (role, predefined role) pair where a non-superuser role that reaches a runtime role
#: (at any depth, whatever the options) also reaches a predefined ``pg_*`` role; Symphony roles
#: and the migrating user are judged by diff_memberships.
_PREDEFINED_QUERY: Final = """
WITH RECURSIVE reach (subject, role) AS (
    SELECT a.member, a.roleid FROM pg_catalog.pg_auth_members AS a
    UNION
    SELECT r.subject, a.roleid
      FROM reach AS r JOIN pg_catalog.pg_auth_members AS a ON a.member = r.role
)
SELECT DISTINCT s.rolname, p.rolname
  FROM reach AS x
  JOIN pg_catalog.pg_roles AS s ON s.oid = x.subject
  JOIN pg_catalog.pg_roles AS p ON p.oid = x.role
 WHERE p.rolname ~ '^pg_' AND p.oid < 16384
   AND NOT s.rolsuper
   AND s.rolname <> ALL(%(symphony)s)
   AND s.rolname IS DISTINCT FROM %(migrating_user)s
   AND EXISTS (SELECT 1
                 FROM reach AS y JOIN pg_catalog.pg_roles AS q ON q.oid = y.role
                WHERE y.subject = x.subject AND q.rolname = ANY(%(runtime)s))
 ORDER BY 1, 2
"""


def predefined_role_problems(
    conn: psycopg.Connection[Any], migrating_user: str | None
) -> list[str]:
    """A role that holds a runtime role may reach no predefined role (red team, ADR 0100):
    ``pg_execute_server_program`` and the ``*_server_files`` roles act as the server's OS user,
    ``pg_signal_backend`` terminates the deploy lock's session and the workers, ``pg_maintain``
    and the ``*_all_data`` roles lock and write every table. One line each, with the fix."""
    rows = conn.execute(
        _PREDEFINED_QUERY,
        {
            "symphony": [role.name for role in ROLES],
            "migrating_user": migrating_user,
            "runtime": sorted(RUNTIME_ROLES),
        },
    ).fetchall()
    return [
        f"{member} holds a Symphony runtime role and reaches the predefined role {predefined}: "
        "a login that acts for Symphony may hold no predefined role (use a separate login for "
        f"operations); REVOKE {predefined} FROM {_ident(str(member))} (or from the group that "
        "passes it on)"
        for member, predefined in rows
    ]


def _ident(name: str) -> str:
    """``name`` as an SQL identifier in a suggested fix (quoted unless plainly lower-case)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def diff_memberships(
    memberships: Iterable[RoleMembership], migrating_user: str | None
) -> list[str]:
    """Memberships the contract does not allow (ADR 0070), one line each with the fix:

    * a Symphony role (``test_user`` included) is a member of no role at all - not of another
      Symphony role, not of a predefined role such as ``pg_write_all_data``;
    * nobody is a member of ``symphony_owner`` or ``test_user``, except the migrating user (a
      non-superuser migrator needs ``symphony_owner``; PostgreSQL 16+ grants a CREATEROLE creator
      ADMIN on the roles it creates);
    * other roles (service logins) may hold the runtime roles, never WITH ADMIN OPTION.

    Superusers are not reported as members of runtime roles: they bypass every check anyway.
    """
    symphony = {role.name for role in ROLES}
    lines: set[str] = set()
    for m in memberships:
        role, member = _ident(m.role), _ident(m.member)
        revoke = f"REVOKE {role} FROM {member}"
        if m.member in symphony:
            lines.add(
                f"{m.member} is a member of {m.role}: a Symphony role may be a member of no role "
                f"(it would gain {m.role}'s privileges beyond the matrix); {revoke}"
            )
        elif m.member == migrating_user:
            continue
        elif m.role not in RUNTIME_ROLES:
            lines.add(
                f"{m.member} is a member of {m.role}: only the migrating user "
                f"({migrating_user or 'unknown: no ledger'}) may be; {revoke}"
            )
        elif m.admin and not m.member_is_superuser:
            lines.add(
                f"{m.member} holds {m.role} WITH ADMIN OPTION: it could grant {m.role} to any "
                f"role, Symphony roles included; REVOKE ADMIN OPTION FOR {role} FROM {member}"
            )
    return sorted(lines)


# --------------------------------------------------------------------------------------------
# Effective privileges (ADR 0070)
# --------------------------------------------------------------------------------------------

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

_GRANT_OPTION: Final = " WITH GRANT OPTION"

# Subjects: every Symphony role, and every other non-superuser role that is a member (at any
# depth, whatever the options) of a Symphony role, except the migrating user. A subject can act
# as itself and as every role it reaches through memberships - INHERIT (privileges apply
# directly), SET (after SET ROLE) or ADMIN only (it can grant the role to itself) alike - so its
# effective privilege on an object is held when any of those roles holds it by has_*_privilege
# (which adds the owner's rights and predefined roles such as pg_write_all_data). ``via`` names
# the other roles that hold it. Column privileges come from has_column_privilege (table-level
# grants included; the caller drops those the table-level row already shows).
_EFFECTIVE_QUERY: Final = (
    "WITH RECURSIVE "
    + _OBJECTS_CTE
    + """,
symphony AS (
    SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = ANY(%(symphony)s)
),
holders (member) AS (
    SELECT a.member FROM pg_catalog.pg_auth_members AS a
     WHERE a.roleid IN (SELECT s.oid FROM symphony AS s)
    UNION
    SELECT a.member FROM pg_catalog.pg_auth_members AS a JOIN holders AS h ON a.roleid = h.member
),
subjects AS (
    SELECT r.oid, r.rolname FROM pg_catalog.pg_roles AS r
     WHERE r.oid IN (SELECT s.oid FROM symphony AS s)
        OR (r.oid IN (SELECT h.member FROM holders AS h)
            AND NOT r.rolsuper AND r.rolname IS DISTINCT FROM %(migrating_user)s)
),
reach (subject, role) AS (
    SELECT s.oid, s.oid FROM subjects AS s
    UNION
    SELECT r.subject, a.roleid FROM reach AS r
      JOIN pg_catalog.pg_auth_members AS a ON a.member = r.role
),
privs (kind, privilege) AS (
    SELECT k.kind, p.privilege || g.suffix
      FROM pg_catalog.jsonb_each(%(privileges)s::pg_catalog.jsonb) AS k (kind, list)
     CROSS JOIN LATERAL pg_catalog.jsonb_array_elements_text(k.list) AS p (privilege)
     CROSS JOIN (VALUES (''), (%(grant_option)s)) AS g (suffix)
),
held AS (
    SELECT s.oid AS subject, s.rolname, o.kind, o.name, o.owner, p.privilege, r.role
      FROM subjects AS s
      JOIN reach AS r ON r.subject = s.oid
     CROSS JOIN objects AS o
      JOIN privs AS p ON p.kind = o.kind
     WHERE CASE o.kind
             WHEN 'table' THEN pg_catalog.has_table_privilege(r.role, o.oid, p.privilege)
             WHEN 'sequence' THEN pg_catalog.has_sequence_privilege(r.role, o.oid, p.privilege)
             WHEN 'column' THEN pg_catalog.has_column_privilege(r.role, o.oid, o.attnum,
                                                                p.privilege)
             WHEN 'function' THEN pg_catalog.has_function_privilege(r.role, o.oid, p.privilege)
             WHEN 'schema' THEN pg_catalog.has_schema_privilege(r.role, o.oid, p.privilege)
           END
)
SELECT h.rolname, h.kind, h.name, pg_catalog.pg_get_userbyid(h.owner), h.privilege,
       pg_catalog.array_remove(pg_catalog.array_agg(DISTINCT
           CASE WHEN h.role <> h.subject THEN pg_catalog.pg_get_userbyid(h.role) END), NULL)
  FROM held AS h
 GROUP BY h.rolname, h.kind, h.name, h.owner, h.privilege
"""
)

_REACH_QUERY: Final = """
WITH RECURSIVE reach (subject, role) AS (
    SELECT r.oid, r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = ANY(%(subjects)s)
    UNION
    SELECT r.subject, a.roleid FROM reach AS r
      JOIN pg_catalog.pg_auth_members AS a ON a.member = r.role
)
SELECT pg_catalog.pg_get_userbyid(r.subject), pg_catalog.pg_get_userbyid(r.role) FROM reach AS r
"""


@dataclass(frozen=True, slots=True)
class EffectivePrivileges:
    """What roles can effectively do in schema ``public``, read by
    :func:`read_effective_privileges`.

    ``held[(subject, kind, name)]`` maps each privilege the subject can exercise (as itself or
    through a role it reaches) to the roles other than itself that hold it (empty: its own
    grant). ``owners`` gives each object's owner; ``reaches[subject]`` every role the subject can
    act as, itself included.
    """

    held: Mapping[GrantKey, Mapping[str, tuple[str, ...]]]
    owners: Mapping[tuple[ObjectKind, str], str]
    reaches: Mapping[str, frozenset[str]]


def _kind_privileges(server_version: int) -> dict[str, list[str]]:
    kinds = {str(kind): list(names) for kind, names in KIND_PRIVILEGES.items()}
    if server_version < 170000:
        kinds[str(ObjectKind.TABLE)].remove("MAINTAIN")
    return kinds


def read_effective_privileges(conn: psycopg.Connection[Any]) -> EffectivePrivileges:
    """Effective privileges on schema ``public`` and everything in it (columns included), for
    every Symphony role and every other non-superuser role holding one (the migrating user
    excepted, see :func:`diff_memberships`), through every membership."""
    version = conn.info.server_version
    rows = conn.execute(
        _EFFECTIVE_QUERY,
        {
            "schema": SCHEMA,
            "symphony": [role.name for role in ROLES],
            "migrating_user": read_migrating_user(conn),
            "privileges": json.dumps(_kind_privileges(version)),
            "grant_option": _GRANT_OPTION,
        },
    ).fetchall()
    held: dict[GrantKey, dict[str, tuple[str, ...]]] = {}
    owners: dict[tuple[ObjectKind, str], str] = {}
    for subject, kind, name, owner, privilege, via in rows:
        key: GrantKey = (str(subject), ObjectKind(kind), str(name))
        held.setdefault(key, {})[str(privilege)] = tuple(sorted(str(v) for v in via or ()))
        owners[(ObjectKind(kind), str(name))] = str(owner)
    subjects = sorted({key[0] for key in held} | {role.name for role in ROLES})
    reaches: dict[str, set[str]] = {name: {name} for name in subjects}
    for subject, role in conn.execute(_REACH_QUERY, {"subjects": subjects}).fetchall():
        reaches.setdefault(str(subject), {str(subject)}).add(str(role))
    return EffectivePrivileges(
        held=MappingProxyType({k: MappingProxyType(v) for k, v in held.items()}),
        owners=MappingProxyType(owners),
        reaches=MappingProxyType({k: frozenset(v) for k, v in reaches.items()}),
    )


def _all_privileges(kind: ObjectKind) -> frozenset[str]:
    names = KIND_PRIVILEGES[kind]
    return frozenset(names) | frozenset(name + _GRANT_OPTION for name in names)


def allowed_effective(
    subject: str, kind: ObjectKind, name: str, owner: str, reaches: frozenset[str]
) -> frozenset[str]:
    """What ``subject`` may effectively hold on an object: its declared grants and PUBLIC's,
    everything on what it owns; for a role that is not a Symphony role (a service login), the
    union of that over the Symphony roles it holds. A column may hold what the matrix gives
    its table."""
    symphony = {role.name for role in ROLES}
    acting = {subject} if subject in symphony else (set(reaches) & symphony)
    declared = expected_grants()
    keys = [(kind, name)]
    if kind is ObjectKind.COLUMN:
        keys.append((ObjectKind.TABLE, name.rsplit(".", 1)[0]))
    allowed: set[str] = set()
    for role in acting:
        for key_kind, key_name in keys:
            allowed |= declared.get((role, key_kind, key_name), frozenset())
            allowed |= declared.get((PUBLIC, key_kind, key_name), frozenset())
        if role == owner:
            allowed |= _all_privileges(kind)
    return frozenset(allowed)


def diff_effective_privileges(effective: EffectivePrivileges) -> list[str]:
    """One line per (role, object) where a role can effectively do more than the matrix allows,
    naming the privileges and the roles they come through. A column is reported only for
    privileges its table-level row does not already show."""
    lines: list[str] = []
    for key in sorted(effective.held):
        subject, kind, name = key
        owner = effective.owners[(kind, name)]
        reaches = effective.reaches.get(subject, frozenset({subject}))
        have = effective.held[key]
        extra = set(have) - allowed_effective(subject, kind, name, owner, reaches)
        if kind is ObjectKind.COLUMN:
            table = effective.held.get((subject, ObjectKind.TABLE, name.rsplit(".", 1)[0]), {})
            extra -= set(table)
        if not extra:
            continue
        ordered = sorted(extra, key=lambda p: (KIND_PRIVILEGES[kind].index(p.split(" ")[0]), p))
        sources = sorted({role for p in extra for role in have[p]})
        via = f"through {', '.join(sources)}" if sources else "by its own grant"
        fix = (
            "revoke the membership that leads there"
            if sources
            else "revoke the grant (in a new revision)"
        )
        lines.append(
            f"{subject} can effectively {', '.join(ordered)} on {kind} {name} ({via}), beyond "
            f"the matrix; {fix}"
        )
    return lines


def membership_and_effective_lines(conn: psycopg.Connection[Any]) -> list[str]:
    """:func:`diff_memberships` and :func:`diff_effective_privileges` of a live database as
    ``membership: ...`` / ``effective: ...`` lines; empty when both hold (the drift check adds
    them to the catalog's side of its diff, where the declaration has none)."""
    memberships = diff_memberships(read_memberships(conn), read_migrating_user(conn))
    effective = diff_effective_privileges(read_effective_privileges(conn))
    return [f"membership: {line}" for line in memberships] + [
        f"effective: {line}" for line in effective
    ]
