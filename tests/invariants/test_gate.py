"""The SQL gate on a real migrated database: untouched it passes every check; each sabotage below
breaks exactly one rule of docs/contract/schema.md and the gate fails with that rule's invariant id.

Database-local sabotage is committed on the test's own fresh database (``db``). Roles and role
memberships are cluster-wide, so those sabotages run inside a transaction on the connection the
gate then uses, and are rolled back: other databases (and other test sessions) never see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import errors

from symphony_schema.invariants import gate
from tests.conftest import Database, PgServer
from tests.invariants.conftest import annotated_gate, failed_ids, failure, gate_on

pytestmark = pytest.mark.integration

ATTEMPTS = "public.payment_outbox_attempts"
CLAIM = "public.claim_outbox_batch(integer, text, integer, text[])"


@contextmanager
def uncommitted(conninfo: str) -> Iterator[psycopg.Connection[object]]:
    """A connection in an open transaction that is always rolled back."""
    conn = psycopg.connect(conninfo)
    try:
        yield conn  # type: ignore[misc]
    finally:
        conn.rollback()
        conn.close()


def test_untouched_migrated_database_passes_every_check(migrated_db: Database) -> None:
    results = gate_on(migrated_db.conninfo)
    assert [r.ref for r in results] == [f"gate:{name}" for name in gate.CHECKS]
    assert failed_ids(results) == set(), [r.details for r in results if r.failed]
    assert all(r.invariant_id for r in results), "every gate check reports its invariant id"


def test_several_sabotages_are_all_reported(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT SELECT ON public.payment_outbox_pending TO PUBLIC")
    db.execute(f"ALTER FUNCTION {CLAIM} RESET search_path")
    db.execute(f"ALTER TABLE {ATTEMPTS} DISABLE TRIGGER trg_deny_outbox_attempts_mutation")
    db.execute(
        "ALTER TABLE public.payment_outbox_pending ADD CONSTRAINT ck_sabotage "
        "CHECK (attempt_count < 100) NOT VALID"
    )
    _insert_attempt(db, "DISPATCHING")
    db.execute(
        "UPDATE public.schema_migrations SET checksum = 'sha256:' || repeat('0', 64) "
        "WHERE version = '0002_outbox_functions'"
    )
    results = gate_on(migrated_db.conninfo)
    assert {"INV-003", "INV-007", "INV-009", "INV-013", "INV-014", "INV-015"} <= failed_ids(results)
    assert len(results) == len(gate.CHECKS), "a failing check must not stop the others"


def test_a_check_that_cannot_run_fails_and_the_others_still_run(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"DROP TABLE {ATTEMPTS}")
    results = gate_on(migrated_db.conninfo)
    crashed = failure(results, "INV-014")
    assert "could not run" in crashed.details[0]
    assert "INV-001" in failed_ids(results)
    assert len(results) == len(gate.CHECKS)


def test_gate_session_is_read_only(migrated_db: Database) -> None:
    with gate.connect(migrated_db.conninfo) as conn, pytest.raises(errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TABLE public.gate_wrote_this (x int)")


# -- INV-001 --------------------------------------------------------------------------------------


def test_required_objects_fails_when_a_table_is_dropped(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("DROP TABLE public.participant_outbox_sequences")
    result = failure(gate_on(migrated_db.conninfo), "INV-001")
    assert any("public.participant_outbox_sequences is missing" in d for d in result.details)


def test_required_objects_fails_when_a_function_is_dropped(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("DROP FUNCTION public.outbox_retry_ceiling()")
    result = failure(gate_on(migrated_db.conninfo), "INV-001")
    assert any("public.outbox_retry_ceiling() is missing" in d for d in result.details)


# -- INV-002 --------------------------------------------------------------------------------------


def test_boot_query_fails_when_is_active_is_gone(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("ALTER TABLE public.policy_versions DROP COLUMN is_active")
    result = failure(gate_on(migrated_db.conninfo), "INV-002")
    assert "SQLSTATE 42703" in result.details[0]


def test_boot_query_fails_when_the_executor_cannot_read_policies(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("REVOKE SELECT ON public.policy_versions FROM symphony_executor")
    result = failure(gate_on(migrated_db.conninfo), "INV-002")
    assert "SQLSTATE 42501" in result.details[0]


# -- INV-003 / INV-004 / INV-005 ------------------------------------------------------------------


def test_public_table_privileges_fails_on_a_table_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT SELECT ON public.payment_outbox_pending TO PUBLIC")
    result = failure(gate_on(migrated_db.conninfo), "INV-003")
    assert result.details == (
        "PUBLIC has SELECT on public.payment_outbox_pending; REVOKE SELECT ON "
        "public.payment_outbox_pending FROM PUBLIC (in a new revision)",
    )


def test_public_table_privileges_fails_on_a_column_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT SELECT (payload) ON public.payment_outbox_attempts TO PUBLIC")
    result = failure(gate_on(migrated_db.conninfo), "INV-003")
    assert "PUBLIC has SELECT on public.payment_outbox_attempts (payload)" in result.details[0]


def test_public_function_execute_fails_on_a_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT EXECUTE ON FUNCTION public.bump_participant_outbox_seq(text) TO PUBLIC")
    result = failure(gate_on(migrated_db.conninfo), "INV-004")
    assert "PUBLIC can EXECUTE public.bump_participant_outbox_seq(text)" in result.details[0]


def test_public_function_execute_fails_on_a_default_acl(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    # Created by the superuser: no default privileges apply, the ACL stays NULL = PUBLIC EXECUTE.
    db.execute("CREATE FUNCTION public.forgotten() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    result = failure(gate_on(migrated_db.conninfo), "INV-004")
    assert "public.forgotten() (default ACL: never revoked)" in result.details[0]


def test_schema_public_create_fails_for_public(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    result = failure(gate_on(migrated_db.conninfo), "INV-005")
    assert result.details[0].startswith("PUBLIC has CREATE on schema public")


def test_schema_public_create_fails_for_a_symphony_role(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT CREATE ON SCHEMA public TO symphony_readonly")
    result = failure(gate_on(migrated_db.conninfo), "INV-005")
    assert result.details[0].startswith("symphony_readonly can CREATE in schema public")


# -- INV-006 --------------------------------------------------------------------------------------


def test_privilege_matrix_fails_on_an_extra_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT DELETE ON public.policy_versions TO symphony_control")
    result = failure(gate_on(migrated_db.conninfo), "INV-006")
    assert any(
        d.startswith("extra: symphony_control DELETE on table public.policy_versions")
        for d in result.details
    )


def test_privilege_matrix_fails_on_a_missing_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "REVOKE EXECUTE ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, "
        "timestamptz, smallint) FROM symphony_ingest"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-006")
    assert any(d.startswith("missing: symphony_ingest EXECUTE") for d in result.details)


def test_privilege_matrix_fails_on_a_column_grant_to_a_role(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    """Regression (issue 11 item 5): column-level grants live in pg_attribute.attacl, not in the
    table's ACL; the matrix read table ACLs only and passed this."""
    db.execute("GRANT UPDATE (attempt_count) ON public.payment_outbox_pending TO symphony_executor")
    result = failure(gate_on(migrated_db.conninfo), "INV-006")
    assert any(
        d.startswith(
            "extra: symphony_executor UPDATE on column public.payment_outbox_pending.attempt_count"
        )
        for d in result.details
    ), result.details


