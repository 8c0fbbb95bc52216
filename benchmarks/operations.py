"""The calls each system's worker makes, one transaction per call (autocommit), timed per call.

Every operation is built inside the worker process from a picklable :class:`OpSpec`, on that
worker's own connection. ``step()`` performs one unit of work and returns the number of jobs it
finished (enqueued, sent, inserted or completed); a claim or read that finds nothing returns 0.
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from benchmarks.db import CEILING_TABLE, PGMQ_QUEUE

Conn = psycopg.Connection[Any]

OURS, PGMQ, CEILING = "ours", "pgmq", "ceiling"


@dataclass(frozen=True)
class OpSpec:
    """What a worker does. ``kind`` is one of :data:`KINDS`."""

    kind: str
    body: str
    batch: int = 1
    batched_completion: bool = False
    duplicate_pct: int = 0
    participants: int = 10_000
    lease_seconds: int = 30
    retry_pct: int = 0
    failure_pct: int = 0
    retry_delay_s: int = 2
    run_id: str = "run"
    #: Calls per second for this worker (0: as fast as it can), for a fixed offered load.
    rate_per_s: float = 0.0
    #: When a claim or read finds nothing, wait this long before the next one.
    idle_sleep_s: float = 0.0
    #: Record this call's latencies with their wall-clock time too (for time series).
    track: str | None = None
    #: Whether the jobs this worker finishes count as the run's throughput.
    counts: bool = True
    #: Wake-up workers of one executor (benchmarks/wake.py): each worker's rank is its index
    #: modulo this (ADR 0159; 1: every notification wakes every worker).
    wake_group: int = 1

    @property
    def system(self) -> str:
        return KINDS[self.kind]


#: Operation kind -> system.
KINDS: dict[str, str] = {
    "insert": CEILING,
    "send": PGMQ,
    "enqueue": OURS,
    "pgmq_cycle": PGMQ,
    "ours_cycle": OURS,
}


@dataclass
class Recorder:
    """Per-call latencies in milliseconds, recorded only while ``active`` (the measured window)."""

    active: bool = False
    samples: dict[str, array[float]] = field(default_factory=dict)
    track: str | None = None
    #: (wall-clock time, latency ms) pairs of the tracked call, flattened.
    tracked: array[float] = field(default_factory=lambda: array("d"))

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = call()
        if self.active:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            self.samples.setdefault(name, array("d")).append(elapsed_ms)
            if name == self.track:
                self.tracked.extend((time.time(), elapsed_ms))
        return result


class Operation:
    """Base class: one worker's calls."""

    def __init__(self, spec: OpSpec, conn: Conn, worker: int, recorder: Recorder) -> None:
        self.spec = spec
        self.conn = conn
        self.worker = worker
        self.worker_id = f"{spec.run_id}-w{worker}"
        self.recorder = recorder
        self.random = random.Random(f"{spec.run_id}-{worker}")
        self.calls = 0

    def step(self) -> int:
        raise NotImplementedError

    def call(self, name: str, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Execute one statement (its own transaction) and fetch its rows, timed as ``name``."""

        def run() -> list[tuple[Any, ...]]:
            cursor = self.conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

        result: list[tuple[Any, ...]] = self.recorder.timed(name, run)
        return result


class CeilingInsert(Operation):
    """The commit ceiling through this driver: one single-row INSERT per transaction."""

    sql = f"INSERT INTO {CEILING_TABLE} (payload) VALUES (%s::jsonb)"

    def step(self) -> int:
        self.call("insert", self.sql, (self.spec.body,))
        return 1


class PgmqSend(Operation):
    sql = "SELECT * FROM pgmq.send(%s, %s::jsonb)"

    def step(self) -> int:
        self.call("send", self.sql, (PGMQ_QUEUE, self.spec.body))
        return 1


class OursEnqueue(Operation):
    """enqueue_payment_outbox; ``duplicate_pct`` of the calls repeat one of this worker's earlier
    instructions (same key, same content: the idempotent path)."""

    sql = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, %s, %s::jsonb)"

    def __init__(self, spec: OpSpec, conn: Conn, worker: int, recorder: Recorder) -> None:
        super().__init__(spec, conn, worker, recorder)
        self.sent: list[tuple[str, str]] = []

    def step(self) -> int:
        self.calls += 1
        if self.sent and self.random.randrange(100) < self.spec.duplicate_pct:
            instruction, participant = self.sent[self.random.randrange(len(self.sent))]
        else:
            instruction = f"{self.worker_id}-{self.calls}"
            participant = f"p-{self.random.randrange(self.spec.participants)}"
            self.sent.append((instruction, participant))
        args = (instruction, participant, f"key-{instruction}", "rtgs", self.spec.body)
        self.call("enqueue", self.sql, args)
        return 1


class OursCycle(Operation):
    """Claim a batch, then complete every job: one completion transaction per job, or the whole
    batch in one complete_outbox_attempts_batch call. ``retry_pct``/``failure_pct`` of the jobs
    are completed RETRYABLE (due again after ``retry_delay_s``) / FAILED, the rest DISPATCHED."""

    claim_sql = "SELECT * FROM public.claim_outbox_batch(%s, %s, %s)"
    complete_sql = (
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, %s, %s::public.outbox_attempt_state,"
        " p_retry_delay_seconds => %s, p_rail_reference => %s::uuid::text)"
    )
    batch_sql = (
        "SELECT * FROM public.complete_outbox_attempts_batch(%s, %s::uuid[], %s::uuid[],"
        " %s::text[], p_retry_delay_seconds => %s::integer[],"
        " p_rail_references => %s::uuid[]::text[])"
    )

    def _state(self) -> str:
        roll = self.random.randrange(100)
        if roll < self.spec.failure_pct:
            return "FAILED"
        if roll < self.spec.failure_pct + self.spec.retry_pct:
            return "RETRYABLE"
        return "DISPATCHED"

    def step(self) -> int:
        spec = self.spec
        rows = self.call("claim", self.claim_sql, (spec.batch, self.worker_id, spec.lease_seconds))
        if not rows:
            return 0
        states = [self._state() for _ in rows]
        if spec.batched_completion:
            params = (
                self.worker_id,
                [row[0] for row in rows],
                [row[8] for row in rows],
                states,
                [spec.retry_delay_s] * len(rows),
                [row[0] for row in rows],  # the rail's reference (revision 0023): unique per job
            )
            self.call("complete_batch", self.batch_sql, params)
            return len(rows)
        for row, state in zip(rows, states, strict=True):
            self.call(
                "complete",
                self.complete_sql,
                (row[0], row[8], self.worker_id, state, spec.retry_delay_s, row[0]),
            )
        return len(rows)


class PgmqCycle(Operation):
    """pgmq.read with a visibility timeout, then pgmq.delete per message (or one delete of the
    whole batch). Retries set the visibility timeout ``retry_delay_s`` ahead (pgmq.set_vt);
    failures are archived (pgmq.archive), the rest deleted."""

    read_sql = "SELECT * FROM pgmq.read(%s, %s, %s)"
    delete_sql = "SELECT pgmq.delete(%s, %s::bigint)"
    delete_batch_sql = "SELECT * FROM pgmq.delete(%s, %s::bigint[])"
    set_vt_sql = "SELECT * FROM pgmq.set_vt(%s, %s::bigint, %s::integer)"
    archive_sql = "SELECT pgmq.archive(%s, %s::bigint)"

    def _outcome(self) -> str:
        roll = self.random.randrange(100)
        if roll < self.spec.failure_pct:
            return "archive"
        if roll < self.spec.failure_pct + self.spec.retry_pct:
            return "retry"
        return "delete"

    def step(self) -> int:
        spec = self.spec
        rows = self.call("read", self.read_sql, (PGMQ_QUEUE, spec.lease_seconds, spec.batch))
        if not rows:
            return 0
        if spec.batched_completion:
            self.call("delete_batch", self.delete_batch_sql, (PGMQ_QUEUE, [r[0] for r in rows]))
            return len(rows)
        for row in rows:
            outcome = self._outcome()
            if outcome == "retry":
                self.call("set_vt", self.set_vt_sql, (PGMQ_QUEUE, row[0], spec.retry_delay_s))
            elif outcome == "archive":
                self.call("archive", self.archive_sql, (PGMQ_QUEUE, row[0]))
            else:
                self.call("delete", self.delete_sql, (PGMQ_QUEUE, row[0]))
        return len(rows)


_CLASSES: dict[str, type[Operation]] = {
    "insert": CeilingInsert,
    "send": PgmqSend,
    "enqueue": OursEnqueue,
    "ours_cycle": OursCycle,
    "pgmq_cycle": PgmqCycle,
}


def register(kind: str, system: str, cls: type[Operation]) -> None:
    """Add an operation kind defined by a section's own module (e.g. benchmarks.wake)."""
    KINDS[kind] = system
    _CLASSES[kind] = cls


def make_operation(spec: OpSpec, conn: Conn, worker: int, recorder: Recorder) -> Operation:
    try:
        cls = _CLASSES[spec.kind]
    except KeyError:
        raise ValueError(
            f"unknown operation kind {spec.kind!r}; expected one of {sorted(_CLASSES)}"
        ) from None
    return cls(spec, conn, worker, recorder)
