"""Helpers shared by test modules (plain imports: conftest modules stay fixtures-only)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

#: The directory of the virtualenv's console scripts (``symphony-schema``, ``alembic``).
BIN = Path(sys.executable).parent


class OutboxCounts(NamedTuple):
    """Rows in ``payment_outbox_pending``, ``payment_outbox_attempts`` and
    ``participant_outbox_sequences`` (the ``outbox`` fixture's ``counts()``)."""

    pending: int
    attempts: int
    sequences: int


def cli_env(env: Mapping[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without the variables whose names start with one of ``unset``
    (``"POLICY_"`` drops them all), plus ``env``."""
    prefixes = tuple(unset)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not (prefixes and key.startswith(prefixes))
    }
    environment.update(env or {})
    return environment


def run_cli(
    *args: str,
    program: str = "symphony-schema",
    env: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run one of the project's console scripts as a user would, in a child process, with
    :func:`cli_env` (``env``, ``unset``). Output is captured as text; the exit status is the
    caller's to check."""
    return subprocess.run(
        [str(BIN / program), *args],
        capture_output=True,
        text=True,
        env=cli_env(env, unset),
        cwd=cwd,
        check=False,
        timeout=timeout,
    )