# -- INV-040 / INV-041: memberships and effective privileges ---------------------------------------


def test_a_membership_between_symphony_roles_fails_the_gate(migrated_db: Database) -> None:
    """Regression (issue 11 item 5): the gate passed 18/18 while a read-only login could forge
    ledger rows through symphony_control (since 0019, issue 20, control has no DML left; what
    the membership would hand over is the cancellation of payments)."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT symphony_control TO symphony_readonly")
        results = annotated_gate(conn)
    details = [d for r in results if r.failed for d in r.details]
    assert any("symphony_readonly" in d and "cancel_outbox_job" in d for d in details), details


def test_role_memberships_fails_when_a_symphony_role_joins_another(
    migrated_db: Database,
) -> None:
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT symphony_control TO symphony_readonly")
        result = failure(annotated_gate(conn), "INV-040")
    assert list(result.details) == [
        "symphony_readonly is a member of symphony_control: a Symphony role may be a member of "
        "no role (it would gain symphony_control's privileges beyond the matrix); "
        "REVOKE symphony_control FROM symphony_readonly"
    ]


def test_a_membership_through_an_intermediate_group_is_found(migrated_db: Database) -> None:
    """readonly -> t_gate_group -> control: the chain is followed and both ends named."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("CREATE ROLE t_gate_group NOLOGIN")
        conn.execute("GRANT symphony_control TO t_gate_group")
        conn.execute("GRANT t_gate_group TO symphony_readonly WITH INHERIT FALSE, SET TRUE")
        results = annotated_gate(conn)
    memberships = failure(results, "INV-040")
    assert any(
        d.startswith("symphony_readonly is a member of t_gate_group") for d in memberships.details
    ), memberships.details
    effective = failure(results, "INV-041")
    assert any(
        d.startswith(
            "symphony_readonly can effectively EXECUTE on function "
            "public.cancel_outbox_job(uuid,text,text) (through symphony_control, t_gate_group)"
        )
        for d in effective.details
    ), effective.details


