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
    # Nothing is distributed at head (ADR 0145): INV-058 and INV-060 say so instead of passing.
    for check in ("gate:distribution-as-declared", "gate:ledger-shards-append-only"):
        assert any(
            line.startswith("SKIP") and check in line and "not applicable: no table" in line
            for line in out.splitlines()
        ), out


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


def test_an_executor_login_claims_for_a_participant_on_the_cluster(
    migrated_cluster: cluster.Cluster,
) -> None:
    # Revision 0029's claim through a login that is only a symphony_executor member, created on
    # the coordinator (Citus propagates the role and the membership to the workers).
    coordinator = migrated_cluster.coordinator
    login = "cluster_claim_executor"
    with psycopg.connect(coordinator.conninfo(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        admin.execute(f"GRANT symphony_executor TO {login} WITH INHERIT TRUE")
        try:
            admin.execute(
                "SELECT public.enqueue_payment_outbox('c-1', 'cluster-p', 'c-k1', 'RTGS', '{}')"
            )
            admin.execute(
                "SELECT public.enqueue_payment_outbox('c-2', 'cluster-p', 'c-k2', 'RTGS', '{}')"
            )
            with psycopg.connect(coordinator.conninfo(user=login), autocommit=True) as executor:
                claimed = executor.execute(
                    "SELECT outbox_id, lease_token, instruction_id FROM"
                    " public.claim_outbox_batch_for_participant('cluster-p', 10, 'w', 30)"
                ).fetchall()
                assert [row[2] for row in claimed] == ["c-1"]
                # RTGS returns references (revision 0023 of issue 20): completion records one.
                done = executor.execute(
                    "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w', 'DISPATCHED',"
                    " p_rail_reference => 'cluster-ref-1')",
                    (claimed[0][0], claimed[0][1]),
                ).fetchone()
                assert done == (1, "DISPATCHED")
                nxt = executor.execute(
                    "SELECT instruction_id FROM"
                    " public.claim_outbox_batch_for_participant('cluster-p', 10, 'w', 30)"
                ).fetchall()
                assert nxt == [("c-2",)]
            for worker in migrated_cluster.workers:
                # The membership the executor claims through is on every worker too.
                assert _scalar(
                    worker.conninfo(),
                    f"SELECT pg_catalog.pg_has_role('{login}', 'symphony_executor', 'USAGE')",
                ), worker.name
        finally:
            admin.execute(f"DROP ROLE {login}")


def test_a_stopped_worker_fails_the_gate_cleanly_and_the_outbox_keeps_working(
    migrated_cluster: cluster.Cluster,
) -> None:
    # Nothing is distributed yet (ADR 0145): the outbox lives on the coordinator, so a worker
    # crash must not stop it; the gate cannot read that worker and says so in one line.
    coordinator = migrated_cluster.coordinator
    worker = migrated_cluster.workers[-1]
    participant = "crash-p"
    embedded._run_binary("pg_ctl", ["-m", "immediate", "-w", "stop"], worker.pgdata)
    try:
        with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
            for i in range(3):
                conn.execute(
                    "SELECT public.enqueue_payment_outbox(%s, %s, %s, 'RTGS', '{}')",
                    (f"crash-{i}", participant, f"crash-k{i}"),
                )
            for _ in range(3):
                outbox_id, token = conn.execute(
                    "SELECT outbox_id, lease_token FROM"
                    " public.claim_outbox_batch_for_participant(%s, 10, 'w', 30)",
                    (participant,),
                ).fetchone() or (None, None)
                assert outbox_id is not None
                conn.execute(
                    "SELECT public.complete_outbox_attempt(%s, %s, 'w', 'DISPATCHED',"
                    " p_rail_reference => %s)",
                    (outbox_id, token, f"crash-ref-{outbox_id}"),
                )
        code, out = _gate(migrated_cluster)
        assert code == 1, out
        assert f"worker 127.0.0.1:{worker.port}: could not be read:" in out
        assert "Traceback" not in out
    finally:
        cluster._start_node(worker)
    assert _gate(migrated_cluster)[0] == 0
    with psycopg.connect(coordinator.conninfo()) as conn:
        outcomes = conn.execute(
            "SELECT instruction_id, count(*) FROM public.payment_outbox_attempts"
            " WHERE participant_id = %s AND state = 'DISPATCHED' GROUP BY 1 ORDER BY 1",
            (participant,),
        ).fetchall()
        queued = conn.execute(
            "SELECT count(*) FROM public.payment_outbox_pending WHERE participant_id = %s",
            (participant,),
        ).fetchone()
    assert outcomes == [("crash-0", 1), ("crash-1", 1), ("crash-2", 1)]
    assert queued == (0,)
