"""R4: the outbox under chaos - many jobs, many participants, worker processes SIGKILLed while
they hold leases, leases yanked into the past, zombie workers completing stale leases.

Processes (``tests/torture/outbox_chaos.py``): enqueuers as an ingest login, workers as an
executor login (non-superusers, runtime-role memberships), all killed at random and restarted.
Half the workers complete one job per call, the other half a whole claim per call with the
batched completion (``complete_outbox_attempts_batch``, all or nothing, ADR 0040).
An expirer thread (superuser; the pending table is mutable for the owner) moves random live
leases into the past and remembers every lease token it expired.

The final accounting reads the database alone for the guarantees, and the process logs only for
what the database cannot know (what each call returned, which completions were known stale):

* the queue is empty; every instruction of the job universe became exactly one job (none lost,
  none duplicated by the duplicate enqueues or the enqueuer restarts);
* every job has exactly one terminal attempt, and it is its last; attempt numbers are 1..n;
  every attempt copies the job's columns unchanged and the payload enqueued;
* per-participant sequence numbers are unique and gapless (1..count) and the allocator's next
  number is count + 1;
* no RETRYABLE attempt at or above the retry ceiling; no DISPATCHING row;
* every known-stale completion was recorded while nobody had replaced its lease and got P7002
  once a repair or a claim had (revision 0014: the ledger names every replaced token), no
  completion with a replaced token succeeded, no call returned anything but success or P7002,
  no lease token was handed out twice, no job was reported DISPATCHED twice, and every
  successful completion or repair a worker logged is in the ledger as logged;
* per-participant FIFO, from the ledger: no later job of a participant was leased before an
  earlier one was terminal, and terminal attempts follow the participant's sequence.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema.privileges import EXECUTOR, INGEST
from tests.torture import outbox_chaos as chaos
from tests.torture import support
from tests.torture.conftest import LoginMaker

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class ChaosConfig:
    jobs: int
    participants: int
    workers: int
    enqueuers: int
    chunk: int
    pace: float  # seconds between enqueue chunks (spreads the inflow over the chaos phase)
    chaos_seconds: float  # minimum length of the kill phase
    kill_every: tuple[float, float]
    enqueuer_kill_share: float
    expire_every: tuple[float, float]
    lease_seconds: int = 2
    ceiling: int = 3
    rail_ms: float = 2.0
    drain_timeout: float = 300.0


SMALL = ChaosConfig(
    jobs=2_000,
    participants=50,
    workers=4,
    enqueuers=1,
    chunk=50,
    pace=0.3,
    chaos_seconds=15,
    kill_every=(0.4, 1.2),
    enqueuer_kill_share=0.15,
    expire_every=(0.2, 0.5),
)
FULL = ChaosConfig(
    jobs=100_000,
    participants=1_000,
    workers=8,
    enqueuers=2,
    chunk=200,
    pace=0.0,
    chaos_seconds=60,
    kill_every=(0.3, 1.5),
    enqueuer_kill_share=0.1,
    expire_every=(0.2, 0.6),
    drain_timeout=900.0,
)


@dataclass
class Proc:
    name: str
    kind: str
    log: Path
    popen: subprocess.Popen[bytes]
    killed: bool = False
    first: int = 0
    end: int = 0


@dataclass
class Harness:
    config: ChaosConfig
    workdir: Path
    worker_conninfo: str
    ingest_conninfo: str
    admin_conninfo: str
    rng: random.Random
    procs: list[Proc] = field(default_factory=list)
    expired_tokens: set[str] = field(default_factory=set)
    expirations: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    _stop_expirer: threading.Event = field(default_factory=threading.Event)
    _spawned: int = 0

    @property
    def stop_file(self) -> Path:
        return self.workdir / "stop"

    def _spawn(self, kind: str, args: list[str], name: str) -> Proc:
        log = self.workdir / f"{name}.jsonl"
        stderr = (self.workdir / f"{name}.err").open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.torture.outbox_chaos", kind, "--log", str(log), *args],
            cwd=support.project(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        proc = Proc(name, kind, log, popen)
        self.procs.append(proc)
        return proc

    def spawn_worker(self) -> Proc:
        self._spawned += 1
        name = f"w{self._spawned:04d}"
        return self._spawn(
            "worker",
            [
                "--conninfo",
                self.worker_conninfo,
                "--worker-id",
                name,
                "--stop",
                str(self.stop_file),
                "--seed",
                str(self.rng.randrange(2**31)),
                "--lease-seconds",
                str(self.config.lease_seconds),
                "--rail-ms",
                str(self.config.rail_ms),
                *(["--batch"] if self._spawned % 2 == 0 else []),
            ],
            name,
        )

    def spawn_enqueuer(self, index: int, first: int, start: int, end: int) -> Proc:
        self._spawned += 1
        proc = self._spawn(
            "enqueuer",
            [
                "--conninfo",
                self.ingest_conninfo,
                "--seed",
                str(self.rng.randrange(2**31)),
                "--first",
                str(first),
                "--start",
                str(start),
                "--end",
                str(end),
                "--chunk",
                str(self.config.chunk),
                "--participants",
                str(self.config.participants),
                "--pace",
                str(self.config.pace),
            ],
            f"e{index}-{self._spawned:04d}",
        )
        proc.first, proc.end = first, end
        return proc

    def live(self, kind: str) -> list[Proc]:
        return [p for p in self.procs if p.kind == kind and p.popen.poll() is None]

    def kill(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=30)
        proc.killed = True
        self.kills[proc.kind] += 1

    def kill_enqueuer(self, proc: Proc) -> None:
        self.kill(proc)
        chunks = [e["chunk"] for e in chaos.read_log(proc.log) if e["op"] == "enqueue"]
        resume = max(chunks) + self.config.chunk if chunks else proc.first
        # Resume where the log ends; the chunk in flight may have committed unlogged, and then
        # its enqueues are duplicates that must return the existing rows. (Resuming at the end
        # just reports the range done.)
        index = int(proc.name[1:].split("-")[0])
        self.spawn_enqueuer(index, proc.first, min(resume, proc.end), proc.end)

    def unexpected_exits(self) -> list[str]:
        return [
            f"{p.name} exited with {p.popen.returncode}: "
            + (self.workdir / f"{p.name}.err").read_text()[-2000:]
            for p in self.procs
            if not p.killed and p.popen.poll() not in (None, 0)
        ]

    def enqueue_finished(self) -> bool:
        done = {
            (p.first, p.end)
            for p in self.procs
            if p.kind == "enqueuer" and p.popen.poll() == 0 and not p.killed
        }
        return len(done) == self.config.enqueuers

    # The expirer ------------------------------------------------------------------------

    def expirer(self) -> None:
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            rng = random.Random(self.rng.randrange(2**31))
            while not self._stop_expirer.wait(rng.uniform(*self.config.expire_every)):
                rows = conn.execute(
                    "UPDATE public.payment_outbox_pending AS p"
                    "   SET lease_expires_at = pg_catalog.clock_timestamp() - interval '1 hour'"
                    " WHERE p.outbox_id IN ("
                    "   SELECT q.outbox_id FROM public.payment_outbox_pending AS q"
                    "    WHERE q.lease_token IS NOT NULL"
                    "      AND q.lease_expires_at > pg_catalog.clock_timestamp()"
                    "    ORDER BY pg_catalog.random() LIMIT %s)"
                    "   AND p.lease_token IS NOT NULL"
                    " RETURNING p.lease_token::text",
                    (rng.randint(1, 4),),
                ).fetchall()
                self.expired_tokens.update(row[0] for row in rows)
                self.expirations += len(rows)

    def start_expirer(self) -> threading.Thread:
        thread = threading.Thread(target=self.expirer, name="expirer", daemon=True)
        thread.start()
        return thread

    def stop_expirer(self, thread: threading.Thread) -> None:
        self._stop_expirer.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the expirer did not stop"

    def shutdown(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(timeout=30)


def _pending(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone()
    assert row is not None
    return int(row[0])


def _run_chaos(h: Harness, seed: int) -> None:
    config = h.config
    per = config.jobs // config.enqueuers
    for index in range(config.enqueuers):
        end = config.jobs if index == config.enqueuers - 1 else (index + 1) * per
        h.spawn_enqueuer(index, index * per, index * per, end)
    for _ in range(config.workers):
        h.spawn_worker()
    expirer = h.start_expirer()
    started = time.monotonic()
    try:
        while time.monotonic() - started < config.chaos_seconds or not h.enqueue_finished():
            assert time.monotonic() - started < config.drain_timeout, (
                f"seed {seed}: the enqueue phase did not finish"
            )
            time.sleep(h.rng.uniform(*config.kill_every))  # the chaos pace, not a server wait
            assert h.unexpected_exits() == [], f"seed {seed}"
            enqueuers = h.live("enqueuer")
            if enqueuers and h.rng.random() < config.enqueuer_kill_share:
                h.kill_enqueuer(h.rng.choice(enqueuers))
            else:
                h.kill(h.rng.choice(h.live("worker")))
                h.spawn_worker()
    finally:
        h.stop_expirer(expirer)
    # Drain: no more kills; the workers finish everything, including the zombies' jobs.
    support.wait_until(
        lambda: _pending(h.admin_conninfo) == 0 or bool(h.unexpected_exits()),
        timeout=config.drain_timeout,
        what="the queue is drained",
    )
    assert h.unexpected_exits() == [], f"seed {seed}"
    h.stop_file.touch()
    for proc in h.live("worker"):
        assert proc.popen.wait(timeout=120) == 0, f"seed {seed}: {proc.name} failed"


# --------------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------------

TERMINAL = "('DISPATCHED', 'FAILED')"

# name -> query returning violations (empty = fine)
DATABASE_CHECKS = {
    "queue not empty": "SELECT outbox_id FROM public.payment_outbox_pending",
    "job without exactly one terminal attempt": f"""
        SELECT outbox_id, count(*) FILTER (WHERE state IN {TERMINAL})
          FROM public.payment_outbox_attempts GROUP BY outbox_id
        HAVING count(*) FILTER (WHERE state IN {TERMINAL}) <> 1""",
    "terminal attempt is not the last": f"""
        SELECT outbox_id FROM public.payment_outbox_attempts GROUP BY outbox_id
        HAVING max(attempt_no) <> max(attempt_no) FILTER (WHERE state IN {TERMINAL})""",
    "attempt numbers not 1..n": """
        SELECT outbox_id, min(attempt_no), max(attempt_no), count(*)
          FROM public.payment_outbox_attempts GROUP BY outbox_id
        HAVING min(attempt_no) <> 1 OR max(attempt_no) <> count(*)
            OR count(DISTINCT attempt_no) <> count(*)""",
    "attempts of one job disagree on the job's columns": """
        SELECT outbox_id FROM public.payment_outbox_attempts GROUP BY outbox_id
        HAVING count(DISTINCT ROW(instruction_id, participant_id, sequence_id, idempotency_key,
                                  rail_type, payload)) <> 1""",
    "instruction with more than one job": """
        SELECT instruction_id, count(DISTINCT outbox_id) FROM public.payment_outbox_attempts
         GROUP BY instruction_id HAVING count(DISTINCT outbox_id) <> 1""",
    "participant sequence not unique and gapless": """
        SELECT j.participant_id, count(*), min(j.sequence_id), max(j.sequence_id),
               count(DISTINCT j.sequence_id)
          FROM (SELECT DISTINCT outbox_id, participant_id, sequence_id
                  FROM public.payment_outbox_attempts) AS j
         GROUP BY j.participant_id
        HAVING min(j.sequence_id) <> 1 OR max(j.sequence_id) <> count(*)
            OR count(DISTINCT j.sequence_id) <> count(*)""",
    "allocator disagrees with the jobs": """
        SELECT s.participant_id, s.next_sequence_id, j.jobs
          FROM public.participant_outbox_sequences AS s
          FULL JOIN (SELECT participant_id, count(DISTINCT outbox_id) AS jobs
                       FROM public.payment_outbox_attempts GROUP BY participant_id) AS j
            ON j.participant_id = s.participant_id
         WHERE s.next_sequence_id IS DISTINCT FROM j.jobs + 1""",
    "RETRYABLE at or above the retry ceiling": """
        SELECT outbox_id, attempt_no FROM public.payment_outbox_attempts
         WHERE state = 'RETRYABLE' AND attempt_no >= %(ceiling)s""",
    "DISPATCHING rows": """
        SELECT outbox_id FROM public.payment_outbox_attempts WHERE state = 'DISPATCHING'""",
    "completed_at disagrees with the state": f"""
        SELECT outbox_id, attempt_no FROM public.payment_outbox_attempts
         WHERE (completed_at IS NOT NULL) <> (state IN {TERMINAL})""",
    "zombie requeue without the lost worker": """
        SELECT outbox_id, attempt_no FROM public.payment_outbox_attempts
         WHERE state = 'ZOMBIE_REQUEUE'
           AND (worker_id IS NULL OR error_code IS DISTINCT FROM 'LEASE_EXPIRED')""",
    # Per-participant FIFO (revision 0014, ADR 0116), from the ledger: a later job of a
    # participant was never leased before an earlier one was terminal, and the terminal
    # attempts of a participant follow its sequence.
    "participant job leased before an earlier job was terminal": f"""
        SELECT t.participant_id, t.sequence_id, b.sequence_id
          FROM public.payment_outbox_attempts AS t
          JOIN public.payment_outbox_attempts AS b
            ON b.participant_id = t.participant_id
           AND b.sequence_id > t.sequence_id
           AND b.claimed_at < t.completed_at
         WHERE t.state IN {TERMINAL}""",
    "participant jobs terminal out of sequence": f"""
        SELECT t.participant_id, t.sequence_id, b.sequence_id
          FROM public.payment_outbox_attempts AS t
          JOIN public.payment_outbox_attempts AS b
            ON b.participant_id = t.participant_id
           AND b.sequence_id > t.sequence_id
           AND b.completed_at < t.completed_at
         WHERE t.state IN {TERMINAL} AND b.state IN {TERMINAL}""",
    "lost lease not FAILED exactly at the retry ceiling": """
        SELECT outbox_id, attempt_no FROM public.payment_outbox_attempts
         WHERE error_code = 'LEASE_EXPIRED'
           AND ((state = 'ZOMBIE_REQUEUE' AND attempt_no >= %(ceiling)s)
             OR (state = 'FAILED' AND attempt_no < %(ceiling)s))""",
}


def _database_violations(conn: psycopg.Connection[Any], ceiling: int) -> dict[str, list[Any]]:
    found = {}
    for name, query in DATABASE_CHECKS.items():
        rows = conn.execute(query, {"ceiling": ceiling}).fetchall()
        if rows:
            found[name] = rows[:10]
    return found


def _universe_violations(conn: psycopg.Connection[Any], config: ChaosConfig) -> list[str]:
    """Every instruction of the universe became exactly one job with its enqueued content."""
    rows = conn.execute(
        # The payload is stored once per job since 0024 (ledger rows carry none): by its key.
        "SELECT DISTINCT ON (a.instruction_id) a.instruction_id, a.participant_id,"
        " a.idempotency_key, a.rail_type, x.payload FROM public.payment_outbox_attempts AS a"
        " LEFT JOIN public.payment_outbox_payloads AS x"
        " ON x.participant_id = a.participant_id AND x.outbox_id = a.outbox_id"
        " ORDER BY a.instruction_id, a.attempt_no"
    ).fetchall()
    have = {row[0]: tuple(row[1:]) for row in rows}
    problems = []
    for n in range(config.jobs):
        instruction, participant, key, rail, payload = chaos.job(n, config.participants)
        if instruction not in have:
            problems.append(f"lost: {instruction}")
        # Enqueue stores the rail's canonical code (0020): chaos.RAILS are ASCII spellings.
        elif have.pop(instruction) != (participant, key, rail.upper(), payload):
            problems.append(f"altered: {instruction}")
    problems += [f"unknown job: {instruction}" for instruction in have]
    return problems[:20]


@dataclass
class LogFacts:
    claims: int = 0
    tokens: set[str] = field(default_factory=set)
    duplicate_tokens: int = 0
    results: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    ok_completions: dict[tuple[str, int], tuple[str, str, str, str]] = field(default_factory=dict)
    ok_tokens: set[str] = field(default_factory=set)
    dispatched_reports: Counter[str] = field(default_factory=Counter)
    stale_results: Counter[str] = field(default_factory=Counter)
    repairs: dict[tuple[str, int], str] = field(default_factory=dict)
    ceiling_failures: int = 0
    held_at_kill: int = 0
    batch_results: Counter[str] = field(default_factory=Counter)
    #: Revision 0014: known-stale completions by result (a lease past its expiry that nobody
    #: replaced is still completable; a replaced one gets P7002).
    stale_ok_tokens: set[str] = field(default_factory=set)
    stale_rejected_tokens: set[str] = field(default_factory=set)
    enqueue_answers: dict[str, set[str]] = field(default_factory=dict)


def _read_logs(h: Harness) -> LogFacts:
    facts = LogFacts()
    for proc in h.procs:
        events = chaos.read_log(proc.log)
        if proc.kind == "enqueuer":
            for event in events:
                for instruction, outbox_id, _, _ in event.get("rows", []):
                    facts.enqueue_answers.setdefault(instruction, set()).add(outbox_id)
            continue
        held: set[str] = set()
        for event in events:
            op = event["op"]
            if op == "claim":
                facts.claims += 1
                facts.duplicate_tokens += event["t"] in facts.tokens
                facts.tokens.add(event["t"])
                held.add(event["t"])
            elif op == "complete":
                held.discard(event["t"])
                facts.results[event["res"]] += 1
                if event.get("b"):
                    facts.batch_results[event["res"]] += 1
                if event["stale"]:
                    facts.stale_results[event["res"]] += 1
                    if event["res"] == "ok":
                        facts.stale_ok_tokens.add(event["t"])
                    elif event["res"] == "P7002":
                        facts.stale_rejected_tokens.add(event["t"])
                if event["res"] not in ("ok", "P7002"):
                    facts.errors.append(event)
                if event["res"] == "ok":
                    key = (event["o"], int(event["n"]))
                    facts.ok_completions[key] = (event["w"], event["s"], event["req"], event["t"])
                    facts.ok_tokens.add(event["t"])
                    facts.dispatched_reports[event["o"]] += event["s"] == "DISPATCHED"
                    facts.ceiling_failures += event["req"] == "RETRYABLE" and event["s"] == "FAILED"
            elif op == "repair":
                if event["res"] != "ok":
                    facts.errors.append(event)
                else:
                    facts.repairs[(event["o"], int(event["n"]))] = event["w"]
        if proc.killed:
            facts.held_at_kill += len(held)
    return facts


def _log_violations(
    conn: psycopg.Connection[Any], h: Harness, facts: LogFacts
) -> tuple[dict[str, Any], dict[str, int]]:
    ledger = {
        (str(o), int(n)): (w, s)
        for o, n, w, s in conn.execute(
            "SELECT outbox_id, attempt_no, worker_id, state::text"
            " FROM public.payment_outbox_attempts"
        )
    }
    # Lost leases, recorded by repair or by a claim that took the lease over (0011, ADR 0060):
    # ZOMBIE_REQUEUE, or FAILED at the retry ceiling.
    lost = {
        (str(o), int(n))
        for (o, n) in conn.execute(
            "SELECT outbox_id, attempt_no FROM public.payment_outbox_attempts"
            " WHERE error_code = 'LEASE_EXPIRED' AND state IN ('ZOMBIE_REQUEUE', 'FAILED')"
        )
    }
    # Revision 0014 (issue 19 item 5, ADR 0118): a lease is lost when it is replaced, and the
    # ledger records every replaced token on its LEASE_EXPIRED attempt. A completion under an
    # expired token nobody replaced is recorded; under a replaced one it is P7002.
    replaced = {
        str(t)
        for (t,) in conn.execute(
            "SELECT lease_token FROM public.payment_outbox_attempts"
            " WHERE error_code = 'LEASE_EXPIRED' AND lease_token IS NOT NULL"
        )
    }
    problems: dict[str, Any] = {}
    if facts.errors:
        problems["calls that returned neither success nor P7002"] = facts.errors[:10]
    if set(facts.stale_results) - {"P7002", "ok"}:
        problems["known-stale completions neither recorded nor P7002"] = dict(facts.stale_results)
    if facts.stale_rejected_tokens - replaced:
        problems["stale completions rejected although nobody replaced their lease"] = sorted(
            facts.stale_rejected_tokens - replaced
        )[:10]
    if facts.ok_tokens & replaced:
        problems["completions accepted with a lease that had been replaced"] = sorted(
            facts.ok_tokens & replaced
        )[:10]
    if facts.duplicate_tokens:
        problems["lease tokens handed out twice"] = facts.duplicate_tokens
    twice = [o for o, count in facts.dispatched_reports.items() if count > 1]
    if twice:
        problems["jobs reported DISPATCHED twice"] = twice[:10]
    mismatched = [
        (key, logged, ledger.get(key))
        for key, logged in facts.ok_completions.items()
        if ledger.get(key) != logged[:2]
    ]
    if mismatched:
        problems["logged completions missing or different in the ledger"] = mismatched[:10]
    bad_repairs = [(key, ledger.get(key)) for key in facts.repairs if key not in lost]
    if bad_repairs:
        problems["logged repairs missing from the ledger"] = bad_repairs[:10]
    completions_in_ledger = len(ledger) - len(lost)
    repairs_in_ledger = len(lost)
    # A SIGKILL between a call's commit and its log lines loses at most that call's lines: one
    # completion, or one batch (at most MAX_BATCH). Lost leases are recorded by repairs (logged)
    # and by claims that take them over (not logged as such): only completions are counted.
    unlogged = completions_in_ledger - len(facts.ok_completions)
    if unlogged > h.kills["worker"] * max(chaos.MAX_BATCH, chaos.MAX_REPAIR):
        problems["ledger rows no log explains"] = unlogged
    answers = [i for i, ids in facts.enqueue_answers.items() if len(ids) != 1]
    if answers:
        problems["duplicate enqueues answered with another job"] = answers[:10]
    numbers = {
        "jobs": h.config.jobs,
        "participants": h.config.participants,
        "attempts": len(ledger),
        "claims": facts.claims,
        "completions_ok": len(facts.ok_completions),
        "lease_lost_P7002": facts.results["P7002"],
        "stale_completions_sent": sum(facts.stale_results.values()),
        "stale_completions_recorded_late_but_current": facts.stale_results["ok"],
        "batch_completions_ok": facts.batch_results["ok"],
        "batch_elements_rejected_P7002": facts.batch_results["P7002"],
        "lost_leases_recorded": repairs_in_ledger,
        "retry_ceiling_failures": facts.ceiling_failures,
        "worker_kills": h.kills["worker"],
        "enqueuer_kills": h.kills["enqueuer"],
        "leases_held_by_killed_workers": facts.held_at_kill,
        "leases_expired_by_chaos": h.expirations,
        "unlogged_ledger_rows": unlogged,
    }
    return problems, numbers


def _account(h: Harness, seed: int) -> dict[str, int]:
    with psycopg.connect(h.admin_conninfo, autocommit=True) as conn:
        database = _database_violations(conn, h.config.ceiling)
        universe = _universe_violations(conn, h.config)
        facts = _read_logs(h)
        logs, numbers = _log_violations(conn, h, facts)
    assert database == {}, f"seed {seed}: the ledger breaks the outbox guarantees: {database}"
    assert universe == [], f"seed {seed}: {universe}"
    assert logs == {}, f"seed {seed}: {logs}"
    return numbers


def _chaos_test(
    config: ChaosConfig, make_login: LoginMaker, migrated_db: Any, tmp_path: Path, name: str
) -> dict[str, int]:
    seed = support.run_seed(name)
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as admin:
        # Stored in the database since 0011 (ADR 0061); no setting changes it.
        admin.execute("SELECT public.set_outbox_retry_ceiling(%s)", (config.ceiling,))
    h = Harness(
        config=config,
        workdir=tmp_path,
        worker_conninfo=make_login(EXECUTOR).conninfo,
        ingest_conninfo=make_login(INGEST).conninfo,
        admin_conninfo=migrated_db.conninfo,
        rng=random.Random(seed),
    )
    started = time.monotonic()
    try:
        _run_chaos(h, seed)
    finally:
        h.shutdown()
    numbers = _account(h, seed)
    numbers["seconds"] = round(time.monotonic() - started)
    print(f"R4 {name} seed {seed}: {json.dumps(numbers)}")
    results_dir = os.environ.get("TORTURE_RESULTS_DIR")
    if results_dir:
        Path(results_dir, f"{name}.json").write_text(
            json.dumps({"seed": seed, **numbers}, indent=2)
        )
    # Not vacuous: the chaos really happened.
    for key in (
        "worker_kills",
        "leases_held_by_killed_workers",
        "leases_expired_by_chaos",
        "lease_lost_P7002",
        "stale_completions_sent",
        "batch_completions_ok",
        "batch_elements_rejected_P7002",
        "lost_leases_recorded",
        "retry_ceiling_failures",
    ):
        assert numbers[key] > 0, f"seed {seed}: no {key} happened: {numbers}"
    return numbers


def test_outbox_survives_chaos_small(
    make_login: LoginMaker, migrated_db: Any, tmp_path: Path
) -> None:
    """The default-suite variant: 2,000 jobs, 50 participants, 4 workers, ~20-40 s."""
    _chaos_test(SMALL, make_login, migrated_db, tmp_path, "r4-small")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_outbox_survives_chaos_full(
    make_login: LoginMaker, migrated_db: Any, tmp_path: Path
) -> None:
    """Full strength: 100,000 jobs, 1,000 participants, 8 workers, 2 enqueuers."""
    _chaos_test(FULL, make_login, migrated_db, tmp_path, "r4-full")


# --------------------------------------------------------------------------------------------
# The accounting can fail: every database check finds a planted violation
# --------------------------------------------------------------------------------------------

_ATTEMPT = (
    "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
    " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, completed_at,"
    " worker_id, error_code)"
    " SELECT outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,"
    " rail_type, payload, {attempt_no}, '{state}', {completed_at}, {worker}, {error}"
    " FROM public.payment_outbox_attempts WHERE instruction_id = 'instr-1' LIMIT 1"
)


def _planted_attempt(
    attempt_no: int | str = 2,
    state: str = "RETRYABLE",
    completed_at: str = "NULL",
    worker: str = "'w'",
    error: str = "NULL",
) -> str:
    return _ATTEMPT.format(
        attempt_no=attempt_no, state=state, completed_at=completed_at, worker=worker, error=error
    )


# A third job of the participant that was leased and dispatched before the first two.
_FIFO_BREACH = (
    "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
    " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, claimed_at,"
    " completed_at, worker_id)"
    " SELECT gen_random_uuid(), 'instr-8', participant_id, 3, 'k-8', rail_type, payload, 1,"
    " 'DISPATCHED', '2000-01-01', '2000-01-01', 'w'"
    " FROM public.payment_outbox_attempts WHERE instruction_id = 'instr-1' LIMIT 1"
)

PLANTED_VIOLATIONS = {
    "queue not empty": "SELECT public.enqueue_payment_outbox('instr-9', 'p-1', 'k-9', 'rtgs',"
    " '{}')",
    "job without exactly one terminal attempt": "DROP INDEX public.uq_payment_outbox_attempts_one_"
    "outcome; " + _planted_attempt(2, "FAILED", "now()"),
    "terminal attempt is not the last": _planted_attempt(2),
    "attempt numbers not 1..n": _planted_attempt(5),
    "attempts of one job disagree on the job's columns": _planted_attempt().replace(
        "rail_type, payload, 2", "rail_type, '{\"x\": 1}', 2"
    ),
    "participant sequence not unique and gapless": _planted_attempt().replace(
        "SELECT outbox_id, instruction_id, participant_id, sequence_id,",
        "SELECT gen_random_uuid(), 'instr-7', participant_id, 5,",
    ),
    "allocator disagrees with the jobs": "SET ROLE symphony_owner;"
    " SELECT public.bump_participant_outbox_seq('p-1'); RESET ROLE",
    "RETRYABLE at or above the retry ceiling": _planted_attempt(3),
    "DISPATCHING rows": _planted_attempt(2, "DISPATCHING"),
    "completed_at disagrees with the state": _planted_attempt(2, "RETRYABLE", "now()"),
    "zombie requeue without the lost worker": _planted_attempt(2, "ZOMBIE_REQUEUE", worker="NULL"),
    "lost lease not FAILED exactly at the retry ceiling": _planted_attempt(
        3, "ZOMBIE_REQUEUE", error="'LEASE_EXPIRED'"
    ),
    "participant job leased before an earlier job was terminal": _FIFO_BREACH,
    "participant jobs terminal out of sequence": _FIFO_BREACH,
}


@pytest.mark.parametrize("check", list(PLANTED_VIOLATIONS))
def test_the_accounting_finds_a_planted_violation(db: psycopg.Connection[Any], check: str) -> None:
    for n in (1, 2):
        row = db.execute(
            "SELECT outbox_id FROM public.enqueue_payment_outbox(%s, 'p-1', %s, 'rtgs', '{}')",
            (f"instr-{n}", f"k-{n}"),
        ).fetchone()
        assert row is not None
        (claimed,) = db.execute("SELECT * FROM public.claim_outbox_batch(1, 'w', 60)").fetchall()
        db.execute(
            "SELECT public.complete_outbox_attempt(%s, %s, 'w', 'DISPATCHED',"
            " p_rail_reference => %s::uuid::text)",
            (claimed[0], claimed[8], claimed[0]),
        )
    assert _database_violations(db, 3) == {}
    with psycopg.connect(db.info.dsn) as conn:
        conn.execute(PLANTED_VIOLATIONS[check])
        found = _database_violations(conn, 3)
        conn.rollback()
    assert check in found, found
