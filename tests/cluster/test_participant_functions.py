"""Revision 0034's participant-first functions on a Citus cluster (issue 16, ADR 0147).

In one module-scoped database of the session cluster, migrated to head by ``alembic upgrade
head`` after ``cluster owner-login`` (ADR 0146): the distribution revision (0036, ADR 0149)
widens the keys, distributes the queue, allocator, key table, payloads and ledger by
participant_id in one co-location group, makes the settings and rails reference tables, the
rail-reference registry distributed by its reference, and distributes these functions on
``p_participant_id`` (with ``force_delegation``, except the completions, which record a rail
reference on the reference's node). An executor login then runs the outbox end to end for a
participant on each worker, every trigger enabled (the guards as 0035 restated them for shards,
the work notification of 0033).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from symphony_schema import cluster, embedded
from symphony_schema.invariants import gate_cluster
from tests.cluster.conftest import ALEMBIC, run

pytestmark = pytest.mark.citus

DBNAME = "symphony_participant_fn"
LOGIN = "cluster_fn_executor"
PAYLOAD = '{"amount": 100, "currency": "ZAR"}'

#: Each function the distribution revision must distribute (ADR 0147): signature, and whether it
#: runs with force_delegation (always on p_participant_id, co-located with the queue).
FUNCTIONS: dict[str, bool] = {
    "public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz, smallint)": True,
    "public.enqueue_payment_outbox_batch_for_participant(text, text[], text[], text[], jsonb[],"
    " timestamptz[], smallint[])": True,
    "public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])": True,
    "public.complete_outbox_attempt_for_participant(text, uuid, uuid, text,"
    " public.outbox_attempt_state, text, text, text, text, integer, integer)": False,
    "public.complete_outbox_attempts_batch_for_participant(text, text, uuid[], uuid[], text[],"
    " text[], text[], text[], text[], integer[], integer[])": False,
    "public.repair_expired_leases_for_participant(text, integer, text)": True,
    "public.cancel_outbox_job_for_participant(text, uuid, text, text)": True,
    "public.redrive_outbox_job_for_participant(text, uuid, text, text)": True,
    "public.extend_outbox_lease_for_participant(text, uuid, uuid, text, integer)": True,
}


@dataclass(frozen=True)
class Setup:
    probe: cluster.Cluster
    #: worker port -> a participant whose shard is on that worker
    placed: dict[int, str]


@pytest.fixture(scope="module")
def setup(migrated_cluster: cluster.Cluster) -> Iterator[Setup]:
    for node in migrated_cluster.nodes:
        cluster._prepare(node, DBNAME)
    cluster._register(migrated_cluster, DBNAME)
    cluster.owner_login(migrated_cluster)
    url = migrated_cluster.coordinator.url(DBNAME)
    result = run(ALEMBIC, "-x", f"url={url}", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(migrated_cluster.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {LOGIN} LOGIN")
        for role in ("symphony_ingest", "symphony_executor", "symphony_control"):
            conn.execute(f"GRANT {role} TO {LOGIN} WITH INHERIT TRUE")
        placed: dict[int, str] = {}
        for i in range(200):
            participant = f"fn-{i}"
            row = conn.execute(
                "SELECT s.nodeport FROM pg_catalog.citus_shards AS s"
                " WHERE s.shardid = pg_catalog.get_shard_id_for_distribution_column("
                "'public.payment_outbox_pending', %s::text)",
                (participant,),
            ).fetchone()
            assert row is not None
            placed.setdefault(int(row[0]), participant)
    assert set(placed) == {worker.port for worker in migrated_cluster.workers}
    try:
        yield Setup(migrated_cluster, placed)
    finally:
        with psycopg.connect(
            migrated_cluster.coordinator.conninfo(DBNAME), autocommit=True
        ) as conn:
            conn.execute(f"DROP OWNED BY {LOGIN}")
            conn.execute(f"DROP ROLE {LOGIN}")


@pytest.fixture
def executor(setup: Setup) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(
        setup.probe.coordinator.conninfo(DBNAME, user=LOGIN), autocommit=True
    ) as conn:
        yield conn


@pytest.fixture
def admin(setup: Setup) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(setup.probe.coordinator.conninfo(DBNAME), autocommit=True) as conn:
        yield conn


def _enqueue(conn: psycopg.Connection[Any], participant: str, instruction: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT outbox_id, sequence_id, state FROM public.enqueue_payment_outbox(%s, %s, %s,"
        " 'rtgs', %s::jsonb)",
        (instruction, participant, f"k-{instruction}", PAYLOAD),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _claim(conn: psycopg.Connection[Any], participant: str, lease: int = 30) -> tuple[Any, Any]:
    rows = conn.execute(
        "SELECT outbox_id, lease_token FROM public.claim_outbox_batch_for_participant(%s, 10,"
        " 'w-1', %s)",
        (participant, lease),
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0], rows[0][1]


def _complete(
    conn: psycopg.Connection[Any], participant: str, job: tuple[Any, Any], state: str, **kw: Any
) -> tuple[int, str]:
    row = conn.execute(
        "SELECT attempt_no, state::text FROM public.complete_outbox_attempt_for_participant("
        "%s, %s, %s, 'w-1', %s, p_rail_reference => %s)",
        (participant, job[0], job[1], state, kw.get("reference")),
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _ledger_on_worker(setup: Setup, participant: str, outbox_id: Any) -> list[str]:
    """The job's ledger rows as the participant's worker holds them (its shard)."""
    port = next(p for p, name in setup.placed.items() if name == participant)
    worker = next(w for w in setup.probe.workers if w.port == port)
    with psycopg.connect(worker.conninfo(DBNAME), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT state::text FROM public.payment_outbox_attempts"
            " WHERE participant_id = %s AND outbox_id = %s ORDER BY attempt_no",
            (participant, outbox_id),
        ).fetchall()
    return [r[0] for r in rows]


def _make_due(admin: psycopg.Connection[Any], participant: str) -> None:
    admin.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 second'"
        " WHERE participant_id = %s",
        (participant,),
    )


def _expire(admin: psycopg.Connection[Any], participant: str) -> None:
    admin.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 second'"
        " WHERE participant_id = %s AND lease_token IS NOT NULL",
        (participant,),
    )


def test_the_functions_are_distributed_as_declared(admin: psycopg.Connection[Any]) -> None:
    rows = admin.execute(
        "SELECT p.oid::regprocedure::text, o.distribution_argument_index, o.force_delegation,"
        " o.colocationid = (SELECT colocationid FROM pg_catalog.pg_dist_partition"
        "  WHERE logicalrelid = 'public.payment_outbox_pending'::regclass)"
        " FROM pg_catalog.pg_dist_object AS o JOIN pg_catalog.pg_proc AS p ON p.oid = o.objid"
        " WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.distribution_argument_index"
        " IS NOT NULL"
    ).fetchall()
    found = {row[0].split("(")[0]: (row[1], bool(row[2]), row[3]) for row in rows}
    for signature, force in FUNCTIONS.items():
        name = signature.split("(")[0].removeprefix("public.")
        assert found[name] == (0 if name != "enqueue_payment_outbox" else 1, force, True), name
    assert gate_cluster.check_distribution_as_declared(admin) == []


@pytest.mark.parametrize(
    "call",
    [
        "SELECT public.extend_outbox_lease_for_participant(%s, %s, %s, 'w-1', 30)",
        "SELECT public.complete_outbox_attempt_for_participant(%s, %s, %s, 'w-1', 'FAILED')",
    ],
    ids=["force-delegated", "delegated-outside-a-transaction-block"],
)
def test_a_call_runs_on_the_participants_node(
    setup: Setup, executor: psycopg.Connection[Any], call: str
) -> None:
    # Citus says so at DEBUG1; the unknown job is P7002, raised on the worker. The arguments
    # must be constants for Citus to delegate (gen_random_uuid() here: "arguments in a
    # distributed function must be constant expressions", and the body ran on the coordinator).
    messages: list[str] = []
    executor.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
    executor.execute("SET client_min_messages TO debug1")
    participant = next(iter(setup.placed.values()))
    with pytest.raises(psycopg.Error) as raised:
        executor.execute(call, (participant, uuid.uuid4(), uuid.uuid4()))
    assert raised.value.sqlstate == "P7002"
    assert any("pushing down the function call" in m for m in messages), messages


def test_enqueue_claim_complete_and_the_ledger_on_each_worker(
    setup: Setup, executor: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    admin.execute("SELECT public.set_outbox_retry_ceiling(5)")
    for participant in setup.placed.values():
        jobs = [_enqueue(executor, participant, f"{participant}-{n}") for n in range(3)]
        assert [(j[1], j[2]) for j in jobs] == [(1, "PENDING"), (2, "PENDING"), (3, "PENDING")]
        # A replay answers with the job; another participant's key is another job here (ADR 0126).
        assert _enqueue(executor, participant, f"{participant}-0") == jobs[0]

        first = _claim(executor, participant)
        assert first[0] == jobs[0][0]
        reference = f"R-{participant}"
        assert _complete(executor, participant, first, "DISPATCHED", reference=reference) == (
            1,
            "DISPATCHED",
        )
        assert _ledger_on_worker(setup, participant, first[0]) == ["DISPATCHED"]
        held = admin.execute(
            "SELECT outbox_id FROM public.outbox_rail_references"
            " WHERE rail_code = 'RTGS' AND rail_reference = %s",
            (reference,),
        ).fetchone()
        assert held == (first[0],)

        # The next job was promoted: claimed, retried, claimed again, failed.
        second = _claim(executor, participant)
        assert second[0] == jobs[1][0]
        assert _complete(executor, participant, second, "RETRYABLE") == (1, "RETRYABLE")
        _make_due(admin, participant)
        second = _claim(executor, participant)
        assert _complete(executor, participant, second, "FAILED") == (2, "FAILED")
        assert _ledger_on_worker(setup, participant, second[0]) == ["RETRYABLE", "FAILED"]

        # A stale token and a bad state: the same SQLSTATEs as on one node.
        third = _claim(executor, participant)
        with pytest.raises(psycopg.Error) as stale:
            _complete(executor, participant, (third[0], second[1]), "DISPATCHED", reference="x")
        assert stale.value.sqlstate == "P7002"
        with pytest.raises(psycopg.Error) as bad:
            _complete(executor, participant, third, "CANCELLED")
        assert bad.value.sqlstate == "P7003"

        # Batch completion (one participant per call) with a reference.
        done = executor.execute(
            "SELECT outbox_id, attempt_no, state::text FROM"
            " public.complete_outbox_attempts_batch_for_participant(%s, 'w-1', %s, %s,"
            " ARRAY['DISPATCHED'], p_rail_references => %s)",
            (participant, [third[0]], [third[1]], [f"B-{participant}"]),
        ).fetchall()
        assert done == [(third[0], 1, "DISPATCHED")]
        assert _ledger_on_worker(setup, participant, third[0]) == ["DISPATCHED"]


def test_repair_extend_cancel_and_redrive_on_each_worker(
    setup: Setup, executor: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    for participant in setup.placed.values():
        a = _enqueue(executor, participant, f"r-{participant}-a")
        _enqueue(executor, participant, f"r-{participant}-b")
        job = _claim(executor, participant)
        assert job[0] == a[0]
        expiry = executor.execute(
            "SELECT public.extend_outbox_lease_for_participant(%s, %s, %s, 'w-1', 600)",
            (participant, job[0], job[1]),
        ).fetchone()
        assert expiry is not None
        with pytest.raises(psycopg.Error) as leased:
            executor.execute(
                "SELECT * FROM public.cancel_outbox_job_for_participant(%s, %s, 'r', 'T-1')",
                (participant, job[0]),
            )
        assert leased.value.sqlstate == "P7011"
        _expire(admin, participant)
        repaired = executor.execute(
            "SELECT outbox_id, attempt_no FROM public.repair_expired_leases_for_participant(%s,"
            " 10, 'w-r')",
            (participant,),
        ).fetchall()
        assert repaired == [(job[0], 1)]
        assert _ledger_on_worker(setup, participant, job[0]) == ["ZOMBIE_REQUEUE"]

        cancelled = executor.execute(
            "SELECT attempt_no, state::text FROM public.cancel_outbox_job_for_participant(%s, %s,"
            " 'withdrawn', 'T-2')",
            (participant, job[0]),
        ).fetchone()
        assert cancelled == (2, "CANCELLED")
        redriven = executor.execute(
            "SELECT outbox_id, state FROM public.redrive_outbox_job_for_participant(%s, %s,"
            " 'rail fixed', 'T-3')",
            (participant, job[0]),
        ).fetchone()
        assert redriven is not None
        assert redriven[1] == "PENDING"
        assert _ledger_on_worker(setup, participant, job[0]) == [
            "ZOMBIE_REQUEUE",
            "CANCELLED",
            "REDRIVEN",
        ]
        # The key now answers with the redriven job; the next head is the second job.
        assert _enqueue(executor, participant, f"r-{participant}-a")[0] == redriven[0]
        heads = admin.execute(
            "SELECT instruction_id FROM public.payment_outbox_pending"
            " WHERE participant_id = %s AND is_head",
            (participant,),
        ).fetchall()
        assert heads == [(f"r-{participant}-b",)]


def test_batch_enqueue_for_a_participant_on_each_worker(
    setup: Setup, executor: psycopg.Connection[Any]
) -> None:
    for participant in setup.placed.values():
        rows = executor.execute(
            "SELECT ordinality, state FROM public.enqueue_payment_outbox_batch_for_participant("
            "%s, %s, %s, ARRAY['rtgs', 'rtgs', 'rtgs'], ARRAY[%s, %s, %s]::jsonb[])",
            (
                participant,
                [f"b-{participant}-1", f"b-{participant}-2", f"b-{participant}-1"],
                ["k1", "k2", "k1"],
                PAYLOAD,
                PAYLOAD,
                PAYLOAD,
            ),
        ).fetchall()
        assert rows == [(1, "PENDING"), (2, "PENDING"), (3, "PENDING")]
        with pytest.raises(psycopg.Error) as conflict:
            executor.execute(
                "SELECT * FROM public.enqueue_payment_outbox_batch_for_participant(%s, %s, %s,"
                " ARRAY['rtgs'], ARRAY[%s]::jsonb[])",
                (participant, [f"b-{participant}-2"], ["k2"], '{"amount": 1}'),
            )
        assert conflict.value.sqlstate == "P7004"


def test_idempotency_is_per_participant_on_the_cluster(
    setup: Setup, executor: psycopg.Connection[Any]
) -> None:
    # ADR 0126's listed exception: the key table is distributed by participant, so the same
    # instruction and key under two participants are two jobs (on one node: P7004).
    one, two = setup.placed.values()
    first = _enqueue(executor, one, "shared-instruction")
    second = _enqueue(executor, two, "shared-instruction")
    assert first[0] != second[0]
    assert (first[2], second[2]) == ("PENDING", "PENDING")


def test_a_completion_inside_a_transaction_block_runs_on_the_coordinator(
    setup: Setup, executor: psycopg.Connection[Any]
) -> None:
    # Without force_delegation Citus delegates only outside a transaction block; inside one the
    # body runs on the coordinator, as the owner, whose every statement still routes to the
    # participant's shard (through the owner's pg_dist_authinfo login, ADR 0146).
    participant = next(iter(setup.placed.values()))
    job_id = _enqueue(executor, participant, f"tx-{participant}")[0]
    while True:  # earlier tests left this participant's earlier jobs queued: finish them
        claimed = _claim(executor, participant)
        if claimed[0] == job_id:
            break
        _complete(executor, participant, claimed, "FAILED")
    messages: list[str] = []
    executor.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
    with executor.transaction():
        executor.execute("SET LOCAL client_min_messages TO debug1")
        assert _complete(
            executor, participant, claimed, "DISPATCHED", reference=f"TX-{job_id}"
        ) == (
            1,
            "DISPATCHED",
        )
    assert not any("pushing down the function call" in m for m in messages), messages
    assert _ledger_on_worker(setup, participant, job_id) == ["DISPATCHED"]


def test_a_stopped_worker_fails_its_completions_cleanly_and_none_is_lost_or_doubled(
    setup: Setup, executor: psycopg.Connection[Any], admin: psycopg.Connection[Any]
) -> None:
    """Issue 16's fault during completions: the worker holding a participant stops (immediate)
    after its head was leased. Completions of its participants fail with a class-08 SQLSTATE
    and record nothing; the other worker's participants complete; after the restart the lease
    is still valid, the completion records exactly one terminal attempt, a repeat is P7002."""
    down = setup.probe.workers[-1]
    up = next(w for w in setup.probe.workers if w is not down)
    stopped, served = setup.placed[down.port], setup.placed[up.port]
    jobs = {}
    for participant in (stopped, served):
        _enqueue(executor, participant, f"{participant}-fault")
        jobs[participant] = _claim(executor, participant, lease=300)
    embedded._run_binary("pg_ctl", ["-m", "immediate", "-w", "stop"], down.pgdata)
    try:
        for _ in range(2):
            with pytest.raises(psycopg.Error) as failed:
                _complete(executor, stopped, jobs[stopped], "FAILED")
            assert failed.value.sqlstate is not None
            assert failed.value.sqlstate.startswith("08"), failed.value
        assert _complete(executor, served, jobs[served], "FAILED") == (1, "FAILED")
    finally:
        cluster._start_node(down)
    assert _ledger_on_worker(setup, stopped, jobs[stopped][0]) == []
    assert _complete(executor, stopped, jobs[stopped], "FAILED") == (1, "FAILED")
    with pytest.raises(psycopg.Error) as repeated:
        _complete(executor, stopped, jobs[stopped], "FAILED")
    assert repeated.value.sqlstate == "P7002"
    for participant in (stopped, served):
        assert _ledger_on_worker(setup, participant, jobs[participant][0]) == ["FAILED"]
        assert admin.execute(
            "SELECT count(*) FROM public.payment_outbox_pending WHERE participant_id = %s"
            " AND outbox_id = %s",
            (participant, jobs[participant][0]),
        ).fetchone() == (0,)
