"""The payload leaves the queue row (issue 17 P1, P4, P4b; ADR 0167): the queue's payload column
becomes nullable and unwritten, the claims return the payload table's copy and pin their plan
settings with SET clauses"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0038_lean_queue_row"
down_revision = "0037_set_based_completion"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
