"""A reference executor worker (docs/operations/executor-guide.md), run by
tests/integration/test_executor_guide.py.

One pass: claim a batch (optionally of some rails), and for each job: if it is in doubt, ask the
rail for the payment's status first; otherwise send it with ``outbox_id`` as the rail's
idempotency key, keeping the lease alive with heartbeats while the rail works; record the
outcome with the rail's reference (required on a rail that returns references, unique per rail:
P7013 when another job reported it, which this worker reports and leaves for reconciliation); if
the lease was lost meanwhile (P7002), keep the rail's answer for reconciliation.

Between passes an idle worker does not poll: ``listen`` + ``wait_for_work`` block on the
``symphony_outbox_work`` notification (revision 0026: sent at commit when a claimable job is
enqueued) with a slow fallback poll for work that becomes due with time (retry delays,
not-before times, expired leases), as in ``serve``. Since revision 0033 the notification names
one of the executor's workers (``rank`` of ``workers``): only that one claims at once; the others
claim after a take-over delay, so a job is still claimed promptly when the named worker is busy,
slow, killed or gone (ADR 0159).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg


@dataclass(frozen=True)
class RailAnswer:
    """What the rail said: DISPATCHED, FAILED or RETRYABLE, and its reference."""

    state: str
    reference: str | None = None


class Rail(Protocol):
    def send(self, idempotency_key: str, payload: Any) -> RailAnswer: ...

    def status(self, idempotency_key: str) -> RailAnswer | None: ...


CLAIM = "SELECT * FROM public.claim_outbox_batch(%s, %s, %s, %s)"
EXTEND = "SELECT public.extend_outbox_lease(%s, %s, %s, %s)"
COMPLETE = (
    "SELECT attempt_no, state::text FROM public.complete_outbox_attempt("
    "%s, %s, %s, %s::public.outbox_attempt_state, p_rail_reference => %s)"
)
#: The channel revision 0026 notifies. Payload since 0033: ``<rail code>:<hint>``, the hint a
#: number 0..1023 fixed per enqueuing transaction; before 0033 the rail code alone.
CHANNEL = "symphony_outbox_work"
#: Without a better choice: how long a worker that was not named waits before it claims anyway.
TAKEOVER_SECONDS = 1.0
KEEP_STALE = (
    "SELECT public.record_stale_outbox_outcome("
    "%s, %s, %s, %s::public.outbox_attempt_state, p_rail_reference => %s)"
)


class Heartbeat:
    """Extends one lease every ``lease_seconds / 3`` on its own connection until stopped."""

    def __init__(self, conninfo: str, job: dict[str, Any], worker_id: str, lease_seconds: int):
        self._args = (job["outbox_id"], job["lease_token"], worker_id, lease_seconds)
        self._conninfo = conninfo
        self._every = lease_seconds / 3
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            while not self._stop.wait(self._every):
                try:
                    conn.execute(EXTEND, self._args)
                except psycopg.Error as exc:
                    if exc.sqlstate == "P7002":  # lost: stop; the completion will say so too
                        self.lost = True
                        return
                    raise

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run_once(
    conninfo: str,
    worker_id: str,
    rail: Rail,
    *,
    rails: Sequence[str] | None = None,
    batch: int = 10,
    lease_seconds: int = 30,
) -> list[tuple[str, str]]:
    """Claim and work one batch; returns (outbox_id, what happened) per job."""
    done: list[tuple[str, str]] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            jobs = cur.execute(
                CLAIM, (batch, worker_id, lease_seconds, list(rails) if rails else None)
            ).fetchall()
        for job in jobs:
            key = str(job["outbox_id"])  # the rail's idempotency key: stable across attempts
            answer = rail.status(key) if job["in_doubt"] else None
            how = "status" if answer is not None else "sent"
            if answer is None:
                with Heartbeat(conninfo, job, worker_id, lease_seconds):
                    answer = rail.send(key, job["payload"])
            args = (job["outbox_id"], job["lease_token"], worker_id, answer.state, answer.reference)
            try:
                conn.execute(COMPLETE, args)
            except psycopg.Error as exc:
                if exc.sqlstate == "P7013":
                    # The rail's reference belongs to another job: never record this dispatch;
                    # leave the job leased (it becomes in doubt) and reconcile with the rail.
                    done.append((key, "reference-reused"))
                    continue
                if exc.sqlstate != "P7002":
                    raise
                # The lease was replaced: another worker owns the job now. Keep what the rail
                # said for reconciliation; never send again under the old lease.
                conn.execute(KEEP_STALE, args)
                how = "kept-stale"
            done.append((key, how))
    return done


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe ``conn`` (autocommit) to the work notifications; keep it open while idle."""
    conn.execute(f"LISTEN {CHANNEL}")


