"""Roles, the declared privilege matrix and what each runtime role can and cannot do.

The matrix comes from ``symphony_schema.privileges`` (declared once); the live catalog must equal
it in both directions, PUBLIC included. Behavioural checks connect as throw-away non-superuser
logins that are members of the runtime roles: a superuser would pass every check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema import privilege_catalog, privilege_diff, privileges
from symphony_schema.privileges import (
    AUDITOR,
    CONTROL,
    EXECUTOR,
    INGEST,
    OWNER,
    PUBLIC,
    READONLY,
    ROLES,
    TEST_USER,
    ObjectKind,
)

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

DENIED = "42501"  # insufficient_privilege


# --------------------------------------------------------------------------------------------
# The declared matrix against the catalog
# --------------------------------------------------------------------------------------------


def test_live_privileges_equal_the_declared_matrix(db: psycopg.Connection[Any]) -> None:
    expected = privileges.expected_grants()
    actual = privilege_catalog.read_actual_grants(db)

    problems = privilege_diff.diff_grants(expected, actual)
    assert problems == [], (
        "the live grants differ from symphony_schema/privileges.py; change both the revision "
        "(as a new revision) and the declared matrix:\n" + "\n".join(problems)
    )
    assert actual == expected


def test_matrix_covers_public_for_every_object(db: psycopg.Connection[Any]) -> None:
    expected = privileges.expected_grants()
    objects = {(kind, name) for (_, kind, name) in expected}
    assert {(PUBLIC, kind, name) for kind, name in objects} <= set(expected)
    assert all(expected[(PUBLIC, kind, name)] == frozenset() for kind, name in objects)
    assert {name for kind, name in objects if kind is ObjectKind.FUNCTION} == {
        spec.signature for spec in privileges.FUNCTIONS
    }
    assert {name for kind, name in objects if kind is ObjectKind.TABLE} == set(privileges.TABLES)


def test_grant_reader_detects_extra_and_missing_grants(db: psycopg.Connection[Any]) -> None:
    db.execute("GRANT SELECT ON public.payment_outbox_pending TO PUBLIC")
    db.execute(
        "REVOKE EXECUTE ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb,"
        " timestamptz, smallint) FROM symphony_ingest"
    )
    db.execute("GRANT EXECUTE ON FUNCTION public.outbox_retry_ceiling() TO symphony_control")
    db.execute("GRANT SELECT ON public.policy_versions TO symphony_ingest WITH GRANT OPTION")
    db.execute("CREATE FUNCTION public.t_stray() RETURNS int LANGUAGE sql AS 'SELECT 1'")

    problems = privilege_diff.diff_grants(
        privileges.expected_grants(), privilege_catalog.read_actual_grants(db)
    )

    assert problems == [
        "extra: PUBLIC EXECUTE on function public.t_stray()",
        "extra: PUBLIC SELECT on table public.payment_outbox_pending",
        "extra: symphony_control EXECUTE on function public.outbox_retry_ceiling()",
        "missing: symphony_ingest EXECUTE on function "
        "public.enqueue_payment_outbox(text,text,text,text,jsonb,"
        "timestamp with time zone,smallint)",
        "extra: symphony_ingest SELECT WITH GRANT OPTION on table public.policy_versions",
    ]


PLAN_SETTINGS = {"plan_cache_mode=force_generic_plan", "enable_seqscan=off"}


def test_functions_match_their_declared_signatures_and_security(
    db: psycopg.Connection[Any],
) -> None:
    rows = db.execute(
        "SELECT p.oid::regprocedure::text, p.prosecdef, p.proowner::regrole::text,"
        " pg_catalog.pg_get_function_identity_arguments(p.oid), p.proconfig"
        " FROM pg_catalog.pg_proc AS p"
        " WHERE p.pronamespace = 'public'::regnamespace"
    ).fetchall()
    live = {row[0].replace(" ", ""): row[1:] for row in rows}

    for spec in privileges.FUNCTIONS:
        unqualified = spec.signature.removeprefix("public.").replace("public.", "").replace(" ", "")
        assert unqualified in live, f"{spec.signature} is not in the database"
        definer, owner, identity, config = live[unqualified]
        assert definer is spec.security_definer, spec.signature
        assert owner == OWNER, f"{spec.signature} is owned by {owner}, expected {OWNER}"
        assert identity == spec.identity_arguments
        if spec.security_definer:
            # search_path first; besides it only the plan settings of ADR 0041 (revision 0031
            # moved enqueue's from the pin/restore helpers into SET clauses, ADR 0135).
            assert config[:1] == ["search_path=pg_catalog, public, pg_temp"], spec.signature
            assert set(config[1:]) <= PLAN_SETTINGS, spec.signature
    assert len(live) == len(privileges.FUNCTIONS), "undeclared functions in schema public"


def test_no_security_definer_function_is_owned_by_a_superuser(
    db: psycopg.Connection[Any],
) -> None:
    assert (
        db.execute(
            "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc AS p"
            " JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner"
            " WHERE p.prosecdef AND (r.rolsuper OR r.rolname <> 'symphony_owner')"
        ).fetchall()
        == []
    )


def test_every_symphony_object_is_owned_by_symphony_owner(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT c.relname, c.relkind, c.relowner::regrole::text FROM pg_catalog.pg_class AS c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 'S')"
        " AND c.relname NOT IN ('schema_migrations', 'schema_migrations_pkey',"
        "                       'alembic_version', 'alembic_version_pkc')"
        " UNION ALL SELECT t.typname, 'T', t.typowner::regrole::text FROM pg_catalog.pg_type AS t"
        " WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'e'"
    ).fetchall()
    assert {owner for _, _, owner in rows} == {OWNER}, rows
    # Every declared relation but the engine's ledger (owned by the migrating user) and the
    # partitioned attempts ledger (relkind 'p', its partitions in symphony_ledger).
    assert len([r for r in rows if r[1] == "r"]) == len(privileges.TABLES) - 2


def test_role_attributes_match_the_declaration(db: psycopg.Connection[Any]) -> None:
    live = privilege_catalog.read_role_attributes(db)
    assert privilege_diff.diff_role_attributes(live) == []
    assert live[TEST_USER]["rolcanlogin"] is True
    assert not any(live[role.name]["rolcanlogin"] for role in ROLES if role.name != TEST_USER)


def test_migrations_grant_no_role_memberships(db: psycopg.Connection[Any]) -> None:
    names = [role.name for role in ROLES]
    assert (
        db.execute(
            "SELECT m.roleid::regrole::text, m.member::regrole::text"
            " FROM pg_catalog.pg_auth_members AS m"
            " WHERE (m.roleid::regrole::text = ANY(%(n)s) OR m.member::regrole::text = ANY(%(n)s))"
            " AND m.member::regrole::text NOT LIKE 't\\_login\\_%%'",
            {"n": names},
        ).fetchall()
        == []
    )


def test_symphony_auth_role_does_not_exist(db: psycopg.Connection[Any]) -> None:
    assert db.execute("SELECT to_regrole('symphony_auth')").fetchone() == (None,)


def test_owner_default_privileges_keep_future_objects_closed(
    db: psycopg.Connection[Any],
) -> None:
    # The owner may not create in public either; lend it CREATE just for this test database.
    db.execute("GRANT CREATE ON SCHEMA public TO symphony_owner")
    db.execute("SET ROLE symphony_owner")
    db.execute("CREATE FUNCTION public.t_future() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    db.execute("CREATE TABLE public.t_future_table (id int)")
    db.execute("RESET ROLE")

    grants = privilege_catalog.read_actual_grants(db)
    assert grants.get((PUBLIC, ObjectKind.FUNCTION, "public.t_future()"), frozenset()) == set()
    assert grants.get((PUBLIC, ObjectKind.TABLE, "public.t_future_table"), frozenset()) == set()


# --------------------------------------------------------------------------------------------
# CREATE on schema public
# --------------------------------------------------------------------------------------------


def test_nobody_but_the_schema_owner_may_create_in_public(db: psycopg.Connection[Any]) -> None:
    for role in [role.name for role in ROLES]:
        assert db.execute(
            "SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)
        ).fetchone() == (False,), role
    acl = db.execute(
        "SELECT x.privilege_type FROM pg_catalog.pg_namespace AS n,"
        " LATERAL pg_catalog.aclexplode(n.nspacl) AS x"
        " WHERE n.nspname = 'public' AND x.grantee = 0"
    ).fetchall()
    assert acl == [], "PUBLIC must hold nothing on schema public"


@pytest.mark.parametrize("roles", [(), (INGEST,), (EXECUTOR,), (CONTROL,), (READONLY,), (AUDITOR,)])
def test_logins_cannot_create_objects_in_public(
    login: LoginFactory, outbox_for: type[Outbox], roles: tuple[str, ...]
) -> None:
    conn = login(*roles).conn
    with outbox_for(conn).raises(DENIED):
        conn.execute("CREATE TABLE public.t_planted (id int)")
    with outbox_for(conn).raises(DENIED):
        conn.execute("CREATE FUNCTION public.t_planted() RETURNS int LANGUAGE sql AS 'SELECT 1'")


# --------------------------------------------------------------------------------------------
# What each runtime role can do, as a member login
# --------------------------------------------------------------------------------------------

TABLE_PROBES = {
    "select_pending": "SELECT count(*) FROM public.payment_outbox_pending",
    "select_attempts": "SELECT count(*) FROM public.payment_outbox_attempts",
    "select_sequences": "SELECT count(*) FROM public.participant_outbox_sequences",
    "select_policy": "SELECT version FROM public.policy_versions WHERE is_active",
    "select_ledger": "SELECT count(*) FROM public.schema_migrations",
    "insert_policy": (
        "INSERT INTO public.policy_versions (version, status, checksum)"
        " VALUES ('t-probe', 'ACTIVE', repeat('a', 64))"
    ),
    "update_policy": "UPDATE public.policy_versions SET checksum = checksum",
    "delete_policy": "DELETE FROM public.policy_versions",
    "update_pending": "UPDATE public.payment_outbox_pending SET attempt_count = attempt_count",
    "delete_pending": "DELETE FROM public.payment_outbox_pending WHERE false",
    "truncate_pending": "TRUNCATE public.payment_outbox_pending",
    "delete_sequences": "DELETE FROM public.participant_outbox_sequences WHERE false",
    # Issue 20: nobody but the functions writes the queue, the ledger or the allocator.
    "insert_pending": (
        "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id, sequence_id,"
        " idempotency_key, rail_type, payload) VALUES ('t-i', 't-p', 1, 't-k', 'RTGS', '{}')"
    ),
    "insert_attempts": (
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state)"
        " VALUES (gen_random_uuid(), 't-i', 't-p', 1, 't-k', 'RTGS', '{}', 1, 'FAILED')"
    ),
    "update_sequences": "UPDATE public.participant_outbox_sequences SET next_sequence_id = 1",
    "cancel": "SELECT * FROM public.cancel_outbox_job(gen_random_uuid(), 'probe', 'T-1')",
    "redrive": "SELECT * FROM public.redrive_outbox_job(gen_random_uuid(), 'probe', 'T-1')",
    "register_rail": "SELECT * FROM public.register_outbox_rail('PROBE', true)",
    "metrics": "SELECT * FROM public.outbox_metrics()",
    "select_rails": "SELECT count(*) FROM public.outbox_rails, public.outbox_rail_references",
    "rail_code": "SELECT public.outbox_rail_code('rtgs')",
    "payload_numbers": "SELECT public.check_outbox_payload_numbers('{}')",
    "bump": "SELECT public.bump_participant_outbox_seq('p')",
    "retry_ceiling": "SELECT public.outbox_retry_ceiling()",
    "uuid": "SELECT public.uuid_v7_or_random(), public.uuid_strategy()",
    "enqueue": (
        "SELECT * FROM public.enqueue_payment_outbox('t-i', 't-p', 't-k', 'rtgs', '{}'::jsonb)"
    ),
    "claim": "SELECT * FROM public.claim_outbox_batch(1, 't-w', 30)",
    "repair": "SELECT * FROM public.repair_expired_leases(1, 't-w')",
    "complete": (
        "SELECT * FROM public.complete_outbox_attempt(gen_random_uuid(), gen_random_uuid(),"
        " 't-w', 'DISPATCHED')"
    ),
    "rotate_policy": (
        "SELECT * FROM public.rotate_policy_version('t-probe', repeat('a', 64), '1 hour')"
    ),
    "retire_policies": "SELECT * FROM public.retire_expired_policy_versions()",
    "policy_accepted": "SELECT public.policy_version_accepted('t-probe')",
}

#: probe -> SQLSTATE when allowed; "complete" with a random lease fails P7002 *after* the
#: privilege check passed, which is what "allowed" means for it; so does "rotate_policy" with
#: P7103 (no ACTIVE version to rotate from), and cancel and redrive of an unknown job (P7010).
ALLOWED_RESULT = {
    "complete": "P7002",
    "rotate_policy": "P7103",
    "cancel": "P7010",
    "redrive": "P7010",
}

ALLOWED: dict[str, set[str]] = {
    INGEST: {"uuid", "enqueue", "policy_accepted"},
    EXECUTOR: {"uuid", "claim", "repair", "complete", "select_policy", "policy_accepted"},
    CONTROL: {
        "rotate_policy",
        "retire_policies",
        "policy_accepted",
        "uuid",
        "enqueue",
        "claim",
        "repair",
        "complete",
        "select_pending",
        "select_attempts",
        "select_sequences",
        "select_policy",
        "insert_policy",
        "update_policy",
        "cancel",
        "redrive",
        "register_rail",
        "metrics",
        "select_rails",
    },
    READONLY: {
        "uuid",
        "select_pending",
        "select_attempts",
        "select_policy",
        "metrics",
        "select_rails",
    },
    AUDITOR: {
        "uuid",
        "select_pending",
        "select_attempts",
        "select_policy",
        "select_ledger",
        "metrics",
        "select_rails",
    },
}


def _outcome(conn: psycopg.Connection[Any], statement: str) -> str:
    """'ok' or the SQLSTATE; every probe runs in a transaction that is rolled back."""
    try:
        with conn.transaction():
            conn.execute(statement)
            raise psycopg.Rollback
    except psycopg.Error as exc:
        return str(exc.sqlstate)
    return "ok"


@pytest.mark.parametrize("role", [INGEST, EXECUTOR, CONTROL, READONLY, AUDITOR])
def test_runtime_role_can_do_exactly_what_the_matrix_allows(login: LoginFactory, role: str) -> None:
    conn = login(role).conn
    outcomes = {probe: _outcome(conn, statement) for probe, statement in TABLE_PROBES.items()}

    expected = {
        probe: ALLOWED_RESULT.get(probe, "ok") if probe in ALLOWED[role] else DENIED
        for probe in TABLE_PROBES
    }
    assert outcomes == expected


def test_a_login_without_memberships_can_do_nothing(login: LoginFactory) -> None:
    conn = login().conn
    outcomes = {probe: _outcome(conn, statement) for probe, statement in TABLE_PROBES.items()}
    assert set(outcomes.values()) == {DENIED}, outcomes
    # Not even name resolution in public: PUBLIC has no USAGE on the schema.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema public"):
        conn.execute("SELECT public.uuid_strategy()")


def test_test_user_runs_the_outbox_functions_but_reads_no_table(
    pg_server: Any, migrated_db: Any
) -> None:
    with psycopg.connect(
        pg_server.conninfo(migrated_db.name, user=TEST_USER), autocommit=True
    ) as conn:
        outcomes = {probe: _outcome(conn, stmt) for probe, stmt in TABLE_PROBES.items()}
    allowed = {"uuid", "enqueue", "claim", "repair", "complete"}
    assert outcomes == {
        probe: ALLOWED_RESULT.get(probe, "ok") if probe in allowed else DENIED
        for probe in TABLE_PROBES
    }


def test_membership_without_inherit_needs_set_role(
    login: LoginFactory, outbox_for: type[Outbox], outbox: Outbox
) -> None:
    outbox.enqueue("instr-1")
    conn = login(EXECUTOR, inherit=False).conn
    api = outbox_for(conn)

    with api.raises(DENIED):
        api.claim(1, "worker-1")
    conn.execute("SET ROLE symphony_executor")
    (row,) = api.claim(1, "worker-1")
    assert api.complete(row.outbox_id, row.lease_token, "worker-1", "DISPATCHED") == (
        1,
        "DISPATCHED",
    )


def test_executor_login_runs_the_whole_job_lifecycle_through_functions(
    login: LoginFactory, outbox_for: type[Outbox], outbox: Outbox
) -> None:
    ingest = outbox_for(login(INGEST).conn)
    executor = outbox_for(login(EXECUTOR).conn)

    outbox_id, _, _, state = ingest.enqueue("instr-1")
    assert state == "PENDING"
    (row,) = executor.claim(1, "worker-1")
    assert executor.complete(row.outbox_id, row.lease_token, "worker-1", "RETRYABLE") == (
        1,
        "RETRYABLE",
    )
    outbox.make_due()
    (row,) = executor.claim(1, "worker-1", lease_seconds=1)
    outbox.expire_leases()
    assert executor.repair(10, "repairer") == [(outbox_id, 2)]
    (row,) = executor.claim(1, "worker-2")
    assert executor.complete(row.outbox_id, row.lease_token, "worker-2", "DISPATCHED") == (
        3,
        "DISPATCHED",
    )
    assert ingest.enqueue("instr-1")[0::3] == (outbox_id, "DISPATCHED")


@pytest.mark.parametrize("role", [INGEST, EXECUTOR, CONTROL, READONLY, AUDITOR])
def test_no_runtime_role_can_become_the_owner(
    login: LoginFactory, outbox_for: type[Outbox], role: str
) -> None:
    conn = login(role).conn
    with outbox_for(conn).raises(DENIED):
        conn.execute("SET ROLE symphony_owner")
    assert conn.execute(
        "SELECT pg_has_role(current_user, 'symphony_owner', 'MEMBER')"
    ).fetchone() == (False,)


def test_roles_are_reenforced_when_0003_runs_again(migrated_db: Any, pg_server: Any) -> None:
    """Another database (or an operator) may have changed a role's attributes: running 0003
    again restores them. Everything happens in one transaction that is rolled back, so the
    cluster-wide roles are untouched for other tests."""
    from symphony_schema import project_root

    revision = (project_root() / "alembic" / "versions" / "0003_roles.sql").read_text()
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute("ALTER ROLE symphony_readonly CREATEDB CREATEROLE BYPASSRLS LOGIN")
        conn.execute("ALTER ROLE test_user NOLOGIN REPLICATION")
        conn.execute("ALTER ROLE symphony_owner SUPERUSER")
        assert privilege_diff.diff_role_attributes(
            privilege_catalog.read_role_attributes(conn)
        ) == [
            "role symphony_owner: rolsuper is True, expected False",
            "role symphony_readonly: rolcanlogin is True, expected False",
            "role symphony_readonly: rolcreatedb is True, expected False",
            "role symphony_readonly: rolcreaterole is True, expected False",
            "role symphony_readonly: rolbypassrls is True, expected False",
            "role test_user: rolcanlogin is False, expected True",
            "role test_user: rolreplication is True, expected False",
        ]

        conn.execute(revision)
        conn.execute(revision)  # idempotent

        assert (
            privilege_diff.diff_role_attributes(privilege_catalog.read_role_attributes(conn)) == []
        )
        conn.rollback()
