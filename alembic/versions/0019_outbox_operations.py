"""Outbox operations: audited cancel and redrive, metrics, rails and rail references"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0019_outbox_operations"
down_revision = "0018_outbox_operations_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
