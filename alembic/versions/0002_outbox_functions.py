"""Outbox functions: retry ceiling, sequence allocator, enqueue, claim, complete, repair."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0002_outbox_functions"
down_revision = "0001_init"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
