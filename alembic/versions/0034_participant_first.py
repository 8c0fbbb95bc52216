"""Participant-first outbox functions (issue 16, ADR 0147): completion, batch completion, repair,
cancel, redrive, lease extension and batch enqueue for one participant, whose every statement
filters by the participant; enqueue restated the same way"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0034_participant_first"
down_revision = "0033_wake_one_worker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
