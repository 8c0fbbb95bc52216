"""Dispatch: per-participant FIFO, rail-scoped claims, heartbeats, in-doubt jobs, stale outcomes."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0014_fifo_dispatch"
down_revision = "0013_sql_rule_helpers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
