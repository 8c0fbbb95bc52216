"""The CLI against the real embedded server, as a newcomer uses it (issue 12 items 5, 6, 7, 9)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from typing import Any

import psycopg
import pytest

from symphony_schema import embedded
from symphony_schema.cli import main
from tests.helpers import BIN, cli_env, run_cli

pytestmark = pytest.mark.integration

SCRIPT = BIN / "symphony-schema"


_NO_URL = ["SYMPHONY_DATABASE_URL", "DATABASE_URL"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, unset=_NO_URL)


# -- item 5: db psql -U really connects as that role ---


@pytest.mark.parametrize(
    "how", [["-U", "{login}", "--"], ["--user", "{login}", "--"], ["--", "-U", "{login}"]]
)
def test_db_psql_runs_as_the_user_given(how: list[str], migrated_db: Any, login: Any) -> None:
    executor = login("symphony_executor")
    user_args = [arg.replace("{login}", executor.name) for arg in how]
    whoami = _cli("db", "psql", "--url", migrated_db.url, *user_args, "-Atc", "SELECT current_user")
    assert (whoami.returncode, whoami.stdout.strip()) == (0, executor.name), whoami.stderr
    # The local-dev guide's demo: the service login may read the policy but not change it.
    denied = _cli(
        "db",
        "psql",
        "--url",
        migrated_db.url,
        *user_args,
        "-c",
        "DELETE FROM public.policy_versions",
    )
    assert denied.returncode == 1
    assert "permission denied for table policy_versions" in denied.stderr


# -- item 7: the URL db url prints is one psql accepts ---


def test_psql_accepts_what_db_url_prints(migrated_db: Any) -> None:
    printed = _cli("db", "url", "--url", migrated_db.url)
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert url.startswith("postgresql://")
    psql = subprocess.run(
        [str(embedded.binary("psql")), "-X", "-d", url, "-Atc", "SELECT current_database()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (psql.returncode, psql.stdout.strip()) == (0, migrated_db.name), psql.stderr


# -- item 6: a database that does not exist is one line, exit 2 ---


def test_ledger_on_a_missing_database_is_one_line_exit_2(
    pg_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ledger", "--url", pg_server.sqlalchemy_url("h8_no_such_database")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert 'database "h8_no_such_database" does not exist' in err
    assert "--url" in err  # names where the URL came from


def test_ledger_on_a_missing_database_shows_no_traceback(pg_server: Any) -> None:
    result = _cli("ledger", "--url", pg_server.sqlalchemy_url("h8_no_such_database"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- item 9: reset asks on a terminal unless --yes ---


def _run_on_a_terminal(args: list[str], answer: bytes | None) -> tuple[int, str]:
    """Run the CLI with stdin/stdout on a pseudo-terminal; type ``answer`` after the prompt."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=cli_env(unset=_NO_URL),
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 120
    answered = answer is None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(controller, answer or b"")
                answered = True
        elif process.poll() is not None:
            break
    code = process.wait(timeout=120)
    os.close(controller)
    return code, output.decode(errors="replace")


def _junk_exists(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('public.h8_junk') IS NOT NULL").fetchone()
        return bool(row and row[0])


def test_reset_on_a_terminal_asks_and_no_keeps_everything(migrated_db: Any) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.h8_junk (x int)")
    code, output = _run_on_a_terminal(["reset", "--url", migrated_db.url], b"n\n")
    assert "drop schema public with all its data? [y/N]" in output
    assert migrated_db.name in output  # says which database
    assert code == 1 and "reset cancelled: nothing was changed" in output
    assert _junk_exists(migrated_db.conninfo)


def test_reset_on_a_terminal_with_yes_does_not_ask(migrated_db: Any) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.h8_junk (x int)")
    code, output = _run_on_a_terminal(["reset", "--yes", "--quiet", "--url", migrated_db.url], None)
    assert "[y/N]" not in output
    assert code == 0, output
    assert not _junk_exists(migrated_db.conninfo)
