"""Programmatic access to the engine (tests, CLI, nox): the same path as ``alembic upgrade``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from alembic.config import Config

from alembic import command
from symphony_schema import config_file

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory


def alembic_config(
    url: str | None = None,
    *,
    script_location: Path | None = None,
    quiet: bool = True,
    extra: dict[str, str] | None = None,
) -> Config:
    """An Alembic ``Config`` for the project's ``alembic.ini`` with ``-x`` arguments set."""
    config = Config(str(config_file()))
    if script_location is not None:
        config.set_main_option("script_location", str(script_location))
    xargs = [f"quiet={'1' if quiet else '0'}"]
    if url:
        xargs.append(f"url={url}")
    xargs += [f"{key}={value}" for key, value in (extra or {}).items()]
    config.cmd_opts = argparse.Namespace(x=xargs)
    return config


def upgrade(
    url: str | None = None,
    revision: str = "head",
    *,
    script_location: Path | None = None,
    quiet: bool = True,
) -> None:
    """``alembic upgrade <revision>`` through the checksummed engine."""
    command.upgrade(alembic_config(url, script_location=script_location, quiet=quiet), revision)


def script_directory(script_location: Path | None = None) -> ScriptDirectory:
    """The project's revisions, loaded the way the engine loads them: each module compiled from
    the checksummed source text, never from bytecode (ADR 0055)."""
    from alembic.script import ScriptDirectory

    from symphony_schema.migration.loader import use_source_only

    return use_source_only(
        ScriptDirectory.from_config(alembic_config(script_location=script_location))
    )


def head_revision(script_location: Path | None = None) -> str:
    """The single head of the revision chain."""
    scripts = script_directory(script_location)
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError("there are no revisions")
    return head
