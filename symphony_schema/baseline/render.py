"""Rendering ``baseline/baseline.sql``: roles, the normalised dump, the ledger rows.

The file has three sections in a fixed order (ADR 0010):

1. **Roles** - one idempotent ``DO`` block that creates every Symphony role that is missing and
   then alters only the attributes (and comment) that differ, exactly as revision 0003 does, so a
   role without SUPERUSER but with CREATEROLE can apply it on a cluster that is already right.
   One role per line: an attribute change is a one-line diff. Memberships between Symphony group
   roles follow (there are none by contract; a login's memberships are environment setup).
2. **Schema** - ``pg_dump --schema-only`` of a database migrated to head, normalised
   (:mod:`symphony_schema.baseline.dump`).
3. **Ledger** - one ``INSERT`` per applied revision into ``public.schema_migrations`` with only
   version, description and checksum (``applied_at``/``applied_by`` take their defaults when the
   baseline is applied, ``execution_ms`` stays NULL: no revision was executed), then the
   ``alembic_version`` row, so that ``alembic upgrade head`` continues from there (ADR 0011).
"""

from __future__ import annotations

from collections.abc import Sequence

from symphony_schema.baseline.catalog import LedgerRow, Membership, RoleState

RULE = "-- " + "=" * 97


def sql_literal(value: str | None) -> str:
    """A standard-conforming SQL string literal (or NULL)."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _section(number: int, title: str, notes: Sequence[str], body: str) -> str:
    lines = [
        RULE,
        f"-- {number}. {title}",
        *(f"-- {note}" if note else "--" for note in notes),
        RULE,
    ]
    return "\n".join(lines) + "\n\n" + body


_ROLES_DO = """\
DO $symphony_baseline_roles$
DECLARE
    v_role record;
    v_current pg_catalog.pg_roles%ROWTYPE;
    v_changes text[];
BEGIN
    FOR v_role IN
        SELECT *
          FROM (VALUES
{rows}
               ) AS r (rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit,
                       rolreplication, rolbypassrls, rolconnlimit, description)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS x WHERE x.rolname = v_role.rolname) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I', v_role.rolname);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created concurrently; the attributes are enforced below
            END;
        END IF;

        SELECT x.* INTO STRICT v_current
          FROM pg_catalog.pg_roles AS x
         WHERE x.rolname = v_role.rolname;

        v_changes := ARRAY[]::text[];
        IF v_current.rolcanlogin IS DISTINCT FROM v_role.rolcanlogin THEN
            v_changes := v_changes || CASE WHEN v_role.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END;
        END IF;
        IF v_current.rolsuper IS DISTINCT FROM v_role.rolsuper THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END;
        END IF;
        IF v_current.rolcreatedb IS DISTINCT FROM v_role.rolcreatedb THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END;
        END IF;
        IF v_current.rolcreaterole IS DISTINCT FROM v_role.rolcreaterole THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END;
        END IF;
        IF v_current.rolinherit IS DISTINCT FROM v_role.rolinherit THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END;
        END IF;
        IF v_current.rolreplication IS DISTINCT FROM v_role.rolreplication THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END;
        END IF;
        IF v_current.rolbypassrls IS DISTINCT FROM v_role.rolbypassrls THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END;
        END IF;
        IF v_current.rolconnlimit IS DISTINCT FROM v_role.rolconnlimit THEN
            v_changes := v_changes || ('CONNECTION LIMIT ' || v_role.rolconnlimit);
        END IF;
        IF pg_catalog.cardinality(v_changes) > 0 THEN
            EXECUTE pg_catalog.format('ALTER ROLE %I WITH %s', v_role.rolname,
                                      pg_catalog.array_to_string(v_changes, ' '));
        END IF;

        IF pg_catalog.shobj_description(v_current.oid, 'pg_authid')
           IS DISTINCT FROM v_role.description THEN
            EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L',
                                      v_role.rolname, v_role.description);
        END IF;
    END LOOP;
