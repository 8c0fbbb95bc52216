"""Issue 16: the routing overhead of a claim on Citus, per call, against the same claim on one
node, on the same machine in one run (ADRs 0145, 0146; docs/benchmarks/citus-routing.md).

``python -m benchmarks.citus_routing [--participants N] [--out FILE]`` starts a throw-away
Citus cluster (a coordinator and two workers, ``symphony_schema.cluster``) under
``.symphony/``, migrates two databases to head and measures
``claim_outbox_batch_for_participant`` through an executor login, autocommit, one call per
transaction:

* **single node**: nothing distributed, the outbox on the coordinator (what a Citus cluster at
  head is, and what plain PostgreSQL 18 runs, with Citus loaded);
* **delegated**: the queue and the allocator distributed by ``participant_id`` and the claim
  distributed with ``force_delegation`` (the probe of tests/cluster/test_distribution_probe.py):
  the coordinator routes the call to the participant's worker, which runs the body on its shard.

Two kinds of calls, alternating between the two databases call by call so that both see the
same machine load: a claim that leases the participant's head (one job per participant), then a
claim that finds it leased and returns nothing. The load average is recorded before and after.
Needs Citus installed (``scripts/install-citus.sh``); takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import cluster, project_root
from symphony_schema.migration import api

SINGLE = "symphony_route_single"
DELEGATED = "symphony_route_delegated"
LOGIN = "bench_route_executor"
WARM_UP = 50

#: The probe's distribution (tests/cluster/test_distribution_probe.py, ADR 0145).
#: The last revision before the distribution revision.
BEFORE_DISTRIBUTION = cluster.revision_before_distribution()

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
SELECT create_distributed_table('public.payment_outbox_pending', 'participant_id',
                                colocate_with => 'public.participant_outbox_sequences');
SELECT create_distributed_function(
    'public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])',
    'p_participant_id', colocate_with => 'payment_outbox_pending', force_delegation => true);
COMMIT;
"""

#: The queue's triggers that read coordinator-local tables (ADR 0145), off while the jobs are
#: inserted directly (today's enqueue does not plan on a distributed queue).
COORDINATOR_READERS = (
    "trg_guard_outbox_pending_write",
    "trg_guard_archived_outbox_id",
    "trg_notify_outbox_work",
)

CLAIM = "SELECT * FROM public.claim_outbox_batch_for_participant(%s, 1, 'bench', 300)"


def _queue(conn: psycopg.Connection[Any], participants: int) -> None:
    conn.execute("SET citus.enable_unsafe_triggers TO on")
    for trigger in COORDINATOR_READERS:
        conn.execute(f"ALTER TABLE public.payment_outbox_pending DISABLE TRIGGER {trigger}")
    conn.execute(
        "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload)"
        " SELECT 'i-' || g, 'p-' || g, 1, 'k-' || g, 'RTGS', '{}'"
        "   FROM pg_catalog.generate_series(1, %s) AS g",
        (participants,),
    )
    for trigger in COORDINATOR_READERS:
        conn.execute(f"ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER {trigger}")


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "calls": float(len(ordered)),
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "p95": pct(0.95),
        "p99": pct(0.99),
    }


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000.0


