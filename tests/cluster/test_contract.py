"""The outbox contract through the participant-first API, on one node and on the distributed
session cluster (ADR 0149): one fixture, ``target``, parametrised over both.

What runs on both today: the claim of one participant (``claim_outbox_batch_for_participant``):
FIFO order, a leased head fences the participant, an expired lease is taken over with a new
token and a ZOMBIE_REQUEUE row, ``not_before``, argument SQLSTATEs. Enqueue's contract runs on
the targets of :data:`ENQUEUE_TARGETS` only: the single-node ``enqueue_payment_outbox`` does not
plan on a distributed queue (its key look-up and replay read by key alone, ADR 0145), and its
participant-first restatement is another engineer's (issue 16, cfn); until it is merged the
cluster's jobs are queued by the superuser through the guards (revision 0035). To add a function
of the participant-first API: a method on :class:`Target` and a test parametrised by ``target``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import cluster

pytestmark = pytest.mark.citus

#: The targets on which enqueue_payment_outbox itself runs (add "cluster" with the
#: participant-first enqueue).
ENQUEUE_TARGETS = ["single"]

CLAIM = (
    "SELECT instruction_id, sequence_id, lease_token, in_doubt"
    " FROM public.claim_outbox_batch_for_participant(%s, %s, 'w', %s)"
)


@dataclass
class Target:
    """One database running the outbox: its superuser and an executor/ingest login."""

    name: str
    admin: psycopg.Connection[Any]
    executor: psycopg.Connection[Any]
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def participant(self, label: str) -> str:
        return f"{self.prefix}-{label}"

    def enqueue(self, participant: str, jobs: int, *, not_before: str | None = None) -> None:
        """``jobs`` jobs of ``participant`` (instruction ``<participant>-<n>``)."""
        for n in range(1, jobs + 1):
            instruction = f"{participant}-{n}"
            if self.name in ENQUEUE_TARGETS:
                self.executor.execute(
                    "SELECT 1 FROM public.enqueue_payment_outbox(%s, %s, %s, 'RTGS', '{}',"
                    " %s::timestamptz)",
                    (instruction, participant, f"k-{instruction}", not_before),
                )
            else:
                self.admin.execute(
                    "INSERT INTO public.payment_outbox_pending (instruction_id, participant_id,"
                    " sequence_id, idempotency_key, rail_type, payload, next_attempt_at)"
                    " VALUES (%s, %s, %s, %s, 'RTGS', '{}', COALESCE(%s::timestamptz, now()))",
                    (instruction, participant, n, f"k-{instruction}", not_before),
                )

    def claim(self, participant: str, batch: int = 10, lease: int = 300) -> list[tuple[Any, ...]]:
        return self.executor.execute(CLAIM, (participant, batch, lease)).fetchall()


def _login(admin: psycopg.Connection[Any]) -> str:
    name = f"contract_{uuid.uuid4().hex[:10]}"
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    admin.execute(
        sql.SQL("GRANT symphony_executor, symphony_ingest TO {} WITH INHERIT TRUE").format(
            sql.Identifier(name)
        )
    )
    return name


def _drop(admin: psycopg.Connection[Any], name: str) -> None:
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "single":
        server = request.getfixturevalue("pg_server")
        database = request.getfixturevalue("migrated_db")
        with psycopg.connect(database.conninfo, autocommit=True) as admin:
            name = _login(admin)
            try:
                with psycopg.connect(
                    server.conninfo(database.name, name), autocommit=True
                ) as executor:
                    yield Target("single", admin, executor)
            finally:
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                _drop(admin, name)
        return
    found: cluster.Cluster = request.getfixturevalue("migrated_cluster")
    with psycopg.connect(found.coordinator.conninfo(), autocommit=True) as admin:
        name = _login(admin)
        try:
            with psycopg.connect(
                found.coordinator.conninfo(user=name), autocommit=True
            ) as executor:
                yield Target("cluster", admin, executor)
        finally:
            _drop(admin, name)


def test_a_claim_returns_the_participants_head_and_a_leased_head_fences_it(
    target: Target,
) -> None:
    first, second = target.participant("a"), target.participant("b")
    target.enqueue(first, 3)
    target.enqueue(second, 1)
    claimed = target.claim(first)
    assert [(row[0], row[1], row[3]) for row in claimed] == [(f"{first}-1", 1, False)]
    assert claimed[0][2] is not None
    # Per-participant FIFO: the leased head holds the participant's other jobs back ...
    assert target.claim(first) == []
    # ... and no other participant's.
    assert [row[0] for row in target.claim(second)] == [f"{second}-1"]


def test_an_expired_lease_is_taken_over_with_a_new_token_and_recorded(target: Target) -> None:
    participant = target.participant("z")
    target.enqueue(participant, 1)
    before = target.claim(participant)
    target.admin.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 second'"
        " WHERE participant_id = %s",
        (participant,),
    )
    after = target.claim(participant)
    assert [(row[0], row[3]) for row in after] == [(f"{participant}-1", True)]
    assert after[0][2] != before[0][2]
    rows = target.admin.execute(
        "SELECT state::text, attempt_no, lease_token FROM public.payment_outbox_attempts"
        " WHERE participant_id = %s",
        (participant,),
    ).fetchall()
    assert rows == [("ZOMBIE_REQUEUE", 1, before[0][2])]


def test_a_job_not_before_a_later_time_is_not_claimed(target: Target) -> None:
    participant = target.participant("later")
    target.enqueue(participant, 1, not_before="2999-01-01T00:00:00Z")
    assert target.claim(participant) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("x", 0, 30), "p_batch_size"),
        (("x", 10, 0), "p_lease_seconds"),
        (("", 10, 30), "p_participant_id"),
    ],
    ids=["batch", "lease", "participant"],
)
def test_bad_claim_arguments_are_22023(target: Target, args: tuple[Any, ...], named: str) -> None:
    with pytest.raises(psycopg.Error, match=named) as refused:
        target.executor.execute(CLAIM, args)
    assert refused.value.sqlstate == "22023"


@pytest.mark.parametrize("target", ENQUEUE_TARGETS, indirect=True)
def test_enqueue_replays_a_known_key_and_refuses_its_reuse_with_p7004(target: Target) -> None:
    participant = target.participant("e")
    enqueue = "SELECT outbox_id, state FROM public.enqueue_payment_outbox(%s, %s, 'k', 'RTGS', %s)"
    first = target.executor.execute(enqueue, ("i", participant, '{"a": 1}')).fetchall()
    again = target.executor.execute(enqueue, ("i", participant, '{"a": 1}')).fetchall()
    assert again == first and first[0][1] == "PENDING"
    with pytest.raises(psycopg.Error) as reused:
        target.executor.execute(enqueue, ("i", participant, '{"a": 2}'))
    assert reused.value.sqlstate == "P7004"
