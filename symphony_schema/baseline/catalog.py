"""Catalog readers for the baseline, ``privileges.md`` and the drift checks.

Everything here reads; nothing writes. Results are plain, ordered data so that two databases can
be compared by rendering both to text lines and diffing them. Grants in the shape of the declared
matrix come from :func:`symphony_schema.privilege_catalog.read_actual_grants`; this module reads
what that one does not: roles and their attributes, memberships, owners, default privileges, the
ledger, function properties, every ACL entry (owners included) and the table structure the Core
models describe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from symphony_schema import privileges
from symphony_schema.migration import ledger
from symphony_schema.privilege_catalog import FUNCTION_SIGNATURE_SQL

Conn = psycopg.Connection[Any]


def connect(conninfo: str) -> Conn:
    """A connection whose ``search_path`` is empty, so that every name PostgreSQL renders
    (``regclass``, ``regprocedure``, ``pg_get_expr``, ``pg_get_indexdef``...) is qualified the
    same way in every database compared."""
    return psycopg.connect(conninfo, options="-c search_path=")


#: Schemas that are PostgreSQL's own; everything else is compared.
#: (Written without LIKE so that it can sit in queries with psycopg parameters.)
#: symphony_ledger holds the ledger's partitions: operational state like rows (which days exist
#: depends on when maintenance ran), checked by the invariants gate instead (ADR 0130).
SYSTEM_SCHEMA_FILTER: Final = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'symphony_ledger') "
    "AND n.nspname !~ '^pg_(toast_)?temp_'"
)


@dataclass(frozen=True, slots=True)
class RoleState:
    """A role's attributes as ``pg_roles`` reports them, and its comment."""

    name: str
    login: bool
    superuser: bool
    createdb: bool
    createrole: bool
    inherit: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    comment: str | None
    #: ``rolvaliduntil`` in UTC (``YYYY-MM-DDTHH:MI:SS.USZ``), ``infinity``, or None (no limit).
    valid_until: str | None = None

    def attributes_sql(self) -> str:
        """The attributes as ``CREATE/ALTER ROLE`` options, in a fixed order (``VALID UNTIL``
        only when the role has a password expiry)."""
        flags = (
            ("LOGIN", self.login),
            ("SUPERUSER", self.superuser),
            ("CREATEDB", self.createdb),
            ("CREATEROLE", self.createrole),
            ("INHERIT", self.inherit),
            ("REPLICATION", self.replication),
            ("BYPASSRLS", self.bypassrls),
        )
        words = [name if value else f"NO{name}" for name, value in flags]
        words.append(f"CONNECTION LIMIT {self.connection_limit}")
        if self.valid_until is not None:
            words.append(f"VALID UNTIL '{self.valid_until}'")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Membership:
    """``GRANT role TO member`` with its options (PostgreSQL 16+)."""

    role: str
    member: str
    admin: bool
    inherit: bool
    set: bool


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------

# The Symphony roles of a database: the declared ones, plus every role the database's objects
# depend on (owners, grantees, default privileges: pg_shdepend), plus every role one membership
# away from a declared role (except the memberships grant-login manages), minus PostgreSQL's
# own roles and the migrating user - the connected user and the owner of
# public.schema_migrations - unless it is itself a declared role.
_ROLES_SQL: Final = """
SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       pg_catalog.shobj_description(r.oid, 'pg_authid'),
       CASE WHEN r.rolvaliduntil IS NULL THEN NULL
            WHEN pg_catalog.isfinite(r.rolvaliduntil)
            THEN pg_catalog.to_char(r.rolvaliduntil AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            ELSE r.rolvaliduntil::text END
  FROM pg_catalog.pg_roles AS r
 WHERE (r.rolname = ANY(%(declared)s)
        OR r.oid IN (SELECT d.refobjid
                       FROM pg_catalog.pg_shdepend AS d
                      WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
                        AND d.dbid = (SELECT db.oid FROM pg_catalog.pg_database AS db
                                       WHERE db.datname = pg_catalog.current_database()))
        -- one membership away from a declared role (ADR 0080), except what grant-login makes
        OR r.oid IN (SELECT a.member
                       FROM pg_catalog.pg_auth_members AS a
                       JOIN pg_catalog.pg_roles AS g ON g.oid = a.roleid
                       JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
                      WHERE g.rolname = ANY(%(declared)s)
                        AND NOT (m.rolcanlogin AND g.rolname = ANY(%(runtime)s)
                                 AND NOT a.admin_option AND a.set_option))
        OR r.oid IN (SELECT a.roleid
                       FROM pg_catalog.pg_auth_members AS a
                       JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
                      WHERE m.rolname = ANY(%(declared)s)))
   AND r.rolname !~ '^pg_'
   AND ((r.rolname <> CURRENT_USER AND r.rolname IS DISTINCT FROM (
            SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class AS c
             WHERE c.oid = pg_catalog.to_regclass('public.schema_migrations')))
        OR r.rolname = ANY(%(declared)s))
 ORDER BY r.rolname
"""


