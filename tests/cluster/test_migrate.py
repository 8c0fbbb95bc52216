"""The migration engine, live drift and the gate on a Citus coordinator."""

from __future__ import annotations

from typing import Any

import psycopg

from symphony_schema import cluster
from symphony_schema.baseline import catalog
from symphony_schema.migration import deploy_lock
from tests.cluster.conftest import ALEMBIC, CLI, run


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
