"""A redriven job takes its place in its participant's FIFO line (is_head set as enqueue does)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0021_redrive_joins_the_line"
down_revision = "0020_enqueue_uses_rails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
