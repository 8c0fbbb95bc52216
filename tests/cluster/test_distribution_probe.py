"""What ADR 0145 rests on, kept true by tests: in a second database of the session cluster,
migrated to the revision before the distribution revision (0036 distributes the session
cluster's own database: tests/cluster/test_distributed.py), the queue and the allocator
distributed by hand and revision 0029's claim distributed with force_delegation.

* The delegated claim runs on the participant's node as the NOLOGIN owner (local shards only)
  and the FIFO trigger fires on the shards.
* A function that is not delegated reaches the workers as ``symphony_owner`` and fails: the
  reason the distribution revision waits for delegated bodies of every outbox function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.sql
import pytest

from symphony_schema import cluster, embedded
from symphony_schema.invariants import gate_cluster
from tests.cluster.conftest import ALEMBIC, owner_logs_in, run

pytestmark = pytest.mark.citus

DBNAME = "symphony_dist_probe"
#: The revision before the distribution revision: the probe distributes by hand.
BEFORE_DISTRIBUTION = cluster.revision_before_distribution()
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
-- The queue's keys widen to hold participant_id (a unique key of a distributed table must), as
-- the distribution revision will do (ADR 0163); plain indexes keep the look-ups by outbox_id and
-- by key.
ALTER TABLE public.payment_outbox_pending
    DROP CONSTRAINT pk_payment_outbox_pending,
    ADD CONSTRAINT pk_payment_outbox_pending PRIMARY KEY (participant_id, outbox_id),
    DROP CONSTRAINT uq_payment_outbox_pending_instruction_idempotency,
    ADD CONSTRAINT uq_payment_outbox_pending_instruction_idempotency
        UNIQUE (participant_id, instruction_id, idempotency_key);
CREATE INDEX ix_payment_outbox_pending_outbox_id ON public.payment_outbox_pending (outbox_id);
CREATE INDEX ix_payment_outbox_pending_key
    ON public.payment_outbox_pending (instruction_id, idempotency_key);
SELECT create_distributed_table('public.participant_outbox_sequences', 'participant_id',
                                colocate_with => 'none');
-- Read by the claim (the retry ceiling): a reference table, read locally on every node (ADR 0146).
SELECT create_reference_table('public.outbox_settings');
SELECT create_distributed_table('public.payment_outbox_pending', 'participant_id',
                                colocate_with => 'public.participant_outbox_sequences');
SELECT create_distributed_table('public.payment_outbox_attempts', 'participant_id',
                                colocate_with => 'public.participant_outbox_sequences');
SELECT create_distributed_table('public.outbox_rail_references', 'rail_reference',
                                colocate_with => 'none');
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
    # Revision 0003 makes the owner NOLOGIN (cluster-wide): the probe's tests start from there.
    result = run(ALEMBIC, "-x", f"url={url}", "upgrade", BEFORE_DISTRIBUTION)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        with psycopg.connect(
            migrated_cluster.coordinator.conninfo(DBNAME), autocommit=True
        ) as conn:
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
    finally:
        # The session cluster's distributed database needs its owner logging in again.
        owner_logs_in(migrated_cluster)


def _participants_per_worker(
    conn: psycopg.Connection[Any], prefix: str = "probe"
) -> dict[int, str]:
    """One participant id whose shard is on each worker (by port)."""
    found: dict[int, str] = {}
    for i in range(200):
        participant = f"{prefix}-{i}"
        row = conn.execute(
            "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
            " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column("
            "'public.payment_outbox_pending', %s::text)",
            (participant,),
        ).fetchone()
        assert row is not None
        found.setdefault(int(row[0]), participant)
    return found


def _queue(conn: psycopg.Connection[Any], participant: str, jobs: int, prefix: str = "") -> None:
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
                (
                    f"{prefix}-{participant}-{seq}" if prefix else f"{participant}-{seq}",
                    participant,
                    seq + (100 if prefix else 0),
                    f"k-{prefix}-{participant}-{seq}",
                ),
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
        pytest.raises(psycopg.Error, match=NOLOGIN),
    ):
        # complete_outbox_attempt is not distributed (it has no participant argument): its
        # body runs on the coordinator as symphony_owner, and its DELETE by outbox_id goes to
        # every shard through connections Citus opens as the current user.
        executor.execute(
            "SELECT * FROM public.complete_outbox_attempt(gen_random_uuid(), gen_random_uuid(),"
            " 'w', 'DISPATCHED')"
        )


# ------------------------------------------------------------------------------------------------
# ADR 0146: on a cluster the owner logs in between the nodes, and only there
# ------------------------------------------------------------------------------------------------

#: Citus's own message when it connects as a role without LOGIN (or, where no pg_dist_authinfo
#: row gives it the password, the scram line of pg_hba.conf that ``cluster owner-login`` wrote).
NOLOGIN = (
    r'role "symphony_owner" is not permitted to log in'
    r"|symphony_owner@127\.0\.0\.1:[0-9]+ failed .*no password supplied"
)


@contextmanager
def _owner_logs_in_between_nodes(probe: cluster.Cluster) -> Iterator[None]:
    """ADR 0146 on the session cluster (``cluster owner-login``: LOGIN, a new random password
    that only ``pg_dist_authinfo`` holds on every node of every Citus database, every node's
    ``pg_hba.conf`` asking the owner for it before its ``trust`` lines), then NOLOGIN again as
    the probe's migration left it (password, pg_hba.conf line and pg_dist_authinfo kept)."""
    cluster.owner_login(probe)
    try:
        yield
    finally:
        with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
            conn.execute("ALTER ROLE symphony_owner NOLOGIN")


