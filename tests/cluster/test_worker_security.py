"""Security on every node of the cluster (issue 16, ADRs 0126 and 0145): the owner's default
privileges replayed on the workers (revision 0030), INV-059's gate check with a sabotage on one
worker, and the single-participant claim of revision 0029 on the coordinator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from symphony_schema import cluster, embedded
from tests.cluster.conftest import CLI, run

pytestmark = pytest.mark.citus

DEFAULT_ACL = (
    "SELECT COALESCE(pg_catalog.string_agg(pg_catalog.pg_get_userbyid(defaclrole) || ' '"
    " || defaclobjtype::text || ' ' || defaclacl::text, ', ' ORDER BY defaclobjtype), '')"
    " FROM pg_catalog.pg_default_acl"
)
CLAIM_SIGNATURE = "public.claim_outbox_batch(integer, text, integer, text[])"


def _scalar(conninfo: str, query: str) -> Any:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(query).fetchone()
    return None if row is None else row[0]


@contextmanager
def _on_worker_only(node: cluster.Node, do: str, undo: str) -> Iterator[None]:
    """Change one worker's catalog by hand, without Citus propagating it; undone afterwards."""
    with psycopg.connect(node.conninfo(), autocommit=True) as conn:
        conn.execute("SET citus.enable_ddl_propagation TO off")
        conn.execute(do)
        try:
            yield
        finally:
            conn.execute(undo)


def _gate(migrated_cluster: cluster.Cluster) -> tuple[int, str]:
    result = run(
        CLI,
        "invariants",
        "gate",
        "--url",
        migrated_cluster.coordinator.url(),
    )
    return result.returncode, result.stdout + result.stderr


def test_the_owners_default_privileges_are_on_every_worker(
    migrated_cluster: cluster.Cluster,
) -> None:
    # Citus does not propagate ALTER DEFAULT PRIVILEGES (ADR 0128): revision 0030 replays them.
    expected = _scalar(migrated_cluster.coordinator.conninfo(), DEFAULT_ACL)
    assert "symphony_owner f {symphony_owner=X/symphony_owner}" in expected
    for worker in migrated_cluster.workers:
        assert _scalar(worker.conninfo(), DEFAULT_ACL) == expected, worker.name


def test_the_gate_checks_security_on_every_worker(migrated_cluster: cluster.Cluster) -> None:
    code, out = _gate(migrated_cluster)
    assert code == 0, out
    assert any(
        line.startswith("PASS") and "gate:worker-security" in line for line in out.splitlines()
    ), out
    # The session cluster is distributed at head (ADR 0149): INV-058 and INV-060 apply.
    for check in ("gate:distribution-as-declared", "gate:ledger-shards-append-only"):
        assert any(line.startswith("PASS") and check in line for line in out.splitlines()), out


def test_a_grant_made_on_one_worker_fails_the_gate(migrated_cluster: cluster.Cluster) -> None:
    worker = migrated_cluster.workers[0]
    with _on_worker_only(
        worker,
        f"GRANT EXECUTE ON FUNCTION {CLAIM_SIGNATURE} TO PUBLIC",
        f"REVOKE EXECUTE ON FUNCTION {CLAIM_SIGNATURE} FROM PUBLIC",
    ):
        code, out = _gate(migrated_cluster)
    assert code == 1, out
    assert "FAILED: INV-059" in out
    assert f"worker 127.0.0.1:{worker.port}: security differs from the coordinator" in out
    assert "function public.claim_outbox_batch(pg_catalog.int4," in out
    other = migrated_cluster.workers[1]
    assert f"worker 127.0.0.1:{other.port}" not in out
    assert _gate(migrated_cluster)[0] == 0


def test_default_privileges_opened_on_one_worker_fail_the_gate(
    migrated_cluster: cluster.Cluster,
) -> None:
    worker = migrated_cluster.workers[-1]
    with _on_worker_only(
        worker,
        "ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC",
        "ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
    ):
        code, out = _gate(migrated_cluster)
    assert code == 1, out
    assert f"worker 127.0.0.1:{worker.port}" in out
    assert "default privileges of symphony_owner on f in every schema" in out


