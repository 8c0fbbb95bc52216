"""Outbox operations: the CANCELLED and REDRIVEN states and the audit columns of the ledger"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0017_outbox_operations_states"
down_revision = "0016_policy_rotation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
