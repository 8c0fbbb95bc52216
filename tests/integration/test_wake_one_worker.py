"""One worker per notification, and no lost wake-up (issue 17 P6, revision 0033, ADR 0159).

The notification names one of an executor's workers (``<rail>:<hint>``, the worker of rank
``hint % workers``): only that one claims at once. The others take over after a delay, so a job
named for a worker that is busy, killed or whose listening connection died is still claimed long
before the fallback poll. Hostile cases: the named worker SIGKILLed right after the notification
reached it, a worker busy with a long job, bursts of 1,000 enqueues in one transaction and in
1,000, two workers with one dead listening connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.integration.test_executor_guide import GUIDE, FakeRail, _reference_worker

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

ENQUEUE = "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, 'rtgs', %s::jsonb)"
PAYLOAD = '{"amount": 100, "currency": "ZAR"}'
#: Far longer than any wait below: a job claimed in time was not found by the fallback poll.
POLL = 60.0


def _notes(conn: psycopg.Connection[Any], wait: float = 0.3) -> list[str]:
    return [note.payload for note in conn.notifies(timeout=wait)]


def _wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_notification_names_one_worker_per_transaction(
    connect: Any, db: psycopg.Connection[Any]
) -> None:
    listener: psycopg.Connection[Any] = connect()
    listener.execute("LISTEN symphony_outbox_work")
    db.execute("BEGIN")
    for i in range(5):
        db.execute(ENQUEUE, (f"pay-{i}", f"p-{i}", f"k-{i}", PAYLOAD)).fetchall()
    xid = db.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
    db.execute("COMMIT")
    assert _notes(listener) == [f"RTGS:{xid % 1024}"]  # five heads, one transaction: one note
    worker = _reference_worker()
    assert worker.parse_notification(f"RTGS:{xid % 1024}") == ("RTGS", xid % 1024)
    assert worker.parse_notification("ach") == ("ACH", None)  # a payload from before 0033


def test_only_the_named_worker_wakes_at_once_the_others_after_the_takeover(
    outbox: Outbox, connect: Any
) -> None:
    worker = _reference_worker()
    waiters = [connect(), connect()]
    for conn in waiters:
        worker.listen(conn)
    probe: psycopg.Connection[Any] = connect()
    probe.execute("LISTEN symphony_outbox_work")
    outbox.enqueue("pay-1", "p-1")
    (payload,) = [note.payload for note in probe.notifies(timeout=5.0, stop_after=1)]
    named = worker.parse_notification(payload)[1] % 2
    started = time.monotonic()
    assert worker.wait_for_work(waiters[named], POLL, rank=named, workers=2) is True
    assert time.monotonic() - started < 5.0
    started = time.monotonic()
    other = 1 - named
    assert (
        worker.wait_for_work(waiters[other], POLL, rank=other, workers=2, takeover_seconds=0.4)
        is False
    )
    took = time.monotonic() - started
    assert 0.3 < took < 5.0  # the take-over delay, not the 60 s poll
    with pytest.raises(ValueError, match="rank must be"):
        worker.wait_for_work(waiters[0], 0.1, rank=2, workers=2)


def _claimer(
    conninfo: str,
    rank: int,
    workers: int,
    stop: threading.Event,
    claimed: list[str],
    errors: list[BaseException],
    takeover: float = 0.3,
) -> None:
    """The serve loop of the reference worker without the rail (claim a batch, complete it in
    one call, claim again while batches come back full, then wait), for bursts of 1,000."""
    worker = _reference_worker()
    try:
        with (
            psycopg.connect(conninfo, autocommit=True) as conn,
            psycopg.connect(conninfo, autocommit=True) as waiter,
        ):
            worker.listen(waiter)
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(100, %s, 30)",
                    (f"w{rank}",),
                ).fetchall()
                if rows:
                    conn.execute(
                        "SELECT count(*) FROM public.complete_outbox_attempts_batch("
                        "%s, %s::uuid[], %s::uuid[], %s::text[], %s::text[])",
                        (
                            f"w{rank}",
                            [r[0] for r in rows],
                            [r[1] for r in rows],
                            ["DISPATCHED"] * len(rows),
                            [f"ref-{r[0]}" for r in rows],
                        ),
                    )
                    claimed.extend(str(r[0]) for r in rows)
                if len(rows) < 100:
                    worker.wait_for_work(
                        waiter, POLL, rank=rank, workers=workers, takeover_seconds=takeover
                    )
    except BaseException as exc:  # reported by the test
        errors.append(exc)


@pytest.fixture
def claimers(
    pg_server: Any, migrated_db: Any, login: LoginFactory
) -> Iterator[Callable[[int], list[str]]]:
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []
    claimed: list[str] = []

    def start(workers: int) -> list[str]:
        for rank in range(workers):
            thread = threading.Thread(
                target=_claimer, args=(conninfo, rank, workers, stop, claimed, errors)
            )
            thread.start()
            threads.append(thread)
        time.sleep(0.5)  # each made its first (empty) claim and waits
        return claimed

    yield start
    stop.set()
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("NOTIFY symphony_outbox_work")  # every waiter returns (no hint: all act)
    for thread in threads:
        thread.join(10)
    assert not errors


@pytest.mark.parametrize("transactions", [1, 1000])
def test_a_burst_of_a_thousand_enqueues_is_all_claimed(
    claimers: Callable[[int], list[str]],
    connect: Any,
    db: psycopg.Connection[Any],
    transactions: int,
) -> None:
    """1,000 jobs in one transaction (one notification: one worker claims full batches until one
    comes back short), or in 1,000 transactions from four concurrent producers (enqueues of one
    rail that overlap skip their notification: the rail's gate, ADR 0151)."""
    claimed = claimers(2)
    probe: psycopg.Connection[Any] = connect()
    probe.execute("LISTEN symphony_outbox_work")
    if transactions == 1:
        with db.pipeline():  # one transaction: BEGIN ... COMMIT around the whole pipeline
            db.execute("BEGIN")
            cursors = [
                db.execute(ENQUEUE, (f"b-{i}", f"p-{i}", f"k-{i}", PAYLOAD)) for i in range(1000)
            ]
            db.execute("COMMIT")
        ids = [str(cursor.fetchone()[0]) for cursor in cursors]
    else:
        producers = [connect() for _ in range(4)]
        chunks: list[list[str]] = [[] for _ in producers]

        def produce(n: int) -> None:
            for i in range(n, 1000, len(producers)):  # autocommit: a transaction each
                row = producers[n].execute(ENQUEUE, (f"b-{i}", f"p-{i}", f"k-{i}", PAYLOAD))
                chunks[n].append(str(row.fetchone()[0]))

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(len(producers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        ids = [outbox_id for chunk in chunks for outbox_id in chunk]
        assert len(ids) == 1000
    assert _wait_until(lambda: len(claimed) >= 1000, 30.0), f"{len(claimed)} of 1000 claimed"
    assert sorted(claimed) == sorted(ids)  # each once
    assert db.execute("SELECT count(*) FROM payment_outbox_pending").fetchone() == (0,)
    notes = _notes(probe, 0.2)
    if transactions == 1:
        assert len(notes) == 1  # folded: one notification for the transaction
    else:
        assert 1 <= len(notes) <= 1000


def _served(
    conninfo: str, worker_id: str, rail: FakeRail, stop: threading.Event, **kwargs: Any
) -> tuple[threading.Thread, list[Any]]:
    worker = _reference_worker()
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(worker.serve(conninfo, worker_id, rail, stop, **kwargs))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _enqueue_until_named(
    db: psycopg.Connection[Any], probe: psycopg.Connection[Any], rank: int, prefix: str
) -> list[str]:
    """Enqueue jobs one transaction each until the last one's notification named ``rank`` of 2
    (nothing after it wakes another worker at once); returns their outbox ids."""
    ids: list[str] = []
    worker = _reference_worker()
    while True:
        i = len(ids)
        row = db.execute(ENQUEUE, (f"{prefix}-{i}", f"{prefix}-p{i}", f"k-{prefix}-{i}", PAYLOAD))
        ids.append(str(row.fetchone()[0]))
        (payload,) = _notes(probe, 0.2)
        if worker.parse_notification(payload)[1] % 2 == rank:
            return ids
        assert len(ids) < 200


def test_a_job_named_for_a_busy_worker_is_claimed_by_another(
    pg_server: Any, migrated_db: Any, login: LoginFactory, connect: Any, db: psycopg.Connection[Any]
) -> None:
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    worker = _reference_worker()
    release = threading.Event()

    class SlowRail(FakeRail):
        def send(self, idempotency_key: str, payload: Any) -> Any:
            release.wait(60)
            return super().send(idempotency_key, payload)

    busy_rail, idle_rail = SlowRail(worker), FakeRail(worker)
    stop = threading.Event()
    probe: psycopg.Connection[Any] = connect()
    probe.execute("LISTEN symphony_outbox_work")
    common = {"poll_seconds": POLL, "workers": 2, "takeover_seconds": 0.3, "batch": 1}
    busy, busy_result = _served(conninfo, "w-busy", busy_rail, stop, rank=0, **common)
    try:
        # Rank 0 takes a long job first (nobody else serves yet), then rank 1 starts.
        db.execute(ENQUEUE, ("long", "p-long", "k-long", PAYLOAD))
        assert _wait_until(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM payment_outbox_pending WHERE lease_token IS NOT NULL"
                ).fetchone()
                == (1,)
            ),
            10.0,
        )
        idle, idle_result = _served(conninfo, "w-idle", idle_rail, stop, rank=1, **common)
        time.sleep(0.5)
        _notes(probe, 0.1)
        ids = _enqueue_until_named(db, probe, 0, "busy")
        assert _wait_until(lambda: set(ids) <= set(idle_rail.sends), 10.0), (
            f"{len(set(ids) & set(idle_rail.sends))} of {len(ids)} claimed while rank 0 was busy"
        )
    finally:
        release.set()
        stop.set()
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            conn.execute("NOTIFY symphony_outbox_work")
        busy.join(30)
    idle.join(30)
    assert busy_result and idle_result and not isinstance(busy_result[0], BaseException)
    assert not isinstance(idle_result[0], BaseException)


SERVE_SCRIPT = """
import importlib.util, sys, threading
spec = importlib.util.spec_from_file_location("reference_worker", sys.argv[2])
worker = importlib.util.module_from_spec(spec)
sys.modules["reference_worker"] = worker
spec.loader.exec_module(worker)

class Rail:
    def send(self, key, payload):
        return worker.RailAnswer("DISPATCHED", "ref-" + key)
    def status(self, key):
        return None

print("serving", flush=True)
worker.serve(sys.argv[1], "w-killed", Rail(), threading.Event(), poll_seconds=60.0,
             rank=0, workers=2, takeover_seconds=0.3)
"""


def test_a_job_named_for_a_worker_killed_after_the_notification_is_claimed(
    pg_server: Any, migrated_db: Any, login: LoginFactory, connect: Any, db: psycopg.Connection[Any]
) -> None:
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    worker = _reference_worker()
    rail = FakeRail(worker)
    probe: psycopg.Connection[Any] = connect()
    probe.execute("LISTEN symphony_outbox_work")
    doomed = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, conninfo, str(GUIDE / "reference_worker.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()
    survivor, result = _served(
        conninfo, "w-survivor", rail, stop, poll_seconds=POLL, rank=1, workers=2,
        takeover_seconds=0.3,
    )  # fmt: skip
    try:
        assert doomed.stdout is not None and doomed.stdout.readline() == "serving\n"
        time.sleep(1.0)  # both made their first claim and wait on the channel
        os.kill(doomed.pid, signal.SIGSTOP)  # the notification reaches it, it never claims
        ids = _enqueue_until_named(db, probe, 0, "kill")
        time.sleep(0.2)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
        assert _wait_until(lambda: set(ids) <= set(rail.sends), 10.0), (
            f"{len(set(ids) & set(rail.sends))} of {len(ids)} claimed after rank 0 was killed"
        )
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
        if doomed.stdout is not None:
            doomed.stdout.close()
        stop.set()
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            conn.execute("NOTIFY symphony_outbox_work")
        survivor.join(30)
    assert result and not isinstance(result[0], BaseException)


def test_two_workers_one_listening_connection_dead(
    pg_server: Any, migrated_db: Any, login: LoginFactory, db: psycopg.Connection[Any]
) -> None:
    """A worker whose listening connection dies (here: terminated by the server) opens a new one
    and serves on; every job is claimed meanwhile (the other worker's wake-ups)."""
    executor = login("symphony_executor")
    base = pg_server.conninfo(migrated_db.name, user=executor.name)
    worker = _reference_worker()
    rails = [FakeRail(worker), FakeRail(worker)]
    stop = threading.Event()
    served = [
        _served(f"{base} application_name=w{i}", f"w{i}", rails[i], stop, poll_seconds=POLL)
        for i in range(2)
    ]
    try:
        time.sleep(1.0)
        killed = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'w0' AND query LIKE 'LISTEN%'"
        ).fetchall()
        assert killed == [(True,)]
        ids = [
            str(db.execute(ENQUEUE, (f"d-{i}", f"d-p{i}", f"k-d-{i}", PAYLOAD)).fetchone()[0])
            for i in range(20)
        ]
        sends = lambda: set(rails[0].sends) | set(rails[1].sends)  # noqa: E731
        assert _wait_until(lambda: set(ids) <= sends(), 10.0)
        # The worker listens again: a job still wakes it (its new LISTEN is in place).
        assert _wait_until(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'w0' AND query LIKE 'LISTEN%'"
                ).fetchone()
                == (1,)
            ),
            10.0,
        )
    finally:
        stop.set()
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            conn.execute("NOTIFY symphony_outbox_work")
        for thread, _ in served:
            thread.join(30)
    for _, result in served:
        assert result and not isinstance(result[0], BaseException), result
