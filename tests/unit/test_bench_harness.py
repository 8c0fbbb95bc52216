"""The benchmark harness's statistics, verdicts, figures and README on tiny made-up results (no
database, no timing): what `python -m benchmarks` computes from its measurements."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import evaluate, plots, report
from benchmarks.config import FULL, QUICK
from benchmarks.db import payload
from benchmarks.stats import latency_summary, paired_ratio, percentile, summarize


def test_summaries_and_percentiles() -> None:
    assert summarize([3.0, 1.0, 2.0]) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "values": [3.0, 1.0, 2.0],
    }
    assert summarize([1.0, 2.0, 3.0, 10.0])["median"] == 2.5
    ordered = [float(v) for v in range(1, 101)]
    assert percentile(ordered, 0) == 1.0
    assert percentile(ordered, 100) == 100.0
    assert percentile(ordered, 50) == pytest.approx(50.5)
    assert percentile(ordered, 99) == pytest.approx(99.01)
    lat = latency_summary([5.0, 1.0, 3.0])
    assert (lat["count"], lat["p50"], lat["max"], lat["mean"]) == (3, 3.0, 5.0, 3.0)
    assert math.isnan(latency_summary([])["p99"])


def test_statistics_refuse_what_they_cannot_summarize() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        summarize([])
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="as many numerators as denominators"):
        paired_ratio([1.0, 2.0], [1.0])


def test_paired_ratios_compare_repeat_i_with_repeat_i() -> None:
    # A slow second repeat hits both systems; pairing keeps the ratio at 2.
    ratios = paired_ratio([200.0, 100.0, 220.0], [100.0, 50.0, 110.0])
    assert ratios["values"] == [2.0, 2.0, 2.0]
    unpaired = evaluate.unpaired_ratio(
        {"throughput": summarize([200.0, 100.0, 220.0])},
        {"throughput": summarize([100.0, 50.0, 110.0])},
    )
    assert unpaired["median"] == 2.0
    assert (unpaired["min"], unpaired["max"]) == (100.0 / 110.0, 220.0 / 50.0)


def test_payload_has_exactly_the_requested_size() -> None:
    for size in (128, 256, 1000):
        text = payload(size)
        assert len(text.encode()) == size
        assert json.loads(text)["currency"] == "ZAR"
    with pytest.raises(ValueError, match="smaller than the fixed fields"):
        payload(10)


def test_the_quick_matrix_is_a_subset_of_the_full_one() -> None:
    assert QUICK.quick and not FULL.quick
    assert FULL.repeats >= 3, "docs/contract/quality.md: at least three repeats"
    assert set(QUICK.cycle_workers) <= set(FULL.cycle_workers)
    assert set(QUICK.claim_batches) <= set(FULL.claim_batches)
    assert max(FULL.backlog_sizes) == 1_000_000
    assert FULL.with_overrides(5, 2.0).repeats == 5
    assert FULL.with_overrides(None, 2.0).measure_s == 2.0


# --------------------------------------------------------------------------------------------
# Made-up results
# --------------------------------------------------------------------------------------------


def _record(*throughputs: float, **per_job: Any) -> dict[str, Any]:
    runs = [
        {
            "workers": 1,
            "jobs": int(t * 4),
            "elapsed_s": 4.0,
            "throughput": t,
            "commits_per_job": per_job.get("commits", 2.0),
            "wal_bytes_per_job": per_job.get("wal", 1000.0),
            "wal_fpi_per_job": 0.01,
            "cluster_wal_bytes": 0,
            "empty_steps": 0,
            "latency_ms": {
                name: {"count": 10, "mean": 0.5, "p50": 0.4, "p90": 0.8, "p99": 1.2, "max": 2.0}
                for name in per_job.get("calls", ("claim", "complete", "read", "delete"))
            },
        }
        for t in throughputs
    ]
    return {"throughput": summarize(list(throughputs)), "runs": runs}


def _backlog_entry(size: int, p99: float, dead_p99: float) -> dict[str, Any]:
    def state(p: float) -> dict[str, Any]:
        return {
            "n_live_tup": size,
            "n_dead_tup": 0,
            "claim_ms": latency_summary([p / 2, p / 2, p]),
            "claimed": 3,
            "explain": {
                "found": True,
                "rows": 10,
                "buffers": 150,
                "time_ms": 0.2,
                "scans": [
                    {
                        "node": "Index Scan",
                        "index": "ix_payment_outbox_pending_due_unleased",
                        "rows": 10,
                        "removed_by_filter": 0,
                        "buffers": 3,
                    }
                ],
            },
        }

    return {
        "size": size,
        "leased": size * 9 // 10,
        "invisible": size * 9 // 10,
        "fill_s": 0.1,
        "clean": state(p99),
        "dead": state(dead_p99),
        "dead_jobs": 100,
    }


def _results() -> dict[str, Any]:
    enqueue_calls = {"calls": ("enqueue",), "commits": 1.0}
    results: dict[str, Any] = {
        "meta": {
            "command": "python -m benchmarks --quick",
            "started_at": "2026-01-01 00:00 UTC",
            "duration_s": 60.0,
            "git_commit": "abc",
            "head": "0008_x",
            "machine": {"line": "test machine", "psycopg": "3"},
            "load_before": [0.1],
            "load_after": [0.2],
            "settings": {"payload_bytes": 256, "warmup_s": 1, "measure_s": 4, "repeats": 3},
            "pgmq_version": "1.13.0",
            "server": {
                "version": "PostgreSQL 18.6, compiled",
                "settings": {"fsync": "on"},
                "pg_stat_statements": False,
            },
        },
        "ceiling": {
            "driver": {"1": _record(3000, 3100, 2900, calls=("insert",), commits=1.0)},
            "pgbench": {"1": {"throughput": summarize([4000, 4100, 3900]), "runs": []}},
        },
        "statement_costs": {
            "ours_cycle": {
                "SELECT outbox_id, lease_token FROM public.claim_outbox_batch": summarize([0.07]),
                "SELECT * FROM public.complete_outbox_attempt": summarize([0.05]),
            },
            "pgmq_cycle": {
                "SELECT msg_id FROM pgmq.read": summarize([0.1]),
                "SELECT pgmq.delete": summarize([0.04]),
            },
        },
        "enqueue": {
            "pgmq_send": {"1": _record(2000, 2000, 2000, calls=("send",), commits=1.0)},
            "ours_dup0_p10000": {"1": _record(1900, 1950, 1800, **enqueue_calls)},
            "ours_dup0_p1": {"1": _record(1500, 1500, 1500, **enqueue_calls)},
        },
        "cycle": {
            "ours": {"1x1": _record(1400, 1500, 1300), "1x10": _record(2600, 2700, 2500)},
            "pgmq": {"1x1": _record(1000, 1100, 1000), "1x10": _record(2500, 2600, 2400)},
        },
        "batched": {
            "ours": {"1x10": _record(6000, 6100, 5900)},
            "pgmq": {"1x10": _record(7000, 7000, 7000)},
        },
        "backlog": {
            "ours": [_backlog_entry(10_000, 0.4, 0.6), _backlog_entry(1_000_000, 0.8, 3.0)],
            "pgmq": [_backlog_entry(10_000, 1.0, 1.0), _backlog_entry(1_000_000, 90.0, 95.0)],
        },
        "engine": {
            "timings_s": {
                name: summarize([value])
                for name, value in {
                    "alembic_upgrade_cli": 0.9,
                    "psql_rendered_sql": 0.1,
                    "engine_in_process": 0.14,
                    "baseline_apply_cli": 0.8,
                    "baseline_apply_in_process": 0.04,
                    "python_startup": 0.6,
                }.items()
            }
        },
        "timeline": {
            system: {
                "run": _record(500.0)["runs"][0],
                "offered_per_s": 500.0,
                "reloptions": [],
                "samples": [
                    {
                        "t": float(t),
                        "jobs": t * 100,
                        "rate": 100.0,
                        "live": 1,
                        "dead": t * 10,
                        "autovacuums": 0 if t < 3 else 1,
                    }
                    for t in range(1, 6)
                ],
                "tracked": [{"t": t, "count": 10, "p50": 0.5, "p99": 1.0 + t} for t in range(1, 6)],
            }
            for system in ("ours", "pgmq")
        },
    }
    results["evaluation"] = evaluate.evaluate(results)
    return results


def test_verdicts_follow_the_targets_of_quality_md() -> None:
    ev = _results()["evaluation"]

    p1 = ev["P1"]
    # Paired repeat by repeat: 1400/1000, 1500/1100, 1300/1000 -> median 1.36.
    assert p1["worst_vs_pgmq"] == pytest.approx(1500 / 1100)
    assert p1["vs_pgmq_verdict"] == "met"
    assert p1["worst_vs_ceiling"] == pytest.approx(1400 / 3000)
    assert p1["verdict"] == "met"
    assert ev["P2"]["worst_factor"] == pytest.approx(6000 / 1400)
    assert ev["P2"]["verdict"] == "met"
    p3 = ev["P3"]
    # p99 of (p/2, p/2, p), interpolated between the two highest samples.
    assert (p3["p99_small_ms"], p3["p99_large_ms"]) == pytest.approx((0.396, 0.792))
    assert p3["growth"] == pytest.approx(2.0)
    assert p3["verdict"] == "met"
    assert ev["P4"]["worst_vs_pgmq"] == pytest.approx(0.95)
    assert ev["P4"]["vs_pgmq_verdict"] == "met"
    assert ev["P4"]["worst_vs_ceiling"] == pytest.approx(1900 / 3000)
    assert ev["P4"]["vs_ceiling_verdict"] == "gap"  # 0.63 < 0.7
    assert ev["P4"]["verdict"] == "gap"
    assert ev["P5"]["engine_vs_psql_cli"] == pytest.approx(9.0)
    assert ev["P5"]["verdict"] == "gap"


def test_a_worse_run_turns_verdicts_into_gaps() -> None:
    results = _results()
    results["cycle"]["ours"]["1x1"] = _record(1000, 1000, 1000)
    results["backlog"]["ours"][1] = _backlog_entry(1_000_000, 6.0, 6.0)
    ev = evaluate.evaluate(results)
    assert ev["P1"]["verdict"] == "gap"
    assert ev["P3"]["verdict"] == "gap"


def test_figures_and_readme_are_made_from_the_results(tmp_path: Path) -> None:
    results = _results()

    figures = plots.make_all(results, tmp_path, "python -m benchmarks --quick")
    text = report.render(results, figures)

    assert sorted(p.name for p in figures) == [
        "claim_vs_backlog.png",
        "dead_tuples_over_time.png",
        "enqueue_vs_clients.png",
        "throughput_vs_workers.png",
    ]
    for path in figures:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    assert "| P1 steady state" in text
    assert "**met**" in text and "**gap**" in text
    assert "not collected: the running server does not preload it" in text
    assert "](throughput_vs_workers.png)" in text
    assert "| ours | 500 | 500 | 50 | 1 | 4.00 | 6.00 |" in text  # the timeline table
    assert "python -m benchmarks --quick" in text


def test_a_partial_run_without_the_ceiling_still_draws_its_figures(tmp_path: Path) -> None:
    """``--only enqueue`` measures no commit ceiling: the enqueue figure must still be drawn
    (it crashed with UnboundLocalError after all measurements were done)."""
    results = _results()
    del results["ceiling"]

    figures = plots.make_all(results, tmp_path, "python -m benchmarks --only enqueue")

    assert "enqueue_vs_clients.png" in [p.name for p in figures]
