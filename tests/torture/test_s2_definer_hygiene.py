"""S2: hygiene of every SECURITY DEFINER function in the database, found through the catalog.

Not only the declared functions: any SECURITY DEFINER routine in any non-system schema (a future
revision's, or one planted by hand) must
* pin ``search_path`` in its ``proconfig``, with ``pg_temp`` named and last, and nothing but
  trusted schemas (``pg_catalog``, ``public``) before it;
* be owned by ``symphony_owner``, which is no superuser, cannot log in and bypasses no RLS;
* not be executable by PUBLIC (NULL ACL = PostgreSQL's default, which grants EXECUTE to PUBLIC);
* be executable only by the grantees the declared matrix names for it.

The same check runs against planted bad functions to prove that it finds each problem.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema import privileges

pytestmark = pytest.mark.integration

TRUSTED_BEFORE_PG_TEMP = {"pg_catalog", "public"}


def _search_path(config: list[str] | None) -> list[str] | None:
    for entry in config or []:
        name, _, value = entry.partition("=")
        if name == "search_path":
            return [part.strip().strip('"') for part in value.split(",")]
    return None


def definer_problems(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """
        SELECT pg_catalog.quote_ident(n.nspname) || '.' || p.proname || '('
               || pg_catalog.replace(pg_catalog.oidvectortypes(p.proargtypes), ', ', ',') || ')',
               p.proconfig, r.rolname, r.rolsuper, r.rolcanlogin,
               r.rolbypassrls,
               COALESCE((SELECT pg_catalog.array_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                                                        ELSE x.grantee::regrole::text END
                                                   ORDER BY 1)
                           FROM pg_catalog.aclexplode(COALESCE(p.proacl,
                                  pg_catalog.acldefault('f', p.proowner))) AS x
                          WHERE x.privilege_type = 'EXECUTE' AND x.grantee <> p.proowner),
                        '{}')
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
         WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        """
    ).fetchall()
    declared = {
        spec.name: privileges.expected_grants()
        for spec in privileges.FUNCTIONS
        if spec.security_definer
    }
    executors = {
        name: {
            grantee
            for (grantee, kind, obj), privs in grants.items()
            if kind is privileges.ObjectKind.FUNCTION
            and obj.startswith(f"public.{name}(")
            and "EXECUTE" in privs
        }
        for name, grants in declared.items()
    }
    problems: list[str] = []
    for signature, config, owner, superuser, login, bypassrls, grantees in rows:
        path = _search_path(config)
        if path is None:
            problems.append(f"{signature}: search_path is not pinned")
        elif path[-1] != "pg_temp":
            problems.append(f"{signature}: pg_temp is not last in search_path {path}")
        elif set(path[:-1]) - TRUSTED_BEFORE_PG_TEMP:
            problems.append(f"{signature}: untrusted schema in search_path {path}")
        if owner != privileges.OWNER:
            problems.append(f"{signature}: owned by {owner}, not {privileges.OWNER}")
        if superuser or login or bypassrls:
            problems.append(f"{signature}: its owner {owner} is superuser/login/bypassrls")
        if "PUBLIC" in grantees:
            problems.append(f"{signature}: PUBLIC can EXECUTE it")
        name = signature.split("(", 1)[0].removeprefix("public.")
        allowed = executors.get(name, set())
        extra = set(grantees) - allowed - {"PUBLIC"}
        if extra:
            problems.append(f"{signature}: undeclared EXECUTE for {sorted(extra)}")
    return problems


def test_every_security_definer_function_is_clean(db: psycopg.Connection[Any]) -> None:
    assert definer_problems(db) == []
    count = db.execute("SELECT count(*) FROM pg_catalog.pg_proc WHERE prosecdef").fetchone()
    declared = sum(spec.security_definer for spec in privileges.FUNCTIONS)
    assert count == (declared,), "a SECURITY DEFINER function exists that is not declared"


def test_the_owner_of_the_definer_functions_is_powerless_on_its_own(
    db: psycopg.Connection[Any],
) -> None:
    """symphony_owner is what a definer function runs as: no superuser, no login, no CREATE
    anywhere, no membership that would give it more."""
    row = db.execute(
        "SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
        " pg_catalog.has_schema_privilege(oid, 'public', 'CREATE'),"
        " pg_catalog.has_database_privilege(oid, pg_catalog.current_database(), 'CREATE'),"
        " (SELECT count(*) FROM pg_catalog.pg_auth_members WHERE member = r.oid)"
        " FROM pg_catalog.pg_roles AS r WHERE rolname = %s",
        (privileges.OWNER,),
    ).fetchone()
    assert row == (False, False, False, False, False, False, False, False, 0)


PLANTED = {
    "no-search-path": (
        "CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';"
        " ALTER FUNCTION public.t_bad() OWNER TO symphony_owner;"
        " REVOKE ALL ON FUNCTION public.t_bad() FROM PUBLIC",
        "public.t_bad(): search_path is not pinned",
    ),
    "pg-temp-first": (
        "CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_temp, public AS 'SELECT 1';"
        " ALTER FUNCTION public.t_bad() OWNER TO symphony_owner;"
        " REVOKE ALL ON FUNCTION public.t_bad() FROM PUBLIC",
        "public.t_bad(): pg_temp is not last in search_path ['pg_temp', 'public']",
    ),
    "pg-temp-missing": (
        "CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog, public AS 'SELECT 1';"
        " ALTER FUNCTION public.t_bad() OWNER TO symphony_owner;"
        " REVOKE ALL ON FUNCTION public.t_bad() FROM PUBLIC",
        "public.t_bad(): pg_temp is not last in search_path ['pg_catalog', 'public']",
    ),
    "untrusted-schema": (
        "CREATE SCHEMA t_evil; CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql"
        " SECURITY DEFINER SET search_path = t_evil, pg_catalog, pg_temp AS 'SELECT 1';"
        " ALTER FUNCTION public.t_bad() OWNER TO symphony_owner;"
        " REVOKE ALL ON FUNCTION public.t_bad() FROM PUBLIC",
        "public.t_bad(): untrusted schema in search_path ['t_evil', 'pg_catalog', 'pg_temp']",
    ),
    "superuser-owner": (
        "CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog, public, pg_temp AS 'SELECT 1';"
        " REVOKE ALL ON FUNCTION public.t_bad() FROM PUBLIC",
        "public.t_bad(): owned by postgres, not symphony_owner",
    ),
    "public-execute": (
        "CREATE FUNCTION public.t_bad() RETURNS int LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog, public, pg_temp AS 'SELECT 1';"
        " ALTER FUNCTION public.t_bad() OWNER TO symphony_owner",
        "public.t_bad(): PUBLIC can EXECUTE it",
    ),
    "undeclared-grant": (
        "GRANT EXECUTE ON FUNCTION public.bump_participant_outbox_seq(text) TO symphony_ingest",
        "public.bump_participant_outbox_seq(text): undeclared EXECUTE for ['symphony_ingest']",
    ),
    "set-search-path-dropped": (
        "ALTER FUNCTION public.claim_outbox_batch(integer, text, integer, text[])"
        " RESET search_path",
        "public.claim_outbox_batch(integer,text,integer,text[]): search_path is not pinned",
    ),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_a_planted_definer_problem_is_found(planted: psycopg.Connection[Any], case: str) -> None:
    statement, expected = PLANTED[case]
    planted.execute(statement)
    problems = definer_problems(planted)
    assert expected in problems
