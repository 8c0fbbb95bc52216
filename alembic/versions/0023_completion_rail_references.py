"""A DISPATCHED completion records its rail reference, unique per rail (P7013 when reused)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0023_completion_rail_references"
down_revision = "0022_metrics_read_in_doubt"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
