"""Fixtures for schema tests: non-superuser logins with runtime-role memberships, and helpers.

Privilege tests must run as a login that is *not* a superuser: a superuser passes every privilege
check and proves nothing. Roles are cluster-wide, so every login gets a unique name
(``t_login_<hex>``) and is dropped after the test, together with anything it owns or was granted in
the test database.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import psycopg
import psycopg.rows
import pytest
from psycopg import sql

from tests.helpers import OutboxCounts


class _Server(Protocol):
    def conninfo(self, dbname: str, user: str | None = None) -> str: ...


class _Database(Protocol):
    name: str
    conninfo: str


@dataclass(frozen=True)
class Login:
    """A throw-away LOGIN role and an open connection as that role."""

    name: str
    conn: psycopg.Connection[Any]


class LoginFactory(Protocol):
    def __call__(self, *roles: str, inherit: bool = True, autocommit: bool = True) -> Login: ...


@pytest.fixture
def login(
    pg_server: _Server, migrated_db: _Database, db: psycopg.Connection[Any]
) -> Iterator[LoginFactory]:
    """Factory: ``login("symphony_executor", ...)`` creates a uniquely named LOGIN role (no
    password: the embedded server trusts local socket connections), grants it membership in the
    given roles and returns a connection as it to the test database.

    ``inherit=False`` grants membership WITH INHERIT FALSE: the login then has the role's
    privileges only after ``SET ROLE <role>``. The default (INHERIT TRUE) gives them directly.
    """
    created: list[Login] = []

    def make(*roles: str, inherit: bool = True, autocommit: bool = True) -> Login:
        name = f"t_login_{uuid.uuid4().hex[:12]}"
        db.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            ).format(sql.Identifier(name))
        )
        for role in roles:
            db.execute(
                sql.SQL("GRANT {} TO {} WITH INHERIT {}").format(
                    sql.Identifier(role),
                    sql.Identifier(name),
                    sql.SQL("TRUE" if inherit else "FALSE"),
                )
            )
        conn = psycopg.connect(
            pg_server.conninfo(migrated_db.name, user=name), autocommit=autocommit
        )
        entry = Login(name, conn)
        created.append(entry)
        return entry

    yield make

    for entry in created:
        _close_quietly(entry.conn)
        # The login's privileges and objects live in the test database; memberships are shared.
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(entry.name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(entry.name)))


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    """Drop the session's temporary objects before closing: a backend removes them only when it
    exits, which happens asynchronously to close(), and DROP ROLE would race with it."""
    if conn.closed:
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.execute("RESET ROLE")
        conn.execute("DISCARD TEMP")
        if not conn.autocommit:
            conn.commit()
    finally:
        conn.close()


@pytest.fixture
def connect(migrated_db: _Database) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Factory of extra superuser connections (autocommit) for concurrency tests; all closed at
    teardown."""
    conns: list[psycopg.Connection[Any]] = []

    def make() -> psycopg.Connection[Any]:
        conn = psycopg.connect(migrated_db.conninfo, autocommit=True)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        conn.close()


