"""Outbox hardening: claims record lost leases, stored retry ceiling, no advisory locks."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0011_outbox_hardening"
down_revision = "0010_reject_blank_long_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
