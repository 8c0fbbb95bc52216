"""Red team of live drift, boot-check and the gate (issue 11 item 5 and 8, issue 18 item 2).

Each tamper is what an operator with a superuser session, or a revision slipped past review,
would do to a production database whose ledger is intact. Live drift (``symphony-schema
drift``) must name it and exit 1; the security-relevant ones must also make ``boot-check``
refuse the database.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema import policy
from symphony_schema.cli import main
from symphony_schema.invariants import gate
from tests.conftest import Database
from tests.integration.conftest import LoginFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def seeded(migrated_db: Database) -> Database:
    policy.seed_policy_file(migrated_db.conninfo, policy.DEFAULT_POLICY_FILE)
    return migrated_db


def drift(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["drift", "--url", url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def failed_gate_checks(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [r.ref for r in gate.run_gate(conn) if str(r.status).lower() != "pass"]


def test_a_column_grant_on_the_key_table_is_named_by_live_drift_and_refused_at_boot(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``GRANT UPDATE (created_at) ON payment_outbox_idempotency_keys TO symphony_ingest`` lets
    an ingest login ``SELECT ... FOR UPDATE`` a key row and so block that payment's enqueue (the
    hole ADR 0062 closed). The gate saw column grants; live drift and boot-check did not."""
    db.execute(
        "GRANT UPDATE (created_at) ON public.payment_outbox_idempotency_keys TO symphony_ingest"
    )
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert (
        "+column public.payment_outbox_idempotency_keys.created_at: symphony_ingest UPDATE" in out
    ), out
    reasons = policy.boot_check(seeded.conninfo)
    assert any("live drift in ACLs" in r and "symphony_ingest UPDATE" in r for r in reasons), (
        reasons
    )
    assert "gate:privilege-matrix" in failed_gate_checks(seeded.conninfo)


def test_a_column_grant_on_the_ledger_is_named_by_live_drift(
    seeded: Database, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute("GRANT UPDATE (state) ON public.payment_outbox_attempts TO symphony_control")
    code, out = drift(seeded.url, capsys)
    assert code == 1, out
    assert "+column public.payment_outbox_attempts.state: symphony_control UPDATE" in out, out


@pytest.mark.parametrize(
    "statements",
    [
        # A SQL-standard body: prosrc is empty, the call lives in prosqlbody.
        [
            "CREATE FUNCTION public.hold(p_key bigint) RETURNS void LANGUAGE sql "
            "BEGIN ATOMIC SELECT pg_catalog.pg_advisory_xact_lock(p_key); END"
        ],
        # A Unicode-escaped identifier: the name never appears in the body's text.
        [
            "CREATE FUNCTION public.hold(p_key bigint) RETURNS void LANGUAGE plpgsql AS $$ "
            'BEGIN PERFORM pg_catalog.U&"pg\\005fadvisory_xact_lock"(p_key); END $$'
        ],
        # A wrapper in another schema, called from public.
        [
            "CREATE SCHEMA helpers",
            "CREATE FUNCTION helpers.wait_for(p_key bigint) RETURNS void LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM pg_catalog.pg_advisory_xact_lock(p_key); END $$",
            "CREATE FUNCTION public.hold(p_key bigint) RETURNS void LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM helpers.wait_for(p_key); END $$",
        ],
    ],
    ids=["begin-atomic", "unicode-escape", "other-schema"],
)
def test_an_advisory_lock_is_found_however_the_function_spells_it(
    migrated_db: Database, db: psycopg.Connection[Any], statements: list[str]
) -> None:
    """INV-019 (``gate:no-advisory-locks``) read ``prosrc`` of functions in ``public`` with a
    regular expression (ADR 0062). Each variant here takes an advisory lock that any login can
    hold, and each passed the gate."""
    for statement in statements:
        db.execute(statement)
    db.execute("SELECT public.hold(1)")  # the function really calls the lock function
    assert "gate:no-advisory-locks" in failed_gate_checks(migrated_db.conninfo)


def gate_details(conninfo: str, ref: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        (result,) = [r for r in gate.run_gate(conn) if r.ref == ref]
        return list(result.details)


@pytest.mark.parametrize(
    "predefined", ["pg_execute_server_program", "pg_signal_backend", "pg_write_server_files"]
)
def test_a_runtime_login_in_a_predefined_role_fails_the_gate(
    migrated_db: Database,
    db: psycopg.Connection[Any],
    login: LoginFactory,
    predefined: str,
) -> None:
    """A service login that holds ``symphony_executor`` and, through a group, a predefined role
    passed the gate: ``pg_execute_server_program`` runs OS commands as the server (``COPY ...
    FROM PROGRAM``), the ``*_server_files`` roles read and write the data directory, and
    ``pg_signal_backend`` can terminate the deploy lock's session and every worker. None of them
    grants a privilege on an object, so ``effective-privileges`` saw nothing, and the membership
    involves no Symphony role, so ``role-memberships`` saw nothing either."""
    worker = login("symphony_executor")
    group = f"{worker.name}_ops"
    db.execute(f"CREATE ROLE {group} NOLOGIN")
    try:
        db.execute(f"GRANT {predefined} TO {group}")
        db.execute(f"GRANT {group} TO {worker.name}")
        details = gate_details(migrated_db.conninfo, "gate:role-memberships")
        assert any(worker.name in line and predefined in line for line in details), details
        assert not any(line.startswith(f"{group} ") for line in details), "only role holders"
    finally:
        db.execute(f"DROP ROLE {group}")
