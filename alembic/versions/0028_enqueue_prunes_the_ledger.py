"""Enqueue reads the partitioned ledger by the key row's job: one partition, none for a new key"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0028_enqueue_prunes_the_ledger"
down_revision = "0027_enqueue_batch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
