"""A results.json from `--only cycle,backlog` has no ceiling section: the targets table must
render the missing ratios as n/a instead of raising (it printed a TypeError traceback)."""

from __future__ import annotations

from benchmarks import report


def test_targets_render_ratios_missing_from_a_partial_run() -> None:
    ev = {
        "P1": {
            "verdict": "gap",
            "vs_pgmq_verdict": "gap",
            "vs_ceiling_verdict": "n/a",
            "worst_vs_pgmq": 0.7,
            "worst_vs_ceiling": None,
        },
        "P2": {"verdict": "n/a", "worst_factor": None},
        "P3": {"verdict": "n/a"},
        "P4": {"verdict": "n/a", "worst_vs_pgmq": None, "worst_vs_ceiling": None},
        "P5": {"verdict": "n/a"},
    }
    table = "\n".join(report._targets(ev))
    assert "worst 0.70x PGMQ (gap), worst n/a ceiling (n/a)" in table
    assert "worst n/ax" not in table
