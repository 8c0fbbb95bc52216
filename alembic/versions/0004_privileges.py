"""Privileges: ownership, deny-by-default, function-first grants for the outbox objects."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0004_privileges"
down_revision = "0003_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
