"""P1 in the steady state (issue 17): producers enqueue while workers claim and complete, for
minutes, with no manual VACUUM, both systems side by side.

Each system's queue is filled once per participant count (followed by ANALYZE, never VACUUM);
then, for every worker count in turn, paced producers (the same offered rate for both systems)
add jobs while unthrottled workers claim (batch 1) and complete them. The worker counts run back
to back on the same tables without emptying or vacuuming them in between, ours then PGMQ at each
worker count, so each run inherits the dead tuples of the ones before it and only autovacuum (as
each system configures its tables) cleans up, as in production. Every second: completed jobs,
live and dead tuples of the queue table, autovacuum runs. A run whose workers found the queue
empty reports it (its rate is then a lower bound).
"""

from __future__ import annotations

from typing import Any

from benchmarks import db, driver
from benchmarks.operations import OpSpec
from benchmarks.stats import summarize
from benchmarks.workloads import Context

#: Other tables of ours whose dead tuples matter between vacuums (the promotion trigger updates
#: the allocator row of the participant on every completion of a head).
OURS_SIDE_TABLE = "public.participant_outbox_sequences"


def _queue_table(system: str) -> str:
    return "public.payment_outbox_pending" if system == "ours" else f"pgmq.q_{db.PGMQ_QUEUE}"


def _specs(ctx: Context, system: str, workers: int, participants: int, run_id: str) -> list[OpSpec]:
    s = ctx.settings
    producer = "enqueue" if system == "ours" else "send"
    consumer = "ours_cycle" if system == "ours" else "pgmq_cycle"
    per_producer = s.steady_rate / s.steady_producers
    return [
        *(
            OpSpec(
                producer,
                ctx.body,
                participants=participants,
                rate_per_s=per_producer,
                counts=False,
                run_id=run_id,
            )
            for _ in range(s.steady_producers)
        ),
        *(
            OpSpec(
                consumer,
                ctx.body,
                batch=1,
                lease_seconds=s.lease_seconds,
                idle_sleep_s=0.005,
                track="claim" if system == "ours" else "read",
                run_id=run_id,
            )
            for _ in range(workers)
        ),
    ]


def _run(ctx: Context, system: str, workers: int, participants: int, t0: float) -> dict[str, Any]:
    s = ctx.settings
    table = _queue_table(system)
    last = {"t": 0.0, "jobs": 0.0}

    def sample(t: float, jobs: int) -> dict[str, float]:
        live, dead, autovacuums = db.dead_tuples(ctx.admin, table)
        rate = (jobs - last["jobs"]) / (t - last["t"]) if t > last["t"] else 0.0
        last.update(t=t, jobs=float(jobs))
        point = {
            "t": round(t0 + t, 2),
            "jobs": jobs,
            "rate": round(rate, 1),
            "live": live,
            "dead": dead,
            "autovacuums": autovacuums,
        }
        if system == "ours":
            point["side_dead"] = db.dead_tuples(ctx.admin, OURS_SIDE_TABLE)[1]
        return point

    specs = _specs(ctx, system, workers, participants, ctx.next_run_id())
    run = driver.run(
        ctx.database.conninfo,
        specs,
        len(specs),
        warmup_s=s.warmup_s,
        measure_s=s.steady_s,
        stats_conn=ctx.stats,
        dbname=ctx.database.name,
        sampler=sample,
    )
    rates = [p["rate"] for p in run.samples[1:]] or [run.throughput]
    return {
        "workers": workers,
        "run": run.to_json(),
        "per_second": summarize(rates),
        "samples": run.samples,
        "ran_dry": run.empty_steps > 0,
    }


def _fill_rows(ctx: Context) -> int:
    """Rows to queue once so that no worker count drains the queue: a generous rate per worker
    (2 cores: more than 4 workers do not add throughput) over every run, plus a margin."""
    s = ctx.settings
    per_run = sum(1500 * min(w, 4) for w in s.steady_workers) * (s.steady_s + s.warmup_s)
    return int(per_run) + 20_000


def steady(ctx: Context) -> dict[str, Any]:
    """For every participant count: both queues filled once, then every worker count back to
    back (ours, then PGMQ), no VACUUM."""
    s = ctx.settings
    out: dict[str, Any] = {
        "seconds": s.steady_s,
        "offered_per_s": s.steady_rate,
        "producers": s.steady_producers,
        "by_participants": {},
    }
    rows = _fill_rows(ctx)
    for participants in s.steady_participants:
        db.reset_ours(ctx.admin)
        db.reset_pgmq(ctx.admin)
        db.fill_ours(ctx.admin, rows, ctx.body, participants=participants)
        db.fill_pgmq(ctx.admin, rows, ctx.body)
        for table in (*db.OURS_TABLES, *db.PGMQ_TABLES):
            ctx.admin.execute(f"ANALYZE {table}")
        series: dict[str, list[dict[str, Any]]] = {"ours": [], "pgmq": []}
        clock = {"ours": 0.0, "pgmq": 0.0}
        for workers in s.steady_workers:
            line = []
            for system in ("ours", "pgmq"):
                result = _run(ctx, system, workers, participants, clock[system])
                clock[system] += s.steady_s
                series[system].append(result)
                samples = result["samples"]
                line.append(
                    f"{system} {result['run']['throughput']:7.0f}/s"
                    f" (dead {samples[-1]['dead'] if samples else '-'}"
                    f"{', ran dry' if result['ran_dry'] else ''})"
                )
            ctx.log(f"steady p={participants} workers={workers}: " + "  ".join(line))
        out["by_participants"][str(participants)] = {"queued_at_start": rows, **series}
    db.reset_ours(ctx.admin)
    db.reset_pgmq(ctx.admin)
    return out
