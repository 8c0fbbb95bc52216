"""Issue 17 replaced P5: the engine is judged against plain Alembic running the same SQL (the
``engine2`` section: a no-op ``upgrade head`` within 1.2x, a 10-revision chain within 1.5x), not
against ``psql``. The report must judge and show P5 that way whenever ``engine2`` was measured."""

from __future__ import annotations

from typing import Any

from benchmarks import evaluate, report


def _engine2(noop: float, chain: float) -> dict[str, Any]:
    def side(ratio: float, target: float) -> dict[str, Any]:
        return {
            "engine_s": ratio,
            "plain_s": 1.0,
            "ratio": ratio,
            "client_cpu_s": {"engine": ratio, "plain": 1.0},
            "client_cpu_ratio": ratio,
            "target": target,
            "verdict": "met" if ratio <= target else "missed",
            "samples_s": {"engine": [ratio], "plain": [1.0]},
        }

    return {"noop": side(noop, 1.2), "chain10": side(chain, 1.5)}


def test_p5_is_judged_against_plain_alembic_when_engine2_ran() -> None:
    met = evaluate.p5({"engine2": _engine2(1.07, 1.04)})
    assert met["verdict"] == "met"
    assert (met["noop_vs_plain"], met["chain_vs_plain"]) == (1.07, 1.04)
    assert evaluate.p5({"engine2": _engine2(1.25, 1.04)})["verdict"] == "gap"
    assert evaluate.p5({"engine2": _engine2(1.1, 1.6)})["verdict"] == "gap"


def test_the_targets_table_names_the_plain_alembic_target() -> None:
    ev = {
        "P1": {"verdict": "n/a"},
        "P2": {"verdict": "n/a"},
        "P3": {"verdict": "n/a"},
        "P4": {"verdict": "n/a"},
        "P5": evaluate.p5({"engine2": _engine2(1.07, 1.04)}),
    }
    table = "\n".join(report._targets(ev))
    row = next(line for line in table.splitlines() if "P5" in line)
    assert "plain Alembic" in row and "1.07x" in row and "1.04x" in row and "**met**" in row
    assert "psql" not in row
