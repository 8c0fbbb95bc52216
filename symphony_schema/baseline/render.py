"""Rendering ``baseline/baseline.sql``: roles, the normalised dump, the ledger rows.

The file has four sections in a fixed order (ADR 0010, ADR 0080):

1. **Roles** - one idempotent ``DO`` block that creates every Symphony role that is missing and
   then alters only the attributes (and comment, and password expiry) that differ, exactly as
   revision 0003 does, so a role without SUPERUSER but with CREATEROLE can apply it on a cluster
   that is already right. One role per line: an attribute change is a one-line diff. Every
   membership involving a Symphony role follows (see :func:`catalog.read_memberships` for the
   environment memberships left out), then the Symphony roles' settings.
2. **Schema** - ``pg_dump --schema-only`` of a database migrated to head, normalised
   (:mod:`symphony_schema.baseline.dump`); publications, event triggers and extensions included.
3. **Database** - ``ALTER DATABASE ... SET`` and the database ACL, for ``current_database()``.
4. **Ledger** - one ``INSERT`` per applied revision into ``public.schema_migrations`` with only
   version, description and checksum (``applied_at``/``applied_by`` take their defaults when the
   baseline is applied, ``execution_ms`` stays NULL: no revision was executed), then the
   ``alembic_version`` row, so that ``alembic upgrade head`` continues from there (ADR 0011).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from symphony_schema import SymphonyError
from symphony_schema.baseline.catalog import (
    DATABASE_OWNER,
    DEFAULT_DATABASE_ACL,
    DatabaseGrant,
    Membership,
    RoleSetting,
    RoleState,
)
from symphony_schema.migration.ledger import LedgerRow

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
                       rolreplication, rolbypassrls, rolconnlimit, description, rolvaliduntil)
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
        -- A password expiry can be set but never reset to "none"; drift shows such a difference.
        IF v_role.rolvaliduntil IS NOT NULL
           AND v_current.rolvaliduntil IS DISTINCT FROM v_role.rolvaliduntil::timestamptz THEN
            v_changes := v_changes || pg_catalog.format('VALID UNTIL %L', v_role.rolvaliduntil);
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
        sql_literal(role.valid_until) + ("::text" if role.valid_until is None else ""),
    ]
    return "                   (" + ", ".join(values) + ")"


def roles_sql(
    roles: Sequence[RoleState],
    memberships: Sequence[Membership],
    settings: Sequence[RoleSetting] = (),
) -> str:
    """The idempotent roles block (creates missing roles, enforces attributes and comments), the
    memberships that involve a Symphony role and the Symphony roles' settings."""
    if not roles:
        return "-- (no roles)"
    header = (
        "                -- rolname, login, superuser, createdb, createrole, inherit, "
        "replication, bypassrls,\n"
        "                -- connection limit, comment, valid until (UTC)"
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
        parts.append("-- Memberships involving a Symphony role: none.")
    role_settings = [s for s in settings if s.role is not None]
    if role_settings:
        parts.append(_settings_do("symphony_baseline_role_settings", role_settings))
    else:
        parts.append("-- Settings of Symphony roles (ALTER ROLE ... SET): none.")
    return "\n\n".join(parts)


#: Settings whose stored value is already a quoted list (``GUC_LIST_QUOTE``): re-used verbatim.
_LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
    }
)


def setting_clause(setting: RoleSetting) -> str:
    """``SET name TO value`` as it must be written to store ``setting`` unchanged."""
    if setting.name.lower() in _LIST_SETTINGS:
        return f"SET {setting.name} TO {setting.value}"
    return f"SET {setting.name} TO {sql_literal(setting.value)}"


def _settings_do(label: str, settings: Sequence[RoleSetting]) -> str:
    """A ``DO`` block that applies the settings; the database's name is whatever it is called
    where the baseline is applied (``current_database()``)."""
    statements = []
    for setting in settings:
        clause = sql_literal(setting_clause(setting))
        if setting.role is None:
            statements.append(
                "    EXECUTE pg_catalog.format('ALTER DATABASE %I ' || "
                f"{clause}, pg_catalog.current_database());"
            )
        elif setting.this_database:
            statements.append(
                "    EXECUTE pg_catalog.format('ALTER ROLE %I IN DATABASE %I ' || "
                f"{clause}, {sql_literal(setting.role)}, pg_catalog.current_database());"
            )
        else:
            statements.append(
                f"    EXECUTE pg_catalog.format('ALTER ROLE %I ' || {clause}, "
                f"{sql_literal(setting.role)});"
            )
    body = "\n".join(statements)
    return f"DO ${label}$\nBEGIN\n{body}\nEND\n${label}$;"


