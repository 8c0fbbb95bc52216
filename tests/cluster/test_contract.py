"""The outbox contract through the participant-first API, on one node and on the distributed
session cluster (ADR 0149): one fixture, ``target``, parametrised over both.

On both: enqueue (replay, P7004 for a key reused with another payload), the claim of one
participant (FIFO order, a leased head fences the participant, an expired lease is taken over
with a new token and a ZOMBIE_REQUEUE row, ``not_before``, argument SQLSTATEs), the completion
(one terminal attempt per job, P7002 for a finished or stale lease, P7003, the next head
claimable after it), the batched completion, repair of an expired lease. The one
difference, idempotency per participant on the cluster (ADR 0149's exceptions), is a test of its
own. To add a function of the participant-first API: a method on :class:`Target` and a test
parametrised by ``target``.
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
            self.executor.execute(
                "SELECT 1 FROM public.enqueue_payment_outbox(%s, %s, %s, 'RTGS', '{}',"
                " %s::timestamptz)",
                (instruction, participant, f"k-{instruction}", not_before),
            )

    def claim(self, participant: str, batch: int = 10, lease: int = 300) -> list[tuple[Any, ...]]:
        return self.executor.execute(CLAIM, (participant, batch, lease)).fetchall()

    def lease(self, participant: str) -> tuple[Any, Any]:
        """Claim the participant's head: (outbox_id, lease_token)."""
        row = self.executor.execute(
            "SELECT outbox_id, lease_token"
            " FROM public.claim_outbox_batch_for_participant(%s, 1, 'w', 300)",
            (participant,),
        ).fetchone()
        assert row is not None
        return row[0], row[1]

    def complete(
        self, participant: str, job: tuple[Any, Any], state: str, reference: str | None = None
    ) -> tuple[Any, ...]:
        row = self.executor.execute(
            "SELECT attempt_no, state::text FROM public.complete_outbox_attempt_for_participant("
            "%s, %s, %s, 'w', %s, p_rail_reference => %s)",
            (participant, job[0], job[1], state, reference),
        ).fetchone()
        assert row is not None
        return tuple(row)

    def attempts(self, participant: str) -> list[tuple[Any, ...]]:
        return self.admin.execute(
            "SELECT instruction_id, state::text FROM public.payment_outbox_attempts"
            " WHERE participant_id = %s ORDER BY attempt_no, created_at",
            (participant,),
        ).fetchall()


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


def test_the_claim_returns_the_payload_row_and_the_queue_row_carries_none(
    target: Target,
) -> None:
    # Since 0038 (ADR 0167) the payload table is the payload's one copy: on a cluster the
    # participant's claim reads it on the participant's node, in a statement of its own.
    participant = target.participant("payload")
    payload = '{"z": 1, "amount": "100.00", "memo": "caf\\u00e9", "n": [1, {"d": null}]}'
    target.executor.execute(
        "SELECT 1 FROM public.enqueue_payment_outbox(%s, %s, 'k-p', 'RTGS', %s)",
        (f"{participant}-1", participant, payload),
    )
    row = target.executor.execute(
        "SELECT jsonb_send(payload) = jsonb_send(%s::jsonb)"
        " FROM public.claim_outbox_batch_for_participant(%s, 1, 'w', 300)",
        (payload, participant),
    ).fetchone()
    assert row == (True,)
    assert target.admin.execute(
        "SELECT payload FROM public.payment_outbox_pending WHERE participant_id = %s",
        (participant,),
    ).fetchall() == [(None,)]


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


def test_enqueue_replays_a_known_key_and_refuses_its_reuse_with_p7004(target: Target) -> None:
    participant = target.participant("e")
    enqueue = "SELECT outbox_id, state FROM public.enqueue_payment_outbox(%s, %s, 'k', 'RTGS', %s)"
    first = target.executor.execute(enqueue, ("i", participant, '{"a": 1}')).fetchall()
    again = target.executor.execute(enqueue, ("i", participant, '{"a": 1}')).fetchall()
    assert again == first and first[0][1] == "PENDING"
    with pytest.raises(psycopg.Error) as reused:
        target.executor.execute(enqueue, ("i", participant, '{"a": 2}'))
    assert reused.value.sqlstate == "P7004"


