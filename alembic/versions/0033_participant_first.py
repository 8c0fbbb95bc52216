"""Participant-first outbox functions (issue 16, ADR 0147): completion, batch completion, repair,
cancel, redrive, lease extension and batch enqueue for one participant, whose every statement
filters by the participant; enqueue restated the same way"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0033_participant_first"
down_revision = "0032_hot_path_round_two"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
