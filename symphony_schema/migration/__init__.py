"""The checksummed, forward-only migration engine that ``alembic/env.py`` delegates to."""

from symphony_schema.errors import MigrationRefused

__all__ = ["MigrationRefused"]
