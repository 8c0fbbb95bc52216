"""Section ``heads`` (issue 17, ADR 0169): what a claimable-heads table would buy, measured
before anyone restates the functions for it (ADR 0150 item 5).

The scratch database gets three schemas doing the SAME logical work per job as plain SQL
statements run by ``pgbench`` (one transaction per claim, one per completion, as in W2):

* ``cur``: today's layout (``payment_outbox_pending``, the partitioned ledger, rail references,
  rails, the allocator and the payload table, copied from ``baseline/baseline.sql``) and today's
  statements, taken from the bodies of ``claim_outbox_batch`` (step 1 at batch 1, all rails) and
  ``complete_outbox_attempt`` (its DISPATCHED path: fenced DELETE, attempt number, the rail lookup
  and reference INSERT of ``record_outbox_rail_reference``, the ledger INSERT, the allocator lock
  and the next-head promotion UPDATE);
* ``slim``: the same with the payload moved out of the queue row (the claim reads it from the
  payload table);
* ``heads``: immutable queue rows (inserted once, deleted once; no lease or ``is_head``
  columns), a narrow claimable-heads table (one row per participant with due work) and a narrow
  lease table. The claim is ``DELETE ... RETURNING`` from the heads + INSERT of the lease + read
  of the queue row (one statement); the completion deletes the lease (the fence) and the queue
  row, writes the same ledger and rail reference rows, takes the same allocator lock and inserts
  the participant's next head, found by ``(participant_id, sequence_id)``.

PGMQ ``read`` + ``delete`` runs in the same repeat as the reference. Per participant count and
repeat, each system in turn: the queue filled and ``VACUUM ANALYZE``-ed, autovacuum off on every
table of the section; buffers per claim (``EXPLAIN (ANALYZE, BUFFERS)`` of the claim, rolled back)
after 0, then after ``checkpoints`` jobs done at one client without VACUUM (server time per
statement from ``pgbench -r``, WAL bytes, records and full-page images per job from
``pg_stat_wal``); then ``VACUUM ANALYZE`` and jobs/s at each worker count. Every pgbench run uses
``synchronous_commit = off`` (the commit flush is the same two per job for every system; the
layout decides the rest), and ours under the plan settings the outbox functions pin
(``force_generic_plan``, ``enable_seqscan = off``).
The README's table is rendered by :func:`benchmarks.report.heads_lines`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import db
from benchmarks.stats import paired_ratio, summarize
from symphony_schema import embedded

Conn = psycopg.Connection[Any]
Log = Callable[[str], None]

#: The systems of the section, in the order each repeat measures them.
VARIANTS = ("cur", "slim", "heads", "pgmq")
OURS = ("cur", "slim", "heads")
#: The paired ratios reported: the layouts against today's, every layout against PGMQ.
RATIOS = (
    ("heads", "cur"),
    ("slim", "cur"),
    ("cur", "pgmq"),
    ("slim", "pgmq"),
    ("heads", "pgmq"),
)
#: A UUID no job has: what the claim returns in place of a job when it found none.
NO_JOB = "00000000-0000-0000-0000-000000000000"
LEASE_SECONDS = 30


@dataclass(frozen=True)
class Plan:
    """The matrix of one run of the section."""

    participants: tuple[int, ...]
    #: Jobs done (at one client, no VACUUM) before each buffers-per-claim reading after the
    #: first (which is taken at 0).
    checkpoints: tuple[int, ...]
    workers: tuple[int, ...]
    seconds: int
    repeats: int
    explain_samples: int = 3

    def fill_rows(self) -> int:
        """Rows to queue so that neither the no-VACUUM phase nor the timed runs drain it."""
        return self.checkpoints[-1] + 3000 * self.seconds * len(self.workers) + 5000


FULL_PLAN = Plan(
    participants=(50, 10_000),
    checkpoints=(10_000, 30_000),
    workers=(1, 2, 4),
    seconds=3,
    repeats=3,
)
QUICK_PLAN = Plan(
    participants=(50,), checkpoints=(1_000, 3_000), workers=(1, 2), seconds=1, repeats=1
)


def plan_for(settings: Any) -> Plan:
    """The full matrix, or the ``--quick`` one; ``--repeats`` and ``--seconds`` (the timed runs'
    length, default 3 s; 1 s with ``--quick``) apply."""
    base = QUICK_PLAN if settings.quick else FULL_PLAN
    return Plan(
        participants=base.participants,
        checkpoints=base.checkpoints,
        workers=base.workers,
        seconds=max(1, round(settings.measure_s)),
        repeats=settings.repeats,
    )


# --------------------------------------------------------------------------------------------
# Schemas (copied from baseline/baseline.sql; scratch names, no triggers, no privileges)
# --------------------------------------------------------------------------------------------

_LEDGER = """
CREATE TABLE {s}.attempts (
    attempt_id uuid DEFAULT uuidv7() NOT NULL,
    outbox_id uuid NOT NULL,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb,
    attempt_no integer NOT NULL,
    state text NOT NULL,
    claimed_at timestamptz DEFAULT now() NOT NULL,
    completed_at timestamptz,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    worker_id text,
    created_at timestamptz DEFAULT now() NOT NULL,
    lease_token uuid,
    recorded_by text DEFAULT SESSION_USER,
    acted_by text,
    reason text,
    ticket text,
    related_outbox_id uuid,
    CHECK (attempt_no >= 1),
    CHECK (latency_ms IS NULL OR latency_ms >= 0),
    CHECK (jsonb_typeof(payload) = 'object'),
    PRIMARY KEY (outbox_id, participant_id, attempt_id),
    UNIQUE (outbox_id, participant_id, attempt_no)
) PARTITION BY RANGE (outbox_id);
CREATE TABLE {s}.attempts_default PARTITION OF {s}.attempts DEFAULT;
CREATE INDEX ON {s}.attempts (created_at)
 WHERE state IN ('RETRYABLE', 'FAILED', 'CANCELLED', 'ZOMBIE_REQUEUE');
