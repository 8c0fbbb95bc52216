"""The measured sections: commit ceiling, W1 enqueue, W2 steady state (unbatched and batched),
W3 retry-heavy and the dead-tuple timeline. W4, W5 and the engine live in their own modules.

Every section measures the systems it compares back to back inside each repeat (ours, then PGMQ,
then the ceiling, and so on), so a slow moment of a shared machine hits both sides of a ratio.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import db, driver
from benchmarks.config import Settings
from benchmarks.operations import OpSpec
from benchmarks.stats import summarize
from symphony_schema import embedded

Log = Callable[[str], None]


@dataclass
class Context:
    """What every section needs: the scratch database, connections and the settings."""

    database: db.BenchDatabase
    admin: psycopg.Connection[Any]
    stats: psycopg.Connection[Any]
    settings: Settings
    body: str
    log: Log
    run_counter: int = 0
    expected_rate: dict[str, float] = field(default_factory=dict)
    #: Rows to queue per configuration, grown whenever a run drained its queue.
    fill_rows: dict[str, int] = field(default_factory=dict)

    def next_run_id(self) -> str:
        self.run_counter += 1
        return f"r{self.run_counter}"

    def measure(self, spec: OpSpec, workers: int, **kwargs: Any) -> driver.RunResult:
        return driver.run(
            self.database.conninfo,
            spec,
            workers,
            warmup_s=self.settings.warmup_s,
            measure_s=self.settings.measure_s,
            stats_conn=self.stats,
            dbname=self.database.name,
            **kwargs,
        )


def _record(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats of one configuration: their throughputs summarized, every run kept."""
    return {
        "throughput": summarize([run["throughput"] for run in runs]),
        "runs": runs,
    }


# --------------------------------------------------------------------------------------------
# Commit ceiling
# --------------------------------------------------------------------------------------------

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def pgbench_ceiling(ctx: Context, clients: int, seconds: float) -> dict[str, Any]:
    """pgbench, single-row INSERT per transaction, -c N -j N -T secs, prepared statements."""
    script = f"INSERT INTO {db.CEILING_TABLE} (payload) VALUES ('{ctx.body}'::jsonb);\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "insert.sql"
        path.write_text(script)
        base = [
            str(embedded.binary("pgbench")),
            "-n",
            "-M",
            "prepared",
            "-f",
            str(path),
            "-c",
            str(clients),
            "-j",
            str(clients),
        ]
        subprocess.run(
            [*base, "-T", "1", ctx.database.conninfo], capture_output=True, text=True, check=False
        )  # warm-up
        before = driver.snapshot(ctx.stats, ctx.database.name)
        done = subprocess.run(
            [*base, "-T", str(max(1, round(seconds))), ctx.database.conninfo],
            capture_output=True,
            text=True,
            check=False,
        )
        after = driver.snapshot(ctx.stats, ctx.database.name)
    match = _TPS.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {
        "workers": clients,
        "throughput": round(float(match.group(1)), 1),
        "commits": after.commits - before.commits,
        "cluster_wal_bytes": after.wal_lsn - before.wal_lsn,
    }


def ceiling(ctx: Context) -> dict[str, Any]:
    """Reference points: pgbench and this driver, single-row INSERT per transaction."""
    s = ctx.settings
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {"pgbench": {}, "driver": {}}
    for repeat in range(s.repeats):
        for clients in s.ceiling_clients:
            db.reset_ceiling(ctx.admin)
            db.settle(ctx.admin, (db.CEILING_TABLE,))
            run = ctx.measure(OpSpec("insert", ctx.body, run_id=ctx.next_run_id()), clients)
            raw["driver"].setdefault(clients, []).append(run.to_json())
            db.reset_ceiling(ctx.admin)
            db.settle(ctx.admin, (db.CEILING_TABLE,))
            bench = pgbench_ceiling(ctx, clients, s.measure_s)
            raw["pgbench"].setdefault(clients, []).append(bench)
            ctx.log(
                f"ceiling  rep {repeat + 1} c={clients}: driver {run.throughput:8.0f}/s  "
                f"pgbench {bench['throughput']:8.0f}/s"
            )
    return {name: {str(c): _record(runs) for c, runs in by.items()} for name, by in raw.items()}


