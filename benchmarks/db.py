"""Scratch databases on the server the URL rule selects, and the state each run starts from.

One scratch database holds the three systems side by side: our schema in ``public`` (migrated
through the real engine), PGMQ in schema ``pgmq`` (its SQL from the ``pgmq`` package, queue
``bench``) and the commit-ceiling table ``bench.ceiling``. Every measured run starts from the same
state: its tables emptied, the queue filled with identical rows, VACUUM ANALYZE.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError
from symphony_schema.baseline.scratch import scratch_database
from symphony_schema.database import to_conninfo
from symphony_schema.migration import api

Conn = psycopg.Connection[Any]

PGMQ_QUEUE = "bench"
CEILING_TABLE = "bench.ceiling"
OURS_TABLES = (
    "public.payment_outbox_pending",
    "public.payment_outbox_attempts",
    "public.participant_outbox_sequences",
    "public.payment_outbox_idempotency_keys",
)
PGMQ_TABLES = (f"pgmq.q_{PGMQ_QUEUE}", f"pgmq.a_{PGMQ_QUEUE}")


def payload(size: int) -> str:
    """A JSON object of exactly ``size`` bytes, the same for every system."""
    base = {
        "amount": 125000,
        "currency": "ZAR",
        "debtor": "ZA-0000-1111",
        "creditor": "ZA-2222-3333",
        "reference": "",
    }
    text = json.dumps(base, separators=(",", ":"))
    pad = size - len(text)
    if pad < 0:
        raise ValueError(f"payload size {size} is smaller than the fixed fields ({len(text)})")
    base["reference"] = "x" * pad
    text = json.dumps(base, separators=(",", ":"))
    assert len(text.encode()) == size
    return text


def pgmq_sql() -> str:
    """The SQL-only PGMQ install script shipped in the ``pgmq`` package."""
    try:
        return resources.files("pgmq").joinpath("sql", "pgmq.sql").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SymphonyError(
            "the pgmq package (with its SQL) is not installed: pip install pgmq, or run "
            "`nox -s bench`, which installs it"
        ) from exc


def pgmq_version() -> str:
    try:
        text = resources.files("pgmq").joinpath("sql", "VERSION").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return "unknown"
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    return lines[0] if lines else "unknown"


@dataclass(frozen=True)
class BenchDatabase:
    """The scratch database of a run."""

    name: str
    url: str

    @property
    def conninfo(self) -> str:
        return to_conninfo(self.url)

    def connect(self, *, autocommit: bool = True) -> Conn:
        return psycopg.connect(self.conninfo, autocommit=autocommit)


def maintenance_conninfo(server_url: str) -> str:
    """A connection to the selected database itself, for cluster-wide statistics."""
    return to_conninfo(server_url)


@contextmanager
def bench_database(
    server_url: str, purpose: str, *, with_systems: bool = True
) -> Iterator[BenchDatabase]:
    """A scratch database (dropped afterwards) migrated to head, with PGMQ and the ceiling table."""
    with scratch_database(server_url, f"bench_{purpose}") as scratch:
        database = BenchDatabase(scratch.name, scratch.url)
        if with_systems:
            install_systems(database)
        yield database


def url_for(server_url: str, dbname: str) -> str:
    return make_url(server_url).set(database=dbname).render_as_string(hide_password=False)


def install_systems(database: BenchDatabase) -> None:
    """Migrate to head through the real engine, install PGMQ and create the ceiling table."""
    api.upgrade(database.url)
    with database.connect() as conn:
        conn.execute(pgmq_sql().encode())
        conn.execute("SELECT pgmq.create(%s)", (PGMQ_QUEUE,))
        conn.execute("CREATE SCHEMA bench")
        conn.execute(
            "CREATE TABLE bench.ceiling (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        if _preloaded(conn):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def _preloaded(conn: Conn) -> bool:
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    return bool(row and "pg_stat_statements" in str(row[0]).split(","))


# --------------------------------------------------------------------------------------------
# Run state
# --------------------------------------------------------------------------------------------


def reset_ours(conn: Conn) -> None:
    """Empty our tables (the four of OURS_TABLES and the payload table). The attempts ledger and
    the payload table refuse TRUNCATE by design (statement triggers, ENABLE ALWAYS); in this
    scratch database the superuser switches them off for the reset only."""
    conn.execute("ALTER TABLE public.payment_outbox_attempts DISABLE TRIGGER USER")
    # Each partition of the ledger has a TRUNCATE trigger of its own (ADR 0131); the call to
    # ensure_ledger_partitions() below enables it ALWAYS again.
    partitions = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits"
        " WHERE inhparent = 'public.payment_outbox_attempts'::regclass"
    ).fetchall()
    for (partition,) in partitions:
        conn.execute(f"ALTER TABLE {partition} DISABLE TRIGGER trg_deny_outbox_attempts_truncate")
    conn.execute(
        "ALTER TABLE public.payment_outbox_payloads DISABLE TRIGGER "
        "trg_deny_outbox_payloads_truncate"
    )
    conn.execute("TRUNCATE " + ", ".join((*OURS_TABLES, "public.payment_outbox_payloads")))
    conn.execute(
        "ALTER TABLE public.payment_outbox_payloads ENABLE ALWAYS TRIGGER "
        "trg_deny_outbox_payloads_truncate"
    )
    conn.execute("SELECT count(*) FROM public.ensure_ledger_partitions(14)")
    conn.execute(
        "ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER "
        "trg_deny_outbox_attempts_mutation"
    )
    conn.execute(
        "ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER "
        "trg_deny_outbox_attempts_truncate"
    )
    conn.execute(
        "ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER "
        "trg_guard_outbox_attempts_insert"
    )


def reset_pgmq(conn: Conn) -> None:
    conn.execute("TRUNCATE " + ", ".join(PGMQ_TABLES))


def reset_ceiling(conn: Conn) -> None:
    conn.execute(f"TRUNCATE {CEILING_TABLE}")


def fill_ours(
    conn: Conn,
    count: int,
    body: str,
    *,
    leased_head: int = 0,
    participants: int = 10_000,
    leased_heads: int = 0,
) -> None:
    """``count`` due jobs as enqueue would leave them (oldest first), the first ``leased_head``
    of them under a live lease. Sequence numbers per participant are consistent, and each
    participant's first job is its head (revision 0014, per-participant FIFO); with
    ``leased_heads`` the first that many heads are leased instead (the FIFO form of P3: only
    heads can be leased). Written as the owner, as the outbox functions write the queue."""
    conn.execute("SET ROLE symphony_owner")
    try:
        conn.execute(
            """
            INSERT INTO public.payment_outbox_pending
                (instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
                 payload, next_attempt_at, created_at, claimed_by, lease_token,
                 lease_expires_at, is_head)
            SELECT 'fill-' || g, 'p-' || (g %% %(participants)s),
                   (g - 1) / %(participants)s + 1, 'k-' || g, 'rtgs', %(body)s::jsonb,
                   now() - interval '1 hour' + g * interval '1 microsecond',
                   now() - interval '1 hour',
                   CASE WHEN l.leased THEN 'busy-worker' END,
                   CASE WHEN l.leased THEN gen_random_uuid() END,
                   CASE WHEN l.leased THEN now() + interval '1 hour' END,
                   g <= %(participants)s
              FROM generate_series(1, %(count)s) AS g
             CROSS JOIN LATERAL (
                   SELECT g <= %(leased)s
                          OR (g <= %(participants)s AND g <= %(leased_heads)s) AS leased
             ) AS l
            """,
            {
                "count": count,
                "body": body,
                "leased": leased_head,
                "participants": participants,
                "leased_heads": leased_heads,
            },
        )
        conn.execute(
            """
            INSERT INTO public.participant_outbox_sequences (participant_id, next_sequence_id)
            SELECT participant_id, max(sequence_id) + 1 FROM public.payment_outbox_pending
             GROUP BY participant_id
            ON CONFLICT (participant_id) DO UPDATE SET next_sequence_id = EXCLUDED.next_sequence_id
            """
        )
    finally:
        conn.execute("RESET ROLE")


def fill_pgmq(conn: Conn, count: int, body: str, *, invisible_head: int = 0) -> None:
    """``count`` visible messages (msg_id in enqueue order), the first ``invisible_head`` of them
    read by someone else (visibility timeout an hour ahead), as pgmq.send_batch would store them."""
    conn.execute(
        f"""
        INSERT INTO pgmq.q_{PGMQ_QUEUE} (vt, message, read_ct, enqueued_at)
        SELECT CASE WHEN g <= %(invisible)s THEN now() + interval '1 hour'
                    ELSE now() - interval '1 minute' END,
               %(body)s::jsonb,
               CASE WHEN g <= %(invisible)s THEN 1 ELSE 0 END,
               now() - interval '1 hour'
          FROM generate_series(1, %(count)s) AS g
         ORDER BY g
        """,
        {"count": count, "body": body, "invisible": invisible_head},
    )


def settle(conn: Conn, tables: tuple[str, ...]) -> None:
    """VACUUM ANALYZE the tables of the next run, so every run starts with the same visibility
    map and statistics.

    No CHECKPOINT: a checkpoint right before a short run makes the first change of every page
    log a full page image, which a queue in steady state (one checkpoint every few minutes, a
    small hot set of pages) almost never pays; it would charge each system for the number of
    distinct pages it touches in seconds rather than for its steady-state work. Checkpoints
    happen when the server schedules them, for both systems alike; each run reports its full
    page images per job."""
    for table in tables:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(table)))


def dead_tuples(conn: Conn, table: str) -> tuple[int, int, int]:
    """(n_live_tup, n_dead_tup, autovacuum_count) of a table from pg_stat_user_tables."""
    schema, _, name = table.partition(".")
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT n_live_tup, n_dead_tup, autovacuum_count FROM pg_catalog.pg_stat_user_tables"
        " WHERE schemaname = %s AND relname = %s",
        (schema, name),
    ).fetchone()
    if row is None:
        return 0, 0, 0
    return int(row[0]), int(row[1]), int(row[2])


def reloptions(conn: Conn, table: str) -> list[str]:
    """The table's storage parameters (``pg_class.reloptions``), e.g. per-table autovacuum."""
    row = conn.execute(
        "SELECT COALESCE(c.reloptions, '{}') FROM pg_catalog.pg_class AS c"
        " WHERE c.oid = %s::regclass",
        (table,),
    ).fetchone()
    return [str(option) for option in row[0]] if row else []


def set_reloptions(conn: Conn, table: str, options: list[str]) -> None:
    """Put back exactly ``options`` (as :func:`reloptions` returned them)."""
    current = reloptions(conn, table)
    names = sorted({option.split("=", 1)[0] for option in current})
    if names:
        conn.execute(
            sql.SQL("ALTER TABLE {} RESET ({})").format(
                sql.SQL(table), sql.SQL(", ").join(sql.Identifier(n) for n in names)
            )
        )
    if options:
        conn.execute(
            sql.SQL("ALTER TABLE {} SET ({})").format(
                sql.SQL(table),
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(
                        sql.Identifier(o.split("=", 1)[0]), sql.Literal(o.split("=", 1)[1])
                    )
                    for o in options
                ),
            )
        )