def test_the_same_key_under_another_participant_is_p7004_on_one_node_a_new_job_on_a_cluster(
    target: Target,
) -> None:
    # ADR 0149's exception: the cluster's keys carry participant_id (idempotency per participant).
    enqueue = "SELECT outbox_id FROM public.enqueue_payment_outbox('i', %s, 'k', 'RTGS', '{}')"
    first = target.executor.execute(enqueue, (target.participant("x"),)).fetchall()
    if target.name == "single":
        with pytest.raises(psycopg.Error) as reused:
            target.executor.execute(enqueue, (target.participant("y"),))
        assert reused.value.sqlstate == "P7004"
    else:
        second = target.executor.execute(enqueue, (target.participant("y"),)).fetchall()
        assert len(second) == 1 and second != first


def test_a_completion_records_one_terminal_attempt_and_frees_the_next_head(
    target: Target,
) -> None:
    participant = target.participant("c")
    target.enqueue(participant, 2)
    job = target.lease(participant)
    assert target.complete(participant, job, "DISPATCHED", f"ref-{uuid.uuid4().hex}") == (
        1,
        "DISPATCHED",
    )
    # The lease is gone with the job: a second report is P7002 and records nothing.
    with pytest.raises(psycopg.Error) as again:
        target.complete(participant, job, "FAILED")
    assert again.value.sqlstate == "P7002"
    assert target.attempts(participant) == [(f"{participant}-1", "DISPATCHED")]
    assert [row[0] for row in target.claim(participant)] == [f"{participant}-2"]


def test_a_stale_token_is_p7002_and_a_bad_state_p7003(target: Target) -> None:
    participant = target.participant("s")
    target.enqueue(participant, 1)
    job = target.lease(participant)
    with pytest.raises(psycopg.Error) as stale:
        target.complete(participant, (job[0], uuid.uuid4()), "DISPATCHED")
    assert stale.value.sqlstate == "P7002"
    with pytest.raises(psycopg.Error) as bad:
        target.complete(participant, job, "ZOMBIE_REQUEUE")
    assert bad.value.sqlstate == "P7003"
    # Another participant's call never sees the job (an unknown job).
    with pytest.raises(psycopg.Error) as foreign:
        target.complete(target.participant("other"), job, "DISPATCHED")
    assert foreign.value.sqlstate == "P7002"
    assert target.attempts(participant) == []


def test_a_retryable_outcome_requeues_and_the_batch_completes_it(target: Target) -> None:
    participant = target.participant("r")
    target.enqueue(participant, 1)
    job = target.lease(participant)
    assert target.complete(participant, job, "RETRYABLE") == (1, "RETRYABLE")
    target.admin.execute(
        "UPDATE public.payment_outbox_pending SET next_attempt_at = now()"
        " WHERE participant_id = %s",
        (participant,),
    )
    again = target.lease(participant)
    rows = target.executor.execute(
        "SELECT outbox_id, attempt_no, state::text"
        " FROM public.complete_outbox_attempts_batch_for_participant(%s, 'w', %s, %s, %s)",
        (participant, [again[0]], [again[1]], ["FAILED"]),
    ).fetchall()
    assert rows == [(job[0], 2, "FAILED")]
    assert target.attempts(participant) == [
        (f"{participant}-1", "RETRYABLE"),
        (f"{participant}-1", "FAILED"),
    ]


