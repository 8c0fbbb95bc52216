"""``set-login-password`` keeps the SCRAM verifier out of the server log (issue 18 item 6,
ADR 0079): every precondition is checked before the statement that carries the verifier, every
statement-logging path is switched off for it, or the command refuses before sending it.

The logging settings are turned on for one throw-away database (``ALTER DATABASE ... SET``), and
the embedded server's log file is read: no ``SCRAM-SHA-256$`` may appear in what it wrote."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import logins

pytestmark = pytest.mark.integration

PASSWORD = "pw-" + uuid.uuid4().hex  # pragma: allowlist secret


class ServerLog:
    """The part of the embedded server's log written after ``start()``."""

    def __init__(self, pgdata: Path, conninfo: str) -> None:
        self.path = pgdata / "log"
        self.conninfo = conninfo
        self.offset = 0

    def start(self) -> None:
        self.offset = self.path.stat().st_size

    def written(self) -> str:
        # A marker logged last: when it is in the file, everything before it is too.
        marker = f"log-marker-{uuid.uuid4().hex}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"DO $$BEGIN RAISE LOG '{marker}'; END$$")
        for _ in range(100):
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                text = handle.read().decode("utf-8", "replace")
            if marker in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"the server log {self.path} never showed {marker}")


@pytest.fixture
def server_log(pg_server: Any, migrated_db: Any) -> ServerLog:
    log = ServerLog(Path(pg_server.info.pgdata), pg_server.conninfo("postgres"))
    assert log.path.is_file()
    return log


@pytest.fixture
def make_role(db: psycopg.Connection[Any]) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(attributes: str = "LOGIN") -> str:
        name = f"t_pwlog_{uuid.uuid4().hex[:12]}"
        db.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name)))
        created.append(name)
        return name

    yield make
    for name in reversed(created):
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _log_everything(db: psycopg.Connection[Any], database: str, **settings: str) -> None:
    for name, value in settings.items():
        db.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
            )
        )


def _stored(db: psycopg.Connection[Any], role: str) -> str | None:
    row = db.execute("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (role,))
    value = row.fetchone()
    return None if value is None or value[0] is None else str(value[0])


LOGGING_PATHS = {
    "log_statement": {"log_statement": "all"},
    "log_min_duration_statement": {"log_min_duration_statement": "0"},
    "log_min_duration_sample": {"log_min_duration_sample": "0", "log_statement_sample_rate": "1"},
    "log_transaction_sample_rate": {"log_transaction_sample_rate": "1"},
    "debug_print_parse": {"debug_print_parse": "on"},
    "everything": {
        "log_statement": "all",
        "log_min_duration_statement": "0",
        "log_min_duration_sample": "0",
        "log_statement_sample_rate": "1",
        "log_transaction_sample_rate": "1",
        "log_min_error_statement": "debug5",
        "debug_print_parse": "on",
        "debug_print_rewritten": "on",
    },
}


@pytest.mark.parametrize("path", sorted(LOGGING_PATHS))
def test_superuser_run_keeps_the_verifier_out_of_the_log(
    migrated_db: Any,
    pg_server: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    server_log: ServerLog,
    path: str,
) -> None:
    role = make_role()
    _log_everything(db, migrated_db.name, **LOGGING_PATHS[path])
    server_log.start()
    message = logins.set_login_password(migrated_db.conninfo, role, PASSWORD)
    written = server_log.written()
    verifier = _stored(db, role)
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$")
    assert verifier not in written and "SCRAM-SHA-256$" not in written, written[-3000:]
    assert PASSWORD not in written
    assert "statement logging was off" in message
    # The settings really were on for other statements of such a session (the test can fail).
    if path == "log_statement":
        with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
            conn.execute("SELECT 'visible-' || 'statement'")
        assert "visible-' || 'statement" in server_log.written()


@pytest.fixture
def createrole_migrator(
    pg_server: Any, migrated_db: Any, make_role: Callable[..., str]
) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        name = make_role("LOGIN CREATEROLE")
        return name, pg_server.conninfo(migrated_db.name, name)

    return make


def test_failure_path_never_sends_the_verifier(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    createrole_migrator: Callable[[], tuple[str, str]],
    server_log: ServerLog,
) -> None:
    """A CREATEROLE migrator without ADMIN on the login, at PostgreSQL's default
    log_min_error_statement = error: refused before the ALTER ROLE, nothing in the log."""
    role = make_role()
    _migrator, conninfo = createrole_migrator()
    _log_everything(db, migrated_db.name, log_min_error_statement="error")
    server_log.start()
    with pytest.raises(logins.LoginError, match="ADMIN OPTION") as caught:
        logins.set_login_password(conninfo, role, PASSWORD)
    written = server_log.written()
    assert "SCRAM-SHA-256$" not in written, written[-3000:]
    assert "nothing was changed" in str(caught.value)
    assert _stored(db, role) is None


def test_unswitchable_logging_is_refused_before_sending_the_verifier(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    createrole_migrator: Callable[[], tuple[str, str]],
    server_log: ServerLog,
) -> None:
    """The migrator has ADMIN on the login but may not change superuser-only log settings."""
    role = make_role()
    migrator, conninfo = createrole_migrator()
    db.execute(
        sql.SQL("GRANT {} TO {} WITH ADMIN TRUE").format(
            sql.Identifier(role), sql.Identifier(migrator)
        )
    )
    _log_everything(db, migrated_db.name, log_statement="ddl")
    server_log.start()
    with pytest.raises(logins.LoginError) as caught:
        logins.set_login_password(conninfo, role, PASSWORD)
    message = str(caught.value)
    assert "log_statement = ddl" in message
    assert "GRANT SET ON PARAMETER" in message and "nothing was changed" in message
    written = server_log.written()
    assert "SCRAM-SHA-256$" not in written, written[-3000:]
    assert _stored(db, role) is None


def test_a_migrator_allowed_to_switch_logging_off_succeeds_quietly(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    createrole_migrator: Callable[[], tuple[str, str]],
    server_log: ServerLog,
) -> None:
    role = make_role()
    migrator, conninfo = createrole_migrator()
    db.execute(
        sql.SQL("GRANT {} TO {} WITH ADMIN TRUE").format(
            sql.Identifier(role), sql.Identifier(migrator)
        )
    )
    db.execute(
        sql.SQL(
            "GRANT SET ON PARAMETER log_statement, log_min_error_statement, "
            "pg_stat_statements.track_utility TO {}"
        ).format(sql.Identifier(migrator))
    )
    _log_everything(db, migrated_db.name, log_statement="all", log_min_error_statement="error")
    server_log.start()
    message = logins.set_login_password(conninfo, role, PASSWORD)
    written = server_log.written()
    verifier = _stored(db, role)
    assert verifier is not None and verifier not in written and "SCRAM-SHA-256$" not in written
    assert "statement logging was off" in message
    db.execute(
        sql.SQL(
            "REVOKE SET ON PARAMETER log_statement, log_min_error_statement, "
            "pg_stat_statements.track_utility FROM {}"
        ).format(sql.Identifier(migrator))
    )
