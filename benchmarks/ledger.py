"""Section ``ledger`` (issue 15): hot-path costs with the attempts ledger at 10k and 10M rows,
partitioned (head) against today's single table (revision 0012), and archive/restore time.

Each layout gets its own scratch database. The ledger is filled by ``INSERT ... SELECT`` of
realistic rows (one DISPATCHED attempt per historical job, the run's payload, UUIDv7-shaped
``outbox_id`` values spread over the last 89 days, and a key-table row per job as enqueue leaves
it), as ``symphony_owner`` so the insert guard is skipped exactly as for the outbox functions.
At each size, one client measures in turn (autocommit, medians of per-call times and WAL bytes
per job from the backend's own ``pg_stat_get_backend_wal()``):

* ``enqueue``: a new key per call;
* ``claim+complete``: ``claim_outbox_batch(1)`` then ``complete_outbox_attempt`` per job;
* ``batched``: ``claim_outbox_batch(10)`` then ``complete_outbox_attempts_batch`` of the 10.

On the partitioned layout, at the middle size, the history partition (all historical rows) is
archived and restored through :mod:`symphony_schema.attempts` and the rows per second reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import attempts
from symphony_schema.baseline.scratch import scratch_database
from symphony_schema.database import to_conninfo
from symphony_schema.migration import api

SINGLE_TABLE_REVISION = "0012_serialise_the_p7005_guards"
FULL_SIZES = (10_000, 1_000_000, 10_000_000)
QUICK_SIZES = (1_000, 20_000, 50_000)
FULL_CALLS = 2_000
QUICK_CALLS = 200


def _fill(conn: psycopg.Connection[Any], start: int, stop: int, total: int, body: str) -> None:
    """Historical jobs ``start+1 .. stop`` (of ``total`` spread over 89 days), one terminal attempt
    and one key row each."""
    conn.execute("SET ROLE symphony_owner")
    try:
        conn.execute(
            """
            INSERT INTO public.payment_outbox_attempts
                (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,
                 rail_type, payload, attempt_no, state, claimed_at, completed_at, worker_id,
                 latency_ms)
            SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7000-8000-'
                    || lpad(to_hex(g), 12, '0'))::uuid,
                   'hist-' || g, 'p-' || (g %% 10000), g / 10000 + 1, 'hk-' || g, 'rtgs',
                   %(body)s::jsonb, 1, 'DISPATCHED', now(), now(), 'w-hist', 5
              FROM generate_series(%(start)s + 1, %(stop)s) AS g,
                   LATERAL (SELECT lpad(to_hex(floor(extract(epoch FROM now() - interval '90 days'
                                + g * (interval '89 days' / %(total)s)) * 1000)::bigint), 12, '0')
                           AS h) AS t
            """,
            {"start": start, "stop": stop, "total": total, "body": body},
        )
        conn.execute(
            """
            INSERT INTO public.payment_outbox_idempotency_keys
                (instruction_id, idempotency_key, outbox_id)
            SELECT 'hist-' || g, 'hk-' || g, gen_random_uuid()
              FROM generate_series(%(start)s + 1, %(stop)s) AS g
            """,
            {"start": start, "stop": stop},
        )
    finally:
        conn.execute("RESET ROLE")
    conn.execute("VACUUM ANALYZE public.payment_outbox_attempts")
    conn.execute("VACUUM ANALYZE public.payment_outbox_idempotency_keys")
    conn.execute("CHECKPOINT")


def _lsn(conn: psycopg.Connection[Any]) -> int:
    """WAL bytes this backend wrote so far (exact on a shared server, like the driver's)."""
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT wal_bytes FROM pg_catalog.pg_stat_get_backend_wal(pg_backend_pid())"
    ).fetchone()
    return int(row[0]) if row else 0


