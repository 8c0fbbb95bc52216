"""The checksummed, forward-only migration engine that ``alembic/env.py`` delegates to."""

from alembic.util import CommandError

__all__ = ["MigrationRefused"]


class MigrationRefused(CommandError):
    """The engine refused to migrate; nothing was applied. The message says how to fix it.

    Subclassing Alembic's ``CommandError`` makes the ``alembic`` CLI print the message as
    ``FAILED: ...`` and exit 1 instead of dumping a traceback.
    """