END
$symphony_baseline_roles$;"""


def _role_row(role: RoleState) -> str:
    values = [
        sql_literal(role.name),
        _bool(role.login),
        _bool(role.superuser),
        _bool(role.createdb),
        _bool(role.createrole),
        _bool(role.inherit),
        _bool(role.replication),
        _bool(role.bypassrls),
        str(role.connection_limit),
        sql_literal(role.comment) + ("::text" if role.comment is None else ""),
    ]
    return "                   (" + ", ".join(values) + ")"


def roles_sql(roles: Sequence[RoleState], memberships: Sequence[Membership]) -> str:
    """The idempotent roles block (creates missing roles, enforces attributes and comments) and
    the memberships between group roles."""
    if not roles:
        return "-- (no roles)"
    header = (
        "                -- rolname, login, superuser, createdb, createrole, inherit, "
        "replication, bypassrls,\n"
        "                -- connection limit, comment"
    )
    rows = ",\n".join(_role_row(role) for role in roles)
    parts = [_ROLES_DO.format(rows=f"{header}\n{rows}")]
    for grant in memberships:
        options = (
            f"ADMIN {_bool(grant.admin).upper()}, INHERIT {_bool(grant.inherit).upper()}, "
            f"SET {_bool(grant.set).upper()}"
        )
        parts.append(f"GRANT {_ident(grant.role)} TO {_ident(grant.member)} WITH {options};")
    if not memberships:
        parts.append("-- Memberships between Symphony group roles: none.")
    return "\n\n".join(parts)


def _ident(name: str) -> str:
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def ledger_sql(rows: Sequence[LedgerRow], heads: Sequence[str]) -> str:
    """One INSERT per applied revision, then the ``alembic_version`` row(s)."""
    lines = [
        "INSERT INTO public.schema_migrations (version, description, checksum) VALUES ("
        f"{sql_literal(row.version)}, {sql_literal(row.description)}, {sql_literal(row.checksum)});"
        for row in rows
    ]
    lines += [
        f"INSERT INTO public.alembic_version (version_num) VALUES ({sql_literal(head)});"
        for head in heads
    ]
    return "\n".join(lines) if lines else "-- (no revisions applied)"


def render_baseline_sql(
    *,
    head: str,
    roles: Sequence[RoleState],
    memberships: Sequence[Membership],
    schema_dump: str,
    ledger: Sequence[LedgerRow],
    heads: Sequence[str],
) -> str:
    """The whole ``baseline.sql`` text (ends with exactly one newline)."""
    header = "\n".join(
        [
            "-- Symphony schema baseline at revision " + head + ".",
            "--",
            "-- GENERATED FILE - DO NOT EDIT. The revisions under alembic/versions are the",
            "-- source of truth; regenerate this file with `nox -s baseline`",
            "-- (symphony-schema baseline generate). `nox -s drift` fails when it differs",
            "-- from a freshly migrated database.",
            "--",
            "-- Bring up an EMPTY database from it with `symphony-schema baseline apply` (one",
            "-- transaction); `alembic upgrade head` then continues with any later revision.",
        ]
    )
    sections = [
        header,
        _section(
            1,
            "Roles (cluster-wide; created when missing, attributes and comments enforced)",
            [
                "Passwords are never part of the schema; a login's memberships are environment",
                "setup (symphony-schema grant-login), so only group-role memberships appear.",
            ],
            roles_sql(roles, memberships),
        ),
        _section(
            2,
            "Schema (pg_dump --schema-only, PostgreSQL 18 client, normalised)",
            [
                "Objects owned by the migrating user (the ledger tables) are owned by whoever",
                "applies this file, just as they are owned by whoever runs the migrations.",
            ],
            schema_dump.rstrip("\n"),
        ),
        _section(
            3,
            "Migration ledger",
            [
                "applied_at and applied_by take their defaults when this file is applied;",
                "execution_ms stays NULL because no revision is executed.",
            ],
            ledger_sql(ledger, heads),
        ),
    ]
    return "\n\n\n".join(sections) + "\n"
