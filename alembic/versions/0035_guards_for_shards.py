"""The pending-write, ledger-insert and participant guards filter by the row's participant on a
Citus shard (issue 16, ADR 0149); one node keeps their look-ups"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0035_guards_for_shards"
down_revision = "0034_participant_first"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
