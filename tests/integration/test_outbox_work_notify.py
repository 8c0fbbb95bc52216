"""Idle executors learn of new work without polling (issue 17 P6, revision 0026, ADR 0151): a
claimable job's enqueue notifies ``symphony_outbox_work`` at commit (payload: its rail code and,
since 0033, a hint naming one worker: tests/integration/test_wake_one_worker.py),
once per transaction and rail; jobs that are not claimable yet notify nothing; the reference
worker's ``wait_for_work`` wakes on it, filters rails, and falls back to a timed poll."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.integration.test_executor_guide import FakeRail, _reference_worker

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

ENQUEUE = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, %s, %s::jsonb, %s)"
PAYLOAD = '{"amount": 100, "currency": "ZAR"}'


def _listener(connect: Any) -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] = connect()
    conn.execute("LISTEN symphony_outbox_work")
    return conn


def _received(conn: psycopg.Connection[Any], wait: float = 0.3) -> list[str]:
    """The rail codes notified (since 0033 a payload is ``<rail>:<hint>``, ADR 0159)."""
    return [note.payload.partition(":")[0] for note in conn.notifies(timeout=wait)]


def test_a_claimable_enqueue_notifies_at_commit_once_per_rail(
    connect: Any, login: LoginFactory, db: psycopg.Connection[Any]
) -> None:
    listener = _listener(connect)
    ingest = login("symphony_ingest", autocommit=False)
    with ingest.conn.cursor() as cur:
        for i in range(5):
            cur.execute(ENQUEUE, (f"pay-{i}", f"p-{i}", f"k-{i}", "rtgs", PAYLOAD, None))
        assert _received(listener) == []  # nothing before the commit
        ingest.conn.commit()
    assert _received(listener) == ["RTGS"]  # five heads of one rail, one notification

    # One transaction, two rails: one notification per rail, the canonical rail codes.
    db.execute("BEGIN")
    db.execute(ENQUEUE, ("pay-ach", "p-ach", "k-ach", "ach", PAYLOAD, None)).fetchall()
    db.execute(ENQUEUE, ("pay-5", "p-5", "k-5", "rtgs", PAYLOAD, None)).fetchall()
    db.execute(ENQUEUE, ("pay-6", "p-6", "k-6", "rtgs", PAYLOAD, None)).fetchall()
    db.execute("COMMIT")
    assert sorted(_received(listener)) == ["ACH", "RTGS"]


def test_one_transaction_per_rail_notifies_at_a_time(
    connect: Any, db: psycopg.Connection[Any]
) -> None:
    """Concurrent enqueues of one rail do not all notify (each notifying commit would take the
    cluster-wide notify lock): the transaction holding the rail's gate notifies, a concurrent one
    of the same rail skips; another rail has its own gate."""
    listener = _listener(connect)
    holder: psycopg.Connection[Any] = connect()
    holder.execute("BEGIN")
    holder.execute(ENQUEUE, ("held", "p-1", "k-held", "rtgs", PAYLOAD, None)).fetchall()
    db.execute(ENQUEUE, ("skipped", "p-2", "k-skipped", "rtgs", PAYLOAD, None)).fetchall()
    db.execute(ENQUEUE, ("other-rail", "p-3", "k-other", "ach", PAYLOAD, None)).fetchall()
    assert _received(listener) == ["ACH"]  # the RTGS enqueue skipped: the gate is held
    holder.execute("COMMIT")
    assert _received(listener) == ["RTGS"]  # the holder's notification covers both RTGS jobs
    db.execute(ENQUEUE, ("after", "p-4", "k-after", "rtgs", PAYLOAD, None)).fetchall()
    assert _received(listener) == ["RTGS"]  # the gate is free again


def test_jobs_that_are_not_claimable_yet_notify_nothing(
    outbox: Outbox, connect: Any, db: psycopg.Connection[Any]
) -> None:
    outbox.enqueue("head", "p-1")
    listener = _listener(connect)
    outbox.enqueue("behind-the-head", "p-1")  # queued behind its participant's head
    later = datetime.now(UTC) + timedelta(hours=1)
    db.execute(ENQUEUE, ("value-dated", "p-2", "k-vd", "rtgs", PAYLOAD, later)).fetchall()
    db.execute("BEGIN")
    db.execute(ENQUEUE, ("rolled-back", "p-3", "k-rb", "rtgs", PAYLOAD, None)).fetchall()
    db.execute("ROLLBACK")
    assert _received(listener) == []


def test_wait_for_work_wakes_on_the_notification_and_polls_otherwise(
    outbox: Outbox, connect: Any
) -> None:
    worker = _reference_worker()
    waiter: psycopg.Connection[Any] = connect()
    worker.listen(waiter)

    started = time.monotonic()
    assert worker.wait_for_work(waiter, 0.3) is False  # nothing: the fallback poll
    assert time.monotonic() - started >= 0.3

    timer = threading.Timer(0.2, lambda: outbox.enqueue("pay-1", "p-1"))
    timer.start()
    started = time.monotonic()
    assert worker.wait_for_work(waiter, 10.0) is True
    woke_after = time.monotonic() - started
    timer.join()
    assert 0.15 < woke_after < 5.0

    # A burst of enqueues wakes one wait; the rest is drained. Notifications reach the listener
    # asynchronously after each commit, so let all three arrive first (under load the third one
    # could otherwise arrive after the drain and wake a second, harmless, claim).
    for i in range(3):
        outbox.enqueue(f"burst-{i}", f"q-{i}")
    time.sleep(0.5)
    assert worker.wait_for_work(waiter, 5.0) is True
    assert worker.wait_for_work(waiter, 0.2) is False


def test_wait_for_work_ignores_other_rails(outbox: Outbox, connect: Any) -> None:
    worker = _reference_worker()
    waiter: psycopg.Connection[Any] = connect()
    worker.listen(waiter)
    outbox.enqueue("pay-1", "p-1")  # an RTGS job
    assert worker.wait_for_work(waiter, 0.3, rails=["ach"]) is False
    outbox.enqueue("pay-2", "p-2")
    assert worker.wait_for_work(waiter, 5.0, rails=["rtgs"]) is True


def test_an_idle_served_worker_picks_up_new_work_without_polling(
    outbox: Outbox, login: LoginFactory, pg_server: Any, migrated_db: Any
) -> None:
    worker = _reference_worker()
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    rail = FakeRail(worker)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            worker.serve(conninfo, "w-serve", rail, stop, poll_seconds=30.0)
        )
    )
    thread.start()
    try:
        time.sleep(0.5)  # idle: its first claim came back empty; it waits on the channel
        outbox_id = outbox.enqueue("pay-1", "p-1")[0]
        deadline = time.monotonic() + 10
        while str(outbox_id) not in rail.sends and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rail.sends == {str(outbox_id): 1}  # woken long before the 30 s poll
    finally:
        stop.set()
        outbox.enqueue("wake-to-stop", "p-2")
        thread.join(40)
    assert result and result[0] >= 1
