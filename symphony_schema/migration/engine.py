"""The migration engine behind ``alembic/env.py``.

Online ``alembic upgrade``:

1. select the database (explicit ``-x url=`` > ``SYMPHONY_DATABASE_URL`` > ``DATABASE_URL`` >
   embedded PostgreSQL 18) and refuse servers older than 18;
2. create the ledger if needed and take the deploy lock (``LOCK TABLE public.schema_migrations
   IN SHARE UPDATE EXCLUSIVE MODE``, held by a second session for the whole run, see
   :mod:`symphony_schema.migration.deploy_lock`), waiting at most ``deploy_lock_wait`` (0: not
   at all);
3. validate every applied revision against its file before any DDL;
4. run each pending revision in its own transaction together with its ledger row, under
   ``lock_timeout`` and ``statement_timeout``; after each, refuse INVALID indexes left behind,
   and commit only if the lock session still holds the deploy lock;
5. print one line per revision and a summary.

Offline ``alembic upgrade --sql`` prints the version gate, ``SET lock_timeout`` and
``statement_timeout``, the ledger DDL and, per revision, ``BEGIN``, the deploy lock (waiting at
most ``deploy_lock_wait``), its SQL and ledger insert, ``COMMIT`` (ADR 0096). With
``config.attributes["connection"]`` set, the online run migrates that connection's database
(ADR 0095). ``downgrade`` and ``stamp`` are refused.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Collection, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script
from psycopg.conninfo import make_conninfo
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from symphony_schema import project_root
from symphony_schema.database import select_database
from symphony_schema.errors import InvalidIndexLeft, MigrationRefused, ServerTooOld
from symphony_schema.migration import autogen
from symphony_schema.migration import sql as sql_runner
from symphony_schema.migration.checksum import RevisionSourceError, read_revision
from symphony_schema.migration.deploy_lock import (
    DEPLOY_LOCK_SQL,
    DeployLock,
    DeployLockError,
    hold_deploy_lock,
)
from symphony_schema.migration.invalid_indexes import invalid_index_problems
from symphony_schema.migration.ledger import (
    LEDGER_DDL,
    description_of,
    ledger_insert,
    pending_problems,
    read_alembic_heads,
    read_ledger,
    refusal,
    validation_problems,
)
from symphony_schema.migration.loader import source_of, use_source_only
from symphony_schema.redact import redact_conninfo

MIN_SERVER_VERSION_NUM = 180000
MIN_SERVER_VERSION = "18"

VERSION_GATE_SQL = f"""\
DO $symphony_gate$
BEGIN
    IF current_setting('server_version_num')::int < {MIN_SERVER_VERSION_NUM} THEN
        RAISE EXCEPTION 'Symphony requires PostgreSQL {MIN_SERVER_VERSION}+ (server is %)',
            current_setting('server_version')
            USING ERRCODE = 'feature_not_supported';
    END IF;
