"""Serialise the P7005 guards on the idempotency key"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0012_serialise_the_p7005_guards"
down_revision = "0011_outbox_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
