"""The one auto_explain NOTICE parser (issue 13 item 7), shared by W5 and the plan tests."""

from __future__ import annotations

import json

from benchmarks.plans import parse_plan_notices, plan_nodes

PLAN = {
    "Query Text": "SELECT 1",
    "Plan": {
        "Node Type": "Limit",
        "Plans": [{"Node Type": "Index Scan", "Plans": [{"Node Type": "Result"}]}],
    },
}


def test_only_the_plan_documents_are_parsed_in_order() -> None:
    notices = [
        "relation already exists, skipping",
        "duration: 0.012 ms  plan:\n" + json.dumps(PLAN),
        "duration: 0.020 ms  plan:\n" + json.dumps({**PLAN, "Query Text": "SELECT 2"}),
        "plan: not json",
    ]

    plans = parse_plan_notices(notices)

    assert [plan["Query Text"] for plan in plans] == ["SELECT 1", "SELECT 2"]


def test_plan_nodes_walks_every_node_depth_first() -> None:
    assert [node["Node Type"] for node in plan_nodes(PLAN["Plan"])] == [
        "Limit",
        "Index Scan",
        "Result",
    ]