CREATE INDEX ON {s}.attempts (related_outbox_id) WHERE related_outbox_id IS NOT NULL;
CREATE UNIQUE INDEX ON {s}.attempts (outbox_id, participant_id)
 WHERE state IN ('DISPATCHED', 'FAILED', 'CANCELLED');
CREATE UNIQUE INDEX ON {s}.attempts (outbox_id, participant_id) WHERE state = 'REDRIVEN';
CREATE TABLE {s}.rail_references (
    rail_code text NOT NULL,
    rail_reference text NOT NULL,
    outbox_id uuid NOT NULL,
    attempt_no integer NOT NULL CHECK (attempt_no >= 1),
    recorded_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT pk_{s}_rail_references PRIMARY KEY (rail_code, rail_reference)
);
CREATE TABLE {s}.rails (
    rail_code text PRIMARY KEY,
    returns_reference boolean DEFAULT true NOT NULL,
    enabled boolean DEFAULT true NOT NULL
);
INSERT INTO {s}.rails (rail_code, returns_reference) VALUES ('RTGS', true);
CREATE TABLE {s}.sequences (
    participant_id text PRIMARY KEY,
    next_sequence_id bigint NOT NULL CHECK (next_sequence_id >= 1)
);
CREATE TABLE {s}.payloads (
    participant_id text NOT NULL,
    outbox_id uuid NOT NULL,
    payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at timestamptz DEFAULT now() NOT NULL,
    PRIMARY KEY (participant_id, outbox_id)
);
"""

_CUR_QUEUE = """
CREATE TABLE {s}.pending (
    outbox_id uuid DEFAULT uuidv7() NOT NULL PRIMARY KEY,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    {payload_column}
    attempt_count integer DEFAULT 0 NOT NULL CHECK (attempt_count >= 0),
    next_attempt_at timestamptz DEFAULT now() NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    claimed_by text,
    lease_token uuid,
    lease_expires_at timestamptz,
    is_head boolean DEFAULT false NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    in_doubt boolean DEFAULT false NOT NULL,
    claimed_at timestamptz,
    CHECK ((claimed_by IS NULL AND lease_token IS NULL AND lease_expires_at IS NULL)
        OR (claimed_by IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
    UNIQUE (instruction_id, idempotency_key),
    UNIQUE (participant_id, sequence_id)
);
CREATE INDEX ON {s}.pending (priority DESC, next_attempt_at, outbox_id)
 WHERE is_head AND lease_token IS NULL;
CREATE INDEX ON {s}.pending (rail_type, priority DESC, next_attempt_at, outbox_id)
 WHERE is_head AND lease_token IS NULL;
CREATE INDEX ON {s}.pending (lease_expires_at, outbox_id) WHERE lease_token IS NOT NULL;
"""

_HEADS_TABLES = """
CREATE TABLE {s}.queue (
    outbox_id uuid DEFAULT uuidv7() NOT NULL PRIMARY KEY,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    next_attempt_at timestamptz DEFAULT now() NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    UNIQUE (instruction_id, idempotency_key),
    UNIQUE (participant_id, sequence_id)
);
CREATE TABLE {s}.claimable (
    participant_id text PRIMARY KEY,
    outbox_id uuid NOT NULL,
    rail_type text NOT NULL,
    priority integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    in_doubt boolean DEFAULT false NOT NULL
);
CREATE INDEX ON {s}.claimable (priority DESC, next_attempt_at, outbox_id);
CREATE INDEX ON {s}.claimable (rail_type, priority DESC, next_attempt_at, outbox_id);
CREATE TABLE {s}.lease (
    outbox_id uuid PRIMARY KEY,
    participant_id text NOT NULL,
    token uuid NOT NULL,
    claimed_by text NOT NULL,
    expires_at timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    in_doubt boolean DEFAULT false NOT NULL
);
CREATE INDEX ON {s}.lease (expires_at, outbox_id);
"""


def schema_ddl(variant: str) -> str:
    """The DDL of one variant's schema (named after the variant)."""
    if variant not in OURS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(OURS)}")
    if variant == "heads":
        queue = _HEADS_TABLES
    else:
        payload = (
            "payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),"
            if variant == "cur"
            else ""
        )
        queue = _CUR_QUEUE.replace("{payload_column}", payload)
    return f"CREATE SCHEMA {variant};\n" + (_LEDGER + queue).replace("{s}", variant)


def tables(variant: str) -> tuple[str, ...]:
    """The tables a variant's jobs write (reset, vacuumed, autovacuum switched off)."""
    if variant == "pgmq":
        return db.PGMQ_TABLES
    common = ("attempts_default", "rail_references", "sequences", "payloads")
    queue = ("queue", "claimable", "lease") if variant == "heads" else ("pending",)
    return tuple(f"{variant}.{t}" for t in (*queue, *common))


def queue_table(variant: str) -> str:
    """The table whose row count is the number of jobs left."""
    return {
        "cur": "cur.pending",
        "slim": "slim.pending",
        "heads": "heads.queue",
        "pgmq": f"pgmq.q_{db.PGMQ_QUEUE}",
    }[variant]


def fill_sql(variant: str) -> list[str]:
    """Statements that queue ``%(count)s`` due jobs over ``%(participants)s`` participants as
    enqueue would leave them (each participant's first job its head), oldest first."""
    if variant not in OURS:
        raise ValueError(f"unknown variant {variant!r}")
    jobs = (
        "SELECT 'fill-' || g AS instruction_id, 'p-' || (g %% %(participants)s) AS participant_id,"
        " (g - 1) / %(participants)s + 1 AS sequence_id, 'k-' || g AS idempotency_key,"
        " now() - interval '1 hour' + g * interval '1 microsecond' AS next_attempt_at"
        " FROM generate_series(1, %(count)s) AS g"
    )
    if variant == "heads":
        statements = [
            "INSERT INTO heads.queue (instruction_id, participant_id, sequence_id,"
            " idempotency_key, rail_type, payload, next_attempt_at, created_at)"
            " SELECT j.instruction_id, j.participant_id, j.sequence_id, j.idempotency_key,"
            " 'RTGS', %(body)s::jsonb, j.next_attempt_at, now() - interval '1 hour'"
            f" FROM ({jobs}) AS j",
            "INSERT INTO heads.claimable (participant_id, outbox_id, rail_type, priority,"
            " next_attempt_at) SELECT q.participant_id, q.outbox_id, q.rail_type, q.priority,"
            " q.next_attempt_at FROM heads.queue AS q WHERE q.sequence_id = 1",
        ]
        queue = "heads.queue"
    else:
        payload_col = ", payload" if variant == "cur" else ""
        payload_val = ", %(body)s::jsonb" if variant == "cur" else ""
        statements = [
            f"INSERT INTO {variant}.pending (instruction_id, participant_id, sequence_id,"
            f" idempotency_key, rail_type{payload_col}, next_attempt_at, created_at, is_head)"
            " SELECT j.instruction_id, j.participant_id, j.sequence_id, j.idempotency_key,"
            f" 'RTGS'{payload_val}, j.next_attempt_at, now() - interval '1 hour',"
            f" j.sequence_id = 1 FROM ({jobs}) AS j"
        ]
        queue = f"{variant}.pending"
    statements += [
        f"INSERT INTO {variant}.payloads (participant_id, outbox_id, payload)"
        f" SELECT q.participant_id, q.outbox_id, %(body)s::jsonb FROM {queue} AS q",
        f"INSERT INTO {variant}.sequences (participant_id, next_sequence_id)"
        f" SELECT q.participant_id, max(q.sequence_id) + 1 FROM {queue} AS q"
        " GROUP BY q.participant_id",
    ]
    return statements


# --------------------------------------------------------------------------------------------
# The statements of one job (pgbench scripts: one statement per line, labels in order)
# --------------------------------------------------------------------------------------------

_WORKER = "('w-' || :client_id::text)"


def _claim_cur(s: str) -> str:
    """claim_outbox_batch step 1 at batch 1, every rail (``slim``: the payload from its table)."""
    payload = (
        "l.payload"
        if s == "cur"
        else (
            "(SELECT b.payload FROM slim.payloads AS b WHERE b.participant_id = l.participant_id"
            " AND b.outbox_id = l.outbox_id)"
        )
    )
    returning = "p.payload, " if s == "cur" else ""
    return (
        "WITH unleased AS (SELECT p.outbox_id, p.priority, p.next_attempt_at"
        f" FROM {s}.pending AS p WHERE p.is_head AND p.lease_token IS NULL"
        " AND p.next_attempt_at <= now() ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id"
        " LIMIT 1 FOR UPDATE SKIP LOCKED),"
        " chosen AS (SELECT u.outbox_id FROM unleased AS u"
        " ORDER BY u.priority DESC, u.next_attempt_at, u.outbox_id LIMIT 1),"
        f" leased AS (UPDATE {s}.pending AS p SET claimed_by = {_WORKER},"
        f" lease_token = uuidv7(), lease_expires_at = now() + interval '{LEASE_SECONDS} seconds',"
        " claimed_at = clock_timestamp()"
        " WHERE p.outbox_id = ANY ((SELECT array_agg(x.outbox_id) FROM chosen AS x)::uuid[])"
        " RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,"
        f" p.idempotency_key, p.rail_type, {returning}p.attempt_count, p.lease_token,"
        " p.lease_expires_at, p.in_doubt)"
        " SELECT (l.outbox_id IS NOT NULL)::int AS got,"
        f" COALESCE(l.outbox_id, '{NO_JOB}'::uuid) AS oid, l.lease_token AS tok,"
        f" l.participant_id AS pid, l.attempt_count AS ac, {payload} AS body"
        " FROM (VALUES (1)) AS one (x) LEFT JOIN leased AS l ON true \\gset"
    )


def _claim_heads() -> str:
    return (
        "WITH h AS (DELETE FROM heads.claimable AS c WHERE c.participant_id = ("
        "SELECT x.participant_id FROM heads.claimable AS x WHERE x.next_attempt_at <= now()"
        " ORDER BY x.priority DESC, x.next_attempt_at, x.outbox_id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING c.outbox_id, c.participant_id, c.attempt_count, c.in_doubt),"
        " l AS (INSERT INTO heads.lease (outbox_id, participant_id, token, claimed_by, expires_at,"
        " claimed_at, attempt_count, in_doubt)"
        f" SELECT h.outbox_id, h.participant_id, uuidv7(), {_WORKER},"
        f" now() + interval '{LEASE_SECONDS} seconds', clock_timestamp(), h.attempt_count,"
        " h.in_doubt FROM h RETURNING outbox_id, token, attempt_count)"
        " SELECT (q.outbox_id IS NOT NULL)::int AS got,"
        f" COALESCE(q.outbox_id, '{NO_JOB}'::uuid) AS oid, l.token AS tok,"
        " q.participant_id AS pid, l.attempt_count AS ac, q.payload AS body"
        " FROM (VALUES (1)) AS one (x) LEFT JOIN (l JOIN heads.queue AS q"
        " ON q.outbox_id = l.outbox_id) ON true \\gset"
    )


def _ledger_and_reference(s: str) -> list[tuple[str, str]]:
    """What every completion writes the same way: the attempt number, the rail lookup and the
    reference row (record_outbox_rail_reference), the ledger row."""
    return [
        (
            "attempt number",
            "SELECT COALESCE(max(x.attempt_no), 0) + 1 AS ano FROM"
            f" {s}.attempts AS x WHERE x.outbox_id = :oid::uuid \\gset",
        ),
        (
            "rail lookup",
            f"SELECT r.returns_reference AS req FROM {s}.rails AS r"
            ' WHERE r.rail_code = upper(:rail::text COLLATE "C") \\gset',
        ),
        (
            "rail reference INSERT",
            f"INSERT INTO {s}.rail_references AS x (rail_code, rail_reference, outbox_id,"
            ' attempt_no) VALUES (upper(:rail::text COLLATE "C"), :oid, :oid::uuid, :ano)'
            f" ON CONFLICT ON CONSTRAINT pk_{s}_rail_references DO NOTHING;",
        ),
        (
            "ledger INSERT",
            f"INSERT INTO {s}.attempts AS a (outbox_id, instruction_id, participant_id,"
            " sequence_id, idempotency_key, rail_type, attempt_no, state, claimed_at,"
            " completed_at, rail_reference, rail_code, error_code, error_message, latency_ms,"
            " worker_id, lease_token, recorded_by) VALUES (:oid::uuid, :iid, :pid, :seq,"
            " :ikey, :rail, :ano, 'DISPATCHED', :cat::timestamptz, clock_timestamp(), :oid,"
            f" NULL, NULL, NULL, 5, {_WORKER}, :tok::uuid, SESSION_USER);",
        ),
        (
            "allocator lock",
            f"SELECT 1 FROM {s}.sequences AS s WHERE s.participant_id = :pid FOR NO KEY UPDATE;",
        ),
    ]


def job_statements(variant: str) -> list[tuple[str, str]]:
    """(label, statement) of one job, in script order: the claim (its own transaction), then
    the completion (BEGIN ... COMMIT), which runs only when the claim found a job."""
    if variant == "pgmq":
        return [
            (
                "pgmq.read",
                "SELECT (r.msg_id IS NOT NULL)::int AS got, COALESCE(r.msg_id, 0) AS mid"
                f" FROM (VALUES (1)) AS one (x) LEFT JOIN LATERAL pgmq.read('{db.PGMQ_QUEUE}',"
                f" {LEASE_SECONDS}, 1) AS r ON true \\gset",
            ),
            ("\\if", "\\if :got"),
            ("pgmq.delete", f"SELECT pgmq.delete('{db.PGMQ_QUEUE}', :mid::bigint);"),
            ("\\endif", "\\endif"),
        ]
    if variant not in OURS:
        raise ValueError(f"unknown variant {variant!r}")
    claim = _claim_heads() if variant == "heads" else _claim_cur(variant)
    out = [("claim", claim), ("\\if", "\\if :got"), ("BEGIN", "BEGIN;")]
    if variant == "heads":
        out += [
            (
                "lease DELETE (fence)",
                "DELETE FROM heads.lease AS l WHERE l.outbox_id = :oid::uuid"
                f" AND l.claimed_by = {_WORKER} AND l.token = :tok::uuid"
                " RETURNING l.claimed_at AS cat \\gset",
            ),
            (
                "queue DELETE",
                "DELETE FROM heads.queue AS p WHERE p.outbox_id = :oid::uuid"
                " RETURNING p.instruction_id AS iid, p.sequence_id AS seq,"
                " p.idempotency_key AS ikey, p.rail_type AS rail \\gset",
            ),
        ]
    else:
        out.append(
            (
                "queue DELETE (fence)",
                f"DELETE FROM {variant}.pending AS p WHERE p.outbox_id = :oid::uuid"
                f" AND p.claimed_by = {_WORKER} AND p.lease_token IS NOT DISTINCT FROM"
                " :tok::uuid RETURNING p.instruction_id AS iid, p.sequence_id AS seq,"
                " p.idempotency_key AS ikey, p.rail_type AS rail, p.claimed_at AS cat,"
                " p.is_head::int AS head \\gset",
            )
        )
    out += _ledger_and_reference(variant)
    if variant == "heads":
        out.append(
            (
                "next head INSERT",
                "INSERT INTO heads.claimable (participant_id, outbox_id, rail_type, priority,"
                " next_attempt_at) SELECT q.participant_id, q.outbox_id, q.rail_type,"
                " q.priority, q.next_attempt_at FROM heads.queue AS q"
                " WHERE q.participant_id = :pid ORDER BY q.sequence_id LIMIT 1"
                " ON CONFLICT (participant_id) DO NOTHING;",
            )
        )
    else:
        out.append(
            (
                "promotion UPDATE",
                f"UPDATE {variant}.pending AS p SET is_head = true WHERE p.outbox_id = ("
                f"SELECT q.outbox_id FROM {variant}.pending AS q WHERE q.participant_id = :pid"
                " ORDER BY q.sequence_id LIMIT 1) AND NOT p.is_head;",
            )
        )
    out += [("COMMIT", "COMMIT;"), ("\\endif", "\\endif")]
    return out


def script(variant: str) -> str:
    """The pgbench script of one job."""
    return "".join(statement + "\n" for _, statement in job_statements(variant))


def claim_statement(variant: str) -> str:
    """The claim as a plain statement (for EXPLAIN): pgbench variables replaced, no ``\\gset``."""
    text = job_statements(variant)[0][1]
    return text.replace(" \\gset", "").replace(":client_id", "0")


# --------------------------------------------------------------------------------------------
# pgbench
# --------------------------------------------------------------------------------------------

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
_DONE = re.compile(r"number of transactions actually processed: (\d+)")
_LATENCY = re.compile(r"^\s+([0-9.]+)\s+\d+(?:\s+\d+)?\s+(.*)$")


@dataclass(frozen=True)
class PgbenchRun:
    """What one pgbench run reported: scripts per second, scripts done, server-side latency per
    SQL statement (ms, in script order, meta-commands left out)."""

    tps: float
    scripts: int
    latencies_ms: list[float]


def parse_pgbench(stdout: str) -> PgbenchRun:
    """tps, scripts done and the ``-r`` per-statement latencies of SQL commands, in order."""
    tps = _TPS.search(stdout)
    done = _DONE.search(stdout)
    if tps is None or done is None:
        raise ValueError(f"not pgbench output: {stdout.strip()[-300:]!r}")
    latencies: list[float] = []
    in_statements = False
    for line in stdout.splitlines():
        if line.startswith("statement latencies"):
            in_statements = True
            continue
        match = _LATENCY.match(line) if in_statements else None
        if match and not match.group(2).startswith("\\"):
            latencies.append(float(match.group(1)))
    return PgbenchRun(float(tps.group(1)), int(done.group(1)), latencies)


def sql_labels(variant: str) -> list[str]:
    """The labels of a script's SQL statements, in the order ``-r`` reports them."""
    return [label for label, text in job_statements(variant) if not text.startswith("\\")]


def session_options(variant: str) -> str:
    """``PGOPTIONS`` of a system's pgbench sessions: synchronous_commit off for all; for ours
    also the plan settings every outbox function pins for its statements
    (``outbox_pin_plan_settings``, ADR 0041)."""
    options = "-c synchronous_commit=off"
    if variant in OURS:
        options += " -c plan_cache_mode=force_generic_plan -c enable_seqscan=off"
    return options


def pgbench(
    conninfo: str, variant: str, clients: int, *, transactions: int = 0, seconds: int = 0
) -> PgbenchRun:
    """Run the variant's job script (``-t`` per client, or ``-T``), synchronous_commit off."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{variant}.sql"
        path.write_text(script(variant))
        limit = ["-t", str(transactions)] if transactions else ["-T", str(max(1, seconds))]
        done = subprocess.run(
            [
                str(embedded.binary("pgbench")),
                "-n",
                "-M",
                "prepared",
                "-r",
                "-f",
                str(path),
                "-c",
                str(clients),
                "-j",
                str(clients),
                *limit,
                conninfo,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGOPTIONS": session_options(variant)},
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"pgbench ({variant}, {clients} client(s)) failed ({done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
    run = parse_pgbench(done.stdout)
    if len(run.latencies_ms) != len(sql_labels(variant)):
        raise RuntimeError(
            f"pgbench -r reported {len(run.latencies_ms)} statement(s) for {variant}, "
            f"expected {len(sql_labels(variant))}"
        )
    return run


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def install(conn: Conn) -> None:
    """The three schemas (PGMQ is installed by the harness)."""
    for variant in OURS:
        conn.execute(f"DROP SCHEMA IF EXISTS {variant} CASCADE")
        conn.execute(schema_ddl(variant).encode())


def _autovacuum(conn: Conn, variant: str, enabled: bool) -> None:
    for table in tables(variant):
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = {str(enabled).lower()})")


def prepare(conn: Conn, variant: str, rows: int, participants: int, body: str) -> None:
    """Empty the variant's tables, queue ``rows`` jobs, VACUUM ANALYZE, autovacuum off."""
    if variant == "pgmq":
        db.reset_pgmq(conn)
        db.fill_pgmq(conn, rows, body)
    else:
        conn.execute("TRUNCATE " + ", ".join(t for t in tables(variant)))
        conn.execute(f"TRUNCATE {variant}.attempts")
        for statement in fill_sql(variant):
            conn.execute(
                statement.encode(), {"count": rows, "participants": participants, "body": body}
            )
    _autovacuum(conn, variant, False)
    for table in tables(variant):
        conn.execute(f"VACUUM (ANALYZE) {table}")


def claim_buffers(conn: Conn, variant: str, samples: int) -> float:
    """Median shared buffers (hit + read) of one claim, from EXPLAIN (ANALYZE, BUFFERS) run in a
    transaction that is rolled back (the queue is left as it was); ours with enable_seqscan off,
    as the functions run it."""
    statement = (
        f"SELECT * FROM pgmq.read('{db.PGMQ_QUEUE}', {LEASE_SECONDS}, 1)"
        if variant == "pgmq"
        else claim_statement(variant)
    )
    values = []
    for _ in range(samples):
        conn.execute("BEGIN")
        try:
            if variant in OURS:
                conn.execute("SET LOCAL enable_seqscan = off")
            row = conn.execute(
                ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement).encode()
            ).fetchone()
        finally:
            conn.execute("ROLLBACK")
        assert row is not None
        raw = row[0]
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        values.append(float(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]))
    return float(statistics.median(values))


