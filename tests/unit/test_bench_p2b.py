"""Issue 17 P2b: the report compares our batched claim + batched completion with PGMQ's batched
read + pgmq.delete(queue, ids[]) at batch 10 and 100 (median of the repeats, paired), and shows
full-page images next to every WAL figure it prints for those runs (ADR 0150)."""

from __future__ import annotations

from typing import Any

from benchmarks import evaluate, report


def _record(values: list[float], wal_bytes: float, fpi: float) -> dict[str, Any]:
    ordered = sorted(values)
    run = {
        "throughput": ordered[len(ordered) // 2],
        "commits_per_job": 0.2,
        "wal_bytes_per_job": wal_bytes,
        "wal_fpi_per_job": fpi,
        "latency_ms": {},
    }
    return {
        "throughput": {
            "median": ordered[len(ordered) // 2],
            "min": ordered[0],
            "max": ordered[-1],
            "values": values,
        },
        "runs": [dict(run, throughput=v) for v in values],
    }


def _results() -> dict[str, Any]:
    return {
        "batched": {
            "ours": {
                "4x10": _record([800.0, 900.0, 1000.0], 1500.0, 0.25),
                "4x100": _record([2000.0, 2100.0, 2200.0], 1200.0, 0.5),
                "4x5": _record([1.0, 1.0, 1.0], 1.0, 0.0),
            },
            "pgmq": {
                "4x10": _record([1000.0, 1000.0, 1000.0], 400.0, 0.125),
                "4x100": _record([3000.0, 3000.0, 3000.0], 300.0, 0.0),
                "4x5": _record([1.0, 1.0, 1.0], 1.0, 0.0),
            },
        }
    }


def test_p2b_is_ours_batched_over_pgmq_batched_at_batch_10_and_100() -> None:
    ev = evaluate.p2b(_results())
    assert [(r["workers"], r["batch"]) for r in ev["rows"]] == [(4, 10), (4, 100)]
    assert round(ev["rows"][0]["vs_pgmq"]["median"], 3) == 0.9
    assert round(ev["rows"][1]["vs_pgmq"]["median"], 3) == 0.7
    assert ev["verdict"] == "gap"
    assert round(ev["worst_vs_pgmq"], 3) == 0.7
    assert evaluate.p2b({}) == {"verdict": "n/a", "rows": []}


def test_the_report_has_a_p2b_target_row_and_table_with_full_page_images() -> None:
    results = _results()
    ev = evaluate.evaluate(results)
    targets = "\n".join(report._targets(ev))
    assert "P2b batched claim + batched completion" in targets
    assert "worst 0.70x, best 0.90x PGMQ" in targets
    table = "\n".join(report._p2b_table(results, ev))
    assert "1,500 (0.250 FPI) / 400 (0.125 FPI)" in table
    assert "0.90x" in table