def _measure(conn: psycopg.Connection[Any], calls: int, tag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # enqueue: a new key per call
    times = []
    wal = _lsn(conn)
    for i in range(calls):
        started = time.perf_counter()
        conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs', %s::jsonb)",
            (f"{tag}-{i}", f"p-{i % 100}", f"k-{tag}-{i}", '{"amount": 100, "currency": "ZAR"}'),
        ).fetchall()
        times.append(time.perf_counter() - started)
    out["enqueue"] = _summary(times, _lsn(conn) - wal, calls)
    # claim(1) + complete, per job
    times = []
    wal = _lsn(conn)
    done = 0
    for _ in range(calls // 2):
        started = time.perf_counter()
        rows = conn.execute("SELECT * FROM public.claim_outbox_batch(1, 'bench', 60)").fetchall()
        for row in rows:
            conn.execute(
                "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'bench', 'DISPATCHED',"
                " 'ref', NULL, NULL, NULL, 5)",
                (row[0], row[8]),
            ).fetchall()
            done += 1
        times.append(time.perf_counter() - started)
    out["claim_complete"] = _summary(times, _lsn(conn) - wal, max(done, 1))
    # claim(10) + batched completion
    times = []
    wal = _lsn(conn)
    done = 0
    for _ in range(calls // 20):
        started = time.perf_counter()
        rows = conn.execute("SELECT * FROM public.claim_outbox_batch(10, 'bench', 60)").fetchall()
        if rows:
            n = len(rows)
            conn.execute(
                "SELECT * FROM public.complete_outbox_attempts_batch('bench', %s::uuid[],"
                " %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::integer[], %s::integer[])",
                (
                    [r[0] for r in rows],
                    [r[8] for r in rows],
                    ["DISPATCHED"] * n,
                    ["ref"] * n,
                    [None] * n,
                    [None] * n,
                    [None] * n,
                    [5] * n,
                    [None] * n,
                ),
            ).fetchall()
            done += n
        times.append(time.perf_counter() - started)
    out["batched_10"] = _summary(times, _lsn(conn) - wal, max(done, 1))
    return out


def _summary(times: list[float], wal_bytes: int, jobs: int) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 4),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 4),
        "wal_bytes_per_job": round(wal_bytes / jobs, 1),
        "calls": len(times),
    }


def _archive_restore(conn: psycopg.Connection[Any], rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        started = time.perf_counter()
        done = list(attempts.archive(conn, 0, Path(tmp)))
        archive_s = time.perf_counter() - started
        history = [d for d in done if d.partition.endswith("attempts_history")]
        assert history, "the history partition was not archived"
        size = history[0].file.stat().st_size
        started = time.perf_counter()
        attempts.restore(conn, history[0].file)
        restore_s = time.perf_counter() - started
    archived = history[0].rows
    return {
        "rows": archived,
        "file_bytes": size,
        "archive_s": round(archive_s, 2),
        "restore_s": round(restore_s, 2),
        "archive_rows_per_s": round(archived / archive_s),
        "restore_rows_per_s": round(archived / restore_s),
        "filled_rows": rows,
    }


def ledger(ctx: Any) -> dict[str, Any]:
    sizes = QUICK_SIZES if ctx.settings.quick else FULL_SIZES
    calls = QUICK_CALLS if ctx.settings.quick else FULL_CALLS
    server_url = ctx.database.url
    results: dict[str, Any] = {"sizes": list(sizes), "calls": calls, "layouts": {}}
    for layout, revision in (("partitioned", "head"), ("single", SINGLE_TABLE_REVISION)):
        with scratch_database(server_url, f"bench_ledger_{layout}") as scratch:
            api.upgrade(scratch.url, revision)
            per_size: list[dict[str, Any]] = []
            filled = 0
            with psycopg.connect(to_conninfo(scratch.url), autocommit=True) as conn:
                for size in sizes:
                    started = time.monotonic()
                    _fill(conn, filled, size, sizes[-1], ctx.body)
                    filled = size
                    ctx.log(
                        f"ledger {layout}: {size:,} rows filled in "
                        f"{time.monotonic() - started:.0f} s"
                    )
                    entry: dict[str, Any] = {"size": size}
                    entry.update(_measure(conn, calls, f"{layout}-{size}"))
                    if layout == "partitioned" and size == sizes[1]:
                        entry["archive_restore"] = _archive_restore(conn, size)
                    per_size.append(entry)
                    ctx.log(f"ledger {layout} at {size:,}: {entry}")
            results["layouts"][layout] = per_size
    return results
