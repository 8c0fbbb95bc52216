"""S3: attacks by runtime-role logins (non-superusers) - and proof that the attacks are real.

``tests/integration/test_schema_security.py`` covers temporary-table shadowing, TRUNCATE,
disabling the ledger triggers, SET ROLE symphony_owner and ledger mutation by the control plane.
This adds, for every runtime role, for ``test_user`` and for a login holding *all* runtime roles:

* an attack catalogue (CREATE anywhere, TRUNCATE everything, trigger/rule/RLS tampering,
  replica mode, becoming the owner or a superuser, granting oneself roles, privileges or
  parameters, ALTER DEFAULT PRIVILEGES for the owner, ownership changes, replacing or re-pathing
  the definer functions, MERGE/upsert/SELECT FOR UPDATE/LOCK on the ledger, REINDEX/CLUSTER/
  VACUUM FULL, server files and programs). Each must be refused with 42501, or - where
  PostgreSQL answers a no-op with a warning - change nothing. After the catalogue the effective
  privilege matrix (S1), the catalog fingerprint, role attributes, memberships and the ledger's
  storage are compared with the state before.
* function and operator shadowing: functions named like every built-in the definer functions
  call, and operators on text/timestamps, in ``pg_temp`` and - for a login that was (wrongly)
  given CREATE on the database - in a schema of its own, put first in ``search_path``. The
  whole job lifecycle then runs and no shadow may be called.
* proof that each technique works: against a deliberately vulnerable SECURITY DEFINER function
  (no pinned ``search_path``) the same shadow objects do get called. Without that proof a
  passing shadowing test could mean the attack was never armed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import privilege_catalog, privileges
from symphony_schema.privileges import (
    AUDITOR,
    CONTROL,
    EXECUTOR,
    INGEST,
    READONLY,
    RUNTIME_ROLES,
    TEST_USER,
)
from tests.torture import support
from tests.torture.conftest import LoginMaker
from tests.torture.test_s1_privilege_matrix import effective_matrix_problems

pytestmark = pytest.mark.integration

DENIED = "42501"
ATTEMPTS = "public.payment_outbox_attempts"
COMPLETE_SIGNATURE = (
    "public.complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state, text, text,"
    " text, text, integer, integer)"
)

#: name -> statement ({me} is the attacking login). All must fail with 42501.
DENIED_ATTACKS: dict[str, str] = {
    "create-schema": "CREATE SCHEMA t_evil",
    "create-table-in-public": "CREATE TABLE public.t_evil (id int)",
    "create-view-in-public": "CREATE VIEW public.t_evil AS SELECT 1 AS one",
    "create-function-in-public": (
        "CREATE FUNCTION public.t_evil() RETURNS int LANGUAGE sql AS 'SELECT 1'"
    ),
    "create-operator-in-public": (
        "CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq)"
    ),
    "create-type-in-public": "CREATE TYPE public.t_evil AS ENUM ('x')",
    "create-sequence-in-public": "CREATE SEQUENCE public.t_evil",
    "create-extension": "CREATE EXTENSION file_fdw",
    "create-database": "CREATE DATABASE t_evil",
    "create-role": "CREATE ROLE t_evil",
    **{
        f"truncate-{table}": f"TRUNCATE public.{table}"
        for table in (
            "payment_outbox_pending",
            "payment_outbox_attempts",
            "participant_outbox_sequences",
            "policy_versions",
            "schema_migrations",
            "alembic_version",
        )
    },
    "disable-triggers": f"ALTER TABLE {ATTEMPTS} DISABLE TRIGGER ALL",
    "drop-trigger": f"DROP TRIGGER trg_deny_outbox_attempts_mutation ON {ATTEMPTS}",
    "create-trigger": (
        f"CREATE TRIGGER t_evil BEFORE INSERT ON {ATTEMPTS}"
        " FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_attempts_mutation()"
    ),
    "create-rule": f"CREATE RULE t_evil AS ON INSERT TO {ATTEMPTS} DO INSTEAD NOTHING",
    "enable-rls": "ALTER TABLE public.payment_outbox_pending ENABLE ROW LEVEL SECURITY",
    "create-policy": "CREATE POLICY t_evil ON public.payment_outbox_pending USING (true)",
    "replica-mode": "SET session_replication_role = replica",
    "set-role-owner": "SET ROLE symphony_owner",
    "set-role-superuser": "SET ROLE postgres",
    "session-authorization": "SET SESSION AUTHORIZATION postgres",
    "call-allocator": "SELECT public.bump_participant_outbox_seq('p-evil')",
    "call-retry-ceiling": "SELECT public.outbox_retry_ceiling()",
    "call-trigger-function": "SELECT public.deny_outbox_attempts_mutation()",
    "update-attempts": f"UPDATE {ATTEMPTS} SET error_message = 'rewritten'",
    "delete-attempts": f"DELETE FROM {ATTEMPTS}",
    "upsert-attempts": (
        f"INSERT INTO {ATTEMPTS} (outbox_id, instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload, attempt_no, state)"
        " VALUES (gen_random_uuid(), 'i', 'p', 1, 'k', 'rtgs', '{}', 1, 'FAILED')"
        " ON CONFLICT (outbox_id, participant_id, attempt_id)"
        " DO UPDATE SET error_message = 'rewritten'"
    ),
    "merge-attempts": (
        f"MERGE INTO {ATTEMPTS} AS a USING (SELECT 1 AS one) AS s ON true"
        " WHEN MATCHED THEN UPDATE SET error_message = 'rewritten'"
    ),
    "select-for-update-attempts": f"SELECT 1 FROM {ATTEMPTS} FOR UPDATE",
    "lock-attempts": f"BEGIN; LOCK TABLE {ATTEMPTS} IN ACCESS EXCLUSIVE MODE; COMMIT",
    "reindex-attempts": f"REINDEX TABLE {ATTEMPTS}",
    "cluster-attempts": f"CLUSTER {ATTEMPTS} USING pk_payment_outbox_attempts",
    "default-privileges-of-owner": (
        "ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner GRANT ALL ON TABLES TO {me}"
    ),
    "grant-owner-to-self": "GRANT symphony_owner TO {me}",
    "grant-control-to-self": "GRANT symphony_control TO {me}",
    "grant-predefined-role": "GRANT pg_write_all_data TO {me}",
    "grant-allocator-to-self": (
        "GRANT EXECUTE ON FUNCTION public.bump_participant_outbox_seq(text) TO {me}"
    ),
    "grant-parameter": "GRANT SET ON PARAMETER session_replication_role TO {me}",
    "alter-self-superuser": "ALTER ROLE {me} SUPERUSER",
    "alter-self-createrole": "ALTER ROLE {me} CREATEROLE",
    "alter-self-bypassrls": "ALTER ROLE {me} BYPASSRLS",
    "owner-can-login": "ALTER ROLE symphony_owner LOGIN",
    "reassign-owned": "REASSIGN OWNED BY symphony_owner TO {me}",
    "take-table": f"ALTER TABLE {ATTEMPTS} OWNER TO {{me}}",
    "take-function": f"ALTER FUNCTION {COMPLETE_SIGNATURE} OWNER TO {{me}}",
    "replace-function": (
        "CREATE OR REPLACE FUNCTION public.uuid_strategy() RETURNS text LANGUAGE sql"
        " AS $$SELECT 'uuidv7'$$"
    ),
    "unpin-search-path": (
        "ALTER FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) RESET search_path"
    ),
    "comment-on-ledger": f"COMMENT ON TABLE {ATTEMPTS} IS 'rewritten'",
    "copy-to-program": "COPY (SELECT 1) TO PROGRAM 'true'",
    "read-server-file": "SELECT pg_catalog.pg_read_file('postgresql.conf')",
    "import-server-file": "SELECT pg_catalog.lo_import('/etc/hostname')",
    "alter-system": "ALTER SYSTEM SET fsync = off",
    "read-ledger": "SELECT count(*) FROM public.schema_migrations",
}

#: PostgreSQL answers these with a warning and does nothing when the caller holds some
#: privilege without grant option; the state comparison afterwards must show no change.
NO_EFFECT_ATTACKS: dict[str, str] = {
    "grant-table-to-self": f"GRANT ALL ON {ATTEMPTS} TO {{me}}",
    "grant-schema-create-to-self": "GRANT CREATE ON SCHEMA public TO {me}",
    "grant-pending-to-public": "GRANT ALL ON public.payment_outbox_pending TO PUBLIC",
    "own-default-privileges": "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
    "vacuum-full-ledger": f"VACUUM FULL {ATTEMPTS}",
}

#: What a role may legitimately do from the catalogue.
ALLOWED: dict[str, set[str]] = {AUDITOR: {"read-ledger"}, "all": {"read-ledger"}}


def _run(conn: psycopg.Connection[Any], statement: str) -> str | None:
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
        return exc.sqlstate
    return None


def _state(admin: psycopg.Connection[Any], login: str) -> tuple[Any, ...]:
    """Everything the catalogue could have changed."""
    fingerprint = support.catalog_fingerprint(admin, include_engine_tables=True)
    # ALTER DEFAULT PRIVILEGES for one's own future objects is allowed (and reaches nothing).
    fingerprint["default_acl"] = [row for row in fingerprint["default_acl"] if row[0] != login]
    storage = admin.execute(
        "SELECT relname, relfilenode FROM pg_catalog.pg_class"
        " WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
    ).fetchall()
    roles = privilege_catalog.read_role_attributes(
        admin, [*privilege_catalog.read_role_attributes(admin), login]
    )
    memberships = admin.execute(
        "SELECT roleid::regrole::text, member::regrole::text FROM pg_catalog.pg_auth_members"
        " WHERE member::regrole::text = ANY(%s) OR roleid::regrole::text = ANY(%s) ORDER BY 1, 2",
        ([login, *(r.name for r in privileges.ROLES)], [r.name for r in privileges.ROLES]),
    ).fetchall()
    parameters = admin.execute("SELECT count(*) FROM pg_catalog.pg_parameter_acl").fetchone()
    return fingerprint, storage, roles, memberships, parameters


@dataclass(frozen=True)
class Attacker:
    label: str
    name: str
    conninfo: str


@pytest.fixture(params=[*RUNTIME_ROLES, TEST_USER, "all"])
def attacker(
    request: pytest.FixtureRequest, make_login: LoginMaker, pg_server: Any, migrated_db: Any
) -> Attacker:
    label = str(request.param)
    if label == TEST_USER:
        return Attacker(label, TEST_USER, pg_server.conninfo(migrated_db.name, user=TEST_USER))
    roles = RUNTIME_ROLES if label == "all" else (label,)
    login = make_login(*roles)
    return Attacker(label, login.name, login.conninfo)


def test_the_attack_catalogue_is_refused_and_changes_nothing(
    attacker: Attacker, db: psycopg.Connection[Any]
) -> None:
    before = _state(db, attacker.name)
    me = sql.Identifier(attacker.name).as_string(db)
    outcomes: dict[str, str | None] = {}
    with psycopg.connect(attacker.conninfo, autocommit=True) as conn:
        for name, statement in {**DENIED_ATTACKS, **NO_EFFECT_ATTACKS}.items():
            outcomes[name] = _run(conn, statement.replace("{me}", me))
            conn.execute("RESET ALL")
        conn.execute("DISCARD ALL")
    allowed = ALLOWED.get(attacker.label, set())
    wrong = {
        name: state
        for name, state in outcomes.items()
        if name in DENIED_ATTACKS and name not in allowed and state != DENIED
    }
    assert wrong == {}, f"{attacker.label}: attacks not refused with 42501: {wrong}"
    assert {n: outcomes[n] for n in allowed} == dict.fromkeys(allowed), "legitimate reads failed"
    assert all(outcomes[n] in (None, DENIED) for n in NO_EFFECT_ATTACKS), outcomes
    after = _state(db, attacker.name)
    for label, old, new in zip(
        ("catalog", "storage", "role attributes", "memberships", "parameter ACLs"),
        before,
        after,
        strict=True,
    ):
        if label == "catalog":
            assert support.fingerprint_diff(old, new) == [], f"{attacker.label} changed the catalog"
        else:
            assert old == new, f"{attacker.label} changed {label}"
    assert effective_matrix_problems(db) == []


# --------------------------------------------------------------------------------------------
# Function and operator shadowing
# --------------------------------------------------------------------------------------------

#: Built-ins the definer functions call (unqualified they would be found through search_path),
#: with a shadow body of the right type.
SHADOWED_FUNCTIONS = {
    "btrim(p text)": ("text", "p"),
    "jsonb_typeof(p jsonb)": ("text", "'object'"),
    "hashtextextended(p text, s bigint)": ("bigint", "0"),
    "pg_advisory_xact_lock(k bigint)": ("void", ""),
    "clock_timestamp()": ("timestamptz", "'2000-01-01'"),
    "now()": ("timestamptz", "'2000-01-01'"),
    "current_setting(n text, m boolean)": ("text", "'1'"),
    "quote_literal(p text)": ("text", "p"),
    "chr(p integer)": ("text", "'x'"),
    "gen_random_uuid()": ("uuid", "'00000000-0000-0000-0000-000000000000'"),
    "uuidv7()": ("uuid", "'00000000-0000-0000-0000-000000000000'"),
    "uuid_v7_or_random()": ("uuid", "'00000000-0000-0000-0000-000000000000'"),
    "outbox_retry_ceiling()": ("integer", "1"),
    "bump_participant_outbox_seq(p text)": ("bigint", "42"),
    "make_interval(secs double precision)": ("interval", "'0'"),
}
SHADOWED_OPERATORS = {
    "=": ("text", "text"),
    "<=": ("timestamptz", "timestamptz"),
    ">": ("timestamptz", "timestamptz"),
    "||": ("text", "text"),
    "+": ("timestamptz", "interval"),
}


def _shadow_sql(schema: str, marker: str) -> list[str]:
    """Shadow functions and operators in ``schema`` that record every call in ``marker``."""
    statements = []
    for signature, (returns, value) in SHADOWED_FUNCTIONS.items():
        name = signature.split("(", 1)[0]
        statements.append(
            f"CREATE FUNCTION {schema}.{signature} RETURNS {returns} LANGUAGE plpgsql"
            f" SECURITY DEFINER AS $f$BEGIN INSERT INTO {marker} VALUES ('{name}');"
            f" RETURN {value or ''}; END$f$"
        )
    for number, (operator, (left, right)) in enumerate(SHADOWED_OPERATORS.items()):
        statements.append(
            f"CREATE FUNCTION {schema}.t_op{number}(a {left}, b {right}) RETURNS boolean"
            f" LANGUAGE plpgsql SECURITY DEFINER AS $f$BEGIN INSERT INTO {marker}"
            f" VALUES ('operator {operator}'); RETURN true; END$f$"
        )
        statements.append(
            f"CREATE OPERATOR {schema}.{operator} (LEFTARG = {left}, RIGHTARG = {right},"
            f" FUNCTION = {schema}.t_op{number})"
        )
    return statements


def _lifecycle(conn: psycopg.Connection[Any], admin: psycopg.Connection[Any]) -> None:
    """enqueue (new and duplicate), claim, complete (retry, then dispatch), repair - with the
    caller's hostile search_path in effect; every answer must be the real one."""
    enqueue = (
        "SELECT outbox_id, sequence_id, state"
        " FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs', %s::jsonb)"
    )
    first = conn.execute(enqueue, ("i-1", "p-1", "k-1", '{"amount": 1}')).fetchone()
    assert first is not None and first[1:] == (1, "PENDING")
    assert conn.execute(enqueue, ("i-1", "p-1", "k-1", '{"amount": 1}')).fetchone() == first
    assert str(first[0]) != "00000000-0000-0000-0000-000000000000"
    with pytest.raises(psycopg.Error) as conflict:
        conn.execute(enqueue, ("i-1", "p-2", "k-1", '{"amount": 1}'))
    assert conflict.value.sqlstate == "P7004"
    claim = "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(10, 'w-1', 60)"
    complete = (
        "SELECT attempt_no, state::text FROM public.complete_outbox_attempt(%s, %s, 'w-1',"
        " %s::public.outbox_attempt_state, p_rail_reference => 'ref-s3')"
    )
    ((outbox_id, token),) = conn.execute(claim).fetchall()
    assert conn.execute(complete, (outbox_id, token, "RETRYABLE")).fetchone() == (1, "RETRYABLE")
    admin.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 s'"
    )
    ((outbox_id, token),) = conn.execute(claim).fetchall()
    admin.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 s'"
    )
    assert conn.execute(
        "SELECT outbox_id, attempt_no FROM public.repair_expired_leases(10, 'w-2')"
    ).fetchall() == [(outbox_id, 2)]
    with pytest.raises(psycopg.Error) as lost:
        conn.execute(complete, (outbox_id, token, "DISPATCHED"))
    assert lost.value.sqlstate == "P7002"
    ((outbox_id, token),) = conn.execute(claim).fetchall()
    assert conn.execute(complete, (outbox_id, token, "DISPATCHED")).fetchone() == (3, "DISPATCHED")
    assert admin.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'DISPATCHED')"
        " FROM public.payment_outbox_attempts"
    ).fetchone() == (3, 1)


