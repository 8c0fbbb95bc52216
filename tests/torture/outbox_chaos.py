"""Processes of the R4 outbox chaos test: ``python -m tests.torture.outbox_chaos worker|enqueuer``.

They are separate processes so the test can SIGKILL them at any moment, like a crashed executor
or ingest service. Each writes one JSON line per event to its own log file (line-buffered; a
kill can cut the last line, which the reader ignores). The test's final accounting reads the
database first; the logs only add what the database cannot know: which completions a worker
*knew* to be stale when it sent them, and what each call returned.

Worker: claims a random batch, then per row either completes it (DISPATCHED / RETRYABLE / FAILED
after a simulated rail call) or turns zombie: it keeps the lease without completing and, once the
database clock says that lease has expired, sends the completion anyway (a stale completion that
must be rejected with P7002). Every few loops it repairs expired leases. Any SQLSTATE other than
P7002 is logged as an error, which fails the test. With ``--batch`` the worker completes its
claim (and its expired zombies) in one ``complete_outbox_attempts_batch`` call: all or nothing,
so a P7002 names the stale elements in its DETAIL; those are logged as rejected and the rest is
completed again (ADR 0040).

Enqueuer: enqueues a range of instructions in chunks (one statement, one transaction per chunk,
sorted by participant so concurrent chunks lock participants in the same order), re-enqueues a
few earlier instructions as duplicates, and logs what each call returned.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import psycopg

RAILS = ("rtgs", "ACH", "card")  # registered rails (0020), in either case
STATES = (("DISPATCHED", 0.74), ("RETRYABLE", 0.16), ("FAILED", 0.06))
ZOMBIE_SHARE = 0.04
MAX_BATCH = 10  # claim batch sizes are 1..MAX_BATCH
MAX_REPAIR = 20  # repair batch sizes are 1..MAX_REPAIR

CLAIM = (
    "SELECT outbox_id, attempt_count, lease_token, lease_expires_at"
    " FROM public.claim_outbox_batch(%s, %s, %s)"
)
COMPLETE = (
    "SELECT attempt_no, state::text FROM public.complete_outbox_attempt("
    "%s, %s, %s, %s::public.outbox_attempt_state, p_rail_reference => %s,"
    " p_latency_ms => %s, p_retry_delay_seconds => 1)"
)
COMPLETE_BATCH = (
    "SELECT outbox_id, attempt_no, state::text FROM public.complete_outbox_attempts_batch("
    "%s, %s::uuid[], %s::uuid[], %s::text[], p_rail_references => %s::text[],"
    " p_latency_ms => %s::integer[])"
)
REPAIR = "SELECT outbox_id, attempt_no FROM public.repair_expired_leases(%s, %s)"
STALE_DETAIL = "stale outbox ids: "
ENQUEUE = """
SELECT a.i, e.outbox_id::text, e.sequence_id, e.state
  FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[])
       WITH ORDINALITY AS a (i, p, k, r, pl, n)
 CROSS JOIN LATERAL public.enqueue_payment_outbox(a.i, a.p, a.k, a.r, a.pl) AS e
 ORDER BY a.n