def _queue(conn: psycopg.Connection[Any], participant: str, jobs: int, prefix: str) -> None:
    """Jobs queued by the superuser through the guards (revision 0035): today's enqueue does not
    plan on a distributed queue (ADR 0149; its participant-first restatement will)."""
    for n in range(1, jobs + 1):
        conn.execute(
            "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
            " sequence_id, idempotency_key, rail_type, payload)"
            " VALUES (%s, %s, %s, %s, 'RTGS', '{}')",
            (f"{prefix}-{n}", participant, n, f"{prefix}-k{n}"),
        )


def _participant_on(conn: psycopg.Connection[Any], port: int, prefix: str) -> str:
    for i in range(500):
        participant = f"{prefix}-{i}"
        row = conn.execute(
            "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
            " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column("
            "'public.payment_outbox_pending', %s::text)",
            (participant,),
        ).fetchone()
        if row is not None and int(row[0]) == port:
            return participant
    raise AssertionError(f"no participant on port {port}")


def test_an_executor_login_claims_for_a_participant_on_the_cluster(
    migrated_cluster: cluster.Cluster,
) -> None:
    # Revision 0029's claim through a login that is only a symphony_executor member, created on
    # the coordinator (Citus propagates the role and the membership to the workers), delegated
    # to the worker holding the participant's shard.
    coordinator = migrated_cluster.coordinator
    login = "cluster_claim_executor"
    with psycopg.connect(coordinator.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT symphony_executor TO {login} WITH INHERIT TRUE")
        try:
            _queue(admin, "cluster-p", 2, "c")
            with psycopg.connect(coordinator.conninfo(user=login), autocommit=True) as executor:
                claimed = executor.execute(
                    "SELECT outbox_id, lease_token, instruction_id FROM"
                    " public.claim_outbox_batch_for_participant('cluster-p', 10, 'w', 30)"
                ).fetchall()
                assert [row[2] for row in claimed] == ["c-1"]
            for worker in migrated_cluster.workers:
                # The membership the executor claims through is on every worker too.
                assert _scalar(
                    worker.conninfo(),
                    f"SELECT pg_catalog.pg_has_role('{login}', 'symphony_executor', 'USAGE')",
                ), worker.name
        finally:
            admin.execute(f"DROP ROLE {login}")


def test_a_stopped_worker_fails_the_gate_cleanly_and_the_other_workers_participants_are_served(
    migrated_cluster: cluster.Cluster,
) -> None:
    # The outbox is distributed (ADR 0149): while a worker is down, the gate cannot read it and
    # says so in one line, its participants' claims fail with a connection SQLSTATE, and the
    # other worker's participants are served; after it is back nothing was lost.
    coordinator = migrated_cluster.coordinator
    worker = migrated_cluster.workers[-1]
    other = migrated_cluster.workers[0]
    claim = "SELECT instruction_id FROM public.claim_outbox_batch_for_participant(%s, 10, 'w', 30)"
    with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
        down = _participant_on(conn, worker.port, "crash-down")
        up = _participant_on(conn, other.port, "crash-up")
        _queue(conn, down, 1, down)
        _queue(conn, up, 1, up)
    embedded._run_binary("pg_ctl", ["-m", "immediate", "-w", "stop"], worker.pgdata)
    try:
        code, out = _gate(migrated_cluster)
        assert code == 1, out
        assert f"worker 127.0.0.1:{worker.port}: could not be read:" in out
        assert "Traceback" not in out
        with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as failed:
                conn.execute(claim, (down,))
            assert str(failed.value.sqlstate).startswith("08"), failed.value
            assert conn.execute(claim, (up,)).fetchall() == [(f"{up}-1",)]
    finally:
        cluster._start_node(worker)
    assert _gate(migrated_cluster)[0] == 0
    with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
        assert conn.execute(claim, (down,)).fetchall() == [(f"{down}-1",)]