def test_role_memberships_fails_when_test_user_is_granted_a_runtime_role(
    migrated_db: Database,
) -> None:
    """What ``grant-login test_user --roles symphony_control`` did (it now refuses)."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT symphony_control TO test_user")
        results = annotated_gate(conn)
    memberships = failure(results, "INV-040")
    assert any(
        d.startswith("test_user is a member of symphony_control") for d in memberships.details
    )
    effective = failure(results, "INV-041")
    assert any(
        d.startswith(
            "test_user can effectively EXECUTE on function "
            "public.cancel_outbox_job(uuid,text,text) (through symphony_control)"
        )
        for d in effective.details
    ), effective.details


def test_role_memberships_fails_when_a_login_holds_the_owner(migrated_db: Database) -> None:
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute('CREATE ROLE "t_Gate login" LOGIN')
        conn.execute('GRANT symphony_owner TO "t_Gate login"')
        result = failure(annotated_gate(conn), "INV-040")
    assert any(
        d.startswith("t_Gate login is a member of symphony_owner: only the migrating user")
        and d.endswith('; REVOKE symphony_owner FROM "t_Gate login"')
        for d in result.details
    ), result.details


def test_role_memberships_fails_on_a_runtime_role_with_admin_option(
    migrated_db: Database,
) -> None:
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("CREATE ROLE t_gate_login LOGIN")
        conn.execute("GRANT symphony_readonly TO t_gate_login WITH ADMIN TRUE")
        result = failure(annotated_gate(conn), "INV-040")
    assert result.details[0].startswith("t_gate_login holds symphony_readonly WITH ADMIN OPTION")


def test_a_login_holding_runtime_roles_passes(migrated_db: Database) -> None:
    """The allowed shape: a service login with runtime roles, INHERIT or SET only."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("CREATE ROLE t_gate_login LOGIN")
        conn.execute("GRANT symphony_executor TO t_gate_login WITH INHERIT TRUE, SET TRUE")
        conn.execute("GRANT symphony_control TO t_gate_login WITH INHERIT FALSE, SET TRUE")
        results = annotated_gate(conn)
    assert failed_ids(results) == set(), [r.details for r in results if r.failed]


def test_effective_privileges_fails_through_a_set_only_membership(
    migrated_db: Database,
) -> None:
    """has_table_privilege ignores a NOINHERIT membership, SET ROLE does not."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT symphony_control TO symphony_auditor WITH INHERIT FALSE, SET TRUE")
        result = failure(annotated_gate(conn), "INV-041")
    assert any(
        d.startswith(
            "symphony_auditor can effectively EXECUTE on function "
            "public.cancel_outbox_job(uuid,text,text) (through symphony_control)"
        )
        for d in result.details
    ), result.details


def test_effective_privileges_fails_through_a_predefined_role(migrated_db: Database) -> None:
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT pg_write_all_data TO symphony_readonly")
        result = failure(annotated_gate(conn), "INV-041")
    assert any(
        d.startswith(
            "symphony_readonly can effectively INSERT, UPDATE, DELETE on table "
            "public.payment_outbox_attempts (through pg_write_all_data)"
        )
        for d in result.details
    ), result.details


def test_effective_privileges_fails_for_a_login_beyond_its_runtime_roles(
    migrated_db: Database,
) -> None:
    """A service login holding symphony_readonly that also inherits a group with a column grant:
    the group is not a Symphony role, the login's rights exceed what its runtime roles allow."""
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("CREATE ROLE t_gate_login LOGIN")
        conn.execute("CREATE ROLE t_gate_group NOLOGIN")
        conn.execute("GRANT symphony_readonly TO t_gate_login")
        conn.execute("GRANT t_gate_group TO t_gate_login")
        conn.execute(
            "GRANT UPDATE (attempt_count) ON public.payment_outbox_pending TO t_gate_group"
        )
        result = failure(annotated_gate(conn), "INV-041")
    assert list(result.details) == [
        "t_gate_login can effectively UPDATE on column public.payment_outbox_pending.attempt_count "
        "(through t_gate_group), beyond the matrix; revoke the membership that leads there"
    ]