# --------------------------------------------------------------------------------------------
# W1 enqueue
# --------------------------------------------------------------------------------------------


def enqueue(ctx: Context) -> dict[str, Any]:
    """W1: our enqueue (duplicate shares, participants) against pgmq.send and the ceiling."""
    s = ctx.settings
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for repeat in range(s.repeats):
        for clients in s.enqueue_clients:
            db.reset_pgmq(ctx.admin)
            db.settle(ctx.admin, db.PGMQ_TABLES)
            run = ctx.measure(OpSpec("send", ctx.body, run_id=ctx.next_run_id()), clients)
            raw.setdefault("pgmq_send", {}).setdefault(clients, []).append(run.to_json())
            line = [f"W1 rep {repeat + 1} c={clients}: pgmq {run.throughput:7.0f}/s"]
            for variant in s.enqueue_variants:
                db.reset_ours(ctx.admin)
                db.settle(ctx.admin, db.OURS_TABLES)
                spec = OpSpec(
                    "enqueue",
                    ctx.body,
                    duplicate_pct=variant.duplicate_pct,
                    participants=variant.participants,
                    run_id=ctx.next_run_id(),
                )
                run = ctx.measure(spec, clients)
                key = f"ours_dup{variant.duplicate_pct}_p{variant.participants}"
                raw.setdefault(key, {}).setdefault(clients, []).append(run.to_json())
                line.append(f"{key} {run.throughput:7.0f}/s")
            ctx.log("  ".join(line))
    return {name: {str(c): _record(runs) for c, runs in by.items()} for name, by in raw.items()}


# --------------------------------------------------------------------------------------------
# W2 steady state and W3 retries
# --------------------------------------------------------------------------------------------


def _fill_for(ctx: Context, key: str, workers: int, batch: int) -> int:
    """Rows to queue so a run cannot drain them: 1.5x the best rate seen for this configuration
    (or a generous first guess) times the run's length, at least 20,000; three times more after
    a run that drained its queue (its rate is then only a lower bound)."""
    s = ctx.settings
    guess = 2000.0 * workers * (4 if batch > 1 else 1)
    rate = max(ctx.expected_rate.get(key, 0.0), guess)
    wanted = max(20_000, int(rate * (s.warmup_s + s.measure_s) * 1.5) + 5_000)
    return max(wanted, ctx.fill_rows.get(key, 0))


def _cycle_run(
    ctx: Context,
    system: str,
    workers: int,
    batch: int,
    batched: bool,
    retry_pct: int = 0,
    failure_pct: int = 0,
) -> driver.RunResult:
    kind = "ours_cycle" if system == "ours" else "pgmq_cycle"
    key = f"{kind}-{workers}-{batch}-{batched}-{retry_pct}"
    for _attempt in range(4):
        rows = _fill_for(ctx, key, workers, batch)
        if system == "ours":
            db.reset_ours(ctx.admin)
            db.fill_ours(ctx.admin, rows, ctx.body)
            db.settle(ctx.admin, db.OURS_TABLES)
        else:
            db.reset_pgmq(ctx.admin)
            db.fill_pgmq(ctx.admin, rows, ctx.body)
            db.settle(ctx.admin, db.PGMQ_TABLES)
        spec = OpSpec(
            kind,
            ctx.body,
            batch=batch,
            batched_completion=batched,
            lease_seconds=ctx.settings.lease_seconds,
            retry_pct=retry_pct,
            failure_pct=failure_pct,
            run_id=ctx.next_run_id(),
        )
        run = ctx.measure(spec, workers)
        if run.empty_steps == 0 or retry_pct:
            ctx.expected_rate[key] = max(ctx.expected_rate.get(key, 0.0), run.throughput)
            return run
        ctx.fill_rows[key] = rows * 3
        ctx.log(
            f"  {key}: the queue ran dry ({run.empty_steps} empty claims) with {rows:,} rows;"
            f" measuring again with {rows * 3:,}"
        )
    raise RuntimeError(f"{key}: the queue ran dry four times; the last run queued {rows:,} rows")


