"""Completion, round three (issue 17 P1/P2b, ADR 0165): the batched completion records its rail
references in one statement through a set-based writer; the single completion inlines its
argument checks and plan settings"""

from symphony_schema.migration.sql import run_revision_sql

revision = "0037_set_based_completion"
down_revision = "0036_distribute_on_citus"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