"""


# --------------------------------------------------------------------------------------------
# The job universe (shared with the test, which checks the ledger against it)
# --------------------------------------------------------------------------------------------


def instruction(n: int) -> str:
    return f"instr-{n:07d}"


def job(n: int, participants: int) -> tuple[str, str, str, str, dict[str, Any]]:
    """(instruction_id, participant_id, idempotency_key, rail_type, payload) of job ``n``."""
    rng = random.Random(n)
    participant = f"participant-{rng.randrange(participants):05d}"
    payload = {"amount": rng.randrange(1, 10_000_000), "currency": "ZAR", "ref": instruction(n)}
    return instruction(n), participant, f"key-{n}", RAILS[n % len(RAILS)], payload


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of a log (a SIGKILL can cut the last one, or come before the
    process opened its log)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


class Log:
    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("a", buffering=1)

    def write(self, **event: Any) -> None:
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------


#: A completion to send: (claimed row, requested state, known to be stale).
Item = tuple[tuple[Any, ...], str, bool]


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.worker_id
        self.conn = psycopg.connect(args.conninfo, autocommit=True)
        self.rng = random.Random(args.seed)
        self.log = Log(Path(args.log))
        self.lease_seconds: int = args.lease_seconds
        self.max_batch: int = args.max_batch
        self.rail_ms: float = args.rail_ms
        self.stop = Path(args.stop)
        self.batch: bool = args.batch
        self.zombies: list[tuple[Any, ...]] = []

    def run(self) -> None:
        self.log.write(op="start", w=self.id)
        loops = 0
        while not self.stop.exists():
            loops += 1
            rows = self.conn.execute(
                CLAIM, (self.rng.randint(1, self.max_batch), self.id, self.lease_seconds)
            ).fetchall()
            for row in rows:
                self.log.write(op="claim", w=self.id, o=str(row[0]), t=str(row[2]), c=row[1])
            if self.batch:
                self.handle_batch(rows)
            else:
                for row in rows:
                    self.handle(row)
                self.resolve_zombies()
            if loops % 4 == 0:
                self.repair()
            if not rows:
                time.sleep(0.02)  # idle back-off of a real worker; nothing is due
        self.log.write(op="stop", w=self.id)

    def turns_zombie(self, row: tuple[Any, ...]) -> bool:
        if self.rng.random() < ZOMBIE_SHARE:
            self.zombies.append(row)
            self.log.write(op="zombie", w=self.id, o=str(row[0]), t=str(row[2]))
            return True
        return False

    def outcome(self) -> str:
        roll = self.rng.random()
        for candidate, share in STATES:
            if roll < share:
                return candidate
            roll -= share
        return "DISPATCHED"

    def rail_call(self) -> None:
        if self.rail_ms:
            time.sleep(self.rng.uniform(0, self.rail_ms) / 1000)  # the simulated rail call

    def handle(self, row: tuple[Any, ...]) -> None:
        if not self.turns_zombie(row):
            self.rail_call()
            self.complete(row, self.outcome(), stale=False)

    def due_zombies(self) -> list[tuple[Any, ...]]:
        """Zombies whose lease the database clock says has expired. Since revision 0014 such a
        completion is recorded while nobody replaced the lease (late but current) and gets
        P7002 once a repair or a claim did; the accounting tells which from the ledger."""
        if not self.zombies:
            return []
        now_row = self.conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()
        assert now_row is not None
        now = now_row[0]
        due = [z for z in self.zombies if z[3] < now]
        self.zombies = [z for z in self.zombies if z[3] >= now]
        return due

    def resolve_zombies(self) -> None:
        for row in self.due_zombies():
            self.complete(row, self.rng.choice(("DISPATCHED", "FAILED", "RETRYABLE")), stale=True)

    def handle_batch(self, rows: list[tuple[Any, ...]]) -> None:
        items = []
        for row in rows:
            if not self.turns_zombie(row):
                self.rail_call()
                items.append((row, self.outcome(), False))
        for row in self.due_zombies():
            items.append((row, self.rng.choice(("DISPATCHED", "FAILED", "RETRYABLE")), True))
        # The worker may have re-claimed its own zombie's job (an expired lease is claimable),
        # and one batch must not name an outbox twice (22023): split into batches of distinct
        # jobs, fresh leases first.
        while items:
            batch: list[Item] = []
            rest: list[Item] = []
            seen: set[Any] = set()
            for item in items:
                (rest if item[0][0] in seen else batch).append(item)
                seen.add(item[0][0])
            self.complete_batch(batch)
            items = rest

    def complete_batch(self, items: list[Item]) -> None:
        """All or nothing: on P7002 log the elements its DETAIL names as rejected and complete
        the others again."""
        while items:
            try:
                result = self.conn.execute(
                    COMPLETE_BATCH,
                    (
                        self.id,
                        [row[0] for row, _, _ in items],
                        [row[2] for row, _, _ in items],
                        [state for _, state, _ in items],
                        [f"rail-{row[2]}" for row, _, _ in items],
                        [self.rng.randint(0, 50) for _ in items],
                    ),
                ).fetchall()
            except psycopg.Error as exc:
                detail = exc.diag.message_detail or ""
                stale = set(detail.removeprefix(STALE_DETAIL).split(", ")) if detail else set()
                named = [item for item in items if str(item[0][0]) in stale]
                if exc.sqlstate != "P7002" or not named:
                    for row, state, was_stale in items:
                        self.log_completion(
                            row, state, was_stale, res=exc.sqlstate or "client", msg=str(exc)[:300]
                        )
                    return
                for row, state, was_stale in named:
                    self.log_completion(row, state, was_stale, res="P7002")
                items = [item for item in items if str(item[0][0]) not in stale]
                continue
            for (row, state, was_stale), (outbox_id, attempt_no, effective) in zip(
                items, result, strict=True
            ):
                assert outbox_id == row[0], "batch results must come in input order"
                self.log_completion(row, state, was_stale, res="ok", n=attempt_no, s=effective)
            return

    def log_completion(self, row: tuple[Any, ...], state: str, stale: bool, **result: Any) -> None:
        self.log.write(
            op="complete",
            w=self.id,
            o=str(row[0]),
            t=str(row[2]),
            req=state,
            stale=stale,
            b=self.batch,
            **result,
        )

    def complete(self, row: tuple[Any, ...], state: str, *, stale: bool) -> None:
        outbox_id, _, token, _ = row
        try:
            result = self.conn.execute(
                COMPLETE,
                (outbox_id, token, self.id, state, f"rail-{token}", self.rng.randint(0, 50)),
            ).fetchone()
        except psycopg.Error as exc:
            self.log_completion(row, state, stale, res=exc.sqlstate or "client", msg=str(exc)[:300])
            return
        assert result is not None
        self.log_completion(row, state, stale, res="ok", n=result[0], s=result[1])

    def repair(self) -> None:
        try:
            rows = self.conn.execute(REPAIR, (self.rng.randint(1, MAX_REPAIR), self.id)).fetchall()
        except psycopg.Error as exc:
            self.log.write(op="repair", w=self.id, res=exc.sqlstate or "client", msg=str(exc))
            return
        for outbox_id, attempt_no in rows:
            self.log.write(op="repair", w=self.id, o=str(outbox_id), n=attempt_no, res="ok")


# --------------------------------------------------------------------------------------------
# Enqueuer
# --------------------------------------------------------------------------------------------


def enqueuer(args: argparse.Namespace) -> None:
    log = Log(Path(args.log))
    rng = random.Random(args.seed)
    with psycopg.connect(args.conninfo, autocommit=True) as conn:
        for start in range(args.start, args.end, args.chunk):
            numbers = list(range(start, min(start + args.chunk, args.end)))
            earlier = range(args.first, start)
            if len(earlier):
                numbers += rng.sample(earlier, min(3, len(earlier)))  # duplicate enqueues
            jobs = sorted((job(n, args.participants) for n in numbers), key=lambda j: (j[1], j[0]))
            rows = conn.execute(
                ENQUEUE,
                (
                    [j[0] for j in jobs],
                    [j[1] for j in jobs],
                    [j[2] for j in jobs],
                    [j[3] for j in jobs],
                    [json.dumps(j[4]) for j in jobs],
                ),
            ).fetchall()
            log.write(op="enqueue", chunk=start, rows=[list(r) for r in rows])
            if args.pace:
                time.sleep(args.pace)  # spread the inflow over the chaos phase
        log.write(op="done", end=args.end)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="outbox_chaos")
    sub = parser.add_subparsers(dest="role", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--conninfo", required=True)
    w.add_argument("--worker-id", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--lease-seconds", type=int, default=2)
    w.add_argument("--max-batch", type=int, default=MAX_BATCH)
    w.add_argument("--rail-ms", type=float, default=2.0)
    w.add_argument("--batch", action="store_true", help="complete with the batch function")
    e = sub.add_parser("enqueuer")
    e.add_argument("--conninfo", required=True)
    e.add_argument("--log", required=True)
    e.add_argument("--seed", type=int, required=True)
    e.add_argument("--first", type=int, required=True)
    e.add_argument("--start", type=int, required=True)
    e.add_argument("--end", type=int, required=True)
    e.add_argument("--chunk", type=int, default=100)
    e.add_argument("--participants", type=int, required=True)
    e.add_argument("--pace", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.role == "worker":
        Worker(args).run()
    else:
        enqueuer(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
