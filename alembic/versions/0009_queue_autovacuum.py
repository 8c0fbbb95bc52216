"""Queue autovacuum: vacuum the pending queue after a fixed number of dead rows, not a share."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0009_queue_autovacuum"
down_revision = "0008_stable_hot_path_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
