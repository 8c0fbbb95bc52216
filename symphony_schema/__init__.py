"""Symphony schema: the database layer of the Symphony payments outbox.

The package holds everything that is logic rather than schema: database selection and the
embedded PostgreSQL 18 server, the checksummed migration engine behind ``alembic/env.py``, the
SQLAlchemy Core models, the declared privilege matrix, baseline/drift, invariants, seeding and the
``symphony-schema`` CLI.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SymphonyError", "project_root"]


class SymphonyError(Exception):
    """An error the user can act on; the message says what to do next."""


def project_root() -> Path:
    """The repository root: the directory holding ``alembic.ini`` and ``alembic/``.

    ``SYMPHONY_PROJECT_ROOT`` overrides it (tests use that for throw-away revision trees);
    otherwise the checkout this package was imported from, falling back to the current directory.
    """
    import os

    override = os.environ.get("SYMPHONY_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "alembic.ini").is_file():
        return here
    return Path.cwd().resolve()
