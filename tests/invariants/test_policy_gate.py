"""Sabotage tests of the policy-rotation gate checks (INV-050 to INV-053, revision 0016): on a
migrated database with a rotation history the gate passes; each sabotage breaks one rule and the
gate fails with that rule's invariant id (and only the policy ids listed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.conftest import Database
from tests.invariants.conftest import failed_ids, failure, gate_on

pytestmark = pytest.mark.integration

TABLE = "public.policy_versions"
POLICY_IDS = {"INV-050", "INV-051", "INV-052", "INV-053"}


def _rotate(db: psycopg.Connection[Any], version: str, digit: str, grace: str) -> None:
    db.execute(
        "SELECT public.rotate_policy_version(%s, %s, %s::interval)", (version, digit * 64, grace)
    )


GUARDS = (
    "trg_guard_policy_version_identity",
    "trg_guard_policy_version_lifecycle",
    "trg_guard_policy_version_truncate",
    "trg_policy_versions_keep_one_active",
)


@contextmanager
def guards_off(db: psycopg.Connection[Any]) -> Iterator[None]:
    """Tampering: the guards switched off for one transaction, enabled ALWAYS again after."""
    with db.transaction():
        for name in GUARDS:
            db.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {name}")
        yield
        for name in GUARDS:
            db.execute(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {name}")


@pytest.fixture
def history(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """p1 RETIRED, p2 GRACE (one hour), p3 ACTIVE."""
    db.execute(
        f"INSERT INTO {TABLE} (version, status, checksum) VALUES ('p1', 'ACTIVE', repeat('1', 64))"
    )
    _rotate(db, "p2", "2", "1 millisecond")
    time.sleep(0.01)
    _rotate(db, "p3", "3", "1 hour")
    db.execute("SELECT public.retire_expired_policy_versions()")
    return db


def _policy_failures(conninfo: str) -> set[str]:
    return failed_ids(gate_on(conninfo)) & POLICY_IDS


def test_a_rotation_history_passes(history: psycopg.Connection[Any], migrated_db: Database) -> None:
    statuses = history.execute(
        f"SELECT version, status::text FROM {TABLE} ORDER BY created_at"
    ).fetchall()
    assert statuses == [("p1", "RETIRED"), ("p2", "GRACE"), ("p3", "ACTIVE")]
    assert _policy_failures(migrated_db.conninfo) == set()


# -- INV-050 ---------------------------------------------------------------------------------------


def test_one_active_fails_when_the_constraint_trigger_is_dropped(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    history.execute(f"DROP TRIGGER trg_policy_versions_keep_one_active ON {TABLE}")
    result = failure(gate_on(migrated_db.conninfo), "INV-050")
    assert "no deferred constraint trigger AFTER UPDATE" in result.details[0]
    assert _policy_failures(migrated_db.conninfo) == {"INV-050"}


def test_one_active_fails_when_the_constraint_trigger_is_origin_only(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    history.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER trg_policy_versions_keep_one_active")
    result = failure(gate_on(migrated_db.conninfo), "INV-050")
    assert "enabled=O" in result.details[0]


def test_one_active_fails_without_an_active_version(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    with guards_off(history):  # written around the guards: the one way to get there
        history.execute(
            f"UPDATE {TABLE} SET status = 'GRACE', grace_expires_at = now() + interval '1 hour' "
            "WHERE status = 'ACTIVE'"
        )
    result = failure(gate_on(migrated_db.conninfo), "INV-050")
    assert "and 0 ACTIVE ones" in result.details[0]


def test_one_active_fails_when_an_older_version_is_active(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    with guards_off(history):
        history.execute(
            f"UPDATE {TABLE} SET status = 'GRACE', grace_expires_at = now() + interval '1 hour' "
            "WHERE version = 'p3'"
        )
        history.execute(
            f"UPDATE {TABLE} SET status = 'ACTIVE', grace_expires_at = NULL WHERE version = 'p2'"
        )
    result = failure(gate_on(migrated_db.conninfo), "INV-050")
    assert "is not the one created last" in result.details[0]


# -- INV-051 ---------------------------------------------------------------------------------------


def test_grace_expiry_fails_on_an_expired_grace_version_not_retired(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    _rotate(history, "p4", "4", "1 millisecond")
    time.sleep(0.01)
    result = failure(gate_on(migrated_db.conninfo), "INV-051")
    assert any(
        d.startswith("GRACE policy version 'p3' expired at") and "retire-expired" in d
        for d in result.details
    ), result.details
    history.execute("SELECT public.retire_expired_policy_versions()")
    assert "INV-051" not in _policy_failures(migrated_db.conninfo)


def test_grace_expiry_fails_when_accepted_answers_wrongly(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    history.execute(
        "CREATE OR REPLACE FUNCTION public.policy_version_accepted(p_version text) "
        "RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER "
        "SET search_path = pg_catalog, public, pg_temp AS $$ SELECT p_version IS NOT NULL $$"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-051")
    assert any("answers True for RETIRED version 'p1'" in d for d in result.details), result.details


# -- INV-052 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sabotage", "complaint"),
    [
        (
            f"DROP TRIGGER trg_guard_policy_version_lifecycle ON {TABLE}",
            "no BEFORE DELETE trigger",
        ),
        (
            f"DROP TRIGGER trg_guard_policy_version_truncate ON {TABLE}",
            "no BEFORE TRUNCATE trigger",
        ),
        (
            f"ALTER TABLE {TABLE} DISABLE TRIGGER trg_guard_policy_version_lifecycle",
            "is disabled, not enabled ALWAYS",
        ),
        (
            f"ALTER TABLE {TABLE} ENABLE TRIGGER trg_guard_policy_version_truncate",
            "is origin, not enabled ALWAYS",
        ),
    ],
)
def test_immutability_triggers_fail_when_a_guard_is_gone(
    history: psycopg.Connection[Any], migrated_db: Database, sabotage: str, complaint: str
) -> None:
    history.execute(sabotage)
    result = failure(gate_on(migrated_db.conninfo), "INV-052")
    assert any(complaint in d for d in result.details), result.details
    assert _policy_failures(migrated_db.conninfo) == {"INV-052"}


def test_immutability_triggers_fail_when_a_guard_gets_a_when_clause(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    with history.transaction():
        history.execute(f"DROP TRIGGER trg_guard_policy_version_lifecycle ON {TABLE}")
        history.execute(
            "CREATE TRIGGER trg_guard_policy_version_lifecycle BEFORE INSERT OR UPDATE OR DELETE "
            f"ON {TABLE} FOR EACH ROW WHEN (current_user <> 'postgres') "
            "EXECUTE FUNCTION public.guard_policy_version_lifecycle()"
        )
        history.execute(
            f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER trg_guard_policy_version_lifecycle"
        )
    result = failure(gate_on(migrated_db.conninfo), "INV-052")
    assert any("has a WHEN clause" in d for d in result.details), result.details


# -- INV-053 ---------------------------------------------------------------------------------------


def test_checksum_immutable_fails_when_the_identity_guard_is_dropped(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    history.execute(f"DROP TRIGGER trg_guard_policy_version_identity ON {TABLE}")
    result = failure(gate_on(migrated_db.conninfo), "INV-053")
    assert result.details[0].startswith("no BEFORE UPDATE trigger on public.policy_versions calls")
    assert _policy_failures(migrated_db.conninfo) == {"INV-053"}


def test_checksum_immutable_fails_when_the_guard_watches_only_some_columns(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    with history.transaction():
        history.execute(f"DROP TRIGGER trg_guard_policy_version_identity ON {TABLE}")
        history.execute(
            "CREATE TRIGGER trg_guard_policy_version_identity BEFORE UPDATE OF version "
            f"ON {TABLE} FOR EACH ROW EXECUTE FUNCTION public.guard_policy_version_identity()"
        )
        history.execute(
            f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER trg_guard_policy_version_identity"
        )
    # Now the checksum can be rewritten: the gate must say so.
    history.execute(f"UPDATE {TABLE} SET checksum = repeat('9', 64) WHERE version = 'p3'")
    result = failure(gate_on(migrated_db.conninfo), "INV-053")
    assert "fires only for listed columns" in result.details[0]


def test_checksum_immutable_fails_on_a_malformed_checksum(
    history: psycopg.Connection[Any], migrated_db: Database
) -> None:
    with guards_off(history):
        history.execute(
            f"ALTER TABLE {TABLE} DROP CONSTRAINT ck_policy_versions_checksum_sha256_hex"
        )
        history.execute(f"UPDATE {TABLE} SET checksum = 'sha256:x' WHERE version = 'p1'")
    result = failure(gate_on(migrated_db.conninfo), "INV-053")
    assert "has checksum 'sha256:x', not a lowercase hex SHA-256" in result.details[0]
