"""Stable hot-path plans: index access whatever the queue's statistics say."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0008_stable_hot_path_plans"
down_revision = "0007_batched_completion"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
