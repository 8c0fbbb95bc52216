"""P6 wake-up without polling (issue 17): idle workers sleep on a notification instead of polling,
and a job offered at a low rate is claimed within milliseconds of its enqueue.

Ours: revision 0026 notifies ``symphony_outbox_work`` when a claimable job is enqueued; the
workers are the documented executor helper (docs/operations/reference_worker.py: ``listen`` +
``wait_for_work`` with a fallback poll every ``POLL_S`` seconds). PGMQ: its own notify option,
``pgmq.enable_notify_insert(queue, 0)`` (channel ``pgmq.q_<queue>.INSERT``; throttle 0, since its
default 250 ms throttle would delay a notification by design), with the same waiting helper.

Measured: enqueue -> claimed latency (the producer stamps the wall-clock time into the payload
just before its enqueue call; the worker subtracts it when its claim returns), split into its
parts: the enqueue call itself (its commit included), stamp -> woken (when the worker's wait
returned on the notification) and the claim after the wake; claim queries per worker-second at
the offered rate and while idle (no producer); the same with one worker (every notification
wakes every listener: with four on two cores the winner of the claim waits for the CPU); the
claims that found nothing; and what the trigger costs an enqueue (4 clients, trigger on against
off). Since revision 0033 (ADR 0159) each of our wakers has a rank: only the worker the
notification names claims at once, the others after the helper's take-over delay.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from array import array
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import db, driver
from benchmarks.operations import Operation, OpSpec, register
from benchmarks.workloads import Context

#: The fallback poll of an idle worker (retries, not-before times and expired leases become due
#: without a notification): at most 1 / POLL_S claim queries per second per idle worker.
POLL_S = 2.0
PGMQ_CHANNEL = f"pgmq.q_{db.PGMQ_QUEUE}.INSERT"
OURS_TRIGGER = "trg_notify_outbox_work"


def reference_worker() -> ModuleType:
    """docs/operations/reference_worker.py, the executor helper the guide documents."""
    name = "symphony_reference_worker"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "docs" / "operations" / "reference_worker.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def stamped(body: str) -> str:
    """The run's payload with the wall-clock time of the enqueue call (a string: enqueue refuses
    numbers a JSON consumer cannot read exactly)."""
    return body[:-1] + f',"t":"{time.time():.6f}"}}'


class StampedEnqueue(Operation):
    sql = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs', %s::jsonb)"

    def step(self) -> int:
        self.calls += 1
        instruction = f"{self.worker_id}-{self.calls}"
        participant = f"p-{self.random.randrange(self.spec.participants)}"
        args = (instruction, participant, f"key-{instruction}", stamped(self.spec.body))
        self.call("enqueue", self.sql, args)
        return 1


class StampedSend(Operation):
    sql = "SELECT * FROM pgmq.send(%s, %s::jsonb)"

    def step(self) -> int:
        self.call("send", self.sql, (db.PGMQ_QUEUE, stamped(self.spec.body)))
        return 1


class _Waker(Operation):
    """The loop of reference_worker.serve: claim a batch and finish it; when the claim came back
    short of the batch (the queue is drained), wait for a notification (at most POLL_S seconds)
    before the next claim. Records ``wake`` (enqueue -> claimed, ms) per job."""

    channel = ""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.helper = reference_worker()
        self._wait_after = False
        self._woken_at: float | None = None
        self.conn.execute(f'LISTEN "{self.channel}"')

    def _wait(self) -> None:
        woken = self.wait_for_work(self.conn, POLL_S)
        self._woken_at = time.time() if woken else None

    def wait_for_work(self, conn: Any, poll_s: float) -> bool:
        result: bool = self.helper.wait_for_work(conn, poll_s)
        return result

    def claim(self) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def finish(self, row: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def payload(self, row: tuple[Any, ...]) -> Any:
        raise NotImplementedError

    def step(self) -> int:
        rows = self.claim()
        claimed_at = time.time()
        woken_at, self._woken_at = self._woken_at, None
        if not rows:  # an empty claim (the driver counts it: empty_steps)
            self._wait()
            return 0
        if len(rows) < self.spec.batch:
            # The queue was drained at the claim: after this batch, wait (a job enqueued
            # meanwhile has queued its notification on this connection already).
            self._wait_after = True
        for row in rows:
            payload = self.payload(row)
            if isinstance(payload, str):
                payload = json.loads(payload)
            if self.recorder.active and "t" in payload:
                stamp = float(payload["t"])
                samples = self.recorder.samples
                samples.setdefault("wake", array("d")).append((claimed_at - stamp) * 1000.0)
                if woken_at is not None and woken_at >= stamp:
                    # Claimed by the claim that followed a notification sent after the stamp.
                    samples.setdefault("woken", array("d")).append((woken_at - stamp) * 1000.0)
                    samples.setdefault("after_wake", array("d")).append(
                        (claimed_at - woken_at) * 1000.0
                    )
            self.finish(row)
        if self._wait_after:
            self._wait_after = False
            self._wait()
        return len(rows)


class OursWaker(_Waker):
    channel = "symphony_outbox_work"

    def wait_for_work(self, conn: Any, poll_s: float) -> bool:
        """The helper with this worker's rank among the run's wakers (revision 0033, ADR 0159:
        only the worker a notification names claims at once; the others after the take-over
        delay)."""
        group = self.spec.wake_group
        result: bool = self.helper.wait_for_work(
            conn, poll_s, rank=self.worker % group, workers=group
        )
        return result

    def claim(self) -> list[tuple[Any, ...]]:
        return self.call(
            "claim",
            "SELECT * FROM public.claim_outbox_batch(%s, %s, %s)",
            (self.spec.batch, self.worker_id, self.spec.lease_seconds),
        )

    def payload(self, row: tuple[Any, ...]) -> Any:
        return row[6]

    def finish(self, row: tuple[Any, ...]) -> None:
        self.call(
            "complete",
            "SELECT * FROM public.complete_outbox_attempt(%s, %s, %s, 'DISPATCHED',"
            " p_rail_reference => %s::uuid::text)",
            (row[0], row[8], self.worker_id, row[0]),
        )


class PgmqWaker(_Waker):
    channel = PGMQ_CHANNEL

    def claim(self) -> list[tuple[Any, ...]]:
        return self.call(
            "claim",
            "SELECT msg_id, message FROM pgmq.read(%s, %s, %s)",
            (db.PGMQ_QUEUE, self.spec.lease_seconds, self.spec.batch),
        )

    def payload(self, row: tuple[Any, ...]) -> Any:
        return row[1]

    def finish(self, row: tuple[Any, ...]) -> None:
        self.call("delete", "SELECT pgmq.delete(%s, %s::bigint)", (db.PGMQ_QUEUE, row[0]))


register("ours_stamped_enqueue", "ours", StampedEnqueue)
register("pgmq_stamped_send", "pgmq", StampedSend)
register("ours_waker", "ours", OursWaker)
register("pgmq_waker", "pgmq", PgmqWaker)


def _specs(ctx: Context, system: str, with_producer: bool, workers: int) -> list[OpSpec]:
    s = ctx.settings
    run_id = ctx.next_run_id()
    producer = OpSpec(
        "ours_stamped_enqueue" if system == "ours" else "pgmq_stamped_send",
        ctx.body,
        rate_per_s=s.wake_rate,
        counts=False,
        run_id=run_id,
    )
    worker = OpSpec(
        "ours_waker" if system == "ours" else "pgmq_waker",
        ctx.body,
        batch=10,
        lease_seconds=s.lease_seconds,
        run_id=run_id,
        # The wakers are the last ``workers`` specs (indexes 1..n or 0..n-1): index mod n is a
        # rank each. PGMQ's notification names nobody: its wakers all claim at once.
        wake_group=workers,
    )
    return ([producer] if with_producer else []) + [worker] * workers


def _measure(
    ctx: Context, system: str, with_producer: bool, seconds: float, workers: int
) -> dict[str, Any]:
    specs = _specs(ctx, system, with_producer, workers)
    run = driver.run(
        ctx.database.conninfo,
        specs,
        len(specs),
        warmup_s=ctx.settings.warmup_s,
        measure_s=seconds,
        stats_conn=ctx.stats,
        dbname=ctx.database.name,
    )
    data = run.to_json()
    claims = run.latencies.get("claim", {}).get("count", 0)
    worker_seconds = workers * run.elapsed_s
    empty = run.empty_steps  # claims that came back empty (the producer's steps never are)
    return {
        "jobs": run.jobs,
        "elapsed_s": round(run.elapsed_s, 2),
        "claims": claims,
        # Claims that found nothing (a wake-up for a job another worker had claimed, or a poll).
        "empty_claims": empty,
        "empty_claims_per_job": round(empty / run.jobs, 3) if run.jobs else None,
        "claims_per_worker_s": round(claims / worker_seconds, 3) if worker_seconds else None,
        "wake_ms": data["latency_ms"].get("wake"),
        "claim_ms": data["latency_ms"].get("claim"),
        # The parts: the producer's call (commit included), stamp -> woken, claim after wake.
        "enqueue_ms": data["latency_ms"].get("enqueue") or data["latency_ms"].get("send"),
        "woken_ms": data["latency_ms"].get("woken"),
        "after_wake_ms": data["latency_ms"].get("after_wake"),
    }


def _enqueue_cost(ctx: Context) -> dict[str, Any]:
    """Enqueue at 4 clients with the notify trigger on and off (same run otherwise)."""
    out: dict[str, Any] = {}
    for state in ("on", "off"):
        db.reset_ours(ctx.admin)
        db.settle(ctx.admin, db.OURS_TABLES)
        if state == "off":
            ctx.admin.execute(
                f"ALTER TABLE public.payment_outbox_pending DISABLE TRIGGER {OURS_TRIGGER}"
            )
        try:
            spec = OpSpec("enqueue", ctx.body, participants=10_000, run_id=ctx.next_run_id())
            out[state] = round(ctx.measure(spec, 4).throughput, 1)
        finally:
            if state == "off":
                ctx.admin.execute(
                    "ALTER TABLE public.payment_outbox_pending"
                    f" ENABLE ALWAYS TRIGGER {OURS_TRIGGER}"
                )
    return out


def wake(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    out: dict[str, Any] = {
        "offered_per_s": s.wake_rate,
        "workers": s.wake_workers,
        "poll_s": POLL_S,
        "seconds": s.wake_s,
    }
    # Phase by phase, ours then PGMQ back to back (the load of a shared machine drifts within
    # minutes: the two systems of one phase are measured under the same load).
    phases = (
        ("offered", True, s.wake_s, s.wake_workers),
        ("one_worker", True, s.wake_s, 1),
        ("idle", False, min(s.wake_s, 10.0), s.wake_workers),
    )
    for phase, with_producer, seconds, workers in phases:
        for system in ("ours", "pgmq"):
            if system == "ours":
                db.reset_ours(ctx.admin)
                db.settle(ctx.admin, db.OURS_TABLES)
            else:
                db.reset_pgmq(ctx.admin)
                db.settle(ctx.admin, db.PGMQ_TABLES)
                ctx.admin.execute("SELECT pgmq.enable_notify_insert(%s, 0)", (db.PGMQ_QUEUE,))
            try:
                run = _measure(ctx, system, with_producer, seconds, workers)
            finally:
                if system == "pgmq":
                    ctx.admin.execute("SELECT pgmq.disable_notify_insert(%s)", (db.PGMQ_QUEUE,))
            out.setdefault(system, {})[phase] = run
            wake_ms = run["wake_ms"] or {}
            ctx.log(
                f"wake {system} {phase} ({workers} worker(s)): enqueue->claimed p50"
                f" {wake_ms.get('p50', float('nan')):.2f} ms p99"
                f" {wake_ms.get('p99', float('nan')):.2f} ms over {run['jobs']} jobs; claims"
                f" per worker-second {run['claims_per_worker_s']}; empty claims per job"
                f" {run['empty_claims_per_job']}; woken->claimed p99"
                f" {(run['after_wake_ms'] or {}).get('p99', float('nan')):.2f} ms"
            )
    out["enqueue_4_clients"] = _enqueue_cost(ctx)
    ctx.log(
        f"wake: enqueue at 4 clients with the notify trigger {out['enqueue_4_clients']['on']}/s,"
        f" without {out['enqueue_4_clients']['off']}/s"
    )
    db.reset_ours(ctx.admin)
    db.reset_pgmq(ctx.admin)
    return out
