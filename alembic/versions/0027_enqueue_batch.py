"""enqueue_payment_outbox_batch: many jobs per call, each via enqueue (issue 17 P4b, ADR 0152)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0027_enqueue_batch"
down_revision = "0026_outbox_work_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