def _left(conn: Conn, variant: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {queue_table(variant)}").fetchone()
    return int(row[0]) if row else 0


def _wal(conn: Conn) -> tuple[int, int, int]:
    """(bytes, records, full-page images) of the cluster's WAL so far: this connection's own
    pending statistics (the fill, VACUUM) flushed first, pgbench's backends flush theirs as they
    exit."""
    conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
    conn.execute("SELECT 1")
    time.sleep(0.3)
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), '0/0'),"
        " w.wal_records, w.wal_fpi FROM pg_catalog.pg_stat_wal AS w"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def consistency_problems(conn: Conn, variant: str, rows: int) -> list[str]:
    """What the run broke, if anything (empty: nothing): every job done exactly once, with its
    rail reference; no lease left; each participant with queued jobs has exactly one head, its
    lowest sequence_id; each participant's jobs completed in sequence order (FIFO)."""
    if variant == "pgmq":
        return []
    queue = queue_table(variant)
    checks = {
        "jobs done + jobs left = jobs queued": (
            f"SELECT (SELECT count(*) FROM {variant}.attempts)"
            f" + (SELECT count(*) FROM {queue}) = %(rows)s"
        ),
        "one DISPATCHED attempt and one rail reference per job done": (
            f"SELECT count(DISTINCT a.outbox_id) = count(*)"
            f" AND count(*) = (SELECT count(*) FROM {variant}.rail_references)"
            f" FROM {variant}.attempts AS a"
        ),
        "no lease left": (
            "SELECT NOT EXISTS (SELECT 1 FROM heads.lease)"
            if variant == "heads"
            else f"SELECT NOT EXISTS (SELECT 1 FROM {queue} WHERE lease_token IS NOT NULL)"
        ),
        "one head per participant, its first job": (
            "SELECT NOT EXISTS (SELECT 1 FROM (SELECT q.participant_id,"
            " min(q.sequence_id) AS first FROM heads.queue AS q GROUP BY q.participant_id) AS t"
            " LEFT JOIN heads.claimable AS c ON c.participant_id = t.participant_id"
            " LEFT JOIN heads.queue AS h ON h.outbox_id = c.outbox_id"
            " WHERE h.sequence_id IS DISTINCT FROM t.first)"
            " AND (SELECT count(*) FROM heads.claimable)"
            " = (SELECT count(DISTINCT participant_id) FROM heads.queue)"
            if variant == "heads"
            else "SELECT NOT EXISTS (SELECT 1 FROM (SELECT min(p.sequence_id) AS first,"
            " count(*) FILTER (WHERE p.is_head) AS heads,"
            " min(p.sequence_id) FILTER (WHERE p.is_head) AS head"
            f" FROM {queue} AS p GROUP BY p.participant_id) AS t"
            " WHERE t.heads <> 1 OR t.head <> t.first)"
        ),
        "each participant's jobs completed in sequence order": (
            "SELECT NOT EXISTS (SELECT 1 FROM (SELECT a.sequence_id, lag(a.sequence_id) OVER"
            " (PARTITION BY a.participant_id ORDER BY a.completed_at, a.sequence_id) AS before"
            f" FROM {variant}.attempts AS a) AS t WHERE t.before >= t.sequence_id)"
        ),
    }
    problems = []
    for name, query in checks.items():
        row = conn.execute(query.encode(), {"rows": rows}).fetchone()
        if not (row and row[0]):
            problems.append(f"{variant}: {name} does not hold")
    return problems