def _calls(conn: psycopg.Connection[Any], marker: str) -> list[str]:
    return [row[0] for row in conn.execute(f"SELECT name FROM {marker} ORDER BY 1")]


VULNERABLE = """
CREATE FUNCTION public.t_vulnerable(p text) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
AS $f$BEGIN
    INSERT INTO payment_outbox_attempts (outbox_id, instruction_id, participant_id, sequence_id,
        idempotency_key, rail_type, payload, attempt_no, state)
    VALUES (gen_random_uuid(), btrim(p), 'p', 1, 'k', 'rtgs', '{}', 1, 'FAILED');
    RETURN btrim(p);
END$f$;
ALTER FUNCTION public.t_vulnerable(text) OWNER TO symphony_owner;
REVOKE ALL ON FUNCTION public.t_vulnerable(text) FROM PUBLIC;
"""


@pytest.fixture
def vulnerable(db: psycopg.Connection[Any]) -> Iterator[str]:
    """A SECURITY DEFINER function written the wrong way (no pinned search_path, unqualified
    names): the control group that proves the shadowing attacks are armed."""
    db.execute(VULNERABLE)
    yield "public.t_vulnerable(text)"


def test_shadow_functions_and_operators_in_pg_temp_are_never_called(
    make_login: LoginMaker, db: psycopg.Connection[Any], vulnerable: str
) -> None:
    login = make_login(INGEST, EXECUTOR)
    db.execute(
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
            sql.SQL(vulnerable), sql.Identifier(login.name)
        )
    )
    with login.connect() as conn:
        conn.execute("CREATE TEMP TABLE t_evil_calls (name text)")
        conn.execute("GRANT INSERT ON pg_temp.t_evil_calls TO PUBLIC")
        for statement in _shadow_sql("pg_temp", "pg_temp.t_evil_calls"):
            conn.execute(statement)
        conn.execute("SET search_path = pg_temp, public, pg_catalog")

        _lifecycle(conn, db)
        assert _calls(conn, "pg_temp.t_evil_calls") == [], "a definer function called a shadow"

        # Armed: called explicitly, the shadows run (pg_temp is never searched implicitly for
        # functions and operators, which is PostgreSQL's own protection)...
        conn.execute("SELECT pg_temp.btrim('x'), 'a'::text OPERATOR(pg_temp.=) 'b'::text")
        assert _calls(conn, "pg_temp.t_evil_calls") == ["btrim", "operator ="]
        # ...and a temporary TABLE does capture an unqualified name in a definer function whose
        # search_path is not pinned: the attack the pinned functions resist.
        conn.execute(
            "CREATE TEMP TABLE payment_outbox_attempts (outbox_id uuid, instruction_id text,"
            " participant_id text, sequence_id bigint, idempotency_key text, rail_type text,"
            " payload jsonb, attempt_no int, state text)"
        )
        conn.execute("GRANT INSERT ON pg_temp.payment_outbox_attempts TO PUBLIC")
        conn.execute("SELECT public.t_vulnerable('captured')")
        captured = conn.execute("SELECT instruction_id FROM pg_temp.payment_outbox_attempts")
        assert captured.fetchall() == [("captured",)]


