"""W5 backlog growth: claim cost at 10k / 100k / 1M pending rows over 10,000 participants with 90%
of the participants' heads leased (per-participant FIFO, revision 0014: only heads are claimable),
with and without dead tuples, against pgmq.read at the same backlog (90% of its head invisible).

Claim time is measured per call from the driver with synchronous_commit off in that session: W5
is about what the claim reads, and a flush's jitter on a shared disk would otherwise decide the
p99 (W2 measures claims with durable commits). The buffers a claim touches come from auto_explain
(EXPLAIN cannot look inside a function): the claim statement's own plan, its index scans and
their buffers, kept as evidence for the README.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks import db
from benchmarks.plans import explain_nested, plan_nodes
from benchmarks.stats import latency_summary
from benchmarks.workloads import Context

Conn = psycopg.Connection[Any]


def plan_evidence(plans: list[dict[str, Any]], relation: str, marker: str) -> dict[str, Any]:
    """The plan whose query text contains ``marker``: total buffers, execution time, and each
    scan of ``relation`` (index, rows, rows removed, buffers)."""
    chosen = [p for p in plans if marker in p.get("Query Text", "")]
    if not chosen:
        return {"found": False}
    top = chosen[-1]["Plan"]
    scans = []
    for node in plan_nodes(top):
        if node.get("Relation Name") == relation and "Scan" in node.get("Node Type", ""):
            scans.append(
                {
                    "node": node["Node Type"],
                    "index": node.get("Index Name"),
                    "rows": node.get("Actual Rows"),
                    "removed_by_filter": node.get("Rows Removed by Filter", 0),
                    "buffers": node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0),
                }
            )
    return {
        "found": True,
        "rows": top.get("Actual Rows"),
        "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
        "time_ms": top.get("Actual Total Time"),
        "scans": scans,
    }


def _time_calls(call: Callable[[], int], count: int, budget_s: float) -> tuple[list[float], int]:
    samples: list[float] = []
    rows = 0
    deadline = time.perf_counter() + budget_s
    for _ in range(count):
        started = time.perf_counter()
        rows += call()
        samples.append((time.perf_counter() - started) * 1000.0)
        if time.perf_counter() > deadline:
            break
    return samples, rows


def _flush_stats(conn: Conn) -> None:
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    conn.execute("SELECT 1")


def _ours(ctx: Context, size: int) -> dict[str, Any]:
    s = ctx.settings
    admin = ctx.admin
    # Per-participant FIFO (revision 0014, issue 19): only a participant's head can be leased,
    # so P3's "90% of the head leased" is 90% of the 10,000 participants' heads; the other jobs
    # wait behind their heads. A claim must find the unleased heads without walking the leased
    # heads or the queued later jobs.
    participants = min(10_000, size)
    leased = participants * 9 // 10
    db.reset_ours(admin)
    started = time.monotonic()
    db.fill_ours(admin, size, ctx.body, participants=participants, leased_heads=leased)
    # Keep autovacuum away from the scratch queue while W5 builds its states on purpose.
    admin.execute("ALTER TABLE public.payment_outbox_pending SET (autovacuum_enabled = off)")
    db.settle(admin, db.OURS_TABLES)
    fill_s = time.monotonic() - started
    out: dict[str, Any] = {
        "size": size,
        "leased": leased,
        "participants": participants,
        "fill_s": round(fill_s, 1),
    }
    with ctx.database.connect() as conn:
        conn.execute("SET synchronous_commit = off")
        claim = "SELECT * FROM public.claim_outbox_batch(%s, 'w5', 300)"

        def one() -> int:
            return len(conn.execute(claim, (1,)).fetchall())

        for state in ("clean", "dead"):
            if state == "dead":
                unleased = participants - leased
                jobs = min(s.backlog_dead_jobs, unleased - 2 * s.backlog_claims - 200)
                if jobs <= 0:
                    continue
                made = _make_dead(conn, jobs)
                time.sleep(1.1)  # the finished leases (1 s) fall into the expired-lease range
                out["dead_jobs"] = made
            _flush_stats(conn)
            live, dead, _ = db.dead_tuples(admin, "public.payment_outbox_pending")
            one()  # prepared, plans cached
            samples, rows = _time_calls(one, s.backlog_claims, 60.0)
            plans = explain_nested(conn, claim, (10,))
            out[state] = {
                "n_live_tup": live,
                "n_dead_tup": dead,
                "claim_ms": latency_summary(samples),
                "claimed": rows,
                "explain": plan_evidence(plans, "payment_outbox_pending", "WITH unleased"),
            }
            ev = out[state]["explain"]
            ctx.log(
                f"W5 ours {size:>9,} {state:5}: claim p50 {out[state]['claim_ms']['p50']:.3f} ms"
                f" p99 {out[state]['claim_ms']['p99']:.3f} ms, {ev.get('buffers')} buffers for"
                f" {ev.get('rows')} rows, dead tuples {dead}"
            )
    admin.execute("ALTER TABLE public.payment_outbox_pending RESET (autovacuum_enabled)")
    return out


def _make_dead(conn: Conn, jobs: int) -> int:
    """Claim and complete ``jobs`` jobs (1-second leases, batches of 100): dead heap tuples and
    dead index entries where the next claims start, as a busy queue leaves them between
    vacuums."""
    done = 0
    while done < jobs:
        rows = conn.execute(
            "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(%s, 'w5-dead', 1)",
            (min(100, jobs - done),),
        ).fetchall()
        if not rows:
            break
        conn.execute(
            "SELECT * FROM public.complete_outbox_attempts_batch('w5-dead', %s::uuid[],"
            " %s::uuid[], array_fill('DISPATCHED'::text, ARRAY[%s]),"
            " p_rail_references => %s::uuid[]::text[])",
            ([r[0] for r in rows], [r[1] for r in rows], len(rows), [r[0] for r in rows]),
        ).fetchall()
        done += len(rows)
    return done


def _pgmq(ctx: Context, size: int) -> dict[str, Any]:
    s = ctx.settings
    admin = ctx.admin
    invisible = size * 9 // 10
    db.reset_pgmq(admin)
    started = time.monotonic()
    db.fill_pgmq(admin, size, ctx.body, invisible_head=invisible)
    admin.execute(f"ALTER TABLE pgmq.q_{db.PGMQ_QUEUE} SET (autovacuum_enabled = off)")
    db.settle(admin, db.PGMQ_TABLES)
    out: dict[str, Any] = {
        "size": size,
        "invisible": invisible,
        "fill_s": round(time.monotonic() - started, 1),
    }
    with ctx.database.connect() as conn:
        conn.execute("SET synchronous_commit = off")
        read = "SELECT * FROM pgmq.read(%s, 300, %s)"

        def one() -> int:
            return len(conn.execute(read, (db.PGMQ_QUEUE, 1)).fetchall())

        for state in ("clean", "dead"):
            if state == "dead":
                visible = size - invisible
                jobs = min(s.backlog_dead_jobs, visible - 2 * s.pgmq_backlog_reads - 200)
                if jobs <= 0:
                    continue
                done = 0
                while done < jobs:
                    batch = conn.execute(read, (db.PGMQ_QUEUE, min(100, jobs - done))).fetchall()
                    if not batch:
                        break
                    conn.execute(
                        "SELECT * FROM pgmq.delete(%s, %s::bigint[])",
                        (db.PGMQ_QUEUE, [r[0] for r in batch]),
                    ).fetchall()
                    done += len(batch)
                out["dead_jobs"] = done
            _flush_stats(conn)
            live, dead, _ = db.dead_tuples(admin, f"pgmq.q_{db.PGMQ_QUEUE}")
            one()
            samples, rows = _time_calls(one, s.pgmq_backlog_reads, s.pgmq_backlog_budget_s)
            plans = explain_nested(conn, read, (db.PGMQ_QUEUE, 10))
            out[state] = {
                "n_live_tup": live,
                "n_dead_tup": dead,
                "claim_ms": latency_summary(samples),
                "claimed": rows,
                "explain": plan_evidence(plans, f"q_{db.PGMQ_QUEUE}", "WITH cte"),
            }
            ev = out[state]["explain"]
            ctx.log(
                f"W5 pgmq {size:>9,} {state:5}: read p50 {out[state]['claim_ms']['p50']:.3f} ms"
                f" p99 {out[state]['claim_ms']['p99']:.3f} ms, {ev.get('buffers')} buffers for"
                f" {ev.get('rows')} rows, dead tuples {dead}"
            )
    admin.execute(f"ALTER TABLE pgmq.q_{db.PGMQ_QUEUE} RESET (autovacuum_enabled)")
    return out


def backlog(ctx: Context) -> dict[str, Any]:
    """W5 at every configured size, ours then PGMQ."""
    out: dict[str, list[dict[str, Any]]] = {"ours": [], "pgmq": []}
    for size in ctx.settings.backlog_sizes:
        out["ours"].append(_ours(ctx, size))
        out["pgmq"].append(_pgmq(ctx, size))
    db.reset_ours(ctx.admin)
    db.reset_pgmq(ctx.admin)
    return out
