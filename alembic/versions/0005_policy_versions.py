"""Policy versions: status type, policy_versions table, its constraints and grants."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0005_policy_versions"
down_revision = "0004_privileges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
