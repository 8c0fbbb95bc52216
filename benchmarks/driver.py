"""Run one operation on N worker processes, each with its own connection, for a fixed time.

Sequence: every worker connects and warms up for ``warmup_s`` (prepared statements, caches);
barrier A (the parent reads the server statistics); barrier B (all start at once); each worker
runs ``measure_s`` seconds, then forces its statistics out; barrier C (the parent reads them
again). Processes, not threads: the GIL would otherwise cap the driver, not the database.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.synchronize
import queue
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from benchmarks.operations import OpSpec, Recorder, make_operation
from benchmarks.stats import LatencySummary, latency_summary

_CTX = mp.get_context("fork")
_BARRIER_TIMEOUT = 120.0


@dataclass
class WorkerResult:
    worker: int
    jobs: int
    calls: int
    empty_steps: int
    elapsed_s: float
    wal_bytes: int
    wal_fpi: int
    latencies: dict[str, array[float]]
    counts: bool = True
    tracked: array[float] | None = None
    error: str | None = None


@dataclass
class ServerSnapshot:
    """Database-wide counters around the measured window."""

    commits: int
    rollbacks: int
    wal_lsn: int
    at: float


@dataclass
class RunResult:
    """One measured run of ``workers`` processes."""

    spec: OpSpec
    workers: int
    jobs: int
    elapsed_s: float
    throughput: float
    commits_per_job: float | None
    wal_bytes_per_job: float | None
    wal_fpi_per_job: float | None
    cluster_wal_bytes: int
    empty_steps: int
    latencies: dict[str, LatencySummary]
    samples: list[dict[str, float]] = field(default_factory=list)
    #: Per second of the window: count, p50 and p99 of the tracked call.
    tracked: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "jobs": self.jobs,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput": round(self.throughput, 1),
            "commits_per_job": _round(self.commits_per_job, 3),
            "wal_bytes_per_job": _round(self.wal_bytes_per_job, 1),
            "wal_fpi_per_job": _round(self.wal_fpi_per_job, 4),
            "cluster_wal_bytes": self.cluster_wal_bytes,
            "empty_steps": self.empty_steps,
            "latency_ms": {
                name: {k: _round(v, 4) if isinstance(v, float) else v for k, v in s.items()}
                for name, s in self.latencies.items()
            },
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class WorkerFailed(RuntimeError):
    """A worker process raised; the message carries its error."""


def _backend_wal(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT wal_bytes, wal_fpi FROM pg_catalog.pg_stat_get_backend_wal(pg_backend_pid())"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _pace(spec: OpSpec, begin: float, calls: int) -> None:
    """Hold a paced worker to ``spec.rate_per_s`` calls per second."""
    if spec.rate_per_s > 0:
        due = begin + calls / spec.rate_per_s
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _worker(
    conninfo: str,
    spec: OpSpec,
    index: int,
    warmup_s: float,
    measure_s: float,
    barriers: tuple[Any, Any, Any],
    results: Any,
    progress: Any,
) -> None:
    started, go, done = barriers
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            recorder = Recorder(track=spec.track)
            operation = make_operation(spec, conn, index, recorder)
            warm_begin = time.perf_counter()
            deadline = warm_begin + warmup_s
            warm_calls = 0
            while time.perf_counter() < deadline:
                _pace(spec, warm_begin, warm_calls)
                if operation.step() == 0 and spec.idle_sleep_s:
                    time.sleep(spec.idle_sleep_s)
                warm_calls += 1
            wal0, fpi0 = _backend_wal(conn)
            started.wait(_BARRIER_TIMEOUT)
            go.wait(_BARRIER_TIMEOUT)
            recorder.active = True
            jobs = calls = empty = 0
            begin = time.perf_counter()
            end = begin + measure_s
            while time.perf_counter() < end:
                _pace(spec, begin, calls)
                done_now = operation.step()
                calls += 1
                jobs += done_now
                if done_now == 0:
                    empty += 1
                    if spec.idle_sleep_s:
                        time.sleep(spec.idle_sleep_s)
                if progress is not None and spec.counts:
                    progress[index] = jobs
            elapsed = time.perf_counter() - begin
            recorder.active = False
            wal1, fpi1 = _backend_wal(conn)
            done.wait(_BARRIER_TIMEOUT)
            results.put(
                WorkerResult(
                    index,
                    jobs,
                    calls,
                    empty,
                    elapsed,
                    wal1 - wal0,
                    fpi1 - fpi0,
                    recorder.samples,
                    counts=spec.counts,
                    tracked=recorder.tracked if spec.track else None,
                )
            )
    except BaseException as exc:  # report anything, including a broken barrier
        for barrier in barriers:
            barrier.abort()
        results.put(
            WorkerResult(index, 0, 0, 0, 0.0, 0, 0, {}, error=f"{type(exc).__name__}: {exc}")
        )


def snapshot(stats_conn: psycopg.Connection[Any], dbname: str) -> ServerSnapshot:
    """Commits and rollbacks of ``dbname`` and the cluster's WAL position, read from another
    database so that reading them adds no commit to ``dbname``."""
    stats_conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    row = stats_conn.execute(
        "SELECT d.xact_commit, d.xact_rollback,"
        " pg_catalog.pg_current_wal_lsn() - '0/0'::pg_lsn"
        " FROM pg_catalog.pg_stat_database AS d WHERE d.datname = %s",
        (dbname,),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"no pg_stat_database row for {dbname}")
    return ServerSnapshot(int(row[0]), int(row[1]), int(row[2]), time.monotonic())


Sampler = Callable[[float, int], dict[str, float]]


def run(
    conninfo: str,
    spec: OpSpec | Sequence[OpSpec],
    workers: int,
    *,
    warmup_s: float,
    measure_s: float,
    stats_conn: psycopg.Connection[Any],
    dbname: str,
    sampler: Sampler | None = None,
    sample_every_s: float = 1.0,
) -> RunResult:
    """Measure ``spec`` on ``workers`` processes (or one spec per worker, e.g. producers and
    consumers together). ``sampler(t, jobs_so_far)`` (optional) is called every
    ``sample_every_s`` seconds of the measured window, for time series; jobs count the workers
    whose spec ``counts``."""
    specs = [spec] * workers if isinstance(spec, OpSpec) else list(spec)
    if len(specs) != workers:
        raise ValueError(f"{len(specs)} specs for {workers} workers")
    barriers = tuple(_CTX.Barrier(workers + 1) for _ in range(3))
    results: Any = _CTX.Queue()
    progress = _CTX.Array("q", workers, lock=False) if sampler is not None else None
    processes = [
        _CTX.Process(
            target=_worker,
            args=(conninfo, specs[i], i, warmup_s, measure_s, barriers, results, progress),
            daemon=True,
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    samples: list[dict[str, float]] = []
    try:
        barriers[0].wait(_BARRIER_TIMEOUT + warmup_s)
        before = snapshot(stats_conn, dbname)
        barriers[1].wait(_BARRIER_TIMEOUT)
        window_start = time.monotonic()
        window_wall = time.time()
        if sampler is not None:
            assert progress is not None
            _sample(sampler, samples, progress, window_start, measure_s, sample_every_s)
        barriers[2].wait(_BARRIER_TIMEOUT + measure_s)
        after = snapshot(stats_conn, dbname)
    except threading.BrokenBarrierError:
        before = after = snapshot(stats_conn, dbname)
        window_wall = time.time()
    collected = _collect(results, workers)
    for process in processes:
        process.join(30)
    errors = [r.error for r in collected if r.error]
    if errors:
        raise WorkerFailed(f"{specs[0].kind} with {workers} worker(s) failed: {errors[0]}")
    result = _combine(specs[0], workers, collected, before, after, samples)
    result.tracked = _per_second(collected, window_wall)
    return result


def _per_second(collected: list[WorkerResult], start: float) -> list[dict[str, float]]:
    """The tracked call's latencies in one-second buckets of the window."""
    buckets: dict[int, list[float]] = {}
    for result in collected:
        pairs = result.tracked or array("d")
        for i in range(0, len(pairs), 2):
            buckets.setdefault(int(pairs[i] - start), []).append(pairs[i + 1])
    out = []
    for second in sorted(b for b in buckets if b >= 0):
        summary = latency_summary(buckets[second])
        out.append(
            {
                "t": second + 1,
                "count": summary["count"],
                "p50": round(summary["p50"], 3),
                "p99": round(summary["p99"], 3),
            }
        )
    return out


