"""Batched completion: complete_outbox_attempts_batch, many leases in one call, all or nothing."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0007_batched_completion"
down_revision = "0006_outbox_hot_path"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
