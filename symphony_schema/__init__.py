"""Symphony schema: the database layer of the Symphony payments outbox.

The package holds everything that is logic rather than schema: database selection and the
embedded PostgreSQL 18 server, the checksummed migration engine behind ``alembic/env.py``, the
SQLAlchemy Core models, the declared privilege matrix, baseline/drift, invariants, seeding and the
``symphony-schema`` CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

from symphony_schema.errors import SymphonyError

__all__ = ["SymphonyError", "config_file", "project_root", "use_config_file"]

CONFIG_NAME = "alembic.ini"

#: Set by ``symphony-schema -c/--config FILE``: the project is the directory holding FILE.
_config_file: Path | None = None


def use_config_file(path: Path | None) -> None:
    """Act on the project whose Alembic config is ``path`` (``symphony-schema -c FILE``)."""
    global _config_file
    if path is None:
        _config_file = None
        return
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise SymphonyError(f"-c/--config: no such file: {path}")
    _config_file = resolved


def _find_upward(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / CONFIG_NAME).is_file():
            return directory
    return None


def project_root() -> Path:
    """The project the commands act on: the directory holding ``alembic.ini`` and ``alembic/``.

    Like ``alembic`` (which reads ``alembic.ini`` from the current directory or ``-c``), in this
    order: ``SYMPHONY_PROJECT_ROOT`` (tests use it for throw-away revision trees); the directory
    of the ``-c/--config`` file; the nearest directory at or above the current one holding
    ``alembic.ini``; the checkout this package was installed from; the current directory.
    """
    override = os.environ.get("SYMPHONY_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    if _config_file is not None:
        return _config_file.parent
    cwd = Path.cwd().resolve()
    found = _find_upward(cwd)
    if found is not None:
        return found
    here = Path(__file__).resolve().parent.parent
    if (here / CONFIG_NAME).is_file():
        return here
    return cwd


def config_file() -> Path:
    """The Alembic config of the project: the ``-c`` file, else ``<project root>/alembic.ini``."""
    if _config_file is not None and not os.environ.get("SYMPHONY_PROJECT_ROOT"):
        return _config_file
    return project_root() / CONFIG_NAME