def declared_role_names() -> list[str]:
    return [role.name for role in privileges.ROLES]


def read_roles(conn: Conn, declared: Sequence[str] | None = None) -> list[RoleState]:
    """The Symphony roles (see ``_ROLES_SQL``) with their attributes, ordered by name."""
    names = list(declared if declared is not None else declared_role_names())
    rows = conn.execute(
        _ROLES_SQL, {"declared": names, "runtime": list(privileges.RUNTIME_ROLES)}
    ).fetchall()
    return [
        RoleState(
            name=row[0],
            login=row[1],
            superuser=row[2],
            createdb=row[3],
            createrole=row[4],
            inherit=row[5],
            replication=row[6],
            bypassrls=row[7],
            connection_limit=row[8],
            comment=row[9],
            valid_until=row[10],
        )
        for row in rows
    ]


def read_group_memberships(conn: Conn, roles: Iterable[RoleState]) -> list[Membership]:
    """Memberships between Symphony group (NOLOGIN) roles.

    A login's memberships are environment setup (``symphony-schema grant-login``), never schema:
    they differ per machine and are left out on purpose.
    """
    groups = [role.name for role in roles if not role.login]
    rows = conn.execute(
        """
        SELECT DISTINCT g.rolname, m.rolname, a.admin_option, a.inherit_option, a.set_option
          FROM pg_catalog.pg_auth_members AS a
          JOIN pg_catalog.pg_roles AS g ON g.oid = a.roleid
          JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
         WHERE g.rolname = ANY(%(groups)s) AND m.rolname = ANY(%(groups)s)
         ORDER BY 1, 2, 3, 4, 5
        """,
        {"groups": groups},
    ).fetchall()
    return [Membership(*row) for row in rows]


def read_memberships(conn: Conn, roles: Iterable[RoleState]) -> list[Membership]:
    """Every membership with a Symphony role on either side, logins included (ADR 0080).

    Left out, as environment rather than schema: the migrating user's own memberships (whoever
    creates a role is made a member of it; a managed migrator is a member of ``symphony_owner``),
    and what ``symphony-schema grant-login`` manages: a LOGIN role outside the Symphony roles in
    a runtime role, without ADMIN option, with SET. Anything else - a login in
    ``symphony_owner``, an ADMIN option, a Symphony role in an outside role - is compared.
    """
    names = [role.name for role in roles]
    migrating = migrating_user(conn)
    rows = conn.execute(
        """
        SELECT DISTINCT g.rolname, m.rolname, a.admin_option, a.inherit_option, a.set_option,
               m.rolcanlogin
          FROM pg_catalog.pg_auth_members AS a
          JOIN pg_catalog.pg_roles AS g ON g.oid = a.roleid
          JOIN pg_catalog.pg_roles AS m ON m.oid = a.member
         WHERE (g.rolname = ANY(%(names)s) OR m.rolname = ANY(%(names)s))
           AND m.rolname <> %(migrating)s
         ORDER BY 1, 2, 3, 4, 5
        """,
        {"names": names, "migrating": migrating},
    ).fetchall()
    kept = []
    for role, member, admin, inherit, set_, member_login in rows:
        managed_by_grant_login = (
            member_login
            and member not in names
            and role in privileges.RUNTIME_ROLES
            and not admin
            and set_
        )
        if not managed_by_grant_login:
            kept.append(Membership(role, member, admin, inherit, set_))
    return kept


def migrating_user(conn: Conn) -> str:
    """Who migrated this database: the owner of ``public.schema_migrations`` (the engine creates
    it as the migrating user), else the connected user."""
    row = conn.execute(
        """
        SELECT COALESCE((SELECT pg_catalog.pg_get_userbyid(c.relowner)
                           FROM pg_catalog.pg_class AS c
                          WHERE c.oid = pg_catalog.to_regclass('public.schema_migrations')),
                        CURRENT_USER::text)
        """
    ).fetchone()
    assert row is not None
    return str(row[0])


MIGRATING_USER_LABEL: Final = "(migrating user)"


def _normaliser(conn: Conn) -> Callable[[str], str]:
    """Role name -> itself, except the migrating user, shown as ``(migrating user)`` so that a
    scratch database migrated by a superuser compares with a live one migrated by a login."""
    migrating = migrating_user(conn)

    def who(name: str) -> str:
        return MIGRATING_USER_LABEL if name == migrating else name

    return who


def current_user(conn: Conn) -> tuple[str, str]:
    """The connected role: its name, and its name as ``pg_dump`` prints it (``quote_ident``)."""
    row = conn.execute("SELECT CURRENT_USER, pg_catalog.quote_ident(CURRENT_USER)").fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


# --------------------------------------------------------------------------------------------
# Ledger
# --------------------------------------------------------------------------------------------


