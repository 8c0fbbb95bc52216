"""Catalog readers for the baseline, ``privileges.md`` and the drift checks.

Everything here reads; nothing writes. Results are plain, ordered data so that two databases can
be compared by rendering both to text lines and diffing them. Grants in the shape of the declared
matrix come from :func:`symphony_schema.privileges.read_actual_grants`; this module reads what
that one does not: roles and their attributes, memberships, owners, default privileges, the
ledger, function properties, every ACL entry (owners included) and the table structure the Core
models describe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from symphony_schema import privileges

Conn = psycopg.Connection[Any]


def connect(conninfo: str) -> Conn:
    """A connection whose ``search_path`` is empty, so that every name PostgreSQL renders
    (``regclass``, ``regprocedure``, ``pg_get_expr``, ``pg_get_indexdef``...) is qualified the
    same way in every database compared."""
    return psycopg.connect(conninfo, options="-c search_path=")


#: Schemas that are PostgreSQL's own; everything else is compared.
#: (Written without LIKE so that it can sit in queries with psycopg parameters.)
SYSTEM_SCHEMA_FILTER: Final = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
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

    def attributes_sql(self) -> str:
        """The attributes as ``CREATE/ALTER ROLE`` options, in a fixed order."""
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
        return " ".join([*words, f"CONNECTION LIMIT {self.connection_limit}"])


@dataclass(frozen=True, slots=True)
class Membership:
    """``GRANT role TO member`` with its options (PostgreSQL 16+)."""

    role: str
    member: str
    admin: bool
    inherit: bool
    set: bool


@dataclass(frozen=True, slots=True)
class LedgerRow:
    version: str
    description: str
    checksum: str


# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------

# The Symphony roles of a database: the declared ones, plus every role the database's objects
# depend on (owners, grantees, default privileges: pg_shdepend), minus PostgreSQL's own roles and
# the migrating user (unless it is itself a declared role).
_ROLES_SQL: Final = """
SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
       pg_catalog.shobj_description(r.oid, 'pg_authid')
  FROM pg_catalog.pg_roles AS r
 WHERE (r.rolname = ANY(%(declared)s)
        OR r.oid IN (SELECT d.refobjid
                       FROM pg_catalog.pg_shdepend AS d
                      WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass
                        AND d.dbid = (SELECT db.oid FROM pg_catalog.pg_database AS db
                                       WHERE db.datname = pg_catalog.current_database())))
   AND r.rolname !~ '^pg_'
   AND (r.rolname <> CURRENT_USER OR r.rolname = ANY(%(declared)s))
 ORDER BY r.rolname
"""


def declared_role_names() -> list[str]:
    return [role.name for role in privileges.ROLES]


def read_roles(conn: Conn, declared: Sequence[str] | None = None) -> list[RoleState]:
    """The Symphony roles (see ``_ROLES_SQL``) with their attributes, ordered by name."""
    names = list(declared if declared is not None else declared_role_names())
    rows = conn.execute(_ROLES_SQL, {"declared": names}).fetchall()
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


def current_user(conn: Conn) -> tuple[str, str]:
    """The connected role: its name, and its name as ``pg_dump`` prints it (``quote_ident``)."""
    row = conn.execute("SELECT CURRENT_USER, pg_catalog.quote_ident(CURRENT_USER)").fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


# --------------------------------------------------------------------------------------------
# Ledger
# --------------------------------------------------------------------------------------------


def read_ledger_rows(conn: Conn) -> list[LedgerRow]:
    """``public.schema_migrations`` (version, description, checksum) by version; empty if absent."""
    exists = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute(
        "SELECT version, description, checksum FROM public.schema_migrations ORDER BY version"
    ).fetchall()
    return [LedgerRow(*row) for row in rows]


def read_alembic_version(conn: Conn) -> list[str]:
    exists = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version_num FROM public.alembic_version ORDER BY 1").fetchall()
    return [str(row[0]) for row in rows]


# --------------------------------------------------------------------------------------------
# Objects, owners and ACLs
# --------------------------------------------------------------------------------------------

# Function identity exactly as symphony_schema.privileges renders it (search_path independent).
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
    lines = []
    for kind, name, grantee, privilege, grantable, grantor in conn.execute(_ALL_ACLS_SQL):
        option = " WITH GRANT OPTION" if grantable else ""
        lines.append(f"{kind} {name}: {grantee} {privilege}{option} (granted by {grantor})")
    for entry in read_default_acls(conn):
        where = f"in schema {entry.schema}" if entry.schema else "in all schemas"
        option = " WITH GRANT OPTION" if entry.grantable else ""
        lines.append(
            f"default privileges of {entry.role} on {entry.object_type} {where}: "
            f"{entry.grantee} {entry.privilege}{option}"
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
    lines = []
    for sig, owner, kind, lang, secdef, vol, par, leak, strict, config, result, md5, doc in rows:
        lines.append(
            f"{sig}: kind={kind} language={lang} returns={result} owner={owner} "
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
    rows = conn.execute(
        """
        SELECT c.conname, pg_catalog.pg_get_constraintdef(c.oid)
          FROM pg_catalog.pg_constraint AS c
         WHERE c.conrelid = %(oid)s AND c.contype <> 'n'
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
