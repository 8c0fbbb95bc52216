"""Idle executors wake on a NOTIFY when a claimable job is enqueued (issue 17 P6, ADR 0151)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0026_outbox_work_notify"
down_revision = "0025_partition_attempts_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
