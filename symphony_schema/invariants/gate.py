"""The SQL gate (``gate:<name>``): checks against the live catalog of a migrated database.

Each check reads the catalog through one psycopg connection and returns every problem it finds
(empty = pass). :func:`run_gate` runs *all* of them, each in its own transaction (or savepoint,
when the caller's connection is already in a transaction), so one failing or crashing check never
hides the others. The gate only reads: :func:`connect` opens a read-only session.

Facts are never restated here: the privilege matrix, the roles and the Symphony functions come
from :mod:`symphony_schema.privileges`, the tables and enum types from
:mod:`symphony_schema.models`, the ledger rules from :mod:`symphony_schema.migration.ledger`.

The ACL checks compare what was granted; ``role-memberships`` and ``effective-privileges``
(ADR 0070) compare what roles can actually do through memberships, predefined roles and column
grants. PUBLIC is checked from the ACLs themselves (``aclexplode`` of the ACL, or of
``acldefault`` when the ACL is NULL, grantee 0) - never with ``has_table_privilege('public',
...)``, which asks about a role *named* public.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.dialects.postgresql import ENUM

from symphony_schema import models, privilege_catalog, privilege_diff, privileges, project_root
from symphony_schema.invariants import (
    gate_cluster,
    gate_fifo,
    gate_outbox_ops,
    gate_wake,
    ledger_partitions,
    policy_gate,
)
from symphony_schema.invariants.results import CheckResult, timed

Conn = psycopg.Connection[Any]
GateFn = Callable[[Conn], list[str]]

ATTEMPTS = "public.payment_outbox_attempts"
DENY_FUNCTION = "public.deny_outbox_attempts_mutation()"
APPEND_ONLY_TRIGGER = "trg_deny_outbox_attempts_mutation"
BOOT_QUERY = "SELECT version FROM public.policy_versions WHERE is_active"
#: Relations the migration machinery itself needs besides the declared Symphony tables.
ENGINE_RELATIONS = ("public.alembic_version",)
#: Relations created by the engine, owned by the migrating user rather than symphony_owner.
ENGINE_OWNED = {privileges.LEDGER_TABLE, "public.alembic_version"}

#: Session settings of the gate: it never writes, and never waits long on a lock.
SESSION_SETTINGS = {
    "default_transaction_read_only": "on",
    "lock_timeout": "5s",
    "statement_timeout": "120s",
    "search_path": "pg_catalog",
}


def connect(conninfo: str) -> Conn:
    """A read-only gate session."""
    options = " ".join(f"-c {key}={value}" for key, value in SESSION_SETTINGS.items())
    return psycopg.connect(conninfo, autocommit=True, options=options)


def _rows(conn: Conn, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def declared_tables() -> list[str]:
    """Every relation Symphony declares: the models' tables and the privilege matrix's."""
    names = {f"public.{table.name}" for table in models.metadata.tables.values()}
    return sorted(names | set(privileges.TABLES))


def declared_enum_types() -> list[str]:
    names = {
        f"public.{column.type.name}"
        for table in models.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, ENUM) and column.type.name
    }
    return sorted(names)


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------


def check_required_objects(conn: Conn) -> list[str]:
    """Every declared table, enum type and function exists (plus ``alembic_version``)."""
    problems = []
    for name in [*declared_tables(), *ENGINE_RELATIONS]:
        if _rows(conn, "SELECT pg_catalog.to_regclass(%(n)s)", {"n": name})[0][0] is None:
            problems.append(f"relation {name} is missing; migrate the database to head")
    for name in declared_enum_types():
        if _rows(conn, "SELECT pg_catalog.to_regtype(%(n)s)", {"n": name})[0][0] is None:
            problems.append(f"type {name} is missing; migrate the database to head")
    for spec in privileges.FUNCTIONS:
        found = _rows(conn, "SELECT pg_catalog.to_regprocedure(%(n)s)", {"n": spec.signature})
        if found[0][0] is None:
            problems.append(f"function {spec.signature} is missing; migrate the database to head")
    return problems


def check_boot_query(conn: Conn) -> list[str]:
    """The services' boot query runs (as ``symphony_executor`` when the gate may act as it) and
    finds at most one active version."""
    can_set = _rows(
        conn,
        "SELECT pg_catalog.pg_has_role(current_user, %(r)s, 'SET') "
        "FROM pg_catalog.pg_roles WHERE rolname = %(r)s",
        {"r": privileges.EXECUTOR},
    )
    as_executor = bool(can_set and can_set[0][0])
    try:
        # A savepoint of its own: a failing query is rolled back alone, and the role switch ends
        # with it (SET LOCAL would otherwise outlive a released savepoint).
        with conn.transaction():
            if as_executor:
                conn.execute(f"SET LOCAL ROLE {privileges.EXECUTOR}")
            rows = _rows(conn, BOOT_QUERY)
            if as_executor:
                conn.execute("RESET ROLE")
    except psycopg.Error as exc:
        state = exc.sqlstate or "?"
        return [f"the boot query failed (SQLSTATE {state}): {exc}".strip()]
    if len(rows) > 1:
        versions = ", ".join(str(row[0]) for row in rows)
        return [
            f"the boot query returns {len(rows)} active versions ({versions}); exactly one may be"
        ]
    return []


def check_public_table_privileges(conn: Conn) -> list[str]:
    """PUBLIC holds no privilege on any relation (or column) in schema ``public``."""
    rows = _rows(
        conn,
        """
        SELECT c.oid::pg_catalog.regclass::text, NULL::text, a.privilege_type
          FROM pg_catalog.pg_class AS c
         CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault(
                CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) AS a
         WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
           AND a.grantee = 0
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
        UNION ALL
        SELECT c.oid::pg_catalog.regclass::text, att.attname::text, a.privilege_type
          FROM pg_catalog.pg_attribute AS att
          JOIN pg_catalog.pg_class AS c ON c.oid = att.attrelid
         CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) AS a
         WHERE c.relnamespace = 'public'::pg_catalog.regnamespace
           AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
           AND a.grantee = 0
         ORDER BY 1, 2 NULLS FIRST, 3
    """,
    )
    problems = []
    for relation, column, privilege in rows:
        target = f"{relation} ({column})" if column else relation
        columns = f" ({column})" if column else ""
        problems.append(
            f"PUBLIC has {privilege} on {target}; REVOKE {privilege}{columns} ON {relation} "
            "FROM PUBLIC (in a new revision)"
        )
    return problems


def check_public_function_execute(conn: Conn) -> list[str]:
    """PUBLIC holds no EXECUTE on any function in schema ``public`` (PostgreSQL's default ACL of
    a function grants it, so a NULL ACL counts as granted)."""
    rows = _rows(
        conn,
        """
        SELECT p.oid::pg_catalog.regprocedure::text, p.proacl IS NULL
          FROM pg_catalog.pg_proc AS p
         CROSS JOIN LATERAL pg_catalog.aclexplode(
                COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
         WHERE p.pronamespace = 'public'::pg_catalog.regnamespace
           AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                              AND d.objid = p.oid AND d.deptype = 'e')
         ORDER BY 1
    """,
    )
    return [
        f"PUBLIC can EXECUTE {signature}"
        + (" (default ACL: never revoked)" if by_default else "")
        + f"; REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC (in a new revision)"
        for signature, by_default in rows
    ]


def check_schema_public_create(conn: Conn) -> list[str]:
    """Neither PUBLIC nor any Symphony role can CREATE in schema ``public``."""
    problems = []
    public_create = _rows(
        conn,
        """
        SELECT 1 FROM pg_catalog.pg_namespace AS n
         CROSS JOIN LATERAL pg_catalog.aclexplode(
                COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) AS a
         WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE'
    """,
    )
    if public_create:
        problems.append(
            "PUBLIC has CREATE on schema public; REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        )
    rows = _rows(
        conn,
        """
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
         WHERE r.rolname = ANY(%(roles)s)
           AND pg_catalog.has_schema_privilege(r.oid, 'public', 'CREATE')
         ORDER BY 1
    """,
        {"roles": [role.name for role in privileges.ROLES]},
    )
    for (role,) in rows:
        problems.append(
            f"{role} can CREATE in schema public (directly or through a role it inherits); "
            f"REVOKE CREATE ON SCHEMA public FROM {role}, or remove the membership that gives it"
        )
    return problems


def check_privilege_matrix(conn: Conn) -> list[str]:
    """The live grants equal the matrix declared in :mod:`symphony_schema.privileges`, both ways."""
    differences = privilege_diff.diff_grants(
        privileges.expected_grants(), privilege_catalog.read_actual_grants(conn)
    )
    hint = " (declared in symphony_schema/privileges.py; fix the grant in a new revision)"
    return [line + hint for line in differences]


def check_role_memberships(conn: Conn) -> list[str]:
    """Memberships that involve a Symphony role follow ADR 0070: Symphony roles are members of
    nothing, only the migrating user holds symphony_owner, nobody holds a runtime role WITH
    ADMIN OPTION but the migrating user; a role that holds a runtime role reaches no predefined
    role (ADR 0100)."""
    migrating_user = privilege_catalog.read_migrating_user(conn)
    return privilege_diff.diff_memberships(
        privilege_catalog.read_memberships(conn), migrating_user
    ) + privilege_diff.predefined_role_problems(conn, migrating_user)


def check_effective_privileges(conn: Conn) -> list[str]:
    """No Symphony role - and no role holding one - can effectively do more than the matrix
    gives it, through any membership (INHERIT, SET or ADMIN; predefined roles included), on any
    object, column or schema in ``public``."""
    return privilege_diff.diff_effective_privileges(
        privilege_catalog.read_effective_privileges(conn)
    )


def _search_path_entries(setting: str) -> list[str]:
    return [part.strip().strip('"') for part in setting.split(",") if part.strip()]


def check_definer_search_path(conn: Conn) -> list[str]:
    """Every SECURITY DEFINER function in ``public`` pins ``search_path`` with pg_temp last."""
    rows = _rows(
        conn,
        """
        SELECT p.oid::pg_catalog.regprocedure::text,
               (SELECT pg_catalog.substr(c, 13) FROM pg_catalog.unnest(p.proconfig) AS c
                 WHERE c LIKE 'search\\_path=%' LIMIT 1)
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = 'public'::pg_catalog.regnamespace AND p.prosecdef
         ORDER BY 1
    """,
    )
    fix = "ALTER FUNCTION {} SET search_path = pg_catalog, public, pg_temp (in a new revision)"
    problems = []
    for signature, setting in rows:
        if setting is None:
            problems.append(
                f"SECURITY DEFINER {signature} does not pin search_path; " + fix.format(signature)
            )
        elif _search_path_entries(setting)[-1:] != ["pg_temp"]:
            problems.append(
                f"SECURITY DEFINER {signature} has search_path={setting}: pg_temp is not last, so "
                "a caller's temporary objects can shadow tables; " + fix.format(signature)
            )
    return problems


def check_definer_owner(conn: Conn) -> list[str]:
    """Every SECURITY DEFINER function in ``public`` is owned by symphony_owner, not a superuser."""
    rows = _rows(
        conn,
        """
        SELECT p.oid::pg_catalog.regprocedure::text, r.rolname, r.rolsuper
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner
         WHERE p.pronamespace = 'public'::pg_catalog.regnamespace AND p.prosecdef
           AND (r.rolname <> %(owner)s OR r.rolsuper)
         ORDER BY 1
    """,
        {"owner": privileges.OWNER},
    )
    problems = []
    for signature, owner, superuser in rows:
        what = "a superuser" if superuser else "not symphony_owner"
        problems.append(
            f"SECURITY DEFINER {signature} is owned by {owner} ({what}): it runs with that role's "
            f"rights; ALTER FUNCTION {signature} OWNER TO {privileges.OWNER}"
            + (
                f" and ALTER ROLE {owner} NOSUPERUSER"
                if superuser and owner == privileges.OWNER
                else ""
            )
        )
    return problems


# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h)
_ROW, _BEFORE, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 8, 16, 32
_EVENTS = (("UPDATE", _UPDATE, True), ("DELETE", _DELETE, True), ("TRUNCATE", _TRUNCATE, False))
_ENABLED = {"A": "always", "O": "origin", "R": "replica", "D": "disabled"}


def check_append_only_triggers(conn: Conn) -> list[str]:
    """The attempts ledger's deny triggers exist, are BEFORE UPDATE/DELETE (row) and TRUNCATE
    (statement), call the deny function, and are enabled ALWAYS (so not even
    ``session_replication_role = replica`` skips them)."""
    if _rows(conn, "SELECT pg_catalog.to_regclass(%(t)s)", {"t": ATTEMPTS})[0][0] is None:
        return [f"{ATTEMPTS} is missing"]
    rows = _rows(
        conn,
        """
        SELECT t.tgname, t.tgtype, t.tgenabled,
               t.tgfoid = pg_catalog.to_regprocedure(%(f)s)
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgrelid = %(t)s::pg_catalog.regclass AND NOT t.tgisinternal
    """,
        {"t": ATTEMPTS, "f": DENY_FUNCTION},
    )
    problems = []
    if not any(name == APPEND_ONLY_TRIGGER for name, *_ in rows):
        problems.append(f"trigger {APPEND_ONLY_TRIGGER} on {ATTEMPTS} is missing")
    for event, bit, row_level in _EVENTS:
        denying = [
            (name, enabled)
            for name, tgtype, enabled, calls_deny in rows
            if calls_deny and tgtype & _BEFORE and tgtype & bit and bool(tgtype & _ROW) == row_level
        ]
        if not denying:
            problems.append(
                f"no BEFORE {event} trigger on {ATTEMPTS} calls {DENY_FUNCTION}: {event} is not "
                "rejected; restore the trigger in a new revision"
            )
        elif not any(enabled == "A" for _, enabled in denying):
            name, enabled = denying[0]
            problems.append(
                f"trigger {name} (rejects {event}) is {_ENABLED.get(str(enabled), enabled)}, not "
                f"enabled ALWAYS; ALTER TABLE {ATTEMPTS} ENABLE ALWAYS TRIGGER {name}"
            )
    return problems


def check_control_cannot_mutate_attempts(conn: Conn) -> list[str]:
    """Option A: symphony_control can never UPDATE, DELETE, TRUNCATE (or add triggers to) the
    attempts ledger - not directly, not through a column grant, not through membership."""
    control = privileges.CONTROL
    exists = _rows(conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %(r)s", {"r": control})
    if not exists:
        return [f"role {control} is missing"]
    problems = []
    for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER"):
        held = _rows(
            conn,
            "SELECT pg_catalog.has_table_privilege(%(r)s, %(t)s, %(p)s)",
            {"r": control, "t": ATTEMPTS, "p": privilege},
        )[0][0]
        if held:
            problems.append(f"{control} has {privilege} on {ATTEMPTS}; revoke it (Option A)")
    column_update = _rows(
        conn,
        "SELECT pg_catalog.has_any_column_privilege(%(r)s, %(t)s, 'UPDATE')",
        {"r": control, "t": ATTEMPTS},
    )[0][0]
    if column_update and not any("UPDATE" in line for line in problems):
        problems.append(f"{control} has UPDATE on columns of {ATTEMPTS}; revoke it (Option A)")
    owner = _rows(
        conn,
        """
        SELECT r.rolname, pg_catalog.pg_has_role(%(r)s, c.relowner, 'MEMBER')
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_roles AS r ON r.oid = c.relowner
         WHERE c.oid = %(t)s::pg_catalog.regclass
    """,
        {"r": control, "t": ATTEMPTS},
    )
    if owner and owner[0][1]:
        problems.append(
            f"{control} is a member of {owner[0][0]}, the owner of {ATTEMPTS}, so it can act "
            f"as the owner (SET ROLE); REVOKE {owner[0][0]} FROM {control}"
        )
    return problems


def check_role_attributes(conn: Conn) -> list[str]:
    """Every declared role exists with the declared attributes (LOGIN as declared; NOSUPERUSER
    NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS)."""
    differences = privilege_diff.diff_role_attributes(privilege_catalog.read_role_attributes(conn))
    # On a Citus coordinator the owner's LOGIN is INV-067's (gate:cluster-owner-login).
    return [
        line + " (roles are cluster-wide: fix with ALTER ROLE, or rerun 0003)"
        for line in gate_cluster.without_owner_login(conn, differences)
    ]


def check_no_invalid_index(conn: Conn) -> list[str]:
    """No INVALID index (left behind by a failed ``CREATE INDEX CONCURRENTLY``): the engine's
    query and message (ADR 0110)."""
    from symphony_schema.migration.invalid_indexes import invalid_index_problems

    return invalid_index_problems(conn)


def check_no_not_valid_constraint(conn: Conn) -> list[str]:
    """No constraint in ``public`` is NOT VALID (unchecked against existing rows)."""
    rows = _rows(
        conn,
        """
        SELECT c.conname, COALESCE(c.conrelid::pg_catalog.regclass::text,
                                   c.contypid::pg_catalog.regtype::text)
          FROM pg_catalog.pg_constraint AS c
         WHERE c.connamespace = 'public'::pg_catalog.regnamespace AND NOT c.convalidated
         ORDER BY 2, 1
    """,
    )
    return [
        f"constraint {name} on {target} is NOT VALID: existing rows were never checked; "
        f"ALTER TABLE {target} VALIDATE CONSTRAINT {name} (in a new revision)"
        for name, target in rows
    ]


def check_no_dispatching_rows(conn: Conn) -> list[str]:
    """No attempt is in the compatibility-only state DISPATCHING (no function writes it)."""
    count = _rows(
        conn,
        f"SELECT pg_catalog.count(*) FROM {ATTEMPTS} WHERE state = 'DISPATCHING'",
    )[0][0]
    if count:
        return [
            f"{count} attempt(s) in state DISPATCHING: something other than the Symphony functions "
            "wrote the ledger; investigate those rows (the ledger is append-only, record a new "
            "attempt to resolve them)"
        ]
    return []


def check_ledger_matches_files(conn: Conn, root: Path | None = None) -> list[str]:
    """Every ledger row matches its revision file's checksum, the ledger agrees with
    ``alembic_version``, and the database is at the head revision (the boot check's answer)."""
    from symphony_schema.migration import api
    from symphony_schema.migration.ledger import ledger_state

    return ledger_state(conn, api.script_directory(), root or project_root()).problems


def check_object_ownership(conn: Conn) -> list[str]:
    """Every Symphony table, enum type and function is owned by symphony_owner (the ledger and
    ``alembic_version`` belong to the migrating user by design)."""
    problems = []
    for name in declared_tables():
        if name in ENGINE_OWNED:
            continue
        problems += _owner_problem(
            conn,
            "TABLE",
            name,
            "SELECT c.relowner FROM pg_catalog.pg_class "
            "AS c WHERE c.oid = pg_catalog.to_regclass(%(n)s)",
        )
    for name in declared_enum_types():
        problems += _owner_problem(
            conn,
            "TYPE",
            name,
            "SELECT t.typowner FROM pg_catalog.pg_type "
            "AS t WHERE t.oid = pg_catalog.to_regtype(%(n)s)",
        )
    for spec in privileges.FUNCTIONS:
        problems += _owner_problem(
            conn,
            "FUNCTION",
            spec.signature,
            "SELECT p.proowner FROM "
            "pg_catalog.pg_proc AS p WHERE p.oid = pg_catalog.to_regprocedure(%(n)s)",
        )
    return problems


def _owner_problem(conn: Conn, kind: str, name: str, owner_query: str) -> list[str]:
    rows = _rows(
        conn,
        f"SELECT pg_catalog.pg_get_userbyid(o.owner) FROM ({owner_query}) AS o (owner)",
        {"n": name},
    )
    if not rows:
        return []  # missing objects are reported by required-objects
    owner = rows[0][0]
    if owner == privileges.OWNER:
        return []
    return [
        f"{kind.lower()} {name} is owned by {owner}; "
        f"ALTER {kind} {name} OWNER TO {privileges.OWNER}"
    ]


def check_default_privileges(conn: Conn) -> list[str]:
    """Functions symphony_owner creates in future start closed: its default privileges revoke
    PostgreSQL's built-in EXECUTE for PUBLIC."""
    rows = _rows(
        conn,
        """
        SELECT d.defaclacl IS NOT NULL,
               EXISTS (SELECT 1 FROM pg_catalog.aclexplode(d.defaclacl) AS a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
          FROM pg_catalog.pg_default_acl AS d
          JOIN pg_catalog.pg_roles AS r ON r.oid = d.defaclrole
         WHERE r.rolname = %(owner)s AND d.defaclobjtype = 'f' AND d.defaclnamespace = 0
    """,
        {"owner": privileges.OWNER},
    )
    fix = (
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {privileges.OWNER} "
        "REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"
    )
    if not rows:
        return [f"functions created by {privileges.OWNER} get EXECUTE for PUBLIC by default; {fix}"]
    if rows[0][1]:
        return [
            f"the default privileges of {privileges.OWNER} grant EXECUTE on new functions to "
            f"PUBLIC; {fix}"
        ]
    return []


def check_uuid_strategy(conn: Conn) -> list[str]:
    """On PostgreSQL 18+ ``uuid_v7_or_random()`` generates version-7 UUIDs (the built-in
    ``uuidv7()``), reported as ``uuidv7`` by ``uuid_strategy()``."""
    version = int(_rows(conn, "SELECT pg_catalog.current_setting('server_version_num')")[0][0])
    if version < 180000:
        return []
    rows = _rows(
        conn,
        """
        SELECT public.uuid_strategy(),
               pg_catalog.uuid_extract_version(public.uuid_v7_or_random())
    """,
    )
    strategy, generated = rows[0]
    if strategy != "uuidv7" or generated != 7:
        return [
            f"uuid_v7_or_random() generates version-{generated} UUIDs (uuid_strategy() says "
            f"{strategy!r}) on a server with the built-in uuidv7(); recreate it in a new revision "
            "so it returns pg_catalog.uuidv7()"
        ]
    return []


#: Every user function (not PostgreSQL's, not an extension's) with its full definition (a
#: SQL-standard ``BEGIN ATOMIC`` body is deparsed there; ``prosrc`` is empty for it) and whether
#: it depends directly on an advisory-lock function (recorded for SQL-standard bodies).
_USER_FUNCTIONS_SQL = """
SELECT p.oid::pg_catalog.regprocedure::text, p.proname::text,
       pg_catalog.pg_get_functiondef(p.oid),
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                 JOIN pg_catalog.pg_proc AS q ON q.oid = d.refobjid
                WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                  AND d.objid = p.oid
                  AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                  AND q.proname ~ '^pg_(try_)?advisory')
  FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   AND p.prokind IN ('f', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS e
                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
 ORDER BY 1
"""

_ADVISORY_RE = re.compile(r"pg_(try_)?advisory", re.IGNORECASE)
#: ``U&"..."`` spells an identifier with escapes, so no text search can see the name.
_UNICODE_IDENTIFIER_RE = re.compile(r"\bU&\"", re.IGNORECASE)


def check_no_advisory_locks(conn: Conn) -> list[str]:
    """No user function calls an advisory-lock function (``pg_advisory*``,
    ``pg_try_advisory*``): any login may take any advisory key, so a lock a Symphony function
    waits for is one any login can hold (issue 11 item 3, ADR 0062). Every schema but
    PostgreSQL's is read; SQL-standard bodies through their dependencies and their deparsed
    text; a function that calls (by name) a function found here is found too; an identifier
    spelled with Unicode escapes (``U&"..."``) is refused, as it hides the name (ADR 0100)."""
    rows = [
        (str(sig), str(name), str(definition), bool(depends))
        for sig, name, definition, depends in _rows(conn, _USER_FUNCTIONS_SQL)
    ]
    reasons: dict[str, str] = {}
    for signature, _name, definition, depends in rows:
        if depends or _ADVISORY_RE.search(definition):
            reasons[signature] = "calls an advisory-lock function, which any login can block"
        elif _UNICODE_IDENTIFIER_RE.search(definition):
            reasons[signature] = (
                "spells an identifier with Unicode escapes (U&), which hides what it calls"
            )
    changed = True
    while changed:  # callers of what was found, until nothing new is found
        changed = False
        found = {name for signature, name, _d, _x in rows if signature in reasons}
        for signature, _name, definition, _depends in rows:
            if signature in reasons:
                continue
            called = sorted(
                n for n in found if re.search(rf"\b{re.escape(n)}\s*\(", definition, re.I)
            )
            if called:
                reasons[signature] = (
                    f"calls {', '.join(called)}, which takes an advisory lock any login can block"
                )
                changed = True
    return [
        f"{signature} {reason}; serialise on rows or tables no runtime role may lock instead "
        "(in a new revision)"
        for signature, reason in sorted(reasons.items())
    ]


# ------------------------------------------------------------------------------------------------
# Registry and runner
# ------------------------------------------------------------------------------------------------

CHECKS: dict[str, GateFn] = {
    "required-objects": check_required_objects,
    "boot-query": check_boot_query,
    "public-table-privileges": check_public_table_privileges,
    "public-function-execute": check_public_function_execute,
    "schema-public-create": check_schema_public_create,
    "privilege-matrix": check_privilege_matrix,
    "role-memberships": check_role_memberships,
    "effective-privileges": check_effective_privileges,
    "definer-search-path": check_definer_search_path,
    "definer-owner": check_definer_owner,
    "append-only-triggers": check_append_only_triggers,
    "option-a": check_control_cannot_mutate_attempts,
    "role-attributes": check_role_attributes,
    "no-invalid-index": check_no_invalid_index,
    "no-not-valid-constraint": check_no_not_valid_constraint,
    "no-dispatching-rows": check_no_dispatching_rows,
    "ledger-matches-files": check_ledger_matches_files,
    "object-ownership": check_object_ownership,
    "default-privileges": check_default_privileges,
    "uuid-strategy": check_uuid_strategy,
    "no-advisory-locks": check_no_advisory_locks,
    # Policy rotation (revision 0016, INV-050 to INV-053): symphony_schema/invariants/policy_gate.py
    **policy_gate.CHECKS,
    # Issue 20 (operating the outbox): symphony_schema/invariants/gate_outbox_ops.py.
    "queue-and-ledger-writers": gate_outbox_ops.check_queue_and_ledger_writers,
    "one-outcome-per-job": gate_outbox_ops.check_one_outcome_per_job,
    "interventions-audited": gate_outbox_ops.check_interventions_audited,
    "rail-rules-wired": gate_outbox_ops.check_rail_rules_wired,
    "payloads-append-only": gate_outbox_ops.check_payloads_append_only,
    # The partitioned attempts ledger (issue 15): INV-061 to INV-063.
    **ledger_partitions.CHECKS,
    # Issue 16 (Citus): symphony_schema/invariants/gate_cluster.py.
    "worker-security": gate_cluster.check_worker_security,
    "distribution-as-declared": gate_cluster.check_distribution_as_declared,
    "ledger-shards-append-only": gate_cluster.check_ledger_shards_append_only,
    "cluster-owner-login": gate_cluster.check_cluster_owner_login,
    # Issue 17's hot path (revision 0032): INV-069, symphony_schema/invariants/gate_fifo.py.
    **gate_fifo.CHECKS,
    # Issue 17's wake-up (revisions 0026, 0033): INV-070, symphony_schema/invariants/gate_wake.py.
    **gate_wake.CHECKS,
}


def _isolated(conn: Conn, check: GateFn) -> list[str]:
    # A transaction of its own (a savepoint when the caller is inside one): a check that errors
    # is rolled back alone and the next check starts clean.
    with conn.transaction():
        return check(conn)


def run_gate(conn: Conn, names: list[str] | None = None) -> list[CheckResult]:
    """Run every gate check (or the named ones) and return all results - never stops early."""
    selected = names or list(CHECKS)
    unknown = [name for name in selected if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown gate checks: {', '.join(unknown)}")
    return [timed(f"gate:{name}", partial(_isolated, conn, CHECKS[name])) for name in selected]
