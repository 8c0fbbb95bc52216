"""Where a job's time goes (issue 17 "profile before changing"): one connection runs claim (batch
1) + complete against pgmq.read + pgmq.delete on the same queued rows, and reports

- every statement the functions run, nested ones included (pg_stat_statements with
  ``pg_stat_statements.track = all``): calls, time, buffers, WAL bytes and full-page images;
- the plans of one claim and one completion, nested statements and the head-promotion trigger
  included (auto_explain with ANALYZE, BUFFERS, WAL: EXPLAIN cannot look inside a function);
- WAL bytes, WAL records and full-page images per job from the backend's own WAL counters.

The queue holds ``jobs`` rows over ``participants`` participants (each participant's first job is
its head, as enqueue leaves them), so every completion of a head promotes the next job, as in W2.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from benchmarks import db
from benchmarks.plans import explain_nested, plan_nodes
from benchmarks.workloads import Context

Conn = psycopg.Connection[Any]

CLAIM = "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(1, 'profile', 30)"
# The rail's reference (required since 0023, unique per rail): the job's own id.
COMPLETE = (
    "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'profile', 'DISPATCHED',"
    " p_rail_reference => %s::uuid::text)"
)
READ = f"SELECT msg_id FROM pgmq.read('{db.PGMQ_QUEUE}', 30, 1)"
DELETE = f"SELECT pgmq.delete('{db.PGMQ_QUEUE}', %s::bigint)"


def _backend_wal(conn: Conn) -> tuple[int, int, int]:
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT wal_records, wal_bytes, wal_fpi"
        " FROM pg_catalog.pg_stat_get_backend_wal(pg_backend_pid())"
    ).fetchone()
    return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)


def _statements(admin: Conn, limit: int = 30) -> list[dict[str, Any]]:
    """Statements of the scratch database since the last reset, nested ones included."""
    rows = admin.execute(
        "SELECT s.toplevel, s.query, s.calls, s.total_exec_time, s.rows,"
        " s.shared_blks_hit + s.shared_blks_read + s.shared_blks_dirtied, s.wal_records,"
        " s.wal_bytes, s.wal_fpi"
        " FROM pg_stat_statements AS s"
        " WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d"
        "                  WHERE d.datname = current_database())"
        "   AND s.query !~* 'pg_stat|pg_backend_pid|set_config|^(SET|RESET|LOAD|BEGIN|COMMIT)'"
        " ORDER BY s.total_exec_time DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        {
            "toplevel": bool(r[0]),
            "query": " ".join(str(r[1]).split())[:400],
            "calls": int(r[2]),
            "total_ms": round(float(r[3]), 2),
            "mean_ms": round(float(r[3]) / int(r[2]), 4) if r[2] else None,
            "rows": int(r[4]),
            "buffers_per_call": round(int(r[5]) / int(r[2]), 2) if r[2] else None,
            "wal_records_per_call": round(int(r[6]) / int(r[2]), 2) if r[2] else None,
            "wal_bytes_per_call": round(float(r[7]) / int(r[2]), 1) if r[2] else None,
            "wal_fpi_per_call": round(int(r[8]) / int(r[2]), 4) if r[2] else None,
        }
        for r in rows
    ]


def _plan_summary(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each plan auto_explain reported: its statement, time, buffers, WAL and the scans in it."""
    out = []
    for plan in plans:
        top = plan["Plan"]
        scans = []
        for node in plan_nodes(top):
            if "Scan" in node.get("Node Type", "") or node.get("Node Type") == "ModifyTable":
                scans.append(
                    {
                        "node": node.get("Node Type"),
                        "operation": node.get("Operation"),
                        "relation": node.get("Relation Name"),
                        "index": node.get("Index Name"),
                        "rows": node.get("Actual Rows"),
                        "loops": node.get("Actual Loops"),
                        "buffers": node.get("Shared Hit Blocks", 0)
                        + node.get("Shared Read Blocks", 0),
                    }
                )
        out.append(
            {
                "query": " ".join(plan.get("Query Text", "").split())[:300],
                "time_ms": top.get("Actual Total Time"),
                "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0),
                "dirtied": top.get("Shared Dirtied Blocks", 0),
                "wal_records": top.get("WAL Records", 0),
                "wal_bytes": top.get("WAL Bytes", 0),
                "wal_fpi": top.get("WAL FPI", 0),
                "nodes": scans,
            }
        )
    return out


def _explain_wal(conn: Conn, statement: str, params: Any = None) -> list[dict[str, Any]]:
    conn.execute("SELECT pg_catalog.set_config('auto_explain.log_wal', 'on', false)")
    return _plan_summary(explain_nested(conn, statement, params, timing=True))


