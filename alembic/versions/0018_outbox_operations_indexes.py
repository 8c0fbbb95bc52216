"""Outbox operations: the one-outcome rule with CANCELLED, redrive and metrics indexes"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0018_outbox_operations_indexes"
down_revision = "0017_outbox_operations_states"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
