"""SQL rules in one place: the id rule and the plan-settings pin are helper functions."""

from symphony_schema.migration.sql import run_revision_sql

revision = "0013_sql_rule_helpers"
down_revision = "0012_serialise_the_p7005_guards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