def cycle(ctx: Context) -> dict[str, Any]:
    """W2: claim + complete against pgmq.read + pgmq.delete, one job per completion
    transaction, for every worker count and claim batch size."""
    s = ctx.settings
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for repeat in range(s.repeats):
        for batch in s.claim_batches:
            for workers in s.cycle_workers:
                line = []
                for system in ("ours", "pgmq"):
                    run = _cycle_run(ctx, system, workers, batch, batched=False)
                    raw.setdefault(system, {}).setdefault(f"{workers}x{batch}", []).append(
                        run.to_json()
                    )
                    line.append(f"{system} {run.throughput:7.0f}/s")
                ctx.log(f"W2 rep {repeat + 1} workers={workers} batch={batch}: " + "  ".join(line))
    return {system: {k: _record(v) for k, v in by.items()} for system, by in raw.items()}


def batched(ctx: Context) -> dict[str, Any]:
    """P2: claim batch B and complete the whole batch in one call (ours:
    complete_outbox_attempts_batch; PGMQ: pgmq.delete(queue, bigint[]))."""
    s = ctx.settings
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for repeat in range(s.repeats):
        for batch in s.batched_sizes:
            for workers in s.batched_workers:
                line = []
                for system in ("ours", "pgmq"):
                    run = _cycle_run(ctx, system, workers, batch, batched=True)
                    raw.setdefault(system, {}).setdefault(f"{workers}x{batch}", []).append(
                        run.to_json()
                    )
                    line.append(f"{system} {run.throughput:7.0f}/s")
                ctx.log(
                    f"P2 rep {repeat + 1} workers={workers} batch={batch} batched: "
                    + "  ".join(line)
                )
    return {system: {k: _record(v) for k, v in by.items()} for system, by in raw.items()}


def retries(ctx: Context) -> dict[str, Any]:
    """W3: 30% of the completions are retries due again 2 s later, 5% terminal failures (PGMQ:
    pgmq.set_vt for a retry, pgmq.archive for a failure)."""
    s = ctx.settings
    raw: dict[str, list[dict[str, Any]]] = {}
    for repeat in range(s.repeats):
        line = []
        for system in ("ours", "pgmq"):
            run = _cycle_run(
                ctx,
                system,
                s.retry_workers,
                s.retry_batch,
                batched=False,
                retry_pct=30,
                failure_pct=5,
            )
            raw.setdefault(system, []).append(run.to_json())
            line.append(f"{system} {run.throughput:7.0f}/s")
        ctx.log(f"W3 rep {repeat + 1} workers={s.retry_workers}: " + "  ".join(line))
    return {system: _record(runs) for system, runs in raw.items()}


# --------------------------------------------------------------------------------------------
# Dead tuples over time
# --------------------------------------------------------------------------------------------


#: Per-table autovacuum settings revision 0009 gives the queue table, and their defaults.
QUEUE_AUTOVACUUM_OPTIONS = (
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_cost_delay",
)


@dataclass(frozen=True)
class TimelineSeries:
    """One long run of the timeline: which system, and the queue table's autovacuum settings."""

    name: str
    system: str
    table: str
    reset_autovacuum: bool = False


#: Ours (with the queue autovacuum of revision 0009) and PGMQ under the same offered load. A
#: series with ``reset_autovacuum=True`` shows the server defaults instead; for a short queue it
#: looks the same (ADR 0042: the launcher's naptime decides), so the full run leaves it out.
TIMELINE_SERIES = (
    TimelineSeries("ours", "ours", "public.payment_outbox_pending"),
    TimelineSeries("pgmq", "pgmq", f"pgmq.q_{db.PGMQ_QUEUE}"),
)


