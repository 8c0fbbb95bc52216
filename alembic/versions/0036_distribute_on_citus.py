"""On a Citus coordinator with the owner logging in between the nodes: the outbox distributed by
participant_id (widened keys, reference tables, co-located tables, delegated functions); nothing
elsewhere (issue 16, ADRs 0126, 0145, 0146, 0149)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0036_distribute_on_citus"
down_revision = "0035_guards_for_shards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