def measure_variant(
    conn: Conn, conninfo: str, variant: str, participants: int, plan: Plan, body: str
) -> dict[str, Any]:
    """One repeat of one system at one participant count (see the module docstring)."""
    rows = plan.fill_rows()
    prepare(conn, variant, rows, participants, body)
    labels = sql_labels(variant)
    buffers = {"0": claim_buffers(conn, variant, plan.explain_samples)}
    phases: list[dict[str, Any]] = []
    done_jobs = 0
    for checkpoint in plan.checkpoints:
        jobs = checkpoint - done_jobs
        left, wal = _left(conn, variant), _wal(conn)
        run = pgbench(conninfo, variant, 1, transactions=jobs)
        after_wal, after_left = _wal(conn), _left(conn, variant)
        completed = left - after_left
        phases.append(
            {
                "from": done_jobs,
                "to": checkpoint,
                "jobs": completed,
                "jobs_per_s": round(run.tps * completed / max(run.scripts, 1), 1),
                "wal_bytes_per_job": round((after_wal[0] - wal[0]) / max(completed, 1), 1),
                "wal_records_per_job": round((after_wal[1] - wal[1]) / max(completed, 1), 2),
                "wal_fpi_per_job": round((after_wal[2] - wal[2]) / max(completed, 1), 3),
                "statement_ms": dict(zip(labels, run.latencies_ms, strict=True)),
            }
        )
        done_jobs = checkpoint
        buffers[str(checkpoint)] = claim_buffers(conn, variant, plan.explain_samples)
    for table in tables(variant):
        conn.execute(f"VACUUM (ANALYZE) {table}")
    throughput: dict[str, float] = {}
    empty = 0
    for workers in plan.workers:
        left = _left(conn, variant)
        run = pgbench(conninfo, variant, workers, seconds=plan.seconds)
        completed = left - _left(conn, variant)
        empty += run.scripts - completed
        throughput[str(workers)] = round(run.tps * completed / max(run.scripts, 1), 1)
    _autovacuum(conn, variant, True)
    problems = consistency_problems(conn, variant, rows)
    if problems:
        raise RuntimeError("; ".join(problems))
    return {
        "buffers_per_claim": buffers,
        "no_vacuum": phases,
        "jobs_per_s": throughput,
        # Claims that found no job (SKIP LOCKED, or the queue ran out: then the rates are
        # lower bounds).
        "empty_claims": empty,
        "ran_dry": _left(conn, variant) == 0,
    }


