"""The deploy lock: a table lock on the migration ledger that runtime roles cannot take (ADR 0065).

Deployers (``alembic upgrade``), ``reset`` and ``baseline apply`` serialise on
``LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE``:

* **Only deployers can take it.** Modes above ACCESS SHARE need ownership of the table, UPDATE,
  DELETE, TRUNCATE or MAINTAIN on it (superusers and members of ``pg_maintain`` included). The
  ledger is owned by the migrating user and only ``symphony_auditor`` has SELECT, so a runtime
  login gets ``42501`` instead of a lock (an advisory key, by contrast, is open to every login).
* **It does not get in the engine's way.** SHARE UPDATE EXCLUSIVE conflicts with itself (one
  holder at a time) but not with the ROW EXCLUSIVE lock of the ledger ``INSERT`` each revision
  commits with, nor with readers.
* **It is held by a second session** (:func:`hold_deploy_lock`), in a transaction left open for
  the whole run with ``idle_in_transaction_session_timeout``, ``statement_timeout`` and
  ``transaction_timeout`` at 0. Commit or close releases it; so does the death of the deployer
  (its sockets close, the server ends the session). Before each revision commits, the engine
  checks from its own session that the lock session still holds the lock
  (:meth:`DeployLock.check_held`), so a lost lock session rolls the revision back.
* **Waiting is bounded** by ``deploy_lock_wait`` (``lock_timeout``); ``0`` means do not wait
  (``NOWAIT``), not PostgreSQL's "wait forever". A deployer waits by retrying ``LOCK ... NOWAIT``
  with back-off and jitter, each try a transaction of its own, so that it holds no snapshot
  while it waits: a queued ``LOCK TABLE`` keeps one, and the holder's ``CREATE INDEX
  CONCURRENTLY`` would wait for it (ADR 0155).
* **A fresh database has no ledger yet**: it is created first, in its own short transaction,
  tolerating a concurrent creator (``42P07``/``23505`` → look again), never under an advisory lock.

``reset`` and ``baseline apply`` take the same lock inside their own (single) transaction with
:func:`lock_in_transaction`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from symphony_schema.errors import (
    DeployLockBusy,
    DeployLockDenied,
    DeployLockError,
    InvalidWait,
)
from symphony_schema.migration.ledger import LEDGER_DDL, ledger_exists

__all__ = [
    "DEPLOY_LOCK_SQL",
    "LEDGER_REGCLASS",
    "DeployLock",
    "DeployLockBusy",
    "DeployLockDenied",
    "DeployLockError",
    "InvalidWait",
    "ensure_ledger",
    "hold_deploy_lock",
    "lock_in_transaction",
]

LEDGER_REGCLASS = "public.schema_migrations"
#: The lock itself (append `` NOWAIT`` to fail at once).
DEPLOY_LOCK_SQL: LiteralString = (
    "LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE"
)
#: What ``pg_locks.mode`` says for it.
DEPLOY_LOCK_MODE = "ShareUpdateExclusiveLock"
#: ``application_name`` of the session holding the lock (visible in ``pg_stat_activity``).
LOCK_APPLICATION_NAME = "symphony-schema deploy lock"

# The ledger DDL without IF NOT EXISTS: when the table appeared meanwhile, the CREATE fails at
# once (42P07) instead of going on to COMMENT ON an existing table, which would queue behind a
# deployer holding the lock.
_CREATE_LEDGER_SQL = LEDGER_DDL.replace("CREATE TABLE IF NOT EXISTS ", "CREATE TABLE ", 1)
if _CREATE_LEDGER_SQL == LEDGER_DDL:  # pragma: no cover - guards a change in ledger.py
    raise RuntimeError("deploy_lock: LEDGER_DDL no longer starts with CREATE TABLE IF NOT EXISTS")
#: How long creating the ledger may wait for a concurrent creator's transaction.
_CREATE_WAIT = "30s"
_CREATE_ATTEMPTS = 5

_HOLDERS_SQL: LiteralString = """
SELECT l.pid, coalesce(a.usename::text, '?'), coalesce(a.application_name, ''),
       coalesce(to_char(now() - a.xact_start, 'HH24:MI:SS'), '?')
  FROM pg_catalog.pg_locks AS l
  LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.granted
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
   AND l.relation = pg_catalog.to_regclass('public.schema_migrations')
   AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
                  'ExclusiveLock', 'AccessExclusiveLock')
   AND l.pid <> pg_catalog.pg_backend_pid()
 ORDER BY l.pid
"""

_HELD_SQL: LiteralString = """
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_locks
     WHERE pid = %s AND locktype = 'relation' AND granted
       AND database = (SELECT oid FROM pg_catalog.pg_database
                        WHERE datname = pg_catalog.current_database())
       AND relation = pg_catalog.to_regclass('public.schema_migrations')
       AND mode = 'ShareUpdateExclusiveLock')
