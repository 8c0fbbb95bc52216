"""Cheaper enqueue, set-based batch enqueue, participant_id on the key table (issue 17 P4/P4b)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0031_enqueue_set_based"
down_revision = "0030_citus_worker_defaults"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