def run_section(
    conn: Conn,
    conninfo: str,
    plan: Plan,
    body: str,
    log: Log,
    systems: Sequence[str] = VARIANTS,
) -> dict[str, Any]:
    """Every participant count, every repeat, every system back to back (``systems``: all
    four; the tests leave PGMQ out, whose SQL comes with the ``pgmq`` package of ``nox -s
    bench``)."""
    unknown = [system for system in systems if system not in VARIANTS]
    if unknown:
        raise ValueError(
            f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
        )
    install(conn)
    out: dict[str, Any] = {
        "plan": {
            "participants": list(plan.participants),
            "checkpoints": list(plan.checkpoints),
            "workers": list(plan.workers),
            "seconds": plan.seconds,
            "repeats": plan.repeats,
            "fill_rows": plan.fill_rows(),
        },
        "labels": {v: sql_labels(v) for v in systems},
        "by_participants": {},
    }
    try:
        for participants in plan.participants:
            repeats: list[dict[str, Any]] = []
            for repeat in range(plan.repeats):
                measured = {
                    v: measure_variant(conn, conninfo, v, participants, plan, body) for v in systems
                }
                repeats.append(measured)
                log(
                    f"heads p={participants} rep {repeat + 1}: "
                    + "  ".join(
                        f"{v} {m['jobs_per_s']} jobs/s, buffers {m['buffers_per_claim']}"
                        for v, m in measured.items()
                    )
                )
            out["by_participants"][str(participants)] = {
                "repeats": repeats,
                "summary": summarize_repeats(repeats, plan),
            }
    finally:
        for variant in OURS:
            conn.execute(f"DROP SCHEMA IF EXISTS {variant} CASCADE")
        if "pgmq" in systems:
            db.reset_pgmq(conn)
    return out


