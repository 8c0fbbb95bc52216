"""Plans of the statements a function runs, read from auto_explain's NOTICEs (EXPLAIN cannot look
inside a function). Shared by the W5 backlog benchmark and ``tests/integration/test_perf_plans.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def explain_nested(
    conn: Conn, statement: str, params: Any = None, *, timing: bool = True
) -> list[dict[str, Any]]:
    """Run ``statement`` with auto_explain (JSON, ANALYZE, BUFFERS, nested statements, per-node
    timing when ``timing``) and return the plans it reported, in order."""
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(keep)
    try:
        conn.execute("LOAD 'auto_explain'")
        for name, value in {
            "auto_explain.log_min_duration": "0",
            "auto_explain.log_analyze": "on",
            "auto_explain.log_buffers": "on",
            "auto_explain.log_timing": "on" if timing else "off",
            "auto_explain.log_nested_statements": "on",
            "auto_explain.log_format": "json",
            "auto_explain.log_level": "notice",
        }.items():
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        cursor = conn.execute(statement, params)
        if cursor.description is not None:
            cursor.fetchall()
        conn.execute("SELECT pg_catalog.set_config('auto_explain.log_min_duration', '-1', false)")
    finally:
        conn.remove_notice_handler(keep)
    return parse_plan_notices(notices)


def parse_plan_notices(notices: list[str]) -> list[dict[str, Any]]:
    """The JSON plan documents among auto_explain's NOTICE texts (``duration: ... plan: {...}``);
    other notices are skipped."""
    plans = []
    for notice in notices:
        _, _, document = notice.partition("plan:")
        if document.strip().startswith("{"):
            plans.append(json.loads(document))
    return plans


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``plan`` and every node below it, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)
