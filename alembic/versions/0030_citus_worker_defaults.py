"""On a Citus coordinator, the owner's default privileges are replayed on every worker"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0030_citus_worker_defaults"
down_revision = "0029_claim_for_participant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
