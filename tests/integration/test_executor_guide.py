"""The reference worker of docs/operations/executor-guide.md runs as documented (issue 19 item 4):
in-doubt jobs are resolved from the rail's status instead of being sent twice, heartbeats keep a
slow rail's job leased, and an outcome under a replaced lease is kept for reconciliation."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations"


def _reference_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_worker", GUIDE / "reference_worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


class FakeRail:
    """A rail that is idempotent on the key it is given, and can be slow."""

    def __init__(self, worker: ModuleType, delay: float = 0.0) -> None:
        self.worker = worker
        self.delay = delay
        self.sends: dict[str, int] = {}
        self.lock = threading.Lock()

    def send(self, idempotency_key: str, payload: Any) -> Any:
        time.sleep(self.delay)
        with self.lock:
            self.sends[idempotency_key] = self.sends.get(idempotency_key, 0) + 1
        return self.worker.RailAnswer("DISPATCHED", f"ref-{idempotency_key}")

    def status(self, idempotency_key: str) -> Any:
        with self.lock:
            if idempotency_key in self.sends:
                return self.worker.RailAnswer("DISPATCHED", f"ref-{idempotency_key}")
        return None


def test_the_guide_names_the_reference_worker_and_the_idempotency_key() -> None:
    text = (GUIDE / "executor-guide.md").read_text()
    assert "reference_worker.py" in text
    assert "outbox_id" in text and "in_doubt" in text and "extend_outbox_lease" in text


def test_an_in_doubt_job_is_resolved_from_the_rail_not_sent_again(
    outbox: Outbox, login: LoginFactory, pg_server: Any, migrated_db: Any
) -> None:
    worker = _reference_worker()
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    rail = FakeRail(worker)
    doubtful = outbox.enqueue("pay-1", "p-1")[0]
    fresh = outbox.enqueue("pay-2", "p-2")[0]

    # A first worker sends pay-1 and dies before recording the outcome; repair requeues it.
    (claimed,) = [r for r in outbox.claim(10, "w-dead") if r.outbox_id == doubtful]
    rail.send(str(doubtful), None)
    outbox.expire_leases()
    outbox.repair(10, "repairer")

    done = dict(worker.run_once(conninfo, "w-ref", rail))
    assert done == {str(doubtful): "status", str(fresh): "sent"}
    assert rail.sends == {str(doubtful): 1, str(fresh): 1}, "nothing was sent twice"
    assert outbox.counts().pending == 0
    assert claimed.lease_token != outbox.attempts(doubtful)[-1]["lease_token"]


def test_heartbeats_carry_a_slow_rail_past_the_lease(
    outbox: Outbox,
    outbox_for: type[Outbox],
    login: LoginFactory,
    pg_server: Any,
    migrated_db: Any,
) -> None:
    worker = _reference_worker()
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    rail = FakeRail(worker, delay=2.5)
    job = outbox.enqueue("slow-1", "p-1")[0]
    stop = threading.Event()

    def rival() -> None:  # once the job is leased, repairs and claims: must find nothing
        while (
            not stop.is_set()
            and not outbox_rival.conn.execute(
                "SELECT 1 FROM public.payment_outbox_pending WHERE lease_token IS NOT NULL"
            ).fetchall()
        ):
            time.sleep(0.05)
        while not stop.is_set():
            assert outbox_rival.claim(10, "w-rival") == []
            assert outbox_rival.repair(10, "w-rival") == []
            time.sleep(0.2)

    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        outbox_rival = outbox_for(conn)
        thread = threading.Thread(target=rival)
        thread.start()
        try:
            done = worker.run_once(conninfo, "w-ref", rail, lease_seconds=1)
        finally:
            stop.set()
            thread.join()
    assert done == [(str(job), "sent")]
    (attempt,) = outbox.attempts(job)
    assert (attempt["state"], attempt["recorded_by"]) == ("DISPATCHED", executor.name)


class OneReferenceRail(FakeRail):
    """A broken rail that confirms every payment with the same reference."""

    def send(self, idempotency_key: str, payload: Any) -> Any:
        super().send(idempotency_key, payload)
        return self.worker.RailAnswer("DISPATCHED", "SAME-REF")


def test_a_reference_reused_by_the_rail_is_left_for_reconciliation(
    outbox: Outbox, login: LoginFactory, pg_server: Any, migrated_db: Any
) -> None:
    """Revision 0023: the second job reporting one reference gets P7013; the reference worker
    records nothing for it and goes on with the batch."""
    worker = _reference_worker()
    executor = login("symphony_executor")
    conninfo = pg_server.conninfo(migrated_db.name, user=executor.name)
    first = outbox.enqueue("pay-1", "p-1")[0]
    second = outbox.enqueue("pay-2", "p-2")[0]
    third = outbox.enqueue("pay-3", "p-3", rail_type="ach")[0]

    done = dict(worker.run_once(conninfo, "w-ref", OneReferenceRail(worker)))
    assert sorted(done.values()) == ["reference-reused", "sent", "sent"]
    reused = next(UUID(key) for key, how in done.items() if how == "reference-reused")
    assert reused in (first, second)
    assert outbox.attempts(reused) == []
    pending = outbox.pending(reused)
    assert pending is not None and pending["claimed_by"] == "w-ref"
    assert [a["rail_reference"] for a in outbox.attempts(third)] == ["SAME-REF"]