def measure(participants: int) -> dict[str, Any]:
    directory = project_root() / ".symphony" / f"bench-route-{uuid.uuid4().hex[:8]}"
    load_before = os.getloadavg()
    try:
        topology = cluster.start(workers=2, directory=directory)
        for dbname in (SINGLE, DELEGATED):
            for node in topology.nodes:
                cluster._prepare(node, dbname)
            cluster._register(topology, dbname)
            # Up to the revision before the distribution revision (ADR 0149): the single-node
            # database stays on the coordinator and the delegated one is distributed by hand
            # below, exactly as measured before 0036 existed.
            api.upgrade(topology.coordinator.url(dbname), BEFORE_DISTRIBUTION)
        with psycopg.connect(topology.coordinator.conninfo(DELEGATED), autocommit=True) as conn:
            conn.execute(DISTRIBUTE)
            conn.execute(f"CREATE ROLE {LOGIN} LOGIN")
            conn.execute(f"GRANT symphony_executor TO {LOGIN} WITH INHERIT TRUE")
        for dbname in (SINGLE, DELEGATED):
            with psycopg.connect(topology.coordinator.conninfo(dbname), autocommit=True) as conn:
                _queue(conn, participants)
                conn.execute("VACUUM ANALYZE")
        results: dict[str, dict[str, list[float]]] = {
            kind: {SINGLE: [], DELEGATED: []} for kind in ("lease", "empty")
        }
        with (
            psycopg.connect(
                topology.coordinator.conninfo(SINGLE, user=LOGIN), autocommit=True
            ) as single,
            psycopg.connect(
                topology.coordinator.conninfo(DELEGATED, user=LOGIN), autocommit=True
            ) as delegated,
        ):
            conns = {SINGLE: single, DELEGATED: delegated}
            for kind in ("lease", "empty"):
                for i in range(1, participants + 1):
                    for dbname, conn in conns.items():
                        elapsed = _timed(
                            lambda conn=conn, i=i: conn.execute(CLAIM, (f"p-{i}",)).fetchall()
                        )
                        if i > WARM_UP:
                            results[kind][dbname].append(elapsed)
        load_after = os.getloadavg()
        return {
            "participants": participants,
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "summary": {
                kind: {dbname: _summary(samples) for dbname, samples in by_db.items()}
                for kind, by_db in results.items()
            },
        }
    finally:
        cluster.stop(directory, immediate=True)
        shutil.rmtree(directory, ignore_errors=True)


def render(result: dict[str, Any], command: str) -> str:
    def row(kind: str, label: str, dbname: str) -> str:
        s = result["summary"][kind][dbname]
        return (
            f"| {kind} | {label} | {int(s['calls'])} | {s['median']:.3f} | {s['mean']:.3f} |"
            f" {s['p95']:.3f} | {s['p99']:.3f} |"
        )

    lines = [
        "# Citus routing overhead per claim (issue 16)",
        "",
        f"Generated by `{command}` "
        "([benchmarks/citus_routing.py](../../benchmarks/citus_routing.py)): one throw-away "
        "cluster (coordinator + 2 workers, all on this machine, loopback TCP), "
        f"{result['participants']} participants with one queued job each in each database, "
        "`claim_outbox_batch_for_participant(p, 1, ...)` through an executor login, autocommit, "
        "the two databases called alternately call by call (the first "
        f"{WARM_UP} of each kind are warm-up). CPUs: {result['cpus']}; load average "
        f"(1/5/15 min) before {'/'.join(f'{x:.2f}' for x in result['load_before'])}, after "
        f"{'/'.join(f'{x:.2f}' for x in result['load_after'])}.",
        "",
        "| call | database | calls | median ms | mean ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("lease", "empty"):
        lines.append(row(kind, "single node (coordinator)", SINGLE))
        lines.append(row(kind, "delegated to the worker", DELEGATED))
    lines.append("")
    for kind, meaning in (
        ("lease", "a claim that leases the participant's head"),
        ("empty", "a claim that finds the head leased"),
    ):
        single = result["summary"][kind][SINGLE]["median"]
        delegated = result["summary"][kind][DELEGATED]["median"]
        lines.append(
            f"- {meaning}: delegated / single node = **{delegated / single:.2f}x** at the median "
            f"(+{delegated - single:.3f} ms per call: the coordinator's planning of the call, "
            "one round trip to the worker, the worker's own transaction)."
        )
    lines += [
        "",
        'What it means for capacity: docs/operations/citus.md, "Capacity model".',
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.citus_routing", description=__doc__)
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument(
        "--out", type=Path, default=project_root() / "docs" / "benchmarks" / "citus-routing.md"
    )
    args = parser.parse_args(argv)
    if args.participants <= WARM_UP:
        parser.error(f"--participants must be more than {WARM_UP}")
    result = measure(args.participants)
    command = f"python -m benchmarks.citus_routing --participants {args.participants}"
    text = render(result, command)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
