"""Partition the attempts ledger by outbox_id (UTC enqueue day), archive bookkeeping"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0025_partition_attempts_ledger"
down_revision = "0024_payload_stored_once"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
