"""Roles: create the Symphony roles and enforce their attributes (no memberships, no passwords)."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0003_roles"
down_revision = "0002_outbox_functions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