END
$symphony_gate$"""


@dataclass(frozen=True)
class EngineSettings:
    """Knobs of one run: ``-x name=value``, else ``SYMPHONY_<NAME>``, else the default."""

    lock_timeout: str = "10s"
    statement_timeout: str = "15min"
    deploy_lock_wait: str = "120s"
    quiet: bool = False

    @classmethod
    def from_sources(cls, xargs: Mapping[str, str], env: Mapping[str, str]) -> EngineSettings:
        def pick(name: str, default: str) -> str:
            return xargs.get(name) or env.get(f"SYMPHONY_{name.upper()}") or default

        quiet = pick("quiet", "false").strip().lower() in {"1", "true", "yes", "on"}
        return cls(
            lock_timeout=pick("lock_timeout", cls.lock_timeout),
            statement_timeout=pick("statement_timeout", cls.statement_timeout),
            deploy_lock_wait=pick("deploy_lock_wait", cls.deploy_lock_wait),
            quiet=quiet,
        )


class RevisionRecorder:
    """Writes the ledger row of each revision inside its transaction and prints one line for it."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        #: The deploy lock of an online upgrade, checked before each revision commits.
        self.lock: DeployLock | None = None
        self.applied: list[str] = []
        self.started = time.monotonic()
        self._step_started = self.started

    def restart_clock(self) -> None:
        self.started = self._step_started = time.monotonic()

    def on_version_apply(
        self,
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        del heads, run_args
        if step.is_stamp or not step.is_upgrade:
            raise MigrationRefused("the Symphony engine only applies revisions forward")
        script = step.up_revision
        assert isinstance(script, Script)
        now = time.monotonic()
        elapsed_ms = round((now - self._step_started) * 1000)
        source = source_of(script) or read_revision(Path(script.path))
        _refuse_sql_other_than_hashed(script, source.sql_sha256, sql_runner.sent_digest())
        insert = ledger_insert(
            script.revision,
            description_of(script),
            source.checksum,
            None if ctx.as_sql else elapsed_ms,
        )
        if ctx.as_sql:
            compiled = insert.compile(dialect=ctx.dialect, compile_kwargs={"literal_binds": True})
            ctx.impl.static_output(f"{compiled};")
        else:
            assert ctx.connection is not None
            ctx.connection.execute(insert)
            _refuse_invalid_indexes(ctx.connection, script.revision)
            if self.lock is not None:
                _refuse_without_lock(ctx.connection, self.lock, script.revision)
            self.say(f"applied {script.revision:<32} {elapsed_ms:>7} ms")
        self.applied.append(script.revision)
        self._step_started = time.monotonic()

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def _refuse_sql_other_than_hashed(script: Script, expected: str | None, sent: str | None) -> None:
    """The SQL a revision sent must be exactly the ``.sql`` text its checksum covers (ADR 0055).

    ``sent`` is the digest :func:`~symphony_schema.migration.sql.execute_sql` kept while the
    revision's ``upgrade()`` ran; a revision without a ``.sql`` file has nothing to compare.
    """
    if expected is None or sent == expected:
        return
    what = f"SQL with digest {sent}" if sent else "no SQL through the runner"
    raise MigrationRefused(
        f"revision {script.revision} sent {what}, which is not the text of its .sql file that "
        f"the checksum covers ({expected}); its ledger row was not written. Something between "
        "the file and the server changed the SQL: compare symphony_schema/migration/ and the "
        "revision's .py with version control."
    )


def _refuse_invalid_indexes(conn: Connection, revision: str | None) -> None:
    """A failed or interrupted ``CREATE INDEX CONCURRENTLY`` leaves an INVALID index: stop on it.

    Checked after every revision and once before migrating (a crash in an earlier run of a
    non-transactional revision leaves the index behind with no revision to blame). The engine
    never drops or rebuilds an index itself (ADR 0056): the message gives the exact commands.
    """
    problems = invalid_index_problems(conn)
    if problems:
        culprit = (
            f"revision {revision} left an INVALID index" if revision else "refusing to migrate"
        )
        raise InvalidIndexLeft(
            f"{culprit}; nothing was applied after it:\n  - " + "\n  - ".join(problems)
        )


def _refuse_without_lock(conn: Connection, lock: DeployLock, revision: str) -> None:
    """Called inside the revision's transaction, just before it commits."""
    try:
        lock.check_held(lambda query, pid: conn.exec_driver_sql(query, (pid,)).scalar())
    except DeployLockError as exc:
        raise type(exc)(f"revision {revision}: {exc}") from None  # same class, which revision


def _command_name(context: EnvironmentContext) -> str:
    fn = context.context_opts.get("fn")
    return getattr(fn, "__name__", "") if fn is not None else ""


def _x_arguments(context: EnvironmentContext) -> dict[str, str]:
    xargs = context.get_x_argument(as_dictionary=True)
    return {str(key): str(value) for key, value in xargs.items()}


def run(context: Any) -> None:
    """Entry point called by ``alembic/env.py`` with the ``alembic.context`` proxy module."""
    # ``alembic.context`` is a module proxying the active EnvironmentContext; the object itself
    # is needed to see which command (upgrade, downgrade, stamp, ...) is being run.
    context = getattr(context, "_proxy", None) or context
    command = _command_name(context)
    if command == "downgrade":
        raise MigrationRefused(
            "downgrade is refused: Symphony migrations are forward-only. "
            "To undo a change, add a new revision that reverses it."
        )
    if command == "do_stamp":
        raise MigrationRefused(
            "stamp is refused: it would move alembic_version without the checksum ledger. "
            "Use 'symphony-schema baseline apply' to bootstrap a database."
        )
    use_source_only(context.script)
    xargs = _x_arguments(context)
    settings = EngineSettings.from_sources(xargs, os.environ)
    recorder = RevisionRecorder(settings.quiet)
    try:
        if autogen.write_revision_only(context):  # plain `alembic revision`: no database
            return
        if context.is_offline_mode():
            _run_offline(context, settings, recorder)
        else:
            _run_online(context, settings, recorder, mutating=command == "upgrade")
    except (RevisionSourceError, sql_runner.RevisionSqlError) as exc:
        raise MigrationRefused(f"refusing to migrate: {exc}") from None


#: A duration the offline script may carry: PostgreSQL's ``number[unit]`` and nothing else (the
#: value is written into SQL, and no server is there to check it).
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?")


def _offline_duration(name: str, value: str) -> tuple[str, bool]:
    """``(SQL literal, is zero)`` for a knob of the offline script, or a refusal naming it."""
    text = value.strip()
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise MigrationRefused(
            f"invalid {name}={value!r} for the offline script: give a duration such as 10s, "
            "2min or 0 (a number with an optional unit us, ms, s, min, h or d); no script "
            "was written."
        )
    return "'" + text.replace("'", "''") + "'", float(match[1]) == 0


def _run_offline(
    context: EnvironmentContext, settings: EngineSettings, recorder: RevisionRecorder
) -> None:
    """Print the deploy script: gate, timeouts, ledger, then one locked transaction per revision.

    The script carries the engine's safety (ADR 0096): the session's ``lock_timeout`` and
    ``statement_timeout``; and, since a psql script cannot keep a second session holding the
    deploy lock, every transaction it opens takes the lock first (waiting at most
    ``deploy_lock_wait``, ``0``: ``NOWAIT``), so each revision commits with its ledger row under
    the lock and serialises with ``alembic upgrade`` and other scripts.
    """
    lock_timeout, _ = _offline_duration("lock_timeout", settings.lock_timeout)
    statement_timeout, _ = _offline_duration("statement_timeout", settings.statement_timeout)
    wait, nowait = _offline_duration("deploy_lock_wait", settings.deploy_lock_wait)
    take_lock = (
        f"{DEPLOY_LOCK_SQL} NOWAIT;"
        if nowait
        else f"SET LOCAL lock_timeout = {wait};\n{DEPLOY_LOCK_SQL};\n"
        f"SET LOCAL lock_timeout = {lock_timeout};"
    )
    create_ledger, rest_of_ledger = LEDGER_DDL.split(";\n", 1)
    context.configure(
        url="postgresql+psycopg://",
        literal_binds=True,
        transaction_per_migration=True,
        on_version_apply=recorder.on_version_apply,
    )
    migration_context = context.get_context()
    impl = migration_context.impl
    impl.static_output(
        "-- Symphony schema: offline migration script for psql. The engine's version gate,\n"
        "-- timeouts and ledger come first; every transaction takes the deploy lock first, and\n"
        "-- each revision commits together with its ledger row. psql must stop at the first\n"
        "-- error (a failed lock would otherwise let the next revision run): the script says so.\n"
        "\\set ON_ERROR_STOP on\n"
        f"{VERSION_GATE_SQL};\n\n"
        f"SET lock_timeout = {lock_timeout};\n"
        f"SET statement_timeout = {statement_timeout};\n"
        "SET client_connection_check_interval = '1s';\n"
        # The server must split the revision text as the lints did (ADR 0100).
        "SET standard_conforming_strings = on;\n\n"
        f"BEGIN;\n{create_ledger};\n{take_lock}\n{rest_of_ledger};\nCOMMIT;\n"
    )

    def begin_and_lock() -> None:
        impl.static_output(f"BEGIN;\n{take_lock}")

    # Every BEGIN Alembic writes (one per revision, and the one after a non-transactional
    # revision's autocommit block) is followed by the deploy lock.
    setattr(impl, "emit_begin", begin_and_lock)  # noqa: B010
    with context.begin_transaction():
        context.run_migrations()


def check_server_version(conninfo: str) -> str:
    """Refuse servers older than PostgreSQL 18, naming both versions.

    Runs on a plain psycopg connection before SQLAlchemy's dialect initialises, so that an old or
    oddly configured server gets this message rather than a dialect error.
    """
    try:
        with psycopg.connect(conninfo, connect_timeout=30) as raw:
            return _refuse_old_server(raw)
    except psycopg.OperationalError as exc:
        raise MigrationRefused(f"cannot connect to the database: {exc}") from exc


def _refuse_old_server(raw: psycopg.Connection[Any]) -> str:
    number = raw.info.server_version
    shown = raw.execute("SHOW server_version").fetchone()
    raw_text = shown[0] if shown else str(number)
    text = raw_text.decode() if isinstance(raw_text, bytes) else str(raw_text)
    if number < MIN_SERVER_VERSION_NUM:
        raise ServerTooOld(
            f"Symphony requires PostgreSQL {MIN_SERVER_VERSION}+ (server is {text.split()[0]}). "
            "Point the URL at a PostgreSQL 18 server, or unset it to use the embedded one."
        )
    return text


def _set(conn: Connection, name: str, value: str, origin: str) -> None:
    try:
        conn.execute(
            sa.text(f"SELECT pg_catalog.set_config('{name}', :value, false)"), {"value": value}
        )
    except sa_exc.DBAPIError as exc:
        conn.rollback()
        raise MigrationRefused(f"invalid {origin}={value!r}: {exc.orig}") from exc


def configure_session(conn: Connection, settings: EngineSettings) -> None:
    """Timeouts of the migrating session; a bad value is refused before anything is written."""
    _set(conn, "lock_timeout", settings.lock_timeout, "lock_timeout")
    _set(conn, "statement_timeout", settings.statement_timeout, "statement_timeout")
    # A deployer killed mid-statement must not keep running (and holding its locks) until its
    # statement ends: the server polls the client socket and aborts the session once gone.
    _set(conn, "client_connection_check_interval", "1s", "client_connection_check_interval")
    conn.commit()


def take_deploy_lock(
    held: ExitStack, conninfo: str, settings: EngineSettings, *, shared: bool = False
) -> DeployLock:
    """Hold the deploy lock in a second session until ``held`` closes (ADR 0065).

    ``shared``: ``conninfo`` was derived from the caller's connection (ADR 0095); a failure to
    open the second session says so.
    """
    try:
        return held.enter_context(
            hold_deploy_lock(
                conninfo, settings.deploy_lock_wait, on_wait=None if settings.quiet else _tell
            )
        )
    except DeployLockError as exc:
        if shared and str(exc).startswith("cannot connect"):
            raise MigrationRefused(
                f"{exc}. The deploy lock is held by a second session opened with the parameters "
                f"of the connection in {SHARED} ({redact_conninfo(conninfo)}); they must allow a "
                "second login (a password the driver was given, a passfile or a trusted "
                "socket). Nothing was applied."
            ) from None
        raise


def _tell(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _refuse_lock_elsewhere(conn: Connection, lock: DeployLock) -> None:
    """The lock session opened from the shared connection's parameters must be on its database."""
    try:
        lock.check_held(lambda query, pid: conn.exec_driver_sql(query, (pid,)).scalar())
    except DeployLockError:
        raise MigrationRefused(
            f"the deploy-lock session opened with the parameters of the connection in {SHARED} "
            f"(pid {lock.pid}) holds no deploy lock on that connection's database: the "
            "parameters lead to another server or database (a pooler?). Nothing was applied."
        ) from None
    conn.commit()


#: Where Alembic's documented shared connection comes from (ADR 0095).
SHARED = "config.attributes['connection']"


def _run_online(
    context: EnvironmentContext,
    settings: EngineSettings,
    recorder: RevisionRecorder,
    *,
    mutating: bool,
) -> None:
    shared = context.config.attributes.get("connection")
    if shared is not None:
        _run_shared(shared, context, settings, recorder, mutating=mutating)
        return
    xargs = _x_arguments(context)
    selected = select_database(xargs.get("url"), announce=not settings.quiet)
    engine = sa.create_engine(selected.url, poolclass=NullPool)
    check_server_version(selected.conninfo)
    try:
        with engine.connect() as conn:
            _migrate(context, conn, selected.conninfo, settings, recorder, mutating=mutating)
    finally:
        engine.dispose()


def _run_shared(
    shared: object,
    context: EnvironmentContext,
    settings: EngineSettings,
    recorder: RevisionRecorder,
    *,
    mutating: bool,
) -> None:
    """Migrate the database of the connection (or engine) the caller shared (ADR 0095).

    Everything the URL path does happens on it: the version gate, the deploy lock (held by a
    second session opened with the same connection parameters), validation, the ledger and one
    transaction per revision. That last point is why a connection already inside a transaction
    (Alembic's "external transaction" recipe, ``engine.begin()``) is refused: the engine commits
    each revision with its ledger row, which it cannot do inside the caller's transaction. The
    caller's session settings changed here (timeouts) are put back before returning.
    """
    if isinstance(shared, sa.Engine):
        with shared.connect() as conn:
            _run_shared(conn, context, settings, recorder, mutating=mutating)
        return
    if not isinstance(shared, Connection):
        raise MigrationRefused(
            f"{SHARED} is a {type(shared).__name__}: give a SQLAlchemy Connection or Engine "
            "(psycopg 3 driver, postgresql+psycopg://), or leave it unset to use the URL rule; "
            "nothing was applied."
        )
    if shared.closed or shared.invalidated:
        raise MigrationRefused(
            f"the connection in {SHARED} is closed or invalidated; nothing was applied."
        )
    if _in_transaction(shared):
        raise MigrationRefused(
            f"the connection in {SHARED} is inside a transaction: the Symphony engine commits "
            "each revision together with its ledger row and cannot do that inside the "
            "caller's transaction (ADR 0095). Pass engine.connect() (not engine.begin()) or "
            "the Engine itself, or commit first; nothing was applied."
        )
    raw = shared.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):
        raise MigrationRefused(
            f"the connection in {SHARED} does not use the psycopg 3 driver (dialect driver "
            f"{shared.dialect.driver!r}): the engine opens its deploy-lock session with the "
            "same connection parameters through psycopg; use postgresql+psycopg://. "
            "Nothing was applied."
        )
    # The second (deploy-lock) session: the very parameters libpq used for this connection,
    # password included (info.dsn leaves it out).
    conninfo = (
        make_conninfo(raw.info.dsn, password=raw.info.password)
        if raw.info.password
        else raw.info.dsn
    )
    try:
        _refuse_old_server(raw)
        raw.rollback()  # SHOW began a transaction (on the driver connection, behind SQLAlchemy)
        if not settings.quiet:
            print(
                f"migrating the database of {SHARED}: {redact_conninfo(raw.info.dsn)}",
                file=sys.stderr,
                flush=True,
            )
        saved = _session_settings(shared)
    except (sa_exc.DBAPIError, psycopg.Error) as exc:
        raise MigrationRefused(f"cannot use the connection in {SHARED}: {exc}") from exc
    try:
        _migrate(context, shared, conninfo, settings, recorder, mutating=mutating, shared=True)
    finally:
        _restore_session_settings(shared, saved)


_SAVED_SETTINGS = ("lock_timeout", "statement_timeout", "client_connection_check_interval")


def _in_transaction(conn: Connection) -> bool:
    return conn.in_transaction() or conn.in_nested_transaction()


def _session_settings(conn: Connection) -> dict[str, str]:
    query = sa.text("SELECT pg_catalog.current_setting(:n)")
    values = {name: str(conn.execute(query, {"n": name}).scalar()) for name in _SAVED_SETTINGS}
    conn.commit()
    return values


def _restore_session_settings(conn: Connection, saved: dict[str, str]) -> None:
    """Best effort: a connection broken by the failure keeps the original error in front."""
    try:
        if conn.in_transaction():
            conn.rollback()
        for name, value in saved.items():
            conn.execute(
                sa.text("SELECT pg_catalog.set_config(:n, :v, false)"), {"n": name, "v": value}
            )
        conn.commit()
    except sa_exc.DBAPIError:
        conn.rollback()


def _migrate(
    context: EnvironmentContext,
    conn: Connection,
    conninfo: str,
    settings: EngineSettings,
    recorder: RevisionRecorder,
    *,
    mutating: bool,
    shared: bool = False,
) -> None:
    """Validate, lock and migrate on ``conn``; ``conninfo`` opens the deploy-lock session."""
    scripts = context.script
    try:
        # Closing order: the lock session last (``conn`` is closed by its owner, after).
        with ExitStack() as held:
            if mutating:
                configure_session(conn, settings)
                recorder.lock = take_deploy_lock(held, conninfo, settings, shared=shared)
                held.callback(_rollback_left_over, conn)  # runs before the lock is released
                if shared:
                    _refuse_lock_elsewhere(conn, recorder.lock)
                rows = read_ledger(conn)
                problems = validation_problems(
                    rows, read_alembic_heads(conn), scripts, project_root()
                )
                conn.commit()
                if not problems:
                    problems = pending_problems(
                        scripts, (row.version for row in rows), project_root()
                    )
                if not problems:
                    _refuse_invalid_indexes(conn, None)
                    conn.commit()
                if problems:
                    raise refusal(problems)
            # Alembic treats a connection already inside a transaction as "external" and would
            # then run every revision in that one transaction: start clean so that each
            # revision commits on its own, with its ledger row.
            assert not conn.in_transaction(), "engine bug: connection left inside a transaction"
            context.configure(
                connection=conn,
                transaction_per_migration=True,
                on_version_apply=recorder.on_version_apply,
                # alembic check / revision --autogenerate (not mutating: no lock, no ledger);
                # an upgrade has no use for the models (not imported: start-up counts, P5).
                **({} if mutating else autogen.configure_options()),
            )
            recorder.restart_clock()
            with context.begin_transaction():
                context.run_migrations()
            if mutating:
                _summarise(conn, recorder)
    except (sa_exc.DBAPIError, psycopg.Error) as exc:
        # Raw revision SQL raises psycopg errors directly; SQLAlchemy wraps the rest.
        error = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        last = recorder.applied[-1] if recorder.applied else "the revision it was at before"
        partial = sql_runner.running_non_transactional
        if partial:
            raise MigrationRefused(
                f"migration failed in non-transactional revision {partial}: its statements "
                f"before the failing one have committed, and the ledger stays at {last}. Fix the "
                "cause and rerun: indexes already built are skipped (ADR 0056).\n"
                f"  {type(error).__name__}: {error}"
            ) from exc
        raise MigrationRefused(
            f"migration failed and its transaction was rolled back; the database stays at {last}.\n"
            f"  {type(error).__name__}: {error}"
        ) from exc


def _rollback_left_over(conn: Connection) -> None:
    """Before the deploy lock goes: nothing of a failed revision may commit without it."""
    if conn.in_transaction():
        try:
            conn.rollback()
        except sa_exc.DBAPIError:
            conn.invalidate()


def _summarise(conn: Connection, recorder: RevisionRecorder) -> None:
    heads = read_alembic_heads(conn)
    conn.commit()
    at = ", ".join(heads) or "base"
    total_ms = round((time.monotonic() - recorder.started) * 1000)
    if recorder.applied:
        recorder.say(f"migrated to {at}: {len(recorder.applied)} revision(s) in {total_ms} ms")
    else:
        recorder.say(f"already at {at}: nothing to do")