def _sample(
    sampler: Sampler,
    samples: list[dict[str, float]],
    progress: Any,
    start: float,
    measure_s: float,
    every: float,
) -> None:
    next_at = start + every
    while True:
        now = time.monotonic()
        if now >= start + measure_s:
            break
        if now >= next_at:
            samples.append(sampler(now - start, int(sum(progress))))
            next_at += every
        time.sleep(min(0.05, max(0.0, next_at - now)))


def _collect(results: Any, workers: int) -> list[WorkerResult]:
    collected: list[WorkerResult] = []
    deadline = time.monotonic() + _BARRIER_TIMEOUT
    while len(collected) < workers and time.monotonic() < deadline:
        try:
            collected.append(results.get(timeout=1.0))
        except queue.Empty:
            continue
    if len(collected) < workers:
        raise WorkerFailed(f"only {len(collected)} of {workers} workers reported")
    return collected


def _combine(
    spec: OpSpec,
    workers: int,
    collected: list[WorkerResult],
    before: ServerSnapshot,
    after: ServerSnapshot,
    samples: list[dict[str, float]],
) -> RunResult:
    counting = [r for r in collected if r.counts]
    jobs = sum(r.jobs for r in counting)
    elapsed = max(r.elapsed_s for r in collected)
    merged: dict[str, list[float]] = {}
    for r in collected:
        for name, values in r.latencies.items():
            merged.setdefault(name, []).extend(values)
    # Each worker's two statistics statements (force flush, read WAL) commit inside the window.
    commits = after.commits - before.commits - 2 * workers
    return RunResult(
        spec=spec,
        workers=workers,
        jobs=jobs,
        elapsed_s=elapsed,
        throughput=jobs / elapsed if elapsed > 0 else 0.0,
        commits_per_job=commits / jobs if jobs else None,
        wal_bytes_per_job=sum(r.wal_bytes for r in collected) / jobs if jobs else None,
        wal_fpi_per_job=sum(r.wal_fpi for r in collected) / jobs if jobs else None,
        cluster_wal_bytes=after.wal_lsn - before.wal_lsn,
        empty_steps=sum(r.empty_steps for r in collected),
        latencies={name: latency_summary(values) for name, values in merged.items()},
        samples=samples,
    )
