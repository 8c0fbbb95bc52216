"""The migration engine, live drift and the gate on a Citus coordinator."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema import cluster
from symphony_schema.baseline import catalog
from symphony_schema.migration import deploy_lock
from tests.cluster.conftest import ALEMBIC, CLI, run

pytestmark = pytest.mark.citus


def _scalar(conninfo: str, query: str) -> Any:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query).fetchone()
    return None if row is None else row[0]


def test_alembic_upgrade_migrates_the_coordinator_and_keeps_the_ledger_there(
    migrated_cluster: cluster.Cluster,
) -> None:
    coordinator = migrated_cluster.coordinator.conninfo()
    versions = _scalar(coordinator, "SELECT count(*) FROM public.schema_migrations")
    assert versions >= 12
    for worker in migrated_cluster.workers:
        # The ledger and the tables are the coordinator's (nothing is distributed yet).
        assert _scalar(worker.conninfo(), "SELECT to_regclass('public.schema_migrations')") is None
    again = run(ALEMBIC, "-x", f"url={migrated_cluster.coordinator.url()}", "upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert _scalar(coordinator, "SELECT count(*) FROM public.schema_migrations") == versions


def test_roles_and_their_attributes_are_the_same_on_every_node(
    migrated_cluster: cluster.Cluster,
) -> None:
    declared = catalog.declared_role_names()
    with catalog.connect(migrated_cluster.coordinator.conninfo()) as conn:
        expected = catalog.read_roles(conn, declared)
    assert {role.name for role in expected} >= set(declared) - {"test_user"}
    for worker in migrated_cluster.workers:
        with catalog.connect(worker.conninfo()) as conn:
            assert catalog.read_roles(conn, declared) == expected, worker.name


def test_the_deploy_lock_on_the_coordinator_holds_for_the_cluster(
    migrated_cluster: cluster.Cluster,
) -> None:
    holder = psycopg.connect(migrated_cluster.coordinator.conninfo())
    try:
        holder.execute(deploy_lock.DEPLOY_LOCK_SQL)
        result = run(
            ALEMBIC,
            "-x",
            f"url={migrated_cluster.coordinator.url()}",
            "-x",
            "deploy_lock_wait=0",
            "upgrade",
            "head",
        )
    finally:
        holder.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "deploy_lock_wait=0: not waiting" in out and "55P03" in out


def test_live_drift_on_the_coordinator_ignores_only_what_the_citus_extension_owns(
    migrated_cluster: cluster.Cluster,
) -> None:
    url = migrated_cluster.coordinator.url()
    clean = run(CLI, "drift", "--url", url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # A hand-made object inside Citus's own schema is not Citus's: drift still sees it.
    with psycopg.connect(migrated_cluster.coordinator.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION citus_internal.symphony_planted() RETURNS int "
            "LANGUAGE sql AS 'SELECT 1'"
        )
        try:
            planted = run(CLI, "drift", "--url", url)
        finally:
            conn.execute("DROP FUNCTION citus_internal.symphony_planted()")
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert "+citus_internal.symphony_planted()" in planted.stdout
    assert "citus_internal.add_shard_metadata" not in planted.stdout
    # A grant on a Citus function to a Symphony role is not what the extension installed.
    grant = "EXECUTE ON FUNCTION citus_internal.database_command(text)"
    with psycopg.connect(migrated_cluster.coordinator.conninfo(), autocommit=True) as conn:
        conn.execute(f"GRANT {grant} TO symphony_ingest")
        try:
            granted = run(CLI, "drift", "--url", url)
        finally:
            conn.execute(f"REVOKE {grant} FROM symphony_ingest")
    assert granted.returncode == 1, granted.stdout + granted.stderr
    assert (
        "+function citus_internal.database_command(text): symphony_ingest EXECUTE" in granted.stdout
    )
    assert "drift ACLs: FAILED" in granted.stdout and "drift functions: ok" in granted.stdout


def test_the_invariants_gate_passes_on_the_coordinator(migrated_cluster: cluster.Cluster) -> None:
    result = run(CLI, "invariants", "gate", "--url", migrated_cluster.coordinator.url())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_seed_and_boot_check_on_the_coordinator(migrated_cluster: cluster.Cluster) -> None:
    url = migrated_cluster.coordinator.url()
    seeded = run(CLI, "seed-policy", "--file", "policy/dev-policy.json", "--url", url)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    boot = run(CLI, "boot-check", "--url", url)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert boot.stdout.startswith("boot-check OK")


@pytest.mark.parametrize("inherit", [[], ["--no-inherit"]])
def test_a_login_granted_on_the_coordinator_has_its_memberships_on_every_worker(
    migrated_cluster: cluster.Cluster, inherit: list[str]
) -> None:
    # Citus 14 re-deparsed grant-login's GRANT ... WITH ADMIN FALSE, INHERIT .., SET TRUE into
    # a syntax error for the workers (ADR 0128).
    login = "cluster_test_executor"
    with psycopg.connect(migrated_cluster.coordinator.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN")
    try:
        granted = run(
            CLI,
            "grant-login",
            login,
            "--roles",
            "symphony_executor,symphony_readonly",
            *inherit,
            "--url",
            migrated_cluster.coordinator.url(),
        )
        assert granted.returncode == 0, granted.stdout + granted.stderr
        with catalog.connect(migrated_cluster.coordinator.conninfo()) as conn:
            roles = catalog.read_roles(conn, [*catalog.declared_role_names(), login])
            expected = catalog.read_memberships(conn, roles)
        assert any(m.member == login for m in expected)
        for worker in migrated_cluster.workers:
            with catalog.connect(worker.conninfo()) as conn:
                assert catalog.read_roles(conn, [r.name for r in roles]) == roles, worker.name
                assert catalog.read_memberships(conn, roles) == expected, worker.name
    finally:
        with psycopg.connect(migrated_cluster.coordinator.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {login}")