def test_effective_privileges_fails_on_a_column_grant_to_a_role(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("GRANT UPDATE (attempt_count) ON public.payment_outbox_pending TO symphony_executor")
    result = failure(gate_on(migrated_db.conninfo), "INV-041")
    assert list(result.details) == [
        "symphony_executor can effectively UPDATE on column "
        "public.payment_outbox_pending.attempt_count (by its own grant), beyond the matrix; "
        "revoke the grant (in a new revision)"
    ]


# -- INV-007 / INV-008 ----------------------------------------------------------------------------


def test_definer_search_path_fails_when_reset(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"ALTER FUNCTION {CLAIM} RESET search_path")
    result = failure(gate_on(migrated_db.conninfo), "INV-007")
    assert (
        "public.claim_outbox_batch(integer,text,integer,text[]) does not pin search_path"
        in result.details[0]
    )


def test_definer_search_path_fails_when_pg_temp_is_not_last(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"ALTER FUNCTION {CLAIM} SET search_path = pg_temp, pg_catalog, public")
    result = failure(gate_on(migrated_db.conninfo), "INV-007")
    assert "pg_temp is not last" in result.details[0]


def test_definer_owner_fails_for_a_superuser_owner(
    db: psycopg.Connection[object], migrated_db: Database, pg_server: PgServer
) -> None:
    db.execute(f"ALTER FUNCTION {CLAIM} OWNER TO {pg_server.user}")
    result = failure(gate_on(migrated_db.conninfo), "INV-008")
    assert "a superuser" in result.details[0]


# -- INV-009 / INV-010 ----------------------------------------------------------------------------


def test_append_only_triggers_fails_when_disabled(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"ALTER TABLE {ATTEMPTS} DISABLE TRIGGER trg_deny_outbox_attempts_mutation")
    result = failure(gate_on(migrated_db.conninfo), "INV-009")
    assert "trg_deny_outbox_attempts_mutation (rejects UPDATE) is disabled" in result.details[0]


def test_append_only_triggers_fails_when_dropped(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"DROP TRIGGER trg_deny_outbox_attempts_truncate ON {ATTEMPTS}")
    result = failure(gate_on(migrated_db.conninfo), "INV-009")
    assert result.details[0].startswith("no BEFORE TRUNCATE trigger")


def test_append_only_triggers_fails_when_origin_only(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    # ENABLE (not ENABLE ALWAYS): skipped under session_replication_role = replica.
    db.execute(f"ALTER TABLE {ATTEMPTS} ENABLE TRIGGER trg_deny_outbox_attempts_mutation")
    result = failure(gate_on(migrated_db.conninfo), "INV-009")
    assert "is origin, not enabled ALWAYS" in result.details[0]


def test_option_a_fails_on_an_update_grant(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(f"GRANT UPDATE ON {ATTEMPTS} TO symphony_control")
    result = failure(gate_on(migrated_db.conninfo), "INV-010")
    assert result.details[0].startswith("symphony_control has UPDATE on")


def test_option_a_fails_through_owner_membership(migrated_db: Database) -> None:
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("GRANT symphony_owner TO symphony_control")
        result = failure(annotated_gate(conn), "INV-010")
    assert any("is a member of symphony_owner" in d for d in result.details)


# -- INV-011 --------------------------------------------------------------------------------------


def test_role_attributes_fails_on_createdb(migrated_db: Database) -> None:
    try:
        with uncommitted(migrated_db.conninfo) as conn:
            conn.execute("ALTER ROLE symphony_readonly CREATEDB")
            result = failure(annotated_gate(conn), "INV-011")
    finally:
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolcreatedb FROM pg_roles WHERE rolname = 'symphony_readonly'"
            ).fetchone()
            if row and row[0]:  # only if the rollback above somehow did not happen
                conn.execute("ALTER ROLE symphony_readonly NOCREATEDB")
    assert result.details[0].startswith("role symphony_readonly: rolcreatedb is True")


# -- INV-012 / INV-013 / INV-014 / INV-015 --------------------------------------------------------


def test_no_invalid_index_fails_after_a_failed_concurrent_build(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute("INSERT INTO public.participant_outbox_sequences VALUES ('p1', 5), ('p2', 5)")
    with pytest.raises(errors.UniqueViolation):
        db.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY ix_sabotage "
            "ON public.participant_outbox_sequences (next_sequence_id)"
        )
    result = failure(gate_on(migrated_db.conninfo), "INV-012")
    assert result.details[0].startswith(
        "index public.ix_sabotage on public.participant_outbox_sequences is INVALID"
    )


def test_no_not_valid_constraint_fails_on_a_not_valid_check(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "ALTER TABLE public.payment_outbox_pending ADD CONSTRAINT ck_sabotage "
        "CHECK (attempt_count < 100) NOT VALID"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-013")
    assert result.details[0].startswith(
        "constraint ck_sabotage on public.payment_outbox_pending is NOT VALID"
    )


def _insert_attempt(conn: psycopg.Connection[object], state: str) -> None:
    conn.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id, "
        "sequence_id, idempotency_key, rail_type, payload, attempt_no, state) VALUES "
        "(gen_random_uuid(), 'instr-1', 'participant-1', 1, 'key-1', 'rail', '{}', 1, %s)",
        (state,),
    )


def test_no_dispatching_rows_fails_on_a_dispatching_attempt(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    _insert_attempt(db, "DISPATCHED")
    assert "INV-014" not in failed_ids(gate_on(migrated_db.conninfo))
    _insert_attempt(db, "DISPATCHING")
    result = failure(gate_on(migrated_db.conninfo), "INV-014")
    assert result.details[0].startswith("1 attempt(s) in state DISPATCHING")


def test_ledger_matches_files_fails_on_a_changed_checksum(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "UPDATE public.schema_migrations SET checksum = 'sha256:' || repeat('0', 64) "
        "WHERE version = '0003_roles'"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-015")
    assert "applied revision 0003_roles was edited" in result.details[0]


# -- INV-016 / INV-017 / INV-018 ------------------------------------------------------------------


def test_object_ownership_fails_when_a_table_changes_owner(
    db: psycopg.Connection[object], migrated_db: Database, pg_server: PgServer
) -> None:
    superuser = pg_server.user
    db.execute(f"ALTER TABLE public.participant_outbox_sequences OWNER TO {superuser}")
    result = failure(gate_on(migrated_db.conninfo), "INV-016")
    assert result.details == (
        f"table public.participant_outbox_sequences is owned by {superuser}; "
        "ALTER TABLE public.participant_outbox_sequences OWNER TO symphony_owner",
    )


def test_default_privileges_fails_when_public_gets_execute(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-017")
    assert "EXECUTE" in result.details[0] and "symphony_owner" in result.details[0]


def test_uuid_strategy_fails_when_the_generator_falls_back(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "CREATE OR REPLACE FUNCTION public.uuid_v7_or_random() RETURNS uuid "
        "LANGUAGE sql VOLATILE PARALLEL SAFE AS $$SELECT pg_catalog.gen_random_uuid()$$"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-018")
    assert result.details[0].startswith("uuid_v7_or_random() generates version-4 UUIDs")


def test_no_advisory_locks_fails_when_a_function_takes_one(
    db: psycopg.Connection[object], migrated_db: Database
) -> None:
    db.execute(
        "CREATE FUNCTION public.t_locks(p bigint) RETURNS void LANGUAGE sql"
        " AS $$SELECT pg_catalog.PG_TRY_ADVISORY_XACT_LOCK(p)$$"
    )
    db.execute("REVOKE ALL ON FUNCTION public.t_locks(bigint) FROM PUBLIC")
    result = failure(gate_on(migrated_db.conninfo), "INV-019")
    assert list(result.details) == [
        "public.t_locks(bigint) calls an advisory-lock function, which any login can block;"
        " serialise on rows or tables no runtime role may lock instead (in a new revision)"
    ]


def test_gate_in_a_caller_transaction_runs_every_check_as_the_caller(
    migrated_db: Database,
) -> None:
    # The transactional mode the cluster-wide sabotages use: a failing check, or the boot query's
    # role switch, must not leak into the checks after it.
    with uncommitted(migrated_db.conninfo) as conn:
        conn.execute("ALTER TABLE public.policy_versions DROP COLUMN is_active")
        results = annotated_gate(conn)
        user = conn.execute("SELECT current_user, session_user").fetchone()
    assert failed_ids(results) == {"INV-002"}
    assert user is not None and user[0] == user[1]
