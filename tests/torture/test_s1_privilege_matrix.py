"""S1 exhaustive: every role x every object x every privilege, effective, against the declaration.

``tests/integration/test_schema_privileges.py`` compares the ACLs (``aclexplode``) with the
declared matrix. This adds the *effective* view, which is what an attacker gets: for every
Symphony role including ``test_user``, ``has_*_privilege`` on every relation, every column, every
sequence, every function and schema ``public``, for every privilege PostgreSQL 18 knows on that
kind of object (MAINTAIN included). Effective privileges also come from role memberships, from
PUBLIC and from column-level grants (which live in ``pg_attribute.attacl``, not in the table's
ACL), so a stray ``GRANT UPDATE (payload)`` or ``GRANT symphony_control TO symphony_readonly``
shows up here. PUBLIC is not a role ``has_*_privilege`` can be asked about; its ACL entries are
read with ``aclexplode`` (NULL ACLs through ``acldefault``), columns included.

Expected: exactly the declared privileges (``symphony_schema.privileges.expected_grants``), plus
everything on objects the role owns; nothing on anything undeclared.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema import privileges
from symphony_schema.privileges import PUBLIC, ObjectKind

pytestmark = pytest.mark.integration

TABLE_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
)
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
SCHEMA_PRIVILEGES = ("USAGE", "CREATE")
FUNCTION_PRIVILEGES = ("EXECUTE",)

ROLE_NAMES = tuple(role.name for role in privileges.ROLES)


def _relations(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """(kind, qualified name, owner) of every table/view/sequence in schema public."""
    return [
        (kind, name, owner)
        for kind, name, owner in conn.execute(
            "SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END,"
            " pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),"
            " pg_catalog.pg_get_userbyid(c.relowner)"
            " FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n"
            " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY 2"
        )
    ]


def _functions(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    """(oid, signature as in the matrix, owner) of every routine in schema public."""
    declared = {spec.signature.replace(" ", ""): spec.signature for spec in privileges.FUNCTIONS}
    rows = conn.execute(
        "SELECT p.oid, 'public.' || p.oid::pg_catalog.regprocedure::text,"
        " pg_catalog.pg_get_userbyid(p.proowner) FROM pg_catalog.pg_proc AS p"
        " WHERE p.pronamespace = 'public'::pg_catalog.regnamespace"
    ).fetchall()
    result = []
    for oid, raw, owner in rows:
        # regprocedure leaves search_path-visible names unqualified; the matrix qualifies them.
        name = raw.replace("public.public.", "public.").replace(" ", "")
        name = name.replace("(outbox_attempt_state", "(public.outbox_attempt_state")
        name = name.replace(",outbox_attempt_state", ",public.outbox_attempt_state")
        result.append((int(oid), declared.get(name, name), owner))
    return result


def expected_effective(role: str, kind: ObjectKind, name: str, owner: str) -> frozenset[str]:
    if role == owner:
        return frozenset(
            {
                ObjectKind.TABLE: TABLE_PRIVILEGES,
                ObjectKind.SEQUENCE: SEQUENCE_PRIVILEGES,
                ObjectKind.FUNCTION: FUNCTION_PRIVILEGES,
                ObjectKind.SCHEMA: SCHEMA_PRIVILEGES,
            }[kind]
        )
    return privileges.expected_grants().get((role, kind, name), frozenset())


def _held(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> bool:
    row = conn.execute(query, params).fetchone()
    return bool(row and row[0])


def effective_matrix_problems(conn: psycopg.Connection[Any]) -> list[str]:
    """Every (role, object, privilege) whose effective value differs from the declaration."""
    problems: list[str] = []

    def compare(role: str, kind: ObjectKind, name: str, owner: str, have: set[str]) -> None:
        want = expected_effective(role, kind, name, owner)
        problems.extend(f"{role} lacks {p} on {kind} {name}" for p in sorted(want - have))
        problems.extend(f"{role} has {p} on {kind} {name}" for p in sorted(have - want))

    relations = _relations(conn)
    functions = _functions(conn)
    for role in ROLE_NAMES:
        for kind_text, name, owner in relations:
            kind = ObjectKind(kind_text)
            names = TABLE_PRIVILEGES if kind is ObjectKind.TABLE else SEQUENCE_PRIVILEGES
            check = "has_table_privilege" if kind is ObjectKind.TABLE else "has_sequence_privilege"
            have = {
                p
                for p in names
                if _held(
                    conn,
                    f"SELECT pg_catalog.{check}(%(r)s, %(o)s, %(p)s)",
                    {"r": role, "o": name, "p": p},
                )
            }
            compare(role, kind, name, owner, have)
            if kind is ObjectKind.TABLE:
                problems.extend(_column_problems(conn, role, name, owner))
        for oid, name, owner in functions:
            have = {
                p
                for p in FUNCTION_PRIVILEGES
                if _held(
                    conn,
                    "SELECT pg_catalog.has_function_privilege(%(r)s, %(o)s, %(p)s)",
                    {"r": role, "o": oid, "p": p},
                )
            }
            compare(role, ObjectKind.FUNCTION, name, owner, have)
        have = {
            p
            for p in SCHEMA_PRIVILEGES
            if _held(
                conn,
                "SELECT pg_catalog.has_schema_privilege(%(r)s, 'public', %(p)s)",
                {"r": role, "p": p},
            )
        }
        compare(role, ObjectKind.SCHEMA, "public", "pg_database_owner", have)
    return problems


def _column_problems(conn: psycopg.Connection[Any], role: str, table: str, owner: str) -> list[str]:
    """A column privilege beyond the table privilege means a column-level grant."""
    table_level = expected_effective(role, ObjectKind.TABLE, table, owner)
    rows = conn.execute(
        "SELECT a.attname, p.privilege,"
        " pg_catalog.has_column_privilege(%(r)s, %(t)s::regclass, a.attnum, p.privilege)"
        " FROM pg_catalog.pg_attribute AS a,"
        " unnest(%(privileges)s::text[]) AS p (privilege)"
        " WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        {"r": role, "t": table, "privileges": list(COLUMN_PRIVILEGES)},
    ).fetchall()
    return [
        f"{role} {'has' if held else 'lacks'} {privilege} on column {table}.{column}"
        for column, privilege, held in rows
        if held != (privilege in table_level)
    ]


def public_acl_problems(conn: psycopg.Connection[Any]) -> list[str]:
    """PUBLIC's ACL entries on every relation, column, function and schema public (through
    aclexplode; NULL ACLs are PostgreSQL's defaults) against the declaration."""
    rows = conn.execute(
        """
        SELECT 'table', c.oid::regclass::text, x.privilege_type
          FROM pg_catalog.pg_class AS c
         CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault(
                CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) AS x
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND x.grantee = 0
        UNION ALL
        SELECT 'column', a.attrelid::regclass::text || '.' || a.attname, x.privilege_type
          FROM pg_catalog.pg_attribute AS a
          JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
         CROSS JOIN LATERAL pg_catalog.aclexplode(a.attacl) AS x
         WHERE c.relnamespace = 'public'::regnamespace AND x.grantee = 0
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, x.privilege_type
          FROM pg_catalog.pg_proc AS p
         CROSS JOIN LATERAL pg_catalog.aclexplode(
                COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS x
         WHERE p.pronamespace = 'public'::regnamespace AND x.grantee = 0
        UNION ALL
        SELECT 'schema', n.nspname, x.privilege_type
          FROM pg_catalog.pg_namespace AS n
         CROSS JOIN LATERAL pg_catalog.aclexplode(
                COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) AS x
         WHERE n.nspname = 'public' AND x.grantee = 0
        """
    ).fetchall()
    declared_public = {
        (kind, name): privs
        for (grantee, kind, name), privs in privileges.expected_grants().items()
        if grantee == PUBLIC and privs
    }
    assert declared_public == {}, "the declaration gives PUBLIC nothing; adjust this test"
    return [f"PUBLIC has {privilege} on {kind} {name}" for kind, name, privilege in rows]


