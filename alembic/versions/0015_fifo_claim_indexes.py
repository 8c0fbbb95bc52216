"""Indexes of claimable heads (the claim of per-participant FIFO), in one transaction."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0015_fifo_claim_indexes"
down_revision = "0014_fifo_dispatch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
