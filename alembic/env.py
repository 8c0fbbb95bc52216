"""Alembic environment: thin on purpose. The engine lives in symphony_schema.migration.engine."""

from logging.config import fileConfig

from alembic import context
from symphony_schema.migration import engine

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

engine.run(context)
