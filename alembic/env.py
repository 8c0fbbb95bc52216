"""Alembic environment: thin on purpose. The engine lives in symphony_schema.migration.engine."""

import os
import sys
from logging.config import fileConfig

from alembic import context
from symphony_schema.database import DatabaseUrlError
from symphony_schema.migration import engine

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

try:
    engine.run(context)
except DatabaseUrlError as exc:
    # A bad URL is the user's input, not a failed migration: one line naming its source, exit 2,
    # like every symphony-schema command (ADR 0090).
    print(f"alembic: error: {exc}", file=sys.stderr)
    sys.exit(2)
except BrokenPipeError:
    # `alembic upgrade head --sql | head`: the reader went away. Send the rest of stdout to
    # /dev/null (so the final flush stays quiet) and exit like other Unix tools, no traceback.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)  # 128 + SIGPIPE
