"""Policy rotation: rotate, accept and retire policy versions; immutability triggers"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0016_policy_rotation"
down_revision = "0015_fifo_claim_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
