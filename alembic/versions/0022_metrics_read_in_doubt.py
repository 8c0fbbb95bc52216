"""outbox_metrics() counts in-doubt jobs from the queue's in_doubt flag, not a ledger probe"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0022_metrics_read_in_doubt"
down_revision = "0021_redrive_joins_the_line"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
