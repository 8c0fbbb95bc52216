"""Enqueue and claim use the rails table: canonical rail codes, exact payload numbers"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0020_enqueue_uses_rails"
down_revision = "0019_outbox_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
