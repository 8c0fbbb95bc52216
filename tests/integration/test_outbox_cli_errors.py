"""`symphony-schema outbox ...` error paths (issue 20 follow-ups, ops3 item 4).

An unmigrated database gets the policy CLI's "migrate first" line, never a PostgreSQL `LINE 1`
fragment; a blank `--reason`/`--ticket` is refused before the CLI connects (exit 2, one line).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from symphony_schema.cli import main

pytestmark = pytest.mark.integration

# A URL nothing listens on: a command that connects before checking its arguments fails with
# "cannot connect" instead of naming the bad argument.
NOWHERE = "postgresql+psycopg://nobody@/nowhere?host=/nonexistent-socket-dir"


@pytest.mark.parametrize(
    "command",
    [
        ["outbox", "show", str(uuid.UUID(int=1))],
        ["outbox", "status"],
        ["outbox", "metrics", "--format", "prometheus"],
    ],
)
def test_outbox_reads_on_an_unmigrated_database_say_migrate_first(
    empty_db: Any, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--url", empty_db.url]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "migrate the database first" in err and "alembic upgrade head" in err
    assert "LINE 1" not in err and "Traceback" not in err
    assert captured.out == ""


@pytest.mark.parametrize("action", ["cancel", "redrive"])
@pytest.mark.parametrize(
    ("reason", "ticket", "named"),
    [(" ", "OPS-1", "--reason"), ("why", "\t", "--ticket"), ("", "", "--reason")],
)
def test_blank_reason_or_ticket_is_refused_before_connecting(
    action: str, reason: str, ticket: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "outbox",
            action,
            str(uuid.UUID(int=2)),
            "--reason",
            reason,
            "--ticket",
            ticket,
            "--url",
            NOWHERE,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert named in err and "22023" in err and "connect" not in err