# --------------------------------------------------------------------------------------------
# The outbox API as tests call it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outbox:
    """Thin wrappers around the outbox functions, bound to one connection (superuser or login).

    Tests get it through the ``outbox`` fixture (superuser) or ``outbox_for(conn)``; helpers are
    fixtures rather than imports so that nothing imports a conftest module.
    """

    conn: psycopg.Connection[Any]

    def enqueue(
        self,
        instruction_id: str,
        participant_id: str = "participant-1",
        idempotency_key: str | None = None,
        rail_type: str = "rtgs",
        payload: str = '{"amount": 100, "currency": "ZAR"}',
    ) -> tuple[Any, ...]:
        """enqueue_payment_outbox; returns (outbox_id, sequence_id, created_at, state). Jobs of
        one participant are claimed one at a time, in order (per-participant FIFO, revision
        0014): tests that lease several jobs at once give them different participants."""
        row = self.conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox(%s, %s, %s, %s, %s::jsonb)",
            (
                instruction_id,
                participant_id,
                idempotency_key or f"key-{instruction_id}",
                rail_type,
                payload,
            ),
        ).fetchone()
        assert row is not None
        return tuple(row)

    def claim(self, batch_size: int, worker_id: str, lease_seconds: int = 30) -> list[ClaimedRow]:
        """claim_outbox_batch; one ClaimedRow per leased row, in the order returned."""
        rows = self.conn.execute(
            "SELECT * FROM public.claim_outbox_batch(%s, %s, %s)",
            (batch_size, worker_id, lease_seconds),
        ).fetchall()
        return [ClaimedRow(*row) for row in rows]

    def complete(
        self,
        outbox_id: Any,
        lease_token: Any,
        worker_id: str,
        state: str | None,
        **extra: Any,
    ) -> tuple[int, str]:
        """complete_outbox_attempt with named arguments (``retry_delay_seconds=5`` ->
        ``p_retry_delay_seconds => 5``); returns (attempt_no, state). A DISPATCHED outcome
        reports the rail reference ``ref-<outbox_id>`` unless ``rail_reference`` is given: the
        registered rails return references (revision 0023), unique per rail."""
        if state == "DISPATCHED" and "rail_reference" not in extra:
            extra["rail_reference"] = f"ref-{outbox_id}"
        args: dict[str, Any] = {
            "p_outbox_id": outbox_id,
            "p_lease_token": lease_token,
            "p_worker_id": worker_id,
            "p_state": state,
            **{f"p_{key}": value for key, value in extra.items()},
        }
        placeholders = sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(key), sql.Placeholder(key)) for key in args
        )
        query = sql.SQL(
            "SELECT attempt_no, state::text FROM public.complete_outbox_attempt({})"
        ).format(placeholders)
        row = self.conn.execute(query, args).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def repair(self, batch_size: int, worker_id: str) -> list[tuple[Any, int]]:
        """repair_expired_leases; (outbox_id, attempt_no) per repaired row."""
        rows = self.conn.execute(
            "SELECT outbox_id, attempt_no FROM public.repair_expired_leases(%s, %s)",
            (batch_size, worker_id),
        ).fetchall()
        return [(row[0], int(row[1])) for row in rows]

    def counts(self) -> OutboxCounts:
        """Row counts of the queue, the attempts ledger and the participant sequences, for
        "nothing written"."""
        row = self.conn.execute(
            "SELECT (SELECT count(*) FROM public.payment_outbox_pending),"
            " (SELECT count(*) FROM public.payment_outbox_attempts),"
            " (SELECT count(*) FROM public.participant_outbox_sequences)"
        ).fetchone()
        assert row is not None
        return OutboxCounts(pending=int(row[0]), attempts=int(row[1]), sequences=int(row[2]))

    def expire_leases(self, outbox_ids: Sequence[Any] | None = None) -> None:
        """Make leases expire without waiting: move lease_expires_at into the past (pending is
        a mutable table; only the attempts ledger is append-only). Needs table privileges."""
        self.conn.execute(
            "UPDATE public.payment_outbox_pending"
            " SET lease_expires_at = now() - interval '1 second'"
            " WHERE lease_token IS NOT NULL"
            " AND (%(ids)s::uuid[] IS NULL OR outbox_id = ANY(%(ids)s::uuid[]))",
            {"ids": None if outbox_ids is None else list(outbox_ids)},
        )

    def make_due(self) -> None:
        """Make every queued row due now (retries are scheduled at least a second ahead)."""
        self.conn.execute(
            "UPDATE public.payment_outbox_pending SET next_attempt_at = now() - interval '1 second'"
        )

    def attempts(self, outbox_id: Any) -> list[dict[str, Any]]:
        """The ledger rows of one job, oldest attempt first."""
        with self.conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return cur.execute(
                "SELECT *, state::text AS state FROM public.payment_outbox_attempts"
                " WHERE outbox_id = %s ORDER BY attempt_no",
                (outbox_id,),
            ).fetchall()

    def pending(self, outbox_id: Any) -> dict[str, Any] | None:
        """The queue row of one job, or None once it left the queue."""
        with self.conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            return cur.execute(
                "SELECT * FROM public.payment_outbox_pending WHERE outbox_id = %s", (outbox_id,)
            ).fetchone()

    @staticmethod
    @contextmanager
    def raises(sqlstate: str, match: str | None = None) -> Iterator[None]:
        """Expect a database error with this SQLSTATE (and a message matching ``match``)."""
        with pytest.raises(psycopg.Error) as info:
            yield
        got = info.value.sqlstate
        assert got == sqlstate, f"expected SQLSTATE {sqlstate}, got {got}: {info.value}"
        if match is not None:
            assert re.search(match, str(info.value)), f"{match!r} not in message: {info.value}"


class ClaimedRow(NamedTuple):
    """One row returned by claim_outbox_batch."""

    outbox_id: Any
    instruction_id: str
    participant_id: str
    sequence_id: int
    idempotency_key: str
    rail_type: str
    payload: Any
    attempt_count: int
    lease_token: Any
    lease_expires_at: Any
    #: Revision 0014: an earlier lease of the job ended without a recorded outcome.
    in_doubt: bool = False


@pytest.fixture
def outbox(db: psycopg.Connection[Any]) -> Outbox:
    """The outbox API as the superuser, on a fresh migrated database."""
    return Outbox(db)


@pytest.fixture
def outbox_for() -> type[Outbox]:
    """``outbox_for(conn)``: the outbox API on another connection (e.g. a login's)."""
    return Outbox
