"""Outbox hot path: generic claim plans, one-statement fencing, one enqueue look-up."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0006_outbox_hot_path"
down_revision = "0005_policy_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
