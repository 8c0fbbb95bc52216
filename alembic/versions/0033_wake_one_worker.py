"""Wake one worker per notification (issue 17 P6, ADR 0159): the work notification carries a
hint that picks one of an executor's workers; an empty claim skips the take-over statement when
no expired lease is due (ADR 0160)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0033_wake_one_worker"
down_revision = "0032_hot_path_round_two"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