def parse_notification(payload: str) -> tuple[str, int | None]:
    """``RTGS:517`` -> (``RTGS``, 517); a payload without a hint (before 0033) -> (rail, None).
    Any login may NOTIFY on the channel: a hint that is not 1 to 9 ASCII digits is no hint
    (``str.isdigit`` alone accepts ``²``, which ``int`` refuses, and 5000 digits overflow ``int``'s
    limit; either would end the worker with a ValueError)."""
    rail, _, hint = payload.partition(":")
    return rail.upper(), int(hint) if hint.isascii() and hint.isdigit() and len(hint) < 10 else None


def wait_for_work(
    conn: psycopg.Connection[Any],
    poll_seconds: float,
    rails: Sequence[str] | None = None,
    *,
    rank: int = 0,
    workers: int = 1,
    takeover_seconds: float = TAKEOVER_SECONDS,
) -> bool:
    """Block until this worker should claim: True when a job of one of ``rails`` (any rail when
    None) was enqueued claimable and the notification names this worker (``hint % workers ==
    rank``; with ``workers = 1`` every notification does); False when ``poll_seconds`` passed
    (claim anyway, for work that became due with time) or when a notification named another
    worker and ``takeover_seconds`` times the distance of the ranks passed (claim anyway, in case
    the named worker is busy, slow or gone: a job is never left to one worker). Drains the other
    notifications that have already arrived, so a burst of enqueues usually wakes one claim."""
    if workers < 1 or not 0 <= rank < workers:
        raise ValueError(f"rank must be in 0..workers-1 and workers >= 1, got {rank} of {workers}")
    wanted = {rail.upper() for rail in rails} if rails else None
    deadline = time.monotonic() + poll_seconds
    woken = False
    while not woken and (left := deadline - time.monotonic()) > 0:
        for note in conn.notifies(timeout=left, stop_after=1):
            rail, hint = parse_notification(note.payload)
            if wanted is not None and rail not in wanted:
                continue
            distance = 0 if hint is None else (rank - hint) % workers
            if distance == 0:
                woken = True
            else:  # another worker's: take over after a delay if nobody claimed meanwhile
                deadline = min(deadline, time.monotonic() + takeover_seconds * distance)
    if woken:
        for _ in conn.notifies(timeout=0):
            pass
    return woken


def serve(
    conninfo: str,
    worker_id: str,
    rail: Rail,
    stop: threading.Event,
    *,
    rails: Sequence[str] | None = None,
    batch: int = 10,
    lease_seconds: int = 30,
    poll_seconds: float = 5.0,
    rank: int = 0,
    workers: int = 1,
    takeover_seconds: float = TAKEOVER_SECONDS,
) -> int:
    """Work until ``stop`` is set: claim and work full batches back to back; after a claim that
    came back short of ``batch`` (the queue was drained), sleep on the notification (at most
    ``poll_seconds``; ``rank``/``workers``/``takeover_seconds``: see ``wait_for_work``). Returns
    the number of jobs worked. LISTEN comes before the first claim: a job enqueued between a
    claim and the wait still wakes the worker (its notification is queued on the connection).
    A listening connection that dies (server restart, terminated backend, network) is opened
    again and LISTENs again; the worker then claims, since notifications may have been lost."""
    worked = 0
    waiter: psycopg.Connection[Any] | None = None
    try:
        while not stop.is_set():
            if waiter is None or waiter.closed:
                try:
                    waiter = psycopg.connect(conninfo, autocommit=True)
                    listen(waiter)
                except psycopg.OperationalError:
                    waiter = None
                    stop.wait(min(poll_seconds, 1.0))  # the server is away: retry shortly
            done = run_once(
                conninfo, worker_id, rail, rails=rails, batch=batch, lease_seconds=lease_seconds
            )
            worked += len(done)
            if len(done) < batch and waiter is not None:  # drained: sleep until told
                try:
                    wait_for_work(
                        waiter,
                        poll_seconds,
                        rails,
                        rank=rank,
                        workers=workers,
                        takeover_seconds=takeover_seconds,
                    )
                except psycopg.OperationalError:
                    waiter.close()  # lost: open a new one and claim (a wake-up may be lost)
    finally:
        if waiter is not None:
            waiter.close()
    return worked
