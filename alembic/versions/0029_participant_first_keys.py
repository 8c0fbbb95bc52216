"""Queue keys lead with participant_id; claim_outbox_batch_for_participant (ADR 0126)"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0029_participant_first_keys"
down_revision = "0028_enqueue_prunes_the_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
