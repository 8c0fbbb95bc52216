"""W4 lease expiry: workers are killed (SIGKILL) while holding leases. How long until their jobs
are claimable again, and what happens to the late completion of a worker that lost its lease?

Ours: claim_outbox_batch leases with a fencing token; a survivor's claim picks expired leases up,
and the lost worker's completion with its old token is refused with P7002. PGMQ: pgmq.read sets a
visibility timeout; a survivor's read picks the message up once it expires, and the late
pgmq.delete of the lost worker is not fenced (it deletes the message the survivor now holds).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from typing import Any

import psycopg

from benchmarks import db
from benchmarks.stats import latency_summary
from benchmarks.workloads import Context

_CTX = mp.get_context("fork")
_POLL_S = 0.05


def _doomed(conninfo: str, system: str, worker: str, batch: int, lease_s: int, out: Any) -> None:
    """Claim (or read) a batch, report it, then hang until killed."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if system == "ours":
            rows = conn.execute(
                "SELECT outbox_id, lease_token, lease_expires_at FROM"
                " public.claim_outbox_batch(%s, %s, %s)",
                (batch, worker, lease_s),
            ).fetchall()
            out.put([(str(r[0]), str(r[1]), r[2].timestamp()) for r in rows])
        else:
            rows = conn.execute(
                "SELECT msg_id, vt FROM pgmq.read(%s, %s, %s)", (db.PGMQ_QUEUE, lease_s, batch)
            ).fetchall()
            out.put([(int(r[0]), None, r[1].timestamp()) for r in rows])
        while True:
            time.sleep(60)


def _run_system(ctx: Context, system: str) -> dict[str, Any]:
    s = ctx.settings
    lease_s = s.expiry_lease_seconds
    queue_rows = s.expiry_doomed_workers * s.expiry_batch * 4
    if system == "ours":
        db.reset_ours(ctx.admin)
        db.fill_ours(ctx.admin, queue_rows, ctx.body)
        db.settle(ctx.admin, db.OURS_TABLES)
    else:
        db.reset_pgmq(ctx.admin)
        db.fill_pgmq(ctx.admin, queue_rows, ctx.body)
        db.settle(ctx.admin, db.PGMQ_TABLES)
    out: Any = _CTX.Queue()
    processes = [
        _CTX.Process(
            target=_doomed,
            args=(ctx.database.conninfo, system, f"doomed-{i}", s.expiry_batch, lease_s, out),
            daemon=True,
        )
        for i in range(s.expiry_doomed_workers)
    ]
    for process in processes:
        process.start()
    held: dict[Any, tuple[Any, float, str]] = {}
    for i in range(len(processes)):
        for job_id, token, expires_at in out.get(timeout=60):
            held[job_id] = (token, expires_at, f"doomed-{i}")
    killed_at = time.time()
    for process in processes:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
    for process in processes:
        process.join(10)

    reclaimed: dict[Any, float] = {}
    survivor_rows: dict[Any, Any] = {}
    deadline = time.time() + lease_s + 15
    with ctx.database.connect() as survivor:
        while len(reclaimed) < len(held) and time.time() < deadline:
            if system == "ours":
                rows = survivor.execute(
                    "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(100, 'survivor',"
                    " 60)"
                ).fetchall()
                got: dict[Any, Any] = {str(r[0]): r[1] for r in rows}
            else:
                rows = survivor.execute(
                    "SELECT msg_id FROM pgmq.read(%s, 60, 100)", (db.PGMQ_QUEUE,)
                ).fetchall()
                got = {int(r[0]): None for r in rows}
            now = time.time()
            for job_id, token in got.items():
                survivor_rows[job_id] = token
                if job_id in held and job_id not in reclaimed:
                    reclaimed[job_id] = now
            time.sleep(_POLL_S)
        stale = _late_completions(survivor, system, held)
        survivor_ok = _survivor_completions(survivor, system, held, survivor_rows)
    after_kill = [(reclaimed[j] - killed_at) * 1000 for j in reclaimed]
    after_expiry = [(reclaimed[j] - held[j][1]) * 1000 for j in reclaimed]
    return {
        "held": len(held),
        "reclaimed": len(reclaimed),
        "lease_seconds": lease_s,
        "poll_ms": _POLL_S * 1000,
        "reclaim_after_kill_ms": latency_summary(after_kill),
        "reclaim_after_expiry_ms": latency_summary(after_expiry),
        **stale,
        **survivor_ok,
    }


def _late_completions(
    conn: psycopg.Connection[Any], system: str, held: dict[Any, tuple[Any, float, str]]
) -> dict[str, int]:
    """The lost workers' results arrive after the survivor took the jobs over."""
    rejected = accepted = 0
    for job_id, (token, _, worker) in held.items():
        try:
            if system == "ours":
                conn.execute(
                    "SELECT * FROM public.complete_outbox_attempt(%s, %s, %s, 'DISPATCHED',"
                    " p_rail_reference => %s::text)",
                    (job_id, token, worker, str(job_id)),
                ).fetchall()
                accepted += 1
            else:
                row = conn.execute(
                    "SELECT pgmq.delete(%s, %s::bigint)", (db.PGMQ_QUEUE, job_id)
                ).fetchone()
                accepted += 1 if row and row[0] else 0
                rejected += 0 if row and row[0] else 1
        except psycopg.Error as exc:
            if exc.sqlstate != "P7002":
                raise
            rejected += 1
    return {"stale_completions_rejected": rejected, "stale_completions_accepted": accepted}


def _survivor_completions(
    conn: psycopg.Connection[Any],
    system: str,
    held: dict[Any, tuple[Any, float, str]],
    survivor_rows: dict[Any, Any],
) -> dict[str, int]:
    """The survivor then completes the jobs it took over: does its result still count?"""
    ok = lost = 0
    for job_id in held:
        if job_id not in survivor_rows:
            continue
        if system == "ours":
            conn.execute(
                "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'survivor', 'DISPATCHED',"
                " p_rail_reference => %s::text)",
                (job_id, survivor_rows[job_id], str(job_id)),
            ).fetchall()
            ok += 1
        else:
            row = conn.execute(
                "SELECT pgmq.delete(%s, %s::bigint)", (db.PGMQ_QUEUE, job_id)
            ).fetchone()
            ok += 1 if row and row[0] else 0
            lost += 0 if row and row[0] else 1
    return {"survivor_completions_recorded": ok, "survivor_completions_lost": lost}


def lease_expiry(ctx: Context) -> dict[str, Any]:
    """W4 for both systems, once per repeat."""
    out: dict[str, list[dict[str, Any]]] = {"ours": [], "pgmq": []}
    for repeat in range(ctx.settings.repeats):
        for system in ("ours", "pgmq"):
            result = _run_system(ctx, system)
            out[system].append(result)
            ctx.log(
                f"W4 rep {repeat + 1} {system}: {result['reclaimed']}/{result['held']} reclaimed,"
                f" p50 {result['reclaim_after_kill_ms']['p50']:.0f} ms after the kill,"
                f" {result['reclaim_after_expiry_ms']['p50']:.0f} ms after expiry; late"
                f" completions rejected {result['stale_completions_rejected']}, accepted"
                f" {result['stale_completions_accepted']}"
            )
    return out