def _timeline_specs(ctx: Context, series: TimelineSeries, run_id: str) -> list[OpSpec]:
    """Producers at a fixed offered load and consumers (claim batch 1) that keep up with it."""
    s = ctx.settings
    producer = "enqueue" if series.system == "ours" else "send"
    consumer = "ours_cycle" if series.system == "ours" else "pgmq_cycle"
    per_producer = s.timeline_rate / s.timeline_producers
    return [
        *(
            OpSpec(producer, ctx.body, rate_per_s=per_producer, counts=False, run_id=run_id)
            for _ in range(s.timeline_producers)
        ),
        *(
            OpSpec(
                consumer,
                ctx.body,
                batch=1,
                lease_seconds=s.lease_seconds,
                idle_sleep_s=0.005,
                track="claim" if series.system == "ours" else "read",
                run_id=run_id,
            )
            for _ in range(s.timeline_workers)
        ),
    ]


def _timeline_run(ctx: Context, series: TimelineSeries) -> dict[str, Any]:
    s = ctx.settings
    if series.system == "ours":
        db.reset_ours(ctx.admin)
        db.fill_ours(ctx.admin, s.timeline_backlog, ctx.body)
    else:
        db.reset_pgmq(ctx.admin)
        db.fill_pgmq(ctx.admin, s.timeline_backlog, ctx.body)
    before = db.reloptions(ctx.admin, series.table)
    if series.reset_autovacuum:
        ctx.admin.execute(
            f"ALTER TABLE {series.table} RESET ({', '.join(QUEUE_AUTOVACUUM_OPTIONS)})"
        )
    db.settle(ctx.admin, db.OURS_TABLES if series.system == "ours" else db.PGMQ_TABLES)
    last = {"t": 0.0, "jobs": 0.0}

    def sample(t: float, jobs: int) -> dict[str, float]:
        live, dead, autovacuums = db.dead_tuples(ctx.admin, series.table)
        rate = (jobs - last["jobs"]) / (t - last["t"]) if t > last["t"] else 0.0
        last.update(t=t, jobs=float(jobs))
        return {
            "t": round(t, 2),
            "jobs": jobs,
            "rate": round(rate, 1),
            "live": live,
            "dead": dead,
            "autovacuums": autovacuums,
        }

    specs = _timeline_specs(ctx, series, ctx.next_run_id())
    try:
        run = driver.run(
            ctx.database.conninfo,
            specs,
            len(specs),
            warmup_s=s.warmup_s,
            measure_s=s.timeline_s,
            stats_conn=ctx.stats,
            dbname=ctx.database.name,
            sampler=sample,
        )
    finally:
        db.set_reloptions(ctx.admin, series.table, before)
    peak = max((point["dead"] for point in run.samples), default=0)
    vacuums = max((point["autovacuums"] for point in run.samples), default=0) - min(
        (point["autovacuums"] for point in run.samples), default=0
    )
    options = "server defaults" if series.reset_autovacuum else (", ".join(before) or "none")
    ctx.log(
        f"timeline {series.name}: {run.throughput:7.0f} jobs/s offered {s.timeline_rate:.0f}/s"
        f" over {s.timeline_s:.0f} s, peak dead tuples {peak}, {vacuums} autovacuum(s),"
        f" table options: {options}"
    )
    return {
        "run": run.to_json(),
        "samples": run.samples,
        "tracked": run.tracked,
        "table": series.table,
        "system": series.system,
        "reloptions": [] if series.reset_autovacuum else before,
        "offered_per_s": s.timeline_rate,
    }


def timeline(ctx: Context) -> dict[str, Any]:
    """Steady state over time: producers enqueue at a fixed rate while consumers claim and
    complete (claim batch 1), so the queue stays short as in production. Every second: dead
    tuples of the queue table, autovacuum runs, throughput and the claim's p50/p99. Ours with the
    queue's autovacuum settings of revision 0009 and with the server defaults, and PGMQ."""
    return {series.name: _timeline_run(ctx, series) for series in TIMELINE_SERIES}


