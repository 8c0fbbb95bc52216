"""P4b batch enqueue (issue 17): enqueue_payment_outbox_batch (revision 0027) against
pgmq.send_batch and against single enqueues, jobs per second, batch 100, 10,000 participants."""

from __future__ import annotations

from typing import Any

from benchmarks import db
from benchmarks.operations import Operation, OpSpec, register
from benchmarks.workloads import Context, _record

BATCH = 100
CLIENTS = (1, 4)


class OursEnqueueBatch(Operation):
    sql = (
        "SELECT count(*) FROM public.enqueue_payment_outbox_batch(%s::text[], %s::text[],"
        " %s::text[], %s::text[], %s::jsonb[])"
    )

    def step(self) -> int:
        self.calls += 1
        ids = [f"{self.worker_id}-{self.calls}-{i}" for i in range(self.spec.batch)]
        participants = [
            f"p-{self.random.randrange(self.spec.participants)}" for _ in range(self.spec.batch)
        ]
        args = (
            ids,
            participants,
            [f"key-{i}" for i in ids],
            ["rtgs"] * self.spec.batch,
            [self.spec.body] * self.spec.batch,
        )
        self.call("enqueue_batch", self.sql, args)
        return self.spec.batch


class PgmqSendBatch(Operation):
    sql = "SELECT count(*) FROM pgmq.send_batch(%s, %s::jsonb[])"

    def step(self) -> int:
        self.call("send_batch", self.sql, (db.PGMQ_QUEUE, [self.spec.body] * self.spec.batch))
        return self.spec.batch


register("ours_enqueue_batch", "ours", OursEnqueueBatch)
register("pgmq_send_batch", "pgmq", PgmqSendBatch)


def enqueue_batch(ctx: Context) -> dict[str, Any]:
    """Per repeat and client count, back to back: ours batched, PGMQ batched, ours single."""
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for repeat in range(ctx.settings.repeats):
        for clients in CLIENTS:
            line = []
            for key, kind, batch in (
                ("ours_batch", "ours_enqueue_batch", BATCH),
                ("pgmq_send_batch", "pgmq_send_batch", BATCH),
                ("ours_single", "enqueue", 1),
            ):
                if kind == "pgmq_send_batch":
                    db.reset_pgmq(ctx.admin)
                    db.settle(ctx.admin, db.PGMQ_TABLES)
                else:
                    db.reset_ours(ctx.admin)
                    db.settle(ctx.admin, db.OURS_TABLES)
                spec = OpSpec(kind, ctx.body, batch=batch, run_id=ctx.next_run_id())
                run = ctx.measure(spec, clients)
                raw.setdefault(key, {}).setdefault(clients, []).append(run.to_json())
                line.append(f"{key} {run.throughput:7.0f}/s")
            ctx.log(f"P4b rep {repeat + 1} c={clients}: " + "  ".join(line))
    db.reset_ours(ctx.admin)
    db.reset_pgmq(ctx.admin)
    return {
        "batch": BATCH,
        **{name: {str(c): _record(runs) for c, runs in by.items()} for name, by in raw.items()},
    }