@contextmanager
def _owner_may_create_in_public(admin: psycopg.Connection[Any]) -> Iterator[None]:
    """The rebalancing window of ADR 0146 (propagated to the workers by Citus)."""
    admin.execute("GRANT CREATE ON SCHEMA public TO symphony_owner")
    try:
        yield
    finally:
        admin.execute("REVOKE CREATE ON SCHEMA public FROM symphony_owner")


def _node_of(conn: psycopg.Connection[Any], table: str, value: str) -> int:
    row = conn.execute(
        "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
        " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column(%s, %s::text)",
        (table, value),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_moving_a_shard_needs_the_owner_to_log_in(probe: cluster.Cluster) -> None:
    """Rebalancing (citus_rebalance_start moves shards like this) connects to the target node as
    the table's owner (shard_transfer.c: TableOwner; citus issue 7719): with the NOLOGIN owner a
    cluster cannot grow, with the owner logging in between the nodes it can."""
    source, target = probe.workers[0], probe.workers[1]
    move = (
        "SELECT pg_catalog.citus_move_shard_placement(%s, %s, %s, %s, %s,"
        " shard_transfer_mode => 'block_writes')"
    )
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as admin:
        row = admin.execute(
            "SELECT s.shardid FROM pg_catalog.citus_shards AS s"
            " WHERE s.table_name = 'public.payment_outbox_pending'::regclass AND s.nodeport = %s"
            " ORDER BY s.shardid LIMIT 1",
            (source.port,),
        ).fetchone()
        assert row is not None
        shard = int(row[0])
        args = (shard, cluster.HOST, source.port, cluster.HOST, target.port)
        with pytest.raises(psycopg.Error, match=NOLOGIN):
            admin.execute(move, args)
        with _owner_logs_in_between_nodes(probe):
            # Only Citus knows the password: a connection as the owner without it is refused.
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(source.conninfo(DBNAME, user="symphony_owner")).close()
            # The owner creates the shard on the target in schema public: it may create there
            # only inside the rebalancing window, as revisions hand it objects (ADR 0146).
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema public"):
                admin.execute(move, args)
            with _owner_may_create_in_public(admin):
                admin.execute(move, args)
                placed = admin.execute(
                    "SELECT s.nodeport FROM pg_catalog.citus_shards AS s WHERE s.shardid = %s",
                    (shard,),
                ).fetchall()
                assert placed == [(target.port,)]
                # Moved back, so the other probe tests see the hash layout again.
                admin.execute(move, (shard, cluster.HOST, target.port, cluster.HOST, source.port))


#: A completion-like body (ADR 0146's proof): it finishes the participant's job on the
#: participant's node (its shard, delegated) and records the rail's reference in
#: outbox_rail_references, distributed by the reference (unique per rail across participants),
#: usually on another node.
DISPATCH_PROBE = """
CREATE FUNCTION public.probe_dispatch_with_reference(
    p_participant_id text, p_outbox_id uuid, p_rail_code text, p_reference text
) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_attempt_no integer;
BEGIN
    DELETE FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id AND p.outbox_id = p_outbox_id
    RETURNING p.attempt_count + 1 INTO v_attempt_no;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no job % of %', p_outbox_id, p_participant_id USING ERRCODE = 'P7002';
    END IF;
    INSERT INTO public.outbox_rail_references (rail_code, rail_reference, outbox_id, attempt_no)
    VALUES (p_rail_code, p_reference, p_outbox_id, v_attempt_no);
    RETURN v_attempt_no;
END
$$;
ALTER FUNCTION public.probe_dispatch_with_reference(text, uuid, text, text)
    OWNER TO symphony_owner;
REVOKE ALL ON FUNCTION public.probe_dispatch_with_reference(text, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.probe_dispatch_with_reference(text, uuid, text, text)
    TO symphony_executor;
-- Delegated without force_delegation: a force-delegated body is pinned to its distribution
-- argument's co-location group (EnsureForceDelegationDistributionKey), this one writes another.
SELECT create_distributed_function(
    'public.probe_dispatch_with_reference(text, uuid, text, text)', 'p_participant_id',
    colocate_with => 'payment_outbox_pending');
"""


def test_a_delegated_completion_records_a_rail_reference_on_another_node(
    probe: cluster.Cluster,
) -> None:
    coordinator = probe.coordinator
    with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
        admin.execute(DISPATCH_PROBE)
        try:
            participants = _participants_per_worker(admin)
            port, participant = next(iter(participants.items()))
            other = next(p for node, p in participants.items() if node != port)
            reference = next(
                f"uetr-{i}"
                for i in range(200)
                if _node_of(admin, "public.outbox_rail_references", f"uetr-{i}") != port
            )
            _queue(admin, participant, 1, prefix="ref")
            _queue(admin, other, 1, prefix="ref")
            jobs = dict(
                admin.execute(
                    "SELECT participant_id, outbox_id FROM public.payment_outbox_pending"
                    " WHERE instruction_id LIKE 'ref-%'"
                ).fetchall()
            )
        except BaseException:
            admin.execute("DROP FUNCTION public.probe_dispatch_with_reference")
            raise
    dispatch = "SELECT public.probe_dispatch_with_reference(%s, %s, 'RTGS', %s)"
    try:
        with psycopg.connect(coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True) as executor:
            # NOLOGIN owner: the delegated body reaches the reference's node as the owner and
            # fails cleanly; the job stays queued (one transaction on both nodes).
            with pytest.raises(psycopg.Error, match=NOLOGIN) as refused:
                executor.execute(dispatch, (participant, jobs[participant], reference))
            assert refused.value.sqlstate == "08006"
            with _owner_logs_in_between_nodes(probe):
                assert executor.execute(
                    dispatch, (participant, jobs[participant], reference)
                ).fetchone() == (1,)
                # The same reference from another participant's job (another shard group):
                # refused by the reference's primary key, and that job stays queued.
                with pytest.raises(psycopg.errors.UniqueViolation):
                    executor.execute(dispatch, (other, jobs[other], reference))
        with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
            assert admin.execute(
                "SELECT rail_code, outbox_id FROM public.outbox_rail_references"
                " WHERE rail_reference = %s",
                (reference,),
            ).fetchall() == [("RTGS", jobs[participant])]
            queued = admin.execute(
                "SELECT participant_id FROM public.payment_outbox_pending"
                " WHERE instruction_id LIKE 'ref-%'"
            ).fetchall()
            assert queued == [(other,)]
    finally:
        with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
            admin.execute("DROP FUNCTION public.probe_dispatch_with_reference")


def test_a_stopped_worker_fails_its_delegated_claims_cleanly_and_loses_nothing(
    probe: cluster.Cluster,
) -> None:
    """Issue 16's fault: one worker stops during delegated claims and starts again. While it is
    down its participants' claims fail with a connection SQLSTATE (class 08) and the other
    worker's participants are served; after it is back, the lease taken before the crash is
    still there (not handed out twice) and every queued job is still queued."""
    coordinator = probe.coordinator
    with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
        placed = _participants_per_worker(admin, prefix="fault")
        for participant in placed.values():
            _queue(admin, participant, 2)
    down = probe.workers[-1]
    up = next(w for w in probe.workers if w is not down)
    stopped, served = placed[down.port], placed[up.port]
    claim = (
        "SELECT instruction_id, lease_token FROM"
        " public.claim_outbox_batch_for_participant(%s, 10, 'w', 300)"
    )
    with psycopg.connect(coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True) as executor:
        before = executor.execute(claim, (stopped,)).fetchall()
        assert [row[0] for row in before] == [f"{stopped}-1"]
        embedded._run_binary("pg_ctl", ["-m", "immediate", "-w", "stop"], down.pgdata)
        try:
            for _ in range(3):
                with pytest.raises(psycopg.Error) as failed:
                    executor.execute(claim, (stopped,))
                assert failed.value.sqlstate is not None
                assert failed.value.sqlstate.startswith("08"), failed.value
            assert [row[0] for row in executor.execute(claim, (served,)).fetchall()] == [
                f"{served}-1"
            ]
        finally:
            cluster._start_node(down)
        # Back: the head leased before the crash is still leased (nothing doubled) ...
        assert executor.execute(claim, (stopped,)).fetchall() == []
    with psycopg.connect(down.conninfo(DBNAME)) as conn:
        rows = conn.execute(
            "SELECT instruction_id, lease_token FROM public.payment_outbox_pending"
            " WHERE participant_id = %s ORDER BY sequence_id",
            (stopped,),
        ).fetchall()
    # ... and nothing was lost: both jobs are queued, the first under the lease of before.
    assert rows == [(f"{stopped}-1", before[0][1]), (f"{stopped}-2", None)]


# ------------------------------------------------------------------------------------------------
# INV-058 and INV-060 on the probe's distribution
# ------------------------------------------------------------------------------------------------

#: What the probe distributes, as the declaration says it (the rest waits: ADR 0145).
PROBE_TABLES = {
    name: gate_cluster.DECLARED_TABLES[name]
    for name in (
        "participant_outbox_sequences",
        "payment_outbox_pending",
        "payment_outbox_attempts",
        "payment_outbox_attempts_default",
        "outbox_rail_references",
        "outbox_settings",
    )
}


#: The function the probe delegates.
PROBE_FUNCTIONS = {
    name: gate_cluster.DECLARED_FUNCTIONS[name]
    for name in ("public.claim_outbox_batch_for_participant(text,integer,text,integer,text[])",)
}


def test_the_probe_is_distributed_as_declared(probe: cluster.Cluster) -> None:
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        assert (
            gate_cluster.check_distribution_as_declared(conn, PROBE_TABLES, PROBE_FUNCTIONS) == []
        )
        # The full declaration names what the distribution revision still has to place.
        problems = gate_cluster.check_distribution_as_declared(conn)
    assert "table public.payment_outbox_payloads is local, declared distributed" in problems
    assert "table public.outbox_rails is local, declared reference" in problems


def test_a_table_out_of_its_colocation_group_fails_inv_058(probe: cluster.Cluster) -> None:
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute(
            "SELECT update_distributed_table_colocation("
            "'public.participant_outbox_sequences', colocate_with => 'none')"
        )
        try:
            problems = gate_cluster.check_distribution_as_declared(
                conn, PROBE_TABLES, PROBE_FUNCTIONS
            )
        finally:
            conn.execute(
                "SELECT update_distributed_table_colocation("
                "'public.participant_outbox_sequences',"
                " colocate_with => 'public.payment_outbox_pending')"
            )
        assert (
            gate_cluster.check_distribution_as_declared(conn, PROBE_TABLES, PROBE_FUNCTIONS) == []
        )
    assert any(
        "co-location group 'outbox' are in 2 co-location groups" in line for line in problems
    ), problems


def test_a_delegation_without_its_force_fails_inv_058(probe: cluster.Cluster) -> None:
    signature = "public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])"
    redistribute = (
        "SELECT create_distributed_function(%s, 'p_participant_id',"
        " colocate_with => 'payment_outbox_pending', force_delegation => {})"
    )
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute(redistribute.format("false"), (signature,))
        try:
            problems = gate_cluster.check_distribution_as_declared(
                conn, PROBE_TABLES, PROBE_FUNCTIONS
            )
        finally:
            conn.execute(redistribute.format("true"), (signature,))
        assert (
            gate_cluster.check_distribution_as_declared(conn, PROBE_TABLES, PROBE_FUNCTIONS) == []
        )
    assert problems == [
        "function public.claim_outbox_batch_for_participant(text,integer,text,integer,text[])"
        " has force_delegation=False, declared True"
    ]


def test_every_ledger_shard_is_append_only(probe: cluster.Cluster) -> None:
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        assert gate_cluster.check_ledger_shards_append_only(conn) == []
        shards = conn.execute(
            "SELECT count(*) FROM pg_catalog.citus_shards AS s"
            " JOIN pg_catalog.pg_partition_tree('public.payment_outbox_attempts') AS t"
            "   ON t.relid = s.table_name"
        ).fetchone()
    assert shards is not None and shards[0] >= 64, shards


@pytest.mark.parametrize(
    ("sabotage", "undo", "named"),
    [
        (
            "ALTER TABLE {shard} DISABLE TRIGGER {trigger}",
            "ALTER TABLE {shard} ENABLE ALWAYS TRIGGER {trigger}",
            "trigger trg_deny_outbox_attempts_mutation enabled=A",
        ),
        (
            "GRANT UPDATE ON {shard} TO PUBLIC",
            "REVOKE UPDATE ON {shard} FROM PUBLIC",
            "acl ",
        ),
    ],
    ids=["trigger-disabled", "acl-opened"],
)
def test_a_sabotaged_ledger_shard_fails_inv_060(
    probe: cluster.Cluster, sabotage: str, undo: str, named: str
) -> None:
    with psycopg.connect(probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        row = conn.execute(
            "SELECT s.shard_name, s.shardid, s.nodeport FROM pg_catalog.citus_shards AS s"
            " WHERE s.table_name = 'public.payment_outbox_attempts_default'::regclass"
            " ORDER BY s.shardid DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        shard, shard_id, port = str(row[0]), int(row[1]), int(row[2])
        worker = next(w for w in probe.workers if w.port == port)
        with psycopg.connect(worker.conninfo(DBNAME), autocommit=True) as on_worker:
            on_worker.execute("SET citus.override_table_visibility TO off")
            found = on_worker.execute(
                "SELECT tgname FROM pg_catalog.pg_trigger WHERE tgrelid = %s::regclass"
                " AND tgname LIKE 'trg\\_deny\\_outbox\\_attempts\\_mutation%%'",
                (shard,),
            ).fetchone()
        assert found is not None, shard
        trigger = str(found[0])
        with _on_one_node(
            worker,
            sabotage.format(shard=shard, trigger=trigger),
            undo.format(shard=shard, trigger=trigger),
        ):
            problems = gate_cluster.check_ledger_shards_append_only(conn)
        assert gate_cluster.check_ledger_shards_append_only(conn) == []
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"payment_outbox_attempts_default shard {shard_id} on 127.0.0.1:{port}:"
        " differs from the shell table"
    ), problems
    assert named in problems[0], problems


@contextmanager
def _on_one_node(node: cluster.Node, do: str, undo: str) -> Iterator[None]:
    """A change made on one worker's shard by hand (not propagated), undone afterwards."""
    with psycopg.connect(node.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute("SET citus.enable_ddl_propagation TO off")
        conn.execute("SET citus.override_table_visibility TO off")
        conn.execute(do)
        try:
            yield
        finally:
            conn.execute(undo)


def test_a_delegated_takeover_passes_the_ledgers_guards_on_its_shard(
    probe: cluster.Cluster,
) -> None:
    """ADR 0145 step 2 (revision 0035): a delegated claim that takes over an expired lease writes
    its ZOMBIE_REQUEUE row on the participant's ledger shard. The ledger's guards fire there as
    the owner; before 0035 guard_attempt_participant looked the job up by outbox_id alone, a query
    of every shard that a trigger on a shard cannot plan (0A000 could not create distributed
    plan). Now the takeover re-leases the job and its ledger row is on the participant's worker."""
    coordinator = probe.coordinator
    with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
        participant = next(iter(_participants_per_worker(admin, prefix="zombie").values()))
        _queue(admin, participant, 1)
    claim = (
        "SELECT instruction_id, in_doubt, lease_token FROM"
        " public.claim_outbox_batch_for_participant(%s, 10, 'w', 300)"
    )
    with psycopg.connect(coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True) as executor:
        first = executor.execute(claim, (participant,)).fetchall()
        assert [row[:2] for row in first] == [(f"{participant}-1", False)]
        with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
            admin.execute(
                "UPDATE public.payment_outbox_pending"
                " SET lease_expires_at = now() - interval '1 second' WHERE participant_id = %s",
                (participant,),
            )
        again = executor.execute(claim, (participant,)).fetchall()
    assert [row[:2] for row in again] == [(f"{participant}-1", True)]
    assert again[0][2] != first[0][2]
    with psycopg.connect(coordinator.conninfo(DBNAME), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT state::text, attempt_no FROM public.payment_outbox_attempts"
            " WHERE participant_id = %s",
            (participant,),
        ).fetchall()
    assert rows == [("ZOMBIE_REQUEUE", 1)]
