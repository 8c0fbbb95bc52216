"""The issue-17 sections of the benchmark harness on tiny made-up results (no database): the
steady-state P1 verdict, P4b, P6, and their README tables and figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import evaluate, plots, report
from benchmarks.stats import summarize


def _steady_run(workers: int, rate: float, dead: int) -> dict[str, Any]:
    samples = [
        {
            "t": float(t),
            "jobs": int(rate * t),
            "rate": rate,
            "live": 100,
            "dead": dead * t,
            "autovacuums": t // 2,
            "side_dead": 3,
        }
        for t in range(1, 4)
    ]
    return {
        "workers": workers,
        "run": {"wal_bytes_per_job": 1000.0, "latency_ms": {}},
        "per_second": summarize([rate, rate, rate]),
        "samples": samples,
        "ran_dry": False,
    }


def _results() -> dict[str, Any]:
    wake_ms = {"count": 10, "mean": 3.0, "p50": 2.0, "p90": 4.0, "p99": 6.0, "max": 7.0}
    lat = {"p50": 1.0, "p99": 2.0}
    record = {
        "throughput": summarize([100.0]),
        "runs": [{"throughput": 100.0, "latency_ms": {"enqueue_batch": lat}}],
    }
    return {
        "meta": {"command": "python -m benchmarks --only steady,wake,enqueue_batch"},
        "steady": {
            "seconds": 3.0,
            "offered_per_s": 200.0,
            "producers": 2,
            "by_participants": {
                "50": {
                    "ours": [_steady_run(1, 130.0, 5), _steady_run(2, 260.0, 5)],
                    "pgmq": [_steady_run(1, 100.0, 9), _steady_run(2, 200.0, 9)],
                },
            },
        },
        "wake": {
            "offered_per_s": 10.0,
            "workers": 2,
            "poll_s": 2.0,
            "seconds": 3.0,
            "ours": {
                "offered": {"jobs": 30, "claims_per_worker_s": 10.0, "wake_ms": wake_ms},
                "idle": {"claims_per_worker_s": 0.5},
            },
            "pgmq": {
                "offered": {"jobs": 30, "claims_per_worker_s": 10.0, "wake_ms": wake_ms},
                "idle": {"claims_per_worker_s": 0.5},
            },
            "enqueue_4_clients": {"on": 500.0, "off": 510.0},
        },
        "enqueue_batch": {
            "batch": 100,
            "ours_batch": {"1": {**record, "throughput": summarize([900.0])}},
            "pgmq_send_batch": {"1": {**record, "throughput": summarize([1000.0])}},
            "ours_single": {"1": {**record, "throughput": summarize([150.0])}},
        },
    }


def test_round_two_verdicts() -> None:
    results = _results()
    ev = evaluate.evaluate(results)
    assert ev["P1_steady"]["verdict"] == "met"  # 1.3x at both worker counts
    assert ev["P1_steady"]["worst_vs_pgmq"] == 1.3
    assert ev["P6"]["verdict"] == "met"  # p99 6 ms, 0.5 claims/s idle
    assert ev["P4b"]["verdict"] == "met"  # 0.9x send_batch, 6x single
    results["steady"]["by_participants"]["50"]["ours"][1]["per_second"] = summarize([200.0])
    results["wake"]["ours"]["idle"]["claims_per_worker_s"] = 1.5
    ev = evaluate.evaluate(results)
    assert ev["P1_steady"]["verdict"] == "gap"
    assert ev["P6"]["verdict"] == "gap"
    assert evaluate.evaluate({})["P6"]["verdict"] == "n/a"


def test_round_two_tables_and_figure(tmp_path: Path) -> None:
    results = _results()
    results["evaluation"] = evaluate.evaluate(results)
    # The rest of the README needs its own sections; render only what this round adds.
    steady = "\n".join(report._steady_table(results))
    assert "| 50 | 2 | 260 | 200 | 1.30x |" in steady
    wake = "\n".join(report._wake_table(results))
    # Results of a run before the latency parts were measured render them as "-".
    assert "| ours | 2 | 30 | 2.00 / 6.00 / 7.00 | - | - | - | 10.00 | - | 0.50 |" in wake
    # Since ADR 0159 the claims that found nothing per job claimed (the herd's measure).
    results["wake"]["ours"]["offered"]["empty_claims_per_job"] = 0.02
    wake = "\n".join(report._wake_table(results))
    assert "| ours | 2 | 30 | 2.00 / 6.00 / 7.00 | - | - | - | 10.00 | 0.02 | 0.50 |" in wake
    batch = "\n".join(report._enqueue_batch_table(results))
    assert "| 1 | 900 | 1,000 | 150 | 0.90x | 6.00x | 1.00 / 2.00 |" in batch
    figure = plots.steady_state(results, tmp_path / "steady.png", "cmd")
    assert figure is not None and figure.stat().st_size > 1000


def test_the_p6_analysis_says_one_worker_wakes_once_measured() -> None:
    """Since ADR 0159 the P6 text reports the empty claims per job, not the herd's next step."""
    from benchmarks import analysis

    results = _results()
    parts = {"p50": 1.0, "p99": 3.0}
    for system, empty in (("ours", 0.02), ("pgmq", 3.01)):
        results["wake"][system]["offered"].update(after_wake_ms=parts, empty_claims_per_job=empty)
        results["wake"][system]["one_worker"] = {"wake_ms": {"p50": 2.0, "p99": 4.0}}
    text = "\n".join(analysis._p6_parts(results))
    assert "names one of the 2 workers" in text
    assert "empty claims per job 0.02 against 3.01 for PGMQ" in text
    assert "is the next step" not in text
    del results["wake"]["ours"]["offered"]["empty_claims_per_job"]  # a run before 0033
    assert "is the next step" in "\n".join(analysis._p6_parts(results))
