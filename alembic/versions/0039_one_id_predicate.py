"""One owner of the id rule (issue 17 follow-up, ADR 0165): enqueue's argument predicate states
its ids through outbox_id_ok instead of repeating the rule"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0039_one_id_predicate"
down_revision = "0038_lean_queue_row"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