def heads(ctx: Any) -> dict[str, Any]:
    """``python -m benchmarks --only heads``."""
    return run_section(ctx.admin, ctx.database.conninfo, plan_for(ctx.settings), ctx.body, ctx.log)


# --------------------------------------------------------------------------------------------
# Summaries and the report
# --------------------------------------------------------------------------------------------


def _series(
    repeats: Sequence[dict[str, Any]], variant: str, pick: Callable[[Any], float]
) -> list[float]:
    return [float(pick(r[variant])) for r in repeats]


def summarize_repeats(repeats: Sequence[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Medians over the repeats and ratios paired repeat by repeat (heads and slim against cur;
    every system of ours against PGMQ)."""
    summary: dict[str, Any] = {}
    systems = [v for v in VARIANTS if v in repeats[0]]
    for variant in systems:
        entry: dict[str, Any] = {
            "jobs_per_s": {
                str(w): summarize(_series(repeats, variant, lambda m, w=w: m["jobs_per_s"][str(w)]))
                for w in plan.workers
            },
            "buffers_per_claim": {
                key: summarize(
                    _series(repeats, variant, lambda m, k=key: m["buffers_per_claim"][k])
                )
                for key in ("0", *(str(c) for c in plan.checkpoints))
            },
            "no_vacuum": [
                {
                    "from": phase["from"],
                    "to": phase["to"],
                    **{
                        field: summarize(
                            _series(repeats, variant, lambda m, i=i, f=field: m["no_vacuum"][i][f])
                        )
                        for field in (
                            "jobs_per_s",
                            "wal_bytes_per_job",
                            "wal_records_per_job",
                            "wal_fpi_per_job",
                        )
                    },
                    "statement_ms": {
                        label: summarize(
                            _series(
                                repeats,
                                variant,
                                lambda m, i=i, lb=label: m["no_vacuum"][i]["statement_ms"][lb],
                            )
                        )
                        for label in phase["statement_ms"]
                    },
                }
                for i, phase in enumerate(repeats[0][variant]["no_vacuum"])
            ],
            "ran_dry": any(r[variant]["ran_dry"] for r in repeats),
        }
        summary[variant] = entry
    ratios: dict[str, Any] = {}
    for num, den in RATIOS:
        if num not in systems or den not in systems:
            continue
        key = f"{num}/{den}"
        ratios[key] = {
            "jobs_per_s": {
                str(w): paired_ratio(
                    _series(repeats, num, lambda m, w=w: m["jobs_per_s"][str(w)]),
                    _series(repeats, den, lambda m, w=w: m["jobs_per_s"][str(w)]),
                )
                for w in plan.workers
            },
            "no_vacuum_jobs_per_s": [
                paired_ratio(
                    _series(repeats, num, lambda m, i=i: m["no_vacuum"][i]["jobs_per_s"]),
                    _series(repeats, den, lambda m, i=i: m["no_vacuum"][i]["jobs_per_s"]),
                )
                for i in range(len(plan.checkpoints))
            ],
        }
    summary["ratios"] = ratios
    return summary