def _readable_alembic_version(conn: Conn) -> list[str]:
    """The head(s) when readable; nothing otherwise (live drift then says so and compares the
    ledger without them)."""
    return ledger.read_alembic_heads(conn) if ledger.alembic_version_readable(conn) else []


# --------------------------------------------------------------------------------------------
# Objects, owners and ACLs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DbObject:
    """A relation, function or schema: its kind (as in the privilege matrix), name and owner."""

    kind: str
    name: str
    owner: str
    security_definer: bool = False


def read_objects(conn: Conn) -> list[DbObject]:
    """Schema ``public``, its relations and functions (extension members excluded), by kind and
    name, with owners; kinds and names match :mod:`symphony_schema.privileges`."""
    query = f"""
    SELECT 'schema', n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text, false
      FROM pg_catalog.pg_namespace AS n WHERE n.nspname = %(schema)s
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END,
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
           pg_catalog.pg_get_userbyid(c.relowner), false
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'function', {FUNCTION_SIGNATURE_SQL},
           pg_catalog.pg_get_userbyid(p.proowner), p.prosecdef
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE n.nspname = %(schema)s
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    ORDER BY 1, 2
    """
    rows = conn.execute(query, {"schema": privileges.SCHEMA}).fetchall()
    return [DbObject(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class DefaultAcl:
    """One entry of ``pg_default_acl``: what objects ``role`` creates start with."""

    role: str
    schema: str | None
    object_type: str
    grantee: str
    privilege: str
    grantable: bool


_DEFAULT_ACL_TYPES: Final = {
    "r": "tables",
    "S": "sequences",
    "f": "functions",
    "T": "types",
    "n": "schemas",
    "L": "large objects",
}


def read_default_acls(conn: Conn) -> list[DefaultAcl]:
    rows = conn.execute(
        """
        SELECT pg_catalog.pg_get_userbyid(d.defaclrole), n.nspname, d.defaclobjtype::text,
               CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                    ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
               x.privilege_type, x.is_grantable
          FROM pg_catalog.pg_default_acl AS d
          LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = d.defaclnamespace
          CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) AS x
         ORDER BY 1, 2 NULLS FIRST, 3, 4, 5
        """
    ).fetchall()
    return [
        DefaultAcl(row[0], row[1], _DEFAULT_ACL_TYPES.get(row[2], row[2]), *row[3:]) for row in rows
    ]


# Every ACL entry of every user object (owners' own entries included, NULL ACLs expanded to the
# built-in defaults), for comparing two databases.
_ALL_ACLS_SQL: Final = f"""
WITH objects AS (
    SELECT 'schema' AS kind, n.nspname::text AS name,
           COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner)) AS acl
      FROM pg_catalog.pg_namespace AS n
     WHERE {SYSTEM_SCHEMA_FILTER}
    UNION ALL
    SELECT 'relation', c.oid::pg_catalog.regclass::text,
           COALESCE(c.relacl, pg_catalog.acldefault(
               CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE {SYSTEM_SCHEMA_FILTER} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    -- Column grants (a NULL column ACL grants nothing beyond the table's): an UPDATE on one
    -- column is enough for SELECT ... FOR UPDATE on the whole row.
    SELECT 'column', c.oid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname),
           a.attacl
      FROM pg_catalog.pg_attribute AS a
      JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE {SYSTEM_SCHEMA_FILTER} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
    UNION ALL
    SELECT 'function', p.oid::pg_catalog.regprocedure::text,
           COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE {SYSTEM_SCHEMA_FILTER}
    UNION ALL
    SELECT 'type', t.oid::pg_catalog.regtype::text,
           COALESCE(t.typacl, pg_catalog.acldefault('T', t.typowner))
      FROM pg_catalog.pg_type AS t
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
     WHERE {SYSTEM_SCHEMA_FILTER} AND t.typrelid = 0 AND t.typcategory <> 'A'
)
SELECT o.kind, o.name,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
       x.privilege_type, x.is_grantable, pg_catalog.pg_get_userbyid(x.grantor)
  FROM objects AS o
 CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) AS x
 ORDER BY 1, 2, 3, 4
"""


def acl_lines(conn: Conn) -> list[str]:
    """``<kind> <name>: <grantee> <PRIVILEGE>[ WITH GRANT OPTION] (granted by <grantor>)``."""
    who = _normaliser(conn)
    lines = []
    for kind, name, grantee, privilege, grantable, grantor in conn.execute(_ALL_ACLS_SQL):
        option = " WITH GRANT OPTION" if grantable else ""
        lines.append(
            f"{kind} {name}: {who(grantee)} {privilege}{option} (granted by {who(grantor)})"
        )
    for entry in read_default_acls(conn):
        where = f"in schema {entry.schema}" if entry.schema else "in all schemas"
        option = " WITH GRANT OPTION" if entry.grantable else ""
        lines.append(
            f"default privileges of {who(entry.role)} on {entry.object_type} {where}: "
            f"{who(entry.grantee)} {entry.privilege}{option}"
        )
    return lines


def function_lines(conn: Conn) -> list[str]:
    """One line per user function with the properties that matter for security and behaviour."""
    rows = conn.execute(
        f"""
        SELECT p.oid::pg_catalog.regprocedure::text, pg_catalog.pg_get_userbyid(p.proowner),
               p.prokind::text, l.lanname, p.prosecdef, p.provolatile::text,
               p.proparallel::text, p.proleakproof, p.proisstrict,
               COALESCE(pg_catalog.array_to_string(p.proconfig, ', '), ''),
               pg_catalog.pg_get_function_result(p.oid), pg_catalog.md5(p.prosrc),
               COALESCE(pg_catalog.obj_description(p.oid, 'pg_proc'), '')
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
          JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
         WHERE {SYSTEM_SCHEMA_FILTER}
         ORDER BY 1
        """
    ).fetchall()
    who = _normaliser(conn)
    lines = []
    for sig, owner, kind, lang, secdef, vol, par, leak, strict, config, result, md5, doc in rows:
        lines.append(
            f"{sig}: kind={kind} language={lang} returns={result} owner={who(owner)} "
            f"security={'definer' if secdef else 'invoker'} volatility={vol} parallel={par} "
            f"leakproof={leak} strict={strict} config=[{config}] body_md5={md5} "
            f"comment_md5={_md5(doc)}"
        )
    return lines


def trigger_lines(conn: Conn) -> list[str]:
    rows = conn.execute(
        f"""
        SELECT t.tgrelid::pg_catalog.regclass::text, t.tgname, t.tgenabled::text,
               pg_catalog.pg_get_triggerdef(t.oid)
          FROM pg_catalog.pg_trigger AS t
          JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE {SYSTEM_SCHEMA_FILTER} AND NOT t.tgisinternal
         ORDER BY 1, 2
        """
    ).fetchall()
    return [
        f"{table} {name} enabled={state}: {definition}" for table, name, state, definition in rows
    ]


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:12] if text else "-"


# --------------------------------------------------------------------------------------------
# Table structure (what the Core models describe)
# --------------------------------------------------------------------------------------------


def structure_lines(conn: Conn, *, exclude_tables: Iterable[str] = ()) -> list[str]:
    """Tables, columns, constraints, indexes, comments and enum types of the user schemas,
    rendered by PostgreSQL itself (``format_type``, ``pg_get_expr``, ``pg_get_constraintdef``,
    ``pg_get_indexdef``) so that two databases built differently compare exactly.

    NOT NULL constraints (catalogued as constraints since PostgreSQL 18) appear on the column
    line only. ``exclude_tables`` takes qualified names (``public.alembic_version``).
    """
    excluded = list(exclude_tables)
    lines: list[str] = []
    lines += _table_lines(conn, excluded)
    lines += _enum_lines(conn)
    return lines


def _table_lines(conn: Conn, excluded: list[str]) -> list[str]:
    tables = conn.execute(
        f"""
        SELECT c.oid, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
               c.relkind::text, c.relpersistence::text,
               COALESCE(pg_catalog.obj_description(c.oid, 'pg_class'), '')
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE {SYSTEM_SCHEMA_FILTER} AND c.relkind IN ('r', 'p')
           AND NOT (pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                    = ANY(%(excluded)s))
         ORDER BY 2
        """,
        {"excluded": excluded},
    ).fetchall()
    lines: list[str] = []
    for oid, name, relkind, persistence, comment in tables:
        kind = {"r": "table", "p": "partitioned table"}[relkind]
        flavour = {"p": "", "u": " UNLOGGED", "t": " TEMPORARY"}[persistence]
        lines.append(f"{kind}{flavour} {name}")
        if comment:
            lines.append(f"{name} comment: {comment}")
        lines += [f"{name} column {line}" for line in _column_lines(conn, oid)]
        lines += [f"{name} constraint {line}" for line in _constraint_lines(conn, oid)]
        lines += [f"{name} index {line}" for line in _index_lines(conn, oid)]
    return lines


def _column_lines(conn: Conn, table_oid: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attgenerated::text,
               a.attidentity::text,
               CASE WHEN a.attcollation <> t.typcollation THEN co.collname END,
               COALESCE(pg_catalog.col_description(a.attrelid, a.attnum), '')
          FROM pg_catalog.pg_attribute AS a
          JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
          LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          LEFT JOIN pg_catalog.pg_collation AS co ON co.oid = a.attcollation
         WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        {"oid": table_oid},
    ).fetchall()
    lines = []
    for name, type_, notnull, expr, generated, identity, collation, comment in rows:
        parts = [name, type_]
        if collation:
            parts.append(f"COLLATE {collation}")
        if notnull:
            parts.append("NOT NULL")
        if generated:
            kind = {"s": "STORED", "v": "VIRTUAL"}.get(generated, generated)
            parts.append(f"GENERATED ALWAYS AS ({expr}) {kind}")
        elif expr is not None:
            parts.append(f"DEFAULT {expr}")
        if identity:
            parts.append(
                "GENERATED ALWAYS AS IDENTITY"
                if identity == "a"
                else "GENERATED BY DEFAULT AS IDENTITY"
            )
        if comment:
            parts.append(f"-- {comment}")
        lines.append(" ".join(parts))
    return lines


def _constraint_lines(conn: Conn, table_oid: int) -> list[str]:
    # Constraint triggers (contype 't') are listed with the triggers, in full.
    rows = conn.execute(
        """
        SELECT c.conname, pg_catalog.pg_get_constraintdef(c.oid)
          FROM pg_catalog.pg_constraint AS c
         WHERE c.conrelid = %(oid)s AND c.contype NOT IN ('n', 't')
         ORDER BY 1
        """,
        {"oid": table_oid},
    ).fetchall()
    return [f"{name} {definition}" for name, definition in rows]


def _index_lines(conn: Conn, table_oid: int) -> list[str]:
    rows = conn.execute(
        """
        SELECT ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid)
          FROM pg_catalog.pg_index AS i
          JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = %(oid)s
         ORDER BY 1
        """,
        {"oid": table_oid},
    ).fetchall()
    return [f"{name}: {definition}" for name, definition in rows]


def _enum_lines(conn: Conn) -> list[str]:
    rows = conn.execute(
        f"""
        SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname),
               pg_catalog.array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
          FROM pg_catalog.pg_type AS t
          JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
          JOIN pg_catalog.pg_enum AS e ON e.enumtypid = t.oid
         WHERE {SYSTEM_SCHEMA_FILTER}
         GROUP BY 1
         ORDER BY 1
        """
    ).fetchall()
    return [f"enum {name}: {', '.join(labels)}" for name, labels in rows]


# --------------------------------------------------------------------------------------------
# Database- and cluster-level state (ADR 0080)
# --------------------------------------------------------------------------------------------

#: Stands for the compared database's name and owner, which differ between databases.
THIS_DATABASE: Final = "(this database)"
DATABASE_OWNER: Final = "(database owner)"

_CURRENT_DB_OID: Final = (
    "(SELECT db.oid FROM pg_catalog.pg_database AS db "
    "WHERE db.datname = pg_catalog.current_database())"
)


@dataclass(frozen=True, slots=True)
class RoleSetting:
    """One ``ALTER ROLE ... [IN DATABASE ...] SET`` (``role`` None: ``ALTER DATABASE ... SET``)."""

    role: str | None
    this_database: bool
    setting: str

    @property
    def name(self) -> str:
        return self.setting.split("=", 1)[0]

    @property
    def value(self) -> str:
        return self.setting.split("=", 1)[1] if "=" in self.setting else ""


def read_settings(conn: Conn, roles: Iterable[RoleState]) -> list[RoleSetting]:
    """``pg_db_role_setting`` rows of this database (``ALTER DATABASE ... SET``), of the Symphony
    roles in this database, and of the Symphony roles in every database. Readable by any role."""
    names = [role.name for role in roles]
    rows = conn.execute(
        f"""
        SELECT r.rolname, s.setdatabase <> 0, c.setting
          FROM pg_catalog.pg_db_role_setting AS s
          LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = s.setrole
         CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS c (setting)
         WHERE (s.setdatabase = {_CURRENT_DB_OID} AND (s.setrole = 0 OR r.rolname = ANY(%(names)s)))
            OR (s.setdatabase = 0 AND r.rolname = ANY(%(names)s))
         ORDER BY 1 NULLS FIRST, 2, 3
        """,
        {"names": names},
    ).fetchall()
    return [RoleSetting(row[0], bool(row[1]), str(row[2])) for row in rows]


@dataclass(frozen=True, slots=True)
class DatabaseGrant:
    """One entry of this database's ACL; the owner shows as ``(database owner)``."""

    grantee: str
    privilege: str
    grantable: bool
    grantor: str


def read_database_acl(conn: Conn) -> list[DatabaseGrant]:
    rows = conn.execute(
        f"""
        SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                    WHEN x.grantee = d.datdba THEN '{DATABASE_OWNER}'
                    ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
               x.privilege_type, x.is_grantable,
               CASE WHEN x.grantor = d.datdba THEN '{DATABASE_OWNER}'
                    ELSE pg_catalog.pg_get_userbyid(x.grantor) END
          FROM pg_catalog.pg_database AS d
         CROSS JOIN LATERAL pg_catalog.aclexplode(
                   COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) AS x
         WHERE d.oid = {_CURRENT_DB_OID}
         ORDER BY 1, 2
        """
    ).fetchall()
    return [DatabaseGrant(*row) for row in rows]


#: The ACL of a database nobody granted anything on (``acldefault('d', owner)``).
DEFAULT_DATABASE_ACL: Final = (
    DatabaseGrant(DATABASE_OWNER, "CONNECT", False, DATABASE_OWNER),
    DatabaseGrant(DATABASE_OWNER, "CREATE", False, DATABASE_OWNER),
    DatabaseGrant(DATABASE_OWNER, "TEMPORARY", False, DATABASE_OWNER),
    DatabaseGrant("PUBLIC", "CONNECT", False, DATABASE_OWNER),
    DatabaseGrant("PUBLIC", "TEMPORARY", False, DATABASE_OWNER),
)


def database_lines(conn: Conn) -> list[str]:
    """This database's settings and ACL, its name and owner normalised."""
    lines = [
        f"database {THIS_DATABASE} setting {s.setting}"
        for s in read_settings(conn, [])
        if s.role is None
    ]
    for grant in read_database_acl(conn):
        option = " WITH GRANT OPTION" if grant.grantable else ""
        lines.append(
            f"database {THIS_DATABASE} ACL: {grant.grantee} {grant.privilege}{option} "
            f"(granted by {grant.grantor})"
        )
    return lines


def role_setting_lines(conn: Conn, roles: Iterable[RoleState]) -> list[str]:
    return [
        f"role {s.role} in {THIS_DATABASE if s.this_database else 'every database'} "
        f"setting {s.setting}"
        for s in read_settings(conn, roles)
        if s.role is not None
    ]


def publication_lines(conn: Conn) -> list[str]:
    """Publications of this database with their options, tables (columns, row filters) and
    schemas; subscriptions of this database (never their connection strings)."""
    who = _normaliser(conn)
    lines = []
    for name, owner, alltables, ins, upd, dele, trunc, viaroot, gencols in conn.execute(
        """
        SELECT p.pubname, pg_catalog.pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert,
               p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot, p.pubgencols::text
          FROM pg_catalog.pg_publication AS p
         ORDER BY 1
        """
    ):
        lines.append(
            f"publication {name}: owner={who(owner)} all_tables={alltables} insert={ins} "
            f"update={upd} delete={dele} truncate={trunc} via_root={viaroot} "
            f"generated_columns={gencols}"
        )
    for name, schema, table, columns, rowfilter in conn.execute(
        """
        SELECT t.pubname, t.schemaname, t.tablename,
               pg_catalog.array_to_string(t.attnames, ','), t.rowfilter
          FROM pg_catalog.pg_publication_tables AS t
         WHERE t.schemaname <> 'symphony_ledger'  -- the ledger's partitions (ADR 0130)
         ORDER BY 1, 2, 3
        """
    ):
        lines.append(
            f"publication {name} table {schema}.{table} columns=[{columns or ''}] "
            f"where={rowfilter or '-'}"
        )
    for name, schema in conn.execute(
        """
        SELECT p.pubname, n.nspname
          FROM pg_catalog.pg_publication_namespace AS pn
          JOIN pg_catalog.pg_publication AS p ON p.oid = pn.pnpubid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = pn.pnnspid
         ORDER BY 1, 2
        """
    ):
        lines.append(f"publication {name} schema {schema}")
    return lines


def subscription_lines(conn: Conn) -> list[str]:
    who = _normaliser(conn)
    rows = conn.execute(
        f"""
        SELECT s.subname, pg_catalog.pg_get_userbyid(s.subowner), s.subenabled,
               pg_catalog.array_to_string(s.subpublications, ',')
          FROM pg_catalog.pg_subscription AS s
         WHERE s.subdbid = {_CURRENT_DB_OID}
         ORDER BY 1
        """
    ).fetchall()
    return [
        f"subscription {name}: owner={who(owner)} enabled={enabled} publications=[{pubs}]"
        for name, owner, enabled, pubs in rows
    ]


def event_trigger_lines(conn: Conn) -> list[str]:
    who = _normaliser(conn)
    rows = conn.execute(
        """
        SELECT e.evtname, e.evtevent, pg_catalog.pg_get_userbyid(e.evtowner),
               e.evtfoid::pg_catalog.regprocedure::text, e.evtenabled::text,
               COALESCE(pg_catalog.array_to_string(e.evttags, ','), '')
          FROM pg_catalog.pg_event_trigger AS e
         ORDER BY 1
        """
    ).fetchall()
    return [
        f"event trigger {name} on {event}: owner={who(owner)} function={function} "
        f"enabled={enabled} tags=[{tags}]"
        for name, event, owner, function, enabled, tags in rows
    ]


def extension_lines(conn: Conn) -> list[str]:
    rows = conn.execute(
        """
        SELECT x.extname, x.extversion, n.nspname
          FROM pg_catalog.pg_extension AS x
          JOIN pg_catalog.pg_namespace AS n ON n.oid = x.extnamespace
         ORDER BY 1
        """
    ).fetchall()
    return [
        f"extension {name} version {version} in schema {schema}" for name, version, schema in rows
    ]


def row_security_lines(conn: Conn) -> list[str]:
    """Tables with row-level security switched on, and every policy."""
    lines = [
        f"table {name}: row security={enabled} forced={forced}"
        for name, enabled, forced in conn.execute(
            f"""
            SELECT c.oid::pg_catalog.regclass::text, c.relrowsecurity, c.relforcerowsecurity
              FROM pg_catalog.pg_class AS c
              JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
             WHERE {SYSTEM_SCHEMA_FILTER} AND (c.relrowsecurity OR c.relforcerowsecurity)
             ORDER BY 1
            """
        )
    ]
    lines += [
        f"policy {table} {name}: {permissive} {command} to {roles} using ({qual}) "
        f"with check ({check})"
        for table, name, permissive, command, roles, qual, check in conn.execute(
            """
            SELECT pg_catalog.quote_ident(p.schemaname) || '.'
                   || pg_catalog.quote_ident(p.tablename), p.policyname, p.permissive, p.cmd,
                   pg_catalog.array_to_string(p.roles, ','), p.qual, p.with_check
              FROM pg_catalog.pg_policies AS p
             ORDER BY 1, 2
            """
        )
    ]
    return lines


def storage_lines(conn: Conn) -> list[str]:
    """Storage parameters (``WITH (...)``: autovacuum, fillfactor...) and replica identity of
    every user table and index, which the structure section (shared with the models check)
    leaves out."""
    rows = conn.execute(
        f"""
        SELECT CASE WHEN c.relkind IN ('i', 'I') THEN 'index' ELSE 'table' END,
               c.oid::pg_catalog.regclass::text,
               COALESCE((SELECT pg_catalog.string_agg(o, ', ' ORDER BY o)
                           FROM pg_catalog.unnest(c.reloptions) AS o), ''),
               c.relreplident::text, c.relkind IN ('i', 'I')
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE {SYSTEM_SCHEMA_FILTER} AND c.relkind IN ('r', 'p', 'm', 'i', 'I')
         ORDER BY 2
        """
    ).fetchall()
    lines = []
    for kind, name, options, replident, is_index in rows:
        line = f"{kind} {name}: options=[{options}]"
        if not is_index:
            line += f" replica identity={replident}"
        lines.append(line)
    return lines


def rule_lines(conn: Conn) -> list[str]:
    """Rewrite rules (``CREATE RULE``; a view's own ``_RETURN`` rule is the view's definition)."""
    rows = conn.execute(
        """
        SELECT pg_catalog.quote_ident(r.schemaname) || '.' || pg_catalog.quote_ident(r.tablename),
               r.rulename, r.definition
          FROM pg_catalog.pg_rules AS r
         WHERE r.schemaname NOT IN ('pg_catalog', 'information_schema')
         ORDER BY 1, 2
        """
    ).fetchall()
    return [f"rule {table} {name}: {definition}" for table, name, definition in rows]


#: First OID of user objects (``FirstNormalObjectId``): everything below is built in.
_FIRST_USER_OID: Final = 16384

# Objects of every other kind a database can hold - views, sequences, composite and range types,
# domains, operators, casts, collations, text search objects, foreign servers, statistics,
# languages... - outside extensions, by ``pg_describe_object``; views with their definition and
# sequences with their parameters.
_OTHER_OBJECTS_SQL: Final = f"""
WITH objects (classid, objid) AS (
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE {SYSTEM_SCHEMA_FILTER} AND c.relkind IN ('v', 'm', 'S', 'f', 'c')
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type AS t
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
     WHERE {SYSTEM_SCHEMA_FILTER} AND t.typtype IN ('d', 'r', 'm', 'p', 'b')
       AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
    UNION ALL
    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, oid FROM pg_catalog.pg_operator
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_cast'::pg_catalog.regclass, oid FROM pg_catalog.pg_cast
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass, oid FROM pg_catalog.pg_collation
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, oid FROM pg_catalog.pg_conversion
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass, oid FROM pg_catalog.pg_opclass
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_opfamily'::pg_catalog.regclass, oid FROM pg_catalog.pg_opfamily
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_am'::pg_catalog.regclass, oid FROM pg_catalog.pg_am
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_language'::pg_catalog.regclass, oid FROM pg_catalog.pg_language
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, oid FROM pg_catalog.pg_ts_config
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, oid FROM pg_catalog.pg_ts_dict
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_ts_parser'::pg_catalog.regclass, oid FROM pg_catalog.pg_ts_parser
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_ts_template'::pg_catalog.regclass, oid FROM pg_catalog.pg_ts_template
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_foreign_data_wrapper'::pg_catalog.regclass, oid
      FROM pg_catalog.pg_foreign_data_wrapper WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_foreign_server'::pg_catalog.regclass, oid
      FROM pg_catalog.pg_foreign_server WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, oid
      FROM pg_catalog.pg_statistic_ext WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    SELECT 'pg_catalog.pg_transform'::pg_catalog.regclass, oid FROM pg_catalog.pg_transform
     WHERE oid >= {_FIRST_USER_OID}
    UNION ALL
    -- planted in PostgreSQL's own schemas (which the other sections skip): functions first on
    -- every definer function's search_path, relations, types
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE p.oid >= {_FIRST_USER_OID} AND NOT ({SYSTEM_SCHEMA_FILTER})
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid >= {_FIRST_USER_OID} AND n.nspname IN ('pg_catalog', 'information_schema')
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type AS t
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
     WHERE t.oid >= {_FIRST_USER_OID} AND n.nspname IN ('pg_catalog', 'information_schema')
)
SELECT pg_catalog.pg_describe_object(o.classid, o.objid, 0),
       CASE WHEN o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN
            (SELECT CASE WHEN c.relkind IN ('v', 'm')
                         THEN pg_catalog.pg_get_viewdef(c.oid)
                         WHEN c.relkind = 'S'
                         THEN (SELECT pg_catalog.format(
                                   'AS %%s START %%s INCREMENT %%s MIN %%s MAX %%s CACHE %%s%%s',
                                   pg_catalog.format_type(s.seqtypid, NULL), s.seqstart,
                                   s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                                   CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
                                 FROM pg_catalog.pg_sequence AS s WHERE s.seqrelid = c.oid)
                    END
               FROM pg_catalog.pg_class AS c WHERE c.oid = o.objid)
       END
  FROM objects AS o
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = o.classid AND d.objid = o.objid AND d.deptype = 'e')
 ORDER BY 1
"""


def other_object_lines(conn: Conn) -> list[str]:
    """Every object of a kind the other sections do not describe (see ``_OTHER_OBJECTS_SQL``)."""
    return [
        f"{description}: {definition}" if definition is not None else str(description)
        for description, definition in conn.execute(_OTHER_OBJECTS_SQL)
    ]


# --------------------------------------------------------------------------------------------
# The whole catalog snapshot: one reader for baseline/catalog.txt, drift and live drift
# --------------------------------------------------------------------------------------------

#: Every section of a snapshot, in the order ``baseline/catalog.txt`` lists them.
SECTIONS: Final[tuple[str, ...]] = (
    "roles",
    "memberships",
    "role settings",
    "database",
    "functions",
    "triggers",
    "ACLs",
    "row security",
    "rules",
    "other objects",
    "publications",
    "subscriptions",
    "event triggers",
    "extensions",
    "ledger",
    "structure",
    "storage",
)

#: What ``boot-check`` compares: everything that grants, runs or hides something.
SECURITY_SECTIONS: Final[tuple[str, ...]] = tuple(s for s in SECTIONS if s != "structure")

Snapshot = dict[str, list[str]]


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _one_line(line: str) -> str:
    """Lines never contain a line break (a comment may): ``\\`` and newlines are escaped."""
    return line.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def read_snapshot(conn: Conn, sections: Sequence[str] | None = None) -> Snapshot:
    """The catalog of the database ``conn`` is connected to, by section, as text lines that
    compare equal between two databases built the same way (names of the database, its owner
    and the migrating user normalised). Works for any role that can connect and read the
    catalogs; the ledger section needs SELECT on the ledger tables (the migrating user and
    ``symphony_auditor`` have it)."""
    wanted = tuple(SECTIONS if sections is None else sections)
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown catalog sections: {unknown}")
    roles = read_roles(conn)
    readers: dict[str, Callable[[], list[str]]] = {
        "roles": lambda: [
            f"role {r.name}: {r.attributes_sql()}; comment {_literal(r.comment)}" for r in roles
        ],
        "memberships": lambda: [
            f"{m.role} -> {m.member}: admin={m.admin} inherit={m.inherit} set={m.set}"
            for m in read_memberships(conn, roles)
        ],
        "role settings": lambda: role_setting_lines(conn, roles),
        "database": lambda: database_lines(conn),
        "functions": lambda: function_lines(conn),
        "triggers": lambda: trigger_lines(conn),
        "ACLs": lambda: acl_lines(conn),
        "row security": lambda: row_security_lines(conn),
        "rules": lambda: rule_lines(conn),
        "other objects": lambda: other_object_lines(conn),
        "publications": lambda: publication_lines(conn),
        "subscriptions": lambda: subscription_lines(conn),
        "event triggers": lambda: event_trigger_lines(conn),
        "extensions": lambda: extension_lines(conn),
        "ledger": lambda: (
            [
                f"schema_migrations {row.version} | {row.description} | {row.checksum}"
                for row in ledger.read_ledger(conn)
            ]
            + [f"alembic_version {head}" for head in _readable_alembic_version(conn)]
        ),
        "structure": lambda: structure_lines(conn),
        "storage": lambda: storage_lines(conn),
    }
    return {name: [_one_line(line) for line in readers[name]()] for name in wanted}
