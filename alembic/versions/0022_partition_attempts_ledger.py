"""Partition the attempts ledger by outbox_id (UTC enqueue day), archive bookkeeping"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0022_partition_attempts_ledger"
down_revision = "0021_redrive_joins_the_line"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
