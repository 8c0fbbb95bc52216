"""The live catalog read into the shapes :mod:`symphony_schema.privileges` declares: ACLs of
schema ``public`` and everything in it, role attributes, memberships, the migrating user,
predefined roles reached, and effective privileges through memberships (ADR 0070).

Read-only; :mod:`symphony_schema.privilege_diff` compares what is read here with the declaration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import psycopg

from symphony_schema import privileges
from symphony_schema.privileges import (
    COMMON_ROLE_ATTRIBUTES,
    GRANT_OPTION,
    GRANTEES,
    KIND_PRIVILEGES,
    LEDGER_TABLE,
    ROLES,
    RUNTIME_ROLES,
    SCHEMA,
    GrantKey,
    GrantMatrix,
    ObjectKind,
)

# Function identity exactly as symphony_schema.privileges declares it (search_path independent);
# baseline/catalog.py reads functions with it too.
FUNCTION_SIGNATURE_SQL: Final = """
pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) || '(' ||
COALESCE((SELECT pg_catalog.string_agg(
                     CASE WHEN tn.nspname = 'pg_catalog'
                          THEN pg_catalog.format_type(t.oid, NULL)
                          ELSE pg_catalog.quote_ident(tn.nspname) || '.'
                               || pg_catalog.quote_ident(t.typname)
                     END, ',' ORDER BY a.ord)
            FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a (typ, ord)
            JOIN pg_catalog.pg_type AS t ON t.oid = a.typ
            JOIN pg_catalog.pg_namespace AS tn ON tn.oid = t.typnamespace), '')
|| ')'"""

# Every relation and routine in schema public (extension members excluded), each column of a
# relation, and the schema itself: (oid, kind, name, owner, acl, attnum). A NULL ACL means "the
# built-in default", which for functions includes EXECUTE for PUBLIC, hence acldefault(); a
# column's NULL ACL means "no column-level grant". Function signatures are rendered without
# depending on search_path: catalog types through format_type, other types as schema.name.
_OBJECTS_CTE: Final = (
    """
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
    """
    + FUNCTION_SIGNATURE_SQL
    + """,
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
)

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
    declared_objects = privileges.declared_objects()
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
            "grant_option": GRANT_OPTION,
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


def read_predefined_reach(
    conn: psycopg.Connection[Any], migrating_user: str | None
) -> list[tuple[str, str]]:
    """``(role, predefined role)`` for every role :data:`_PREDEFINED_QUERY` describes."""
    rows = conn.execute(
        _PREDEFINED_QUERY,
        {
            "symphony": [role.name for role in ROLES],
            "migrating_user": migrating_user,
            "runtime": sorted(RUNTIME_ROLES),
        },
    ).fetchall()
    return [(str(member), str(predefined)) for member, predefined in rows]
