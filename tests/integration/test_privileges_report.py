"""``baseline/privileges.md`` shows effective privileges through memberships (issue 18 item 2).

Memberships are cluster-wide: the planted one lives in a transaction that is rolled back.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema.baseline.privileges_report import read_report, render_privileges_md
from tests.conftest import Database

pytestmark = pytest.mark.integration

ATTEMPTS_ROW = "| table `public.payment_outbox_attempts` |"
POLICY_ROW = "| table `public.policy_versions` |"


def _effective_row(markdown: str, prefix: str) -> str:
    section = markdown.split("## Effective privileges", 1)[1]
    (row,) = [line for line in section.splitlines() if line.startswith(prefix)]
    return row


def test_a_membership_shows_in_the_effective_matrix(migrated_db: Database) -> None:
    """Regression: privileges.md showed grants only, so a membership that let symphony_readonly
    write the ledger left it unchanged. (Since 0019, issue 20, control writes no ledger row; the
    membership hands readonly control's policy writes instead.)"""
    with psycopg.connect(migrated_db.conninfo) as conn:
        before = render_privileges_md(read_report(conn, "head"))
        conn.execute("GRANT symphony_control TO symphony_readonly WITH INHERIT FALSE, SET TRUE")
        after = render_privileges_md(read_report(conn, "head"))
        conn.rollback()
    # owner, ingest, executor, control, readonly, auditor, test_user
    assert _effective_row(before, ATTEMPTS_ROW) == (
        f"{ATTEMPTS_ROW} owner | \u2013 | \u2013 | SELECT | SELECT | SELECT | \u2013 |"
    )
    assert _effective_row(before, POLICY_ROW) == (
        f"{POLICY_ROW} owner | \u2013 | SELECT | SELECT, INSERT, UPDATE | SELECT | SELECT "
        "| \u2013 |"
    )
    assert _effective_row(after, POLICY_ROW) == (
        f"{POLICY_ROW} owner | \u2013 | SELECT | SELECT, INSERT, UPDATE | SELECT, INSERT, UPDATE "
        "| SELECT | \u2013 |"
    )


def test_a_column_grant_shows_as_its_own_row(db: psycopg.Connection[Any]) -> None:
    db.execute("GRANT UPDATE (attempt_count) ON public.payment_outbox_pending TO symphony_executor")
    markdown = render_privileges_md(read_report(db, "head"))
    row = _effective_row(markdown, "| column `public.payment_outbox_pending.attempt_count` |")
    assert row.split(" | ")[3] == "UPDATE"  # the executor's cell
    assert "symphony_executor UPDATE" in markdown.split("## Other grants", 1)[1]
