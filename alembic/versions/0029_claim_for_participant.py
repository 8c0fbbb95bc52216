"""claim_outbox_batch_for_participant: the claim of one participant (ADRs 0145, 0163)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0029_claim_for_participant"
down_revision = "0028_enqueue_prunes_the_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