def test_every_role_has_exactly_the_declared_effective_privileges(
    db: psycopg.Connection[Any],
) -> None:
    problems = effective_matrix_problems(db)
    assert problems == [], "\n".join(problems)


def test_public_holds_nothing_on_any_relation_column_function_or_the_schema(
    db: psycopg.Connection[Any],
) -> None:
    assert public_acl_problems(db) == []


def test_the_matrix_covers_every_object_in_schema_public(db: psycopg.Connection[Any]) -> None:
    """An object outside the declaration is a gap in it (the engine's own alembic_version is
    the one exception: nobody but its owner may touch it, which the effective check proves)."""
    declared = {name for (_, _, name) in privileges.expected_grants()}
    live = {name for _, name, _ in _relations(db)} | {name for _, name, _ in _functions(db)}
    assert live - declared == {"public.alembic_version"}
    assert declared - live == {"public"}  # the schema itself


def test_no_symphony_role_may_create_anything_in_the_database(
    db: psycopg.Connection[Any],
) -> None:
    """CREATE on the database would allow CREATE SCHEMA (and a schema of one's own is where
    shadowing functions and operators would live)."""
    rows = db.execute(
        "SELECT r, pg_catalog.has_database_privilege(r, pg_catalog.current_database(), 'CREATE')"
        " FROM unnest(%s::text[]) AS r",
        (list(ROLE_NAMES),),
    ).fetchall()
    assert [role for role, held in rows if held] == []


