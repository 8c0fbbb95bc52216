"""Init: version gate, UUID helpers, enum types, outbox tables, indexes, append-only enforcement."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0001_init"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
