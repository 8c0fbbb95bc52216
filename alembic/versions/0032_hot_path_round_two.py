"""Hot path, round two (issue 17, ADR 0158): claims scan expired leases only when unleased heads
do not fill the batch; completions promote the next head themselves under a FOR NO KEY UPDATE lock
of the allocator row; the ledger loses its unused (instruction_id, idempotency_key) index"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0032_hot_path_round_two"
down_revision = "0031_enqueue_set_based"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