def test_repair_requeues_an_expired_lease_of_its_participant_only(target: Target) -> None:
    mine, theirs = target.participant("m"), target.participant("t")
    for participant in (mine, theirs):
        target.enqueue(participant, 1)
        target.lease(participant)
    target.admin.execute(
        "UPDATE public.payment_outbox_pending SET lease_expires_at = now() - interval '1 second'"
        " WHERE participant_id IN (%s, %s)",
        (mine, theirs),
    )
    repaired = target.executor.execute(
        "SELECT outbox_id FROM public.repair_expired_leases_for_participant(%s, 10, 'w')",
        (mine,),
    ).fetchall()
    assert len(repaired) == 1
    assert target.attempts(mine) == [(f"{mine}-1", "ZOMBIE_REQUEUE")]
    assert target.attempts(theirs) == []


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        (
            "SELECT * FROM public.enqueue_payment_outbox_batch(%s, %s, %s, %s, %s)",
            (["i1", "i2"], ["<a>", "<b>"], ["k1", "k2"], ["RTGS", "RTGS"], ["{}", "{}"]),
        ),
        ("SELECT * FROM public.claim_outbox_batch(5, 'w', 30)", ()),
        ("SELECT * FROM public.repair_expired_leases(5, 'w')", ()),
    ],
    ids=["batch-enqueue", "claim", "repair"],
)
def test_the_multi_participant_api_is_0a000_on_the_cluster_and_writes_nothing(
    target: Target, statement: str, args: tuple[Any, ...]
) -> None:
    # ADR 0149's exceptions: on a distributed queue the functions that span participants do not
    # plan; one node runs them as before.
    named = {"<a>": target.participant("a"), "<b>": target.participant("b")}
    args = tuple(
        [named.get(value, value) for value in arg] if isinstance(arg, list) else arg for arg in args
    )
    if target.name == "single":
        target.executor.execute(statement, args)
        return
    with pytest.raises(psycopg.Error) as refused:
        target.executor.execute(statement, args)
    assert refused.value.sqlstate == "0A000"
    assert target.attempts(target.participant("a")) == []
    assert target.admin.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE participant_id LIKE %s",
        (f"{target.prefix}-%",),
    ).fetchone() == (0,)


def test_a_retry_at_the_ceiling_fails_the_job(target: Target) -> None:
    # The ceiling is a setting of the database (a reference table on the cluster, written by
    # the control function through the owner's login between the nodes: ADR 0146).
    (before,) = target.admin.execute("SELECT public.outbox_retry_ceiling()").fetchone() or (5,)
    target.admin.execute("SELECT public.set_outbox_retry_ceiling(2)")
    try:
        participant = target.participant("ceiling")
        target.enqueue(participant, 1)
        job = target.lease(participant)
        assert target.complete(participant, job, "RETRYABLE") == (1, "RETRYABLE")
        target.admin.execute(
            "UPDATE public.payment_outbox_pending SET next_attempt_at = now()"
            " WHERE participant_id = %s",
            (participant,),
        )
        again = target.lease(participant)
        assert target.complete(participant, again, "RETRYABLE") == (2, "FAILED")
        assert target.attempts(participant) == [
            (f"{participant}-1", "RETRYABLE"),
            (f"{participant}-1", "FAILED"),
        ]
        assert target.claim(participant) == []
    finally:
        target.admin.execute("SELECT public.set_outbox_retry_ceiling(%s)", (before,))


@pytest.mark.parametrize(
    ("instruction", "participant", "payload", "named"),
    [
        (" ", "p", "{}", "p_instruction_id"),
        ("i", "", "{}", "p_participant_id"),
        ("i", "p", "[1, 2]", "p_payload"),
    ],
    ids=["blank-instruction", "blank-participant", "payload-not-an-object"],
)
def test_bad_enqueue_arguments_are_22023_and_write_nothing(
    target: Target, instruction: str, participant: str, payload: str, named: str
) -> None:
    who = target.participant(participant) if participant else participant
    with pytest.raises(psycopg.Error, match=named) as refused:
        target.executor.execute(
            "SELECT * FROM public.enqueue_payment_outbox(%s, %s, 'k', 'RTGS', %s)",
            (instruction, who, payload),
        )
    assert refused.value.sqlstate == "22023"
    assert target.admin.execute(
        "SELECT count(*) FROM public.payment_outbox_pending WHERE participant_id LIKE %s",
        (f"{target.prefix}-%",),
    ).fetchone() == (0,)