def test_shadows_in_an_attacker_schema_are_never_called(
    make_login: LoginMaker, db: psycopg.Connection[Any], migrated_db: Any, vulnerable: str
) -> None:
    """Worst case: the login was (wrongly) given CREATE on the database, so it owns a schema
    full of shadows and puts it first, before pg_catalog."""
    login = make_login(INGEST, EXECUTOR)
    db.execute(
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(migrated_db.name), sql.Identifier(login.name)
        )
    )
    db.execute(
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
            sql.SQL(vulnerable), sql.Identifier(login.name)
        )
    )
    with login.connect() as conn:
        conn.execute("CREATE SCHEMA t_evil")
        conn.execute("CREATE TABLE t_evil.calls (name text)")
        for statement in _shadow_sql("t_evil", "t_evil.calls"):
            conn.execute(statement)
        conn.execute("GRANT USAGE ON SCHEMA t_evil TO PUBLIC")
        conn.execute("SET search_path = t_evil, pg_catalog, public")

        _lifecycle(conn, db)
        assert _calls(conn, "t_evil.calls") == [], "a definer function called a shadow"

        # Armed: the unpinned control function resolves btrim through the caller's path.
        conn.execute("SELECT public.t_vulnerable('x')")
        assert "btrim" in _calls(conn, "t_evil.calls")
    db.execute("DROP SCHEMA t_evil CASCADE")


def test_default_privileges_a_login_sets_for_itself_reach_nothing_of_symphony(
    make_login: LoginMaker, db: psycopg.Connection[Any]
) -> None:
    """ALTER DEFAULT PRIVILEGES is allowed for one's own future objects - and since a runtime
    login can create nothing, it never reaches a Symphony object or the owner's defaults."""
    before = db.execute(
        "SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text"
        " FROM pg_catalog.pg_default_acl ORDER BY 1, 2"
    ).fetchall()
    login = make_login(CONTROL, READONLY)
    with login.connect() as conn:
        conn.execute("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC")
        conn.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO PUBLIC")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner GRANT ALL ON TABLES TO PUBLIC"
            )
    after = db.execute(
        "SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text"
        " FROM pg_catalog.pg_default_acl WHERE defaclrole::regrole::text <> %s ORDER BY 1, 2",
        (login.name,),
    ).fetchall()
    assert after == before
    assert effective_matrix_problems(db) == []
