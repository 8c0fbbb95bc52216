"""The payload is stored once per job in payment_outbox_payloads; ledger rows stop copying it"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0024_payload_stored_once"
down_revision = "0023_completion_rail_references"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
