"""Concurrency contracts of the outbox functions, with real parallel sessions.

Each worker thread has its own connection; a barrier releases them together so the calls really
overlap. Worker counts stay bounded (at most 16 connections) for small CI machines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import pytest

from tests.helpers import OutboxCounts

if TYPE_CHECKING:
    from tests.integration.conftest import Outbox

pytestmark = pytest.mark.integration

MAX_CONNECTIONS = 16
T = TypeVar("T")


def run_together(
    connect: Callable[[], psycopg.Connection[Any]],
    workers: int,
    task: Callable[[int, psycopg.Connection[Any]], T],
) -> list[T]:
    """Run ``task(index, conn)`` in ``workers`` threads, each with its own connection, released
    at the same moment; returns the results in worker order and re-raises the first failure."""
    assert workers <= MAX_CONNECTIONS
    conns = [connect() for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def start(index: int) -> T:
        barrier.wait()
        return task(index, conns[index])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(start, index) for index in range(workers)]
        return [future.result(timeout=120) for future in futures]


def test_concurrent_duplicate_enqueues_return_one_row(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    results = run_together(
        connect, 16, lambda _, conn: outbox_for(conn).enqueue("instr-dup", "participant-1")
    )

    assert len(set(results)) == 1, f"duplicates got different answers: {set(results)}"
    assert results[0][1:4:2] == (1, "PENDING")
    assert outbox.counts() == OutboxCounts(pending=1, attempts=0, sequences=1)
    assert outbox.enqueue("instr-next", "participant-1")[1] == 2, "no sequence number was lost"


def test_concurrent_enqueues_for_one_participant_get_gapless_sequences(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    workers, per_worker = 10, 10

    def enqueue_many(index: int, conn: psycopg.Connection[Any]) -> list[int]:
        api = outbox_for(conn)
        return [
            int(api.enqueue(f"instr-{index}-{n}", "participant-hot")[1]) for n in range(per_worker)
        ]

    sequences = [seq for batch in run_together(connect, workers, enqueue_many) for seq in batch]

    assert sorted(sequences) == list(range(1, workers * per_worker + 1))
    assert outbox.conn.execute(
        "SELECT count(*), min(sequence_id), max(sequence_id), count(DISTINCT sequence_id)"
        " FROM public.payment_outbox_pending WHERE participant_id = 'participant-hot'"
    ).fetchone() == (100, 1, 100, 100)


def test_concurrent_claimers_never_share_a_row(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    outbox.conn.execute(
        "SELECT public.enqueue_payment_outbox('instr-' || g, 'participant-' || g,"
        " 'key-' || g, 'rtgs', jsonb_build_object('n', g)) FROM generate_series(1, 200) AS g"
    )

    def drain(index: int, conn: psycopg.Connection[Any]) -> list[Any]:
        api = outbox_for(conn)
        mine: list[Any] = []
        while rows := api.claim(10, f"worker-{index}", lease_seconds=300):
            mine.extend(row.outbox_id for row in rows)
        return mine

    claimed = run_together(connect, 4, drain)

    everything = [outbox_id for batch in claimed for outbox_id in batch]
    assert len(everything) == len(set(everything)), "a row was leased to two workers"
    assert len(everything) == 200
    assert outbox.conn.execute(
        "SELECT count(DISTINCT claimed_by) FILTER (WHERE claimed_by IS NOT NULL), count(*)"
        " FROM public.payment_outbox_pending"
    ).fetchone() == (sum(1 for batch in claimed if batch), 200)


def test_concurrent_claim_complete_and_repair_record_one_terminal_attempt_per_job(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    outbox.conn.execute(
        "SELECT public.enqueue_payment_outbox('instr-' || g, 'participant-' || g, 'key-' || g,"
        " 'rtgs', '{}'::jsonb) FROM generate_series(1, 60) AS g"
    )

    def work(index: int, conn: psycopg.Connection[Any]) -> int:
        api = outbox_for(conn)
        done = 0
        while rows := api.claim(5, f"worker-{index}", lease_seconds=300):
            for row in rows:
                # Every third job is retried once; the rest dispatch.
                retry = row.attempt_count == 0 and row.outbox_id.int % 3 == 0
                state = "RETRYABLE" if retry else "DISPATCHED"
                api.complete(row.outbox_id, row.lease_token, f"worker-{index}", state)
                if state == "DISPATCHED":
                    done += 1
            api.repair(5, f"worker-{index}")  # nothing expired: must be a no-op
        return done

    first_round = sum(run_together(connect, 4, work))
    outbox.make_due()
    second_round = sum(run_together(connect, 4, work))

    assert first_round + second_round == 60
    assert outbox.counts().pending == 0
    assert outbox.conn.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts WHERE state = 'ZOMBIE_REQUEUE'"
    ).fetchone() == (0,)
    assert outbox.conn.execute(
        "SELECT count(DISTINCT outbox_id), count(*) FROM public.payment_outbox_attempts"
        " WHERE state IN ('DISPATCHED', 'FAILED')"
    ).fetchone() == (60, 60)


def _wait_until_blocked(observer: psycopg.Connection[Any], pid: int) -> None:
    """Poll (no sleeping) until backend ``pid`` waits on a lock; fail after 30 seconds."""
    observer.execute("SET statement_timeout = '30s'")
    observer.execute(
        "DO $$ BEGIN"
        "  WHILE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity"
        "                     WHERE pid = " + str(int(pid)) + " AND wait_event_type = 'Lock') LOOP"
        "    PERFORM pg_catalog.pg_stat_clear_snapshot();"
        "  END LOOP;"
        " END $$"
    )


def test_a_duplicate_waits_for_the_first_enqueue_and_returns_its_row(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    first, second = connect(), connect()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with first.transaction():
            original = outbox_for(first).enqueue("instr-1")
            duplicate = pool.submit(outbox_for(second).enqueue, "instr-1")
            # The duplicate blocks on the key table's primary key (0011, ADR 0062).
            _wait_until_blocked(outbox.conn, second.info.backend_pid)
            assert not duplicate.done()
        # Committed: the duplicate now sees the key and finds the committed row.
        assert duplicate.result(timeout=30) == original
    finally:
        pool.shutdown(wait=True)
    assert outbox.counts() == OutboxCounts(pending=1, attempts=0, sequences=1)


def test_a_repeatable_read_duplicate_gets_a_serialization_failure_not_a_second_row(
    outbox: Outbox,
    outbox_for: type[Outbox],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    late = connect()
    late.autocommit = False
    late.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    late.execute("SELECT 1")  # the snapshot is taken before the other enqueue commits
    outbox.enqueue("instr-1")

    with outbox.raises("40001"):
        outbox_for(late).enqueue("instr-1")
    late.rollback()

    assert outbox.counts() == OutboxCounts(pending=1, attempts=0, sequences=1)
    retried = outbox_for(late).enqueue("instr-1")
    late.commit()
    assert retried == outbox.enqueue("instr-1"), "the client's retry returns the existing row"
