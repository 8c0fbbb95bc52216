"""Outbox operations: the CANCELLED and REDRIVEN states and the audit columns of the ledger"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0013_outbox_operations_states"
down_revision = "0012_serialise_the_p7005_guards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