# --------------------------------------------------------------------------------------------
# Server cost per statement (pgbench -r, synchronous_commit off)
# --------------------------------------------------------------------------------------------

_STATEMENT_LINE = re.compile(r"^\s+([0-9.]+)\s+\d+\s+(.*)$")


def _statement_scripts(body: str) -> dict[str, str]:
    return {
        "ours_cycle": (
            "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(1, 'pgbench', 30)"
            " \\gset\n"
            "SELECT * FROM public.complete_outbox_attempt(:outbox_id, :lease_token, 'pgbench',"
            " 'DISPATCHED', p_rail_reference => :outbox_id);\n"
        ),
        "pgmq_cycle": (
            f"SELECT msg_id FROM pgmq.read('{db.PGMQ_QUEUE}', 30, 1) \\gset\n"
            f"SELECT pgmq.delete('{db.PGMQ_QUEUE}', :msg_id::bigint);\n"
        ),
        "ours_enqueue": (
            "\\set p random(1, 10000)\n"
            "SELECT * FROM public.enqueue_payment_outbox(gen_random_uuid()::text, 'p-' || :p,"
            f" 'k', 'rtgs', '{body}'::jsonb);\n"
        ),
        "pgmq_send": f"SELECT * FROM pgmq.send('{db.PGMQ_QUEUE}', '{body}'::jsonb);\n",
        "ceiling_insert": f"INSERT INTO {db.CEILING_TABLE} (payload) VALUES ('{body}'::jsonb);\n",
    }


def _pgbench_statements(ctx: Context, script: str, seconds: float) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.sql"
        path.write_text(script)
        done = subprocess.run(
            [
                str(embedded.binary("pgbench")),
                "-n",
                "-M",
                "prepared",
                "-r",
                "-f",
                str(path),
                "-c",
                "1",
                "-j",
                "1",
                "-T",
                str(max(1, round(seconds))),
                ctx.database.conninfo,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGOPTIONS": "-c synchronous_commit=off"},
        )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench -r failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    out = []
    in_statements = False
    for line in done.stdout.splitlines():
        if line.startswith("statement latencies"):
            in_statements = True
            continue
        match = _STATEMENT_LINE.match(line) if in_statements else None
        if match and not match.group(2).startswith("\\set"):
            out.append((match.group(2).split("(")[0].strip(), float(match.group(1))))
    return out


def statement_costs(ctx: Context) -> dict[str, Any]:
    """Server time per statement at one client with synchronous_commit off (pgbench -r): what
    each call costs before the commit's flush, the part the schema decides."""
    s = ctx.settings
    scripts = _statement_scripts(ctx.body)
    raw: dict[str, dict[str, list[float]]] = {}
    seconds = max(1.0, s.measure_s / 2)
    for _ in range(s.repeats):
        for name, script in scripts.items():
            db.reset_ours(ctx.admin)
            db.reset_pgmq(ctx.admin)
            db.reset_ceiling(ctx.admin)
            if name == "ours_cycle":
                db.fill_ours(ctx.admin, 60_000, ctx.body)
            elif name == "pgmq_cycle":
                db.fill_pgmq(ctx.admin, 60_000, ctx.body)
            db.settle(ctx.admin, db.OURS_TABLES + db.PGMQ_TABLES + (db.CEILING_TABLE,))
            for statement, ms in _pgbench_statements(ctx, script, seconds):
                raw.setdefault(name, {}).setdefault(statement, []).append(ms)
        ctx.log(
            "statement costs: "
            + "; ".join(
                f"{name}: "
                + ", ".join(f"{st.split()[-1]} {vals[-1]:.3f} ms" for st, vals in by.items())
                for name, by in raw.items()
            )
        )
    return {
        name: {statement: summarize(values) for statement, values in by.items()}
        for name, by in raw.items()
    }