"""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _holders(conn: psycopg.Connection[Any], prefix: str = " Held by ") -> str:
    """Who holds a conflicting lock on the ledger, for the error message (best effort)."""
    try:
        with conn.transaction():
            rows = conn.execute(_HOLDERS_SQL).fetchall()
    except psycopg.Error:
        return ""
    if not rows:
        return ""
    shown = ", ".join(
        f"pid {pid} (user {user}{f', {app}' if app else ''}, transaction open {age})"
        for pid, user, app, age in rows
    )
    return f"{prefix}{shown}."


def _set_wait(conn: psycopg.Connection[Any], wait: str, origin: str) -> tuple[int, bool]:
    """Set ``lock_timeout`` to ``wait`` for the transaction; ``(milliseconds, ledger exists)``.

    An invalid value is refused (:class:`InvalidWait`) before anything is locked.
    """
    try:
        conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (wait,))
    except psycopg.errors.InvalidParameterValue as exc:
        raise InvalidWait(
            f"invalid {origin}={wait!r}: {_first_line(exc)} (SQLSTATE {exc.sqlstate}); "
            "give a duration such as 30s, 2min or 0 (do not wait)"
        ) from None
    try:
        # to_regclass needs USAGE on schema public: a login without it may not lock either.
        row = conn.execute(
            "SELECT setting::bigint, "
            "pg_catalog.to_regclass('public.schema_migrations') IS NOT NULL "
            "FROM pg_catalog.pg_settings WHERE name = 'lock_timeout'"
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DeployLockDenied(_denied_message(exc)) from None
    assert row is not None
    return int(row[0]), bool(row[1])


def lock_in_transaction(
    conn: psycopg.Connection[Any], wait: str, *, origin: str = "deploy_lock_wait"
) -> bool:
    """Take the deploy lock inside ``conn``'s current transaction, waiting at most ``wait``.

    ``conn`` must be inside a transaction (not autocommit); the lock lasts until it ends.
    Returns False when the ledger does not exist (nothing to lock: a database that was never
    migrated). ``lock_timeout`` is left at ``wait`` for the rest of the transaction. The wait is
    PostgreSQL's own (``reset`` and ``baseline apply`` lock inside a larger transaction);
    deployers wait with :func:`hold_deploy_lock`, which holds no snapshot while it waits.
    """
    if conn.autocommit:
        raise ValueError("lock_in_transaction needs a connection inside a transaction")
    wait_ms, exists = _set_wait(conn, wait, origin)
    if not exists:
        return False
    try:
        conn.execute(DEPLOY_LOCK_SQL + (" NOWAIT" if wait_ms == 0 else ""))
    except psycopg.errors.LockNotAvailable as exc:
        raise DeployLockBusy(_busy_message(wait, wait_ms == 0, exc.sqlstate, origin)) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DeployLockDenied(_denied_message(exc)) from None
    return True


#: Back-off between two ``NOWAIT`` tries of a waiting deployer (ADR 0155): the first pause, the
#: longest one (seconds); each pause is drawn at random between half and all of the current one.
RETRY_FIRST = 0.02
RETRY_LONGEST = 0.5


def _lock_retrying(
    conn: psycopg.Connection[Any],
    wait: str,
    origin: str,
    on_wait: Callable[[str], None] | None,
) -> bool:
    """Take the deploy lock in a transaction of its own, trying ``NOWAIT`` until ``wait`` ends.

    A session queued in ``LOCK TABLE`` keeps the catalog snapshot of its name lookup
    (``backend_xmin``) for the whole wait, and ``CREATE INDEX CONCURRENTLY`` waits for every
    transaction with an older snapshot: a non-transactional revision run by the holder would
    wait on the queued deployers, which wait on the holder (ADR 0155). So every try is a
    transaction of its own that ends at once when the lock is taken: between tries this
    session is idle, outside any transaction, with no snapshot. Returns as
    :func:`lock_in_transaction` does; on success the transaction holding the lock stays open.
    """
    deadline: float | None = None
    pause = RETRY_FIRST
    told = False
    while True:
        wait_ms, exists = _set_wait(conn, wait, origin)
        if not exists:
            return False
        try:
            conn.execute(DEPLOY_LOCK_SQL + " NOWAIT")
            return True
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DeployLockDenied(_denied_message(exc)) from None
        except psycopg.errors.LockNotAvailable as exc:
            conn.rollback()
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_ms / 1000
            if now >= deadline:
                raise DeployLockBusy(
                    _busy_message(wait, wait_ms == 0, exc.sqlstate, origin)
                ) from None
            if on_wait is not None and not told:
                told = True
                on_wait(
                    f"waiting up to {wait} for the deploy lock held by another deployer"
                    f"{_holders(conn, prefix=': ')}"
                )
            time.sleep(min(deadline - now, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, RETRY_LONGEST)


def _busy_message(wait: str, nowait: bool, sqlstate: str | None, origin: str) -> str:
    waited = (
        f"holds the deploy lock ({origin}=0: not waiting)"
        if nowait
        else f"has held the deploy lock for more than {wait}"
    )
    return (
        f"another deployer {waited}; nothing was changed (SQLSTATE {sqlstate}). The lock is "
        "LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE: wait for the "
        "session holding it to finish (pg_stat_activity, application_name "
        f"'{LOCK_APPLICATION_NAME}')"
        + (" or raise deploy_lock_wait." if origin == "deploy_lock_wait" else ".")
    )


def _denied_message(exc: psycopg.Error) -> str:
    return (
        f"the connecting user may not take the deploy lock: {_first_line(exc)} (SQLSTATE "
        f"{exc.sqlstate}). Deploy as the user that owns public.schema_migrations (the migrating "
        "user); LOCK in this mode needs ownership or UPDATE, DELETE, TRUNCATE or MAINTAIN on it."
    )


def ensure_ledger(conn: psycopg.Connection[Any]) -> None:
    """Create ``public.schema_migrations`` if it does not exist; a concurrent creator is fine.

    ``conn`` is in autocommit mode; the creation commits on its own so that the migrating
    session can see the table.
    """
    for attempt in range(_CREATE_ATTEMPTS):
        if ledger_exists(conn):
            return
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_catalog.set_config('lock_timeout', %s, true)", (_CREATE_WAIT,)
                )
                conn.execute(_CREATE_LEDGER_SQL)
            return
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
            # Another deployer created it between our look and our CREATE: look again.
            time.sleep(0.05 * (attempt + 1))
    raise DeployLockError(
        "could not create the migration ledger public.schema_migrations: it kept appearing "
        "and disappearing under concurrent sessions; nothing was applied. Retry."
    )


@dataclass
class DeployLock:
    """The open lock session; :meth:`check_held` is called before each revision commits."""

    session: psycopg.Connection[Any]
    pid: int

    def check_held(self, execute: Any) -> None:
        """Raise unless the lock session still holds the lock, asked from another session.

        ``execute(sql, pid)`` runs ``sql`` with one parameter on the caller's own session and
        returns the boolean answer.
        """
        if not execute(_HELD_SQL, self.pid):
            raise DeployLockError(
                f"the deploy lock was lost (its session, pid {self.pid}, ended or released "
                "it): refusing to commit this revision without it; it was rolled back."
            )


def _configure_lock_session(conn: psycopg.Connection[Any]) -> None:
    for name, value in (
        ("idle_in_transaction_session_timeout", "0"),
        ("statement_timeout", "0"),
        ("transaction_timeout", "0"),
        ("application_name", LOCK_APPLICATION_NAME),
    ):
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))


@contextmanager
def hold_deploy_lock(
    conninfo: str,
    wait: str,
    *,
    origin: str = "deploy_lock_wait",
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[DeployLock]:
    """Open a second session, create the ledger if needed and hold the deploy lock in it.

    Waits at most ``wait`` (``0``: not at all), holding no snapshot while it waits (ADR 0155);
    ``on_wait`` is told once, with the holder, when the lock is busy. Releases the lock (closes
    the session) on exit.
    """
    try:
        session = psycopg.connect(conninfo, connect_timeout=30, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DeployLockError(f"cannot connect to the database: {_first_line(exc)}") from None
    try:
        try:
            _configure_lock_session(session)
            ensure_ledger(session)
            session.autocommit = False
            if not _lock_retrying(session, wait, origin, on_wait):  # dropped meanwhile
                raise DeployLockError(
                    "public.schema_migrations disappeared while taking the deploy lock "
                    "(a concurrent reset?); nothing was applied. Retry."
                )
        except DeployLockBusy as exc:
            raise DeployLockBusy(f"{exc}{_holders_after_rollback(session)}") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise DeployLockDenied(
                f"cannot create the migration ledger public.schema_migrations: "
                f"{_first_line(exc)} (SQLSTATE {exc.sqlstate}); nothing was applied."
            ) from None
        except psycopg.Error as exc:
            raise DeployLockError(
                f"could not take the deploy lock: {_first_line(exc)} (SQLSTATE {exc.sqlstate})"
            ) from None
        yield DeployLock(session, session.info.backend_pid)
    finally:
        # Closing ends the session and with it the transaction holding the lock. Never raises:
        # a lock session that died meanwhile has released the lock already (and every revision
        # committed while it was alive was checked, DeployLock.check_held).
        session.close()


def _holders_after_rollback(conn: psycopg.Connection[Any]) -> str:
    try:
        conn.rollback()
        conn.autocommit = True
    except psycopg.Error:
        return ""
    return _holders(conn)
