"""Reject blank and oversized ids: whitespace-only ids and ids too long for indexes are 22023."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0010_reject_blank_long_ids"
down_revision = "0009_queue_autovacuum"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