def _ours(ctx: Context, jobs: int, participants: int, cycles: int) -> dict[str, Any]:
    admin = ctx.admin
    db.reset_ours(admin)
    db.fill_ours(admin, jobs, ctx.body, participants=participants)
    db.settle(admin, db.OURS_TABLES)
    with ctx.database.connect() as conn:
        # Warm the plan caches of the functions on this connection first.
        for _ in range(20):
            row = conn.execute(CLAIM).fetchone()
            assert row is not None
            conn.execute(COMPLETE, (row[0], row[1], row[0])).fetchall()
        conn.execute("SET pg_stat_statements.track = 'all'")
        admin.execute("SELECT pg_stat_statements_reset()")
        wal0 = _backend_wal(conn)
        started = time.perf_counter()
        claim_s = complete_s = 0.0
        for _ in range(cycles):
            t0 = time.perf_counter()
            row = conn.execute(CLAIM).fetchone()
            t1 = time.perf_counter()
            assert row is not None, "the profile's queue ran dry"
            conn.execute(COMPLETE, (row[0], row[1], row[0])).fetchall()
            claim_s += t1 - t0
            complete_s += time.perf_counter() - t1
        elapsed = time.perf_counter() - started
        wal1 = _backend_wal(conn)
        conn.execute("SET pg_stat_statements.track = 'top'")
        statements = _statements(admin)
        claim_plans = _explain_wal(conn, CLAIM)
        row = conn.execute(CLAIM).fetchone()
        assert row is not None
        complete_plans = _explain_wal(conn, COMPLETE, (row[0], row[1], row[0]))
    return {
        "jobs_queued": jobs,
        "participants": participants,
        "cycles": cycles,
        "jobs_per_s": round(cycles / elapsed, 1),
        "claim_ms": round(claim_s * 1000 / cycles, 4),
        "complete_ms": round(complete_s * 1000 / cycles, 4),
        "wal_records_per_job": round((wal1[0] - wal0[0]) / cycles, 2),
        "wal_bytes_per_job": round((wal1[1] - wal0[1]) / cycles, 1),
        "wal_fpi_per_job": round((wal1[2] - wal0[2]) / cycles, 4),
        "statements": statements,
        "claim_plans": claim_plans,
        "complete_plans": complete_plans,
    }


def _pgmq(ctx: Context, jobs: int, cycles: int) -> dict[str, Any]:
    admin = ctx.admin
    db.reset_pgmq(admin)
    db.fill_pgmq(admin, jobs, ctx.body)
    db.settle(admin, db.PGMQ_TABLES)
    with ctx.database.connect() as conn:
        for _ in range(20):
            row = conn.execute(READ).fetchone()
            assert row is not None
            conn.execute(DELETE, (row[0],)).fetchall()
        conn.execute("SET pg_stat_statements.track = 'all'")
        admin.execute("SELECT pg_stat_statements_reset()")
        wal0 = _backend_wal(conn)
        started = time.perf_counter()
        read_s = delete_s = 0.0
        for _ in range(cycles):
            t0 = time.perf_counter()
            row = conn.execute(READ).fetchone()
            t1 = time.perf_counter()
            assert row is not None, "the profile's queue ran dry"
            conn.execute(DELETE, (row[0],)).fetchall()
            read_s += t1 - t0
            delete_s += time.perf_counter() - t1
        elapsed = time.perf_counter() - started
        wal1 = _backend_wal(conn)
        conn.execute("SET pg_stat_statements.track = 'top'")
        statements = _statements(admin)
        read_plans = _explain_wal(conn, READ)
        row = conn.execute(READ).fetchone()
        assert row is not None
        delete_plans = _explain_wal(conn, DELETE, (row[0],))
    return {
        "jobs_queued": jobs,
        "cycles": cycles,
        "jobs_per_s": round(cycles / elapsed, 1),
        "read_ms": round(read_s * 1000 / cycles, 4),
        "delete_ms": round(delete_s * 1000 / cycles, 4),
        "wal_records_per_job": round((wal1[0] - wal0[0]) / cycles, 2),
        "wal_bytes_per_job": round((wal1[1] - wal0[1]) / cycles, 1),
        "wal_fpi_per_job": round((wal1[2] - wal0[2]) / cycles, 4),
        "statements": statements,
        "read_plans": read_plans,
        "delete_plans": delete_plans,
    }


