"""What ADR 0145 rests on, kept true by tests: in a second database of the session cluster, the
queue and the allocator distributed by participant_id (the future distribution revision's first
statements) and revision 0029's claim distributed with force_delegation.

* The delegated claim runs on the participant's node as the NOLOGIN owner (local shards only)
  and the FIFO trigger fires on the shards.
* A function that is not delegated reaches the workers as ``symphony_owner`` and fails: the
  reason the distribution revision waits for delegated bodies of every outbox function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from symphony_schema import cluster
from tests.cluster.conftest import ALEMBIC, run

pytestmark = pytest.mark.citus

DBNAME = "symphony_dist_probe"
LOGIN = "cluster_probe_executor"
#: The queue's triggers that read coordinator-local tables (ADR 0145): the write guards (the key
#: table, the archive record) and the work notification of 0026 (it locks the rail's row).
GUARDS = (
    "trg_guard_outbox_pending_write",
    "trg_guard_archived_outbox_id",
    "trg_notify_outbox_work",
)

DISTRIBUTE = """
BEGIN;
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
SET LOCAL citus.enable_unsafe_triggers TO on;
SELECT create_distributed_table('public.participant_outbox_sequences', 'participant_id',
                                colocate_with => 'none');
SELECT create_distributed_table('public.payment_outbox_pending', 'participant_id',
                                colocate_with => 'public.participant_outbox_sequences');
SELECT create_distributed_function(
    'public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])',
    'p_participant_id', colocate_with => 'payment_outbox_pending', force_delegation => true);
COMMIT;
"""


@pytest.fixture(scope="module")
def probe(migrated_cluster: cluster.Cluster) -> Iterator[cluster.Cluster]:
    for node in migrated_cluster.nodes:
        cluster._prepare(node, DBNAME)
    cluster._register(migrated_cluster, DBNAME)
    url = migrated_cluster.coordinator.url(DBNAME)
    result = run(ALEMBIC, "-x", f"url={url}", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(migrated_cluster.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute(DISTRIBUTE)
        conn.execute(f"CREATE ROLE {LOGIN} LOGIN")
        conn.execute(f"GRANT symphony_executor TO {LOGIN} WITH INHERIT TRUE")
    try:
        yield migrated_cluster
    finally:
        with psycopg.connect(
            migrated_cluster.coordinator.conninfo(DBNAME), autocommit=True
        ) as conn:
            conn.execute(f"DROP ROLE {LOGIN}")


def _participants_per_worker(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """One participant id whose shard is on each worker (by port)."""
    found: dict[int, str] = {}
    for i in range(200):
        participant = f"probe-{i}"
        row = conn.execute(
            "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
            " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column("
            "'public.payment_outbox_pending', %s::text)",
            (participant,),
        ).fetchone()
        assert row is not None
        found.setdefault(int(row[0]), participant)
    return found


def _queue(conn: psycopg.Connection[Any], participant: str, jobs: int) -> None:
    # As the superuser: today's enqueue does not plan on a distributed queue (ADR 0145), and the
    # pending-write guards and the work notification read the key table, the archive record and
    # the rails, which stay on the coordinator.
    conn.execute("SET citus.enable_unsafe_triggers TO on")
    for trigger in GUARDS:
        conn.execute(f"ALTER TABLE public.payment_outbox_pending DISABLE TRIGGER {trigger}")
    try:
        for seq in range(1, jobs + 1):
            conn.execute(
                "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
                " sequence_id, idempotency_key, rail_type, payload)"
                " VALUES (%s, %s, %s, %s, 'RTGS', '{}')",
                (f"{participant}-{seq}", participant, seq, f"k-{participant}-{seq}"),
            )
    finally:
        for trigger in GUARDS:
            conn.execute(
                f"ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER {trigger}"
            )


def test_a_delegated_claim_runs_on_each_participants_worker(probe: cluster.Cluster) -> None:
    coordinator = probe.coordinator
    with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
        placed = _participants_per_worker(admin)
        assert set(placed) == {worker.port for worker in probe.workers}
        for participant in placed.values():
            _queue(admin, participant, 2)
        # trg_place_outbox_head fired on the shards: only the first job of each is its head.
        heads = admin.execute(
            "SELECT participant_id, sequence_id FROM public.payment_outbox_pending"
            " WHERE is_head ORDER BY 1"
        ).fetchall()
        assert heads == sorted((participant, 1) for participant in placed.values())
    with psycopg.connect(coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True) as executor:
        for participant in placed.values():
            claimed = executor.execute(
                "SELECT instruction_id, lease_token FROM"
                " public.claim_outbox_batch_for_participant(%s, 10, 'w', 30)",
                (participant,),
            ).fetchall()
            assert [row[0] for row in claimed] == [f"{participant}-1"]
            assert claimed[0][1] is not None
    for port, participant in placed.items():
        worker = next(w for w in probe.workers if w.port == port)
        with psycopg.connect(worker.conninfo(DBNAME)) as conn:
            leased = conn.execute(
                "SELECT count(*) FROM public.payment_outbox_pending"
                " WHERE participant_id = %s AND lease_token IS NOT NULL",
                (participant,),
            ).fetchone()
        assert leased == (1,), worker.name


def test_a_function_that_is_not_delegated_cannot_reach_a_worker_as_the_owner(
    probe: cluster.Cluster,
) -> None:
    coordinator = probe.coordinator
    with (
        psycopg.connect(coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True) as executor,
        pytest.raises(psycopg.Error, match='role "symphony_owner" is not permitted to log in'),
    ):
        # complete_outbox_attempt is not distributed (it has no participant argument): its
        # body runs on the coordinator as symphony_owner, and its DELETE by outbox_id goes to
        # every shard through connections Citus opens as the current user.
        executor.execute(
            "SELECT * FROM public.complete_outbox_attempt(gen_random_uuid(), gen_random_uuid(),"
            " 'w', 'DISPATCHED')"
        )