def test_no_symphony_role_is_a_member_of_any_role(db: psycopg.Connection[Any]) -> None:
    """Memberships (predefined roles such as pg_write_all_data included) would add privileges
    the matrix does not show."""
    rows = db.execute(
        "SELECT m.member::regrole::text, m.roleid::regrole::text"
        " FROM pg_catalog.pg_auth_members AS m WHERE m.member::regrole::text = ANY(%s)",
        (list(ROLE_NAMES),),
    ).fetchall()
    assert rows == []


def test_enum_types_carry_only_the_default_public_usage(db: psycopg.Connection[Any]) -> None:
    """ADR 0005 keeps PostgreSQL's default USAGE for PUBLIC on the enum types; nothing else may
    have been granted on them."""
    rows = db.execute(
        "SELECT t.typname, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text"
        " END, x.privilege_type FROM pg_catalog.pg_type AS t"
        " CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(t.typacl,"
        "   pg_catalog.acldefault('T', t.typowner))) AS x"
        " WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'e'"
        " AND x.grantee <> t.typowner ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("outbox_attempt_state", "PUBLIC", "USAGE"),
        ("policy_version_status", "PUBLIC", "USAGE"),
    ]


# --------------------------------------------------------------------------------------------
# The checks can fail: each planted grant is found
# --------------------------------------------------------------------------------------------

PLANTED = {
    "column-grant": (
        "GRANT UPDATE (payload) ON public.payment_outbox_pending TO symphony_executor",
        "symphony_executor has UPDATE on column public.payment_outbox_pending.payload",
    ),
    "membership": (
        "GRANT symphony_control TO symphony_readonly",
        "symphony_readonly has EXECUTE on function public.cancel_outbox_job(uuid,text,text)",
    ),
    "maintain": (
        "GRANT MAINTAIN ON public.payment_outbox_attempts TO symphony_auditor",
        "symphony_auditor has MAINTAIN on table public.payment_outbox_attempts",
    ),
    "predefined-role": (
        "GRANT pg_write_all_data TO test_user",
        "test_user has UPDATE on table public.payment_outbox_attempts",
    ),
    "revoked-execute": (
        "REVOKE EXECUTE ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[])"
        " FROM symphony_executor",
        "symphony_executor lacks EXECUTE on function"
        " public.claim_outbox_batch(integer,text,integer,text[])",
    ),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_grant_is_found(planted: psycopg.Connection[Any], case: str) -> None:
    statement, expected = PLANTED[case]
    planted.execute(statement)
    assert expected in effective_matrix_problems(planted)


def test_a_planted_public_column_grant_is_found(planted: psycopg.Connection[Any]) -> None:
    planted.execute("GRANT SELECT (payload) ON public.payment_outbox_attempts TO PUBLIC")
    assert public_acl_problems(planted) == [
        "PUBLIC has SELECT on column payment_outbox_attempts.payload"
    ]