def _index_buffers(conn: Conn) -> dict[str, Any]:
    """Buffers one claim's scans of the claimable-head and lease indexes read (auto_explain),
    then the job it claimed is completed."""
    out: dict[str, Any] = {"claimable": 0, "lease_expires": 0}
    for plan in explain_nested(conn, CLAIM):
        if "WITH unleased" not in plan.get("Query Text", ""):
            continue
        out["statement_ms"] = plan["Plan"].get("Actual Total Time")
        for node in plan_nodes(plan["Plan"]):
            name = str(node.get("Index Name") or "")
            for short in ("claimable", "lease_expires"):
                if name == f"ix_payment_outbox_pending_{short}":
                    out[short] += node.get("Shared Hit Blocks", 0) + node.get(
                        "Shared Read Blocks", 0
                    )
    for outbox_id, token in conn.execute(
        "SELECT outbox_id, lease_token FROM public.payment_outbox_pending"
        " WHERE claimed_by = 'profile'"
    ).fetchall():
        conn.execute(COMPLETE, (outbox_id, token, outbox_id)).fetchall()
    return out


def _cycles_per_s(conn: Conn, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        row = conn.execute(CLAIM).fetchone()
        assert row is not None, "the profile's queue ran dry"
        conn.execute(COMPLETE, (row[0], row[1], row[0])).fetchall()
    return round(count / (time.perf_counter() - started), 1)


def dead_entry_growth(ctx: Context, checkpoints: tuple[int, ...]) -> dict[str, Any]:
    """What a claim reads as jobs pass without a vacuum: every claim leaves the old version's
    entry at the low end of the claimable-head index (the leased row leaves the partial index)
    and every completion leaves one in the lease index, which claims scan from its low end once
    the lease time has passed. Autovacuum is off for the queue; synchronous_commit off."""
    admin = ctx.admin
    db.reset_ours(admin)
    db.fill_ours(admin, checkpoints[-1] + 20_000, ctx.body, participants=10_000)
    db.settle(admin, db.OURS_TABLES)
    admin.execute("ALTER TABLE public.payment_outbox_pending SET (autovacuum_enabled = off)")
    points = []
    try:
        with ctx.database.connect() as conn:
            conn.execute("SET synchronous_commit = off")
            done = 0
            for target in checkpoints:
                rate = _cycles_per_s(conn, target - done) if target > done else None
                done = target
                point = {"jobs": target, "jobs_per_s": rate, **_index_buffers(conn)}
                point["dead_tuples"] = db.dead_tuples(admin, "public.payment_outbox_pending")[1]
                points.append(point)
            after_rate = _cycles_per_s(conn, 1000)
            admin.execute("VACUUM public.payment_outbox_pending")
            vacuumed = _index_buffers(conn)
            vacuumed_rate = _cycles_per_s(conn, 1000)
    finally:
        admin.execute("ALTER TABLE public.payment_outbox_pending RESET (autovacuum_enabled)")
    return {
        "points": points,
        "before_vacuum_jobs_per_s": after_rate,
        "after_vacuum": vacuumed,
        "after_vacuum_jobs_per_s": vacuumed_rate,
    }


def profile(ctx: Context) -> dict[str, Any]:
    """Ours at 10,000 and at 50 participants (every completion promotes a head), then PGMQ,
    then the growth of a claim's index reads between vacuums."""
    cycles = 500 if ctx.settings.quick else 3000
    jobs = cycles * 3 + 10_000
    out: dict[str, Any] = {}
    for participants in (10_000, 50):
        result = _ours(ctx, jobs, participants, cycles)
        out[f"ours_p{participants}"] = result
        ctx.log(
            f"profile ours p={participants}: {result['jobs_per_s']:.0f} jobs/s, claim"
            f" {result['claim_ms']:.3f} ms + complete {result['complete_ms']:.3f} ms,"
            f" WAL {result['wal_bytes_per_job']:.0f} B / {result['wal_records_per_job']:.1f}"
            f" records / {result['wal_fpi_per_job']:.3f} FPI per job"
        )
    result = _pgmq(ctx, jobs, cycles)
    out["pgmq"] = result
    ctx.log(
        f"profile pgmq: {result['jobs_per_s']:.0f} jobs/s, read {result['read_ms']:.3f} ms +"
        f" delete {result['delete_ms']:.3f} ms, WAL {result['wal_bytes_per_job']:.0f} B /"
        f" {result['wal_records_per_job']:.1f} records / {result['wal_fpi_per_job']:.3f} FPI"
    )
    checkpoints = (0, 1000, 2000) if ctx.settings.quick else (0, 3000, 12000, 24000)
    growth = dead_entry_growth(ctx, checkpoints)
    out["dead_entry_growth"] = growth
    ctx.log(
        "profile growth: "
        + "; ".join(
            f"{p['jobs']} jobs: claimable {p['claimable']} + lease {p['lease_expires']} buffers"
            for p in growth["points"]
        )
        + f"; after VACUUM {growth['after_vacuum']['claimable']} +"
        f" {growth['after_vacuum']['lease_expires']}; jobs/s {growth['before_vacuum_jobs_per_s']}"
        f" before, {growth['after_vacuum_jobs_per_s']} after the VACUUM"
    )
    db.reset_ours(ctx.admin)
    db.reset_pgmq(ctx.admin)
    return out