def database_sql(settings: Sequence[RoleSetting], acl: Sequence[DatabaseGrant]) -> str:
    """This database's settings and ACL (``ALTER DATABASE ... SET``, ``GRANT ... ON DATABASE``),
    for whatever the database is called where the baseline is applied."""
    parts = []
    database_settings = [s for s in settings if s.role is None]
    if database_settings:
        parts.append(_settings_do("symphony_baseline_database_settings", database_settings))
    else:
        parts.append("-- Database settings (ALTER DATABASE ... SET): none.")
    if tuple(acl) == DEFAULT_DATABASE_ACL:
        parts.append("-- Database ACL: the default (owner: all; PUBLIC: CONNECT, TEMPORARY).")
    else:
        statements = [
            "    EXECUTE pg_catalog.format('REVOKE ALL ON DATABASE %I FROM PUBLIC', "
            "pg_catalog.current_database());"
        ]
        for grant in acl:
            if grant.grantee == DATABASE_OWNER:
                continue  # the owner's own privileges; drift shows it if they were revoked
            grantee = "PUBLIC" if grant.grantee == "PUBLIC" else _ident(grant.grantee)
            option = " WITH GRANT OPTION" if grant.grantable else ""
            text = f"GRANT {grant.privilege} ON DATABASE %I TO {grantee}{option}"
            statements.append(
                f"    EXECUTE pg_catalog.format({sql_literal(text)}, "
                "pg_catalog.current_database());"
            )
        body = "\n".join(statements)
        parts.append(
            f"DO $symphony_baseline_database_acl$\nBEGIN\n{body}\nEND\n"
            "$symphony_baseline_database_acl$;"
        )
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
    settings: Sequence[RoleSetting] = (),
    database_acl: Sequence[DatabaseGrant] = DEFAULT_DATABASE_ACL,
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
                "Passwords are never part of the schema. Every membership involving a Symphony",
                "role appears, logins included, except the runtime-role memberships of other",
                "logins that symphony-schema grant-login manages (environment setup).",
            ],
            roles_sql(roles, memberships, settings),
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
            "Database (settings and ACL of the database this file is applied to)",
            [
                "Written for whatever the database is called where the file is applied.",
            ],
            database_sql(settings, database_acl),
        ),
        _section(
            4,
            "Migration ledger",
            [
                "applied_at and applied_by take their defaults when this file is applied;",
                "execution_ms stays NULL because no revision is executed.",
            ],
            ledger_sql(ledger, heads),
        ),
    ]
    return "\n\n\n".join(sections) + "\n"


# --------------------------------------------------------------------------------------------
# baseline/catalog.txt
# --------------------------------------------------------------------------------------------

_CATALOG_HEADER = "# Symphony schema catalog at revision "


def render_catalog_txt(head: str, snapshot: Mapping[str, Sequence[str]]) -> str:
    """``baseline/catalog.txt``: the normalised catalog of a database migrated to ``head``, one
    ``[section]`` per catalog reader section, one object per line (ADR 0080)."""
    lines = [
        f"{_CATALOG_HEADER}{head}.",
        "# GENERATED FILE - DO NOT EDIT: regenerate with `nox -s baseline`. `symphony-schema",
        "# drift` compares a live database with it; `nox -s drift` fails when it is stale.",
    ]
    for section, entries in snapshot.items():
        lines += ["", f"[{section}]", *entries]
    return "\n".join(lines) + "\n"


def parse_catalog_txt(text: str, source: str) -> tuple[str, dict[str, list[str]]]:
    """(head, sections) of a ``catalog.txt``; SymphonyError naming ``source`` when malformed."""
    # A checkout with CRLF line endings (git autocrlf) reads the same: a line's own carriage
    # returns are escaped by the reader, so every "\r" before "\n" is a line ending.
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].startswith(_CATALOG_HEADER) or not lines[0].endswith("."):
        raise SymphonyError(
            f"{source} is not a Symphony catalog snapshot (first line must be "
            f"{_CATALOG_HEADER!r}...): regenerate it with `nox -s baseline`"
        )
    head = lines[0][len(_CATALOG_HEADER) : -1]
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(lines[1:], start=2):
        if (line.startswith("#") and current is None) or line == "":
            continue
        match = re.fullmatch(r"\[([A-Za-z ]+)\]", line)
        if match:
            current = sections.setdefault(match.group(1), [])
        elif current is None:
            raise SymphonyError(f"{source} line {number}: entry before the first [section]")
        else:
            current.append(line)
    return head, sections
