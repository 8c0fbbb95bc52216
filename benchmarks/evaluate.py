"""Ratios and the P1-P5 verdicts of docs/contract/quality.md §1, from the results document."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.stats import Summary, paired_ratio

Results = dict[str, Any]


def _throughputs(record: dict[str, Any]) -> list[float]:
    return [float(v) for v in record["throughput"]["values"]]


def unpaired_ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> Summary:
    """Ratio of medians, with the widest range the repeats allow (for runs that were not
    measured back to back, e.g. a workload against the ceiling measured in its own section)."""
    n = numerator["throughput"]
    d = denominator["throughput"]
    return {
        "median": n["median"] / d["median"],
        "min": n["min"] / d["max"],
        "max": n["max"] / d["min"],
        "values": [],
    }


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> Summary:
    """Paired when both sides have the same number of repeats (measured back to back)."""
    a, b = _throughputs(numerator), _throughputs(denominator)
    if len(a) == len(b):
        return paired_ratio(a, b)
    return unpaired_ratio(numerator, denominator)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "gap")


def p1(results: Results) -> dict[str, Any]:
    """W2 with claim batch 1 (two commits per job): ours >= 1.2x PGMQ and >= 0.45x the driver
    ceiling at every worker count. Other claim batch sizes are reported alongside."""
    cycle = results.get("cycle")
    ceiling = results.get("ceiling", {}).get("driver", {})
    if not cycle:
        return {"verdict": "n/a", "rows": []}
    rows = []
    for key, ours in cycle["ours"].items():
        workers, batch = (int(x) for x in key.split("x"))
        pgmq = cycle["pgmq"][key]
        row: dict[str, Any] = {
            "workers": workers,
            "batch": batch,
            "ours": ours["throughput"],
            "pgmq": pgmq["throughput"],
            "vs_pgmq": ratio(ours, pgmq),
        }
        if str(workers) in ceiling:
            row["ceiling"] = ceiling[str(workers)]["throughput"]
            row["vs_ceiling"] = unpaired_ratio(ours, ceiling[str(workers)])
        rows.append(row)
    rows.sort(key=lambda r: (r["batch"], r["workers"]))
    strict = [r for r in rows if r["batch"] == 1]
    ok_pgmq = all(r["vs_pgmq"]["median"] >= 1.2 for r in strict) if strict else None
    with_ceiling = [r for r in strict if "vs_ceiling" in r]
    ok_ceiling = (
        all(r["vs_ceiling"]["median"] >= 0.45 for r in with_ceiling) if with_ceiling else None
    )
    ok = None if ok_pgmq is None else bool(ok_pgmq and (ok_ceiling is not False))
    return {
        "verdict": _verdict(ok),
        "vs_pgmq_verdict": _verdict(ok_pgmq),
        "vs_ceiling_verdict": _verdict(ok_ceiling),
        "worst_vs_pgmq": min((r["vs_pgmq"]["median"] for r in strict), default=math.nan),
        "worst_vs_ceiling": min(
            (r["vs_ceiling"]["median"] for r in with_ceiling), default=math.nan
        ),
        "rows": rows,
    }


def p2(results: Results) -> dict[str, Any]:
    """Batched claim + batched completion >= 3x the unbatched rate (claim 1, one completion per
    job) at the same worker count; the claim-only batching factor is reported too."""
    batched = results.get("batched")
    cycle = results.get("cycle")
    if not batched or not cycle:
        return {"verdict": "n/a", "rows": []}
    rows = []
    for system in ("ours", "pgmq"):
        for key, record in batched[system].items():
            workers, batch = (int(x) for x in key.split("x"))
            unbatched = cycle[system].get(f"{workers}x1")
            if unbatched is None:
                continue
            row: dict[str, Any] = {
                "system": system,
                "workers": workers,
                "batch": batch,
                "batched": record["throughput"],
                "unbatched": unbatched["throughput"],
                "factor": unpaired_ratio(record, unbatched),
            }
            claim_only = cycle[system].get(f"{workers}x{batch}")
            if claim_only is not None:
                row["claim_only_factor"] = unpaired_ratio(claim_only, unbatched)
            rows.append(row)
    ours = [r for r in rows if r["system"] == "ours"]
    ok = all(r["factor"]["median"] >= 3.0 for r in ours) if ours else None
    return {
        "verdict": _verdict(ok),
        "worst_factor": min((r["factor"]["median"] for r in ours), default=math.nan),
        "rows": rows,
    }


def p2b(results: Results) -> dict[str, Any]:
    """Issue 17 P2b: batched claim + batched completion >= 0.8x PGMQ's batched read + batched
    delete (pgmq.delete(queue, ids[])) at batch 10 and 100, at every worker count measured (the
    median of the repeats, ratios paired when both sides were measured back to back)."""
    batched = results.get("batched")
    if not batched or not batched.get("ours") or not batched.get("pgmq"):
        return {"verdict": "n/a", "rows": []}
    rows = []
    for key, ours in batched["ours"].items():
        workers, batch = (int(x) for x in key.split("x"))
        pgmq = batched["pgmq"].get(key)
        if pgmq is None or batch not in (10, 100):
            continue
        rows.append(
            {
                "workers": workers,
                "batch": batch,
                "ours": ours["throughput"],
                "pgmq": pgmq["throughput"],
                "vs_pgmq": ratio(ours, pgmq),
            }
        )
    rows.sort(key=lambda r: (r["batch"], r["workers"]))
    if not rows:
        return {"verdict": "n/a", "rows": []}
    return {
        "verdict": _verdict(all(r["vs_pgmq"]["median"] >= 0.8 for r in rows)),
        "worst_vs_pgmq": min(r["vs_pgmq"]["median"] for r in rows),
        "best_vs_pgmq": max(r["vs_pgmq"]["median"] for r in rows),
        "rows": rows,
    }


def p3(results: Results) -> dict[str, Any]:
    """Claim p99 at the largest backlog (90% of the due rows leased at the head) < 5 ms and
    < 3x the p99 at the smallest backlog."""
    backlog = results.get("backlog")
    if not backlog or not backlog.get("ours"):
        return {"verdict": "n/a"}
    ours = sorted(backlog["ours"], key=lambda r: r["size"])
    small, large = ours[0], ours[-1]
    p99_small = small["clean"]["claim_ms"]["p99"]
    p99_large = large["clean"]["claim_ms"]["p99"]
    growth = p99_large / p99_small if p99_small else math.nan
    ok = p99_large < 5.0 and growth < 3.0
    dead = large.get("dead", {}).get("claim_ms", {}).get("p99")
    return {
        "verdict": _verdict(ok),
        "small_size": small["size"],
        "large_size": large["size"],
        "p99_small_ms": p99_small,
        "p99_large_ms": p99_large,
        "growth": growth,
        "p99_large_dead_ms": dead,
    }


def p4(results: Results) -> dict[str, Any]:
    """W1 with 0% duplicates: ours >= 0.9x pgmq.send and >= 0.7x the driver ceiling at every
    client count."""
    enqueue = results.get("enqueue")
    ceiling = results.get("ceiling", {}).get("driver", {})
    if not enqueue:
        return {"verdict": "n/a", "rows": []}
    ours_key = next(
        (k for k in enqueue if k.startswith("ours_dup0_") and not k.endswith("_p1")), None
    )
    if ours_key is None:
        return {"verdict": "n/a", "rows": []}
    rows = []
    for clients, ours in enqueue[ours_key].items():
        row: dict[str, Any] = {
            "clients": int(clients),
            "ours": ours["throughput"],
            "pgmq": enqueue["pgmq_send"][clients]["throughput"],
            "vs_pgmq": ratio(ours, enqueue["pgmq_send"][clients]),
        }
        if clients in ceiling:
            row["ceiling"] = ceiling[clients]["throughput"]
            row["vs_ceiling"] = unpaired_ratio(ours, ceiling[clients])
        rows.append(row)
    rows.sort(key=lambda r: r["clients"])
    ok_pgmq = all(r["vs_pgmq"]["median"] >= 0.9 for r in rows)
    with_ceiling = [r for r in rows if "vs_ceiling" in r]
    ok_ceiling = all(r["vs_ceiling"]["median"] >= 0.7 for r in with_ceiling)
    return {
        "verdict": _verdict(ok_pgmq and ok_ceiling),
        "vs_pgmq_verdict": _verdict(ok_pgmq),
        "vs_ceiling_verdict": _verdict(ok_ceiling if with_ceiling else None),
        "worst_vs_pgmq": min(r["vs_pgmq"]["median"] for r in rows),
        "worst_vs_ceiling": min(
            (r["vs_ceiling"]["median"] for r in with_ceiling), default=math.nan
        ),
        "series": ours_key,
        "rows": rows,
    }


def p5(results: Results) -> dict[str, Any]:
    """Issue 17's P5 when ``engine2`` ran: a no-op ``alembic upgrade head`` through the engine
    <= 1.2x plain Alembic's, a 10-revision chain <= 1.5x (ADR 0157). Otherwise the first round's
    target: engine <= 1.5x psql for the same SQL, baseline bring-up >= 3x faster than the chain."""
    engine2 = results.get("engine2")
    if engine2:
        noop, chain = engine2["noop"], engine2["chain10"]
        return {
            "verdict": _verdict(
                noop["ratio"] <= noop["target"] and chain["ratio"] <= chain["target"]
            ),
            "against": "plain Alembic",
            "noop_vs_plain": noop["ratio"],
            "chain_vs_plain": chain["ratio"],
            "noop_target": noop["target"],
            "chain_target": chain["target"],
        }
    engine = results.get("engine")
    if not engine:
        return {"verdict": "n/a"}
    t = {name: s["median"] for name, s in engine["timings_s"].items()}
    engine_cli = t["alembic_upgrade_cli"] / t["psql_rendered_sql"]
    engine_in_process = t["engine_in_process"] / t["psql_rendered_sql"]
    baseline_cli = t["alembic_upgrade_cli"] / t["baseline_apply_cli"]
    baseline_in_process = t["engine_in_process"] / t["baseline_apply_in_process"]
    ok_engine = engine_cli <= 1.5
    ok_baseline = baseline_cli >= 3.0
    return {
        "verdict": _verdict(ok_engine and ok_baseline),
        "engine_vs_psql_cli": engine_cli,
        "engine_vs_psql_in_process": engine_in_process,
        "baseline_speedup_cli": baseline_cli,
        "baseline_speedup_in_process": baseline_in_process,
        "engine_verdict": _verdict(ok_engine),
        "baseline_verdict": _verdict(ok_baseline),
    }


def p1_steady(results: Results) -> dict[str, Any]:
    """P1 in the steady state (issue 17): claim (batch 1) + complete >= 1.2x PGMQ read + delete
    at every worker count and participant count, producers running and no manual VACUUM. One
    ratio per worker count: the median of the two systems' per-second rates."""
    steady = results.get("steady")
    if not steady or not steady.get("by_participants"):
        return {"verdict": "n/a", "rows": []}
    rows = []
    for participants, series in steady["by_participants"].items():
        for ours, pgmq in zip(series["ours"], series["pgmq"], strict=True):
            o, q = ours["per_second"]["median"], pgmq["per_second"]["median"]
            rows.append(
                {
                    "participants": int(participants),
                    "workers": ours["workers"],
                    "ours": o,
                    "pgmq": q,
                    "vs_pgmq": o / q if q else math.nan,
                    "ran_dry": bool(ours["ran_dry"] or pgmq["ran_dry"]),
                }
            )
    ok = all(r["vs_pgmq"] >= 1.2 for r in rows)
    return {
        "verdict": _verdict(ok),
        "worst_vs_pgmq": min(r["vs_pgmq"] for r in rows),
        "best_vs_pgmq": max(r["vs_pgmq"] for r in rows),
        "rows": rows,
    }


def p6(results: Results) -> dict[str, Any]:
    """Wake-up: enqueue -> claimed p99 < 10 ms at the offered rate, and < 1 claim query per
    second per idle worker."""
    wake = results.get("wake")
    if not wake or "ours" not in wake:
        return {"verdict": "n/a"}
    latency = (wake["ours"]["offered"].get("wake_ms") or {}).get("p99", math.nan)
    idle = wake["ours"]["idle"].get("claims_per_worker_s") or math.nan
    ok = latency < 10.0 and idle < 1.0
    return {
        "verdict": _verdict(ok),
        "p99_ms": latency,
        "idle_claims_per_worker_s": idle,
        "pgmq_p99_ms": (wake.get("pgmq", {}).get("offered", {}).get("wake_ms") or {}).get(
            "p99", math.nan
        ),
    }


def p4b(results: Results) -> dict[str, Any]:
    """Batch enqueue at batch 100: >= 0.8x pgmq.send_batch and >= 5x single enqueue, every
    client count measured."""
    data = results.get("enqueue_batch")
    if not data or "ours_batch" not in data:
        return {"verdict": "n/a", "rows": []}
    rows = []
    for clients, ours in data["ours_batch"].items():
        rows.append(
            {
                "clients": int(clients),
                "vs_send_batch": ratio(ours, data["pgmq_send_batch"][clients]),
                "vs_single": ratio(ours, data["ours_single"][clients]),
            }
        )
    ok = all(r["vs_send_batch"]["median"] >= 0.8 and r["vs_single"]["median"] >= 5 for r in rows)
    return {
        "verdict": _verdict(ok),
        "worst_vs_send_batch": min(r["vs_send_batch"]["median"] for r in rows),
        "worst_vs_single": min(r["vs_single"]["median"] for r in rows),
        "rows": rows,
    }


def evaluate(results: Results) -> dict[str, Any]:
    return {
        "P1": p1(results),
        "P1_steady": p1_steady(results),
        "P2": p2(results),
        "P2b": p2b(results),
        "P3": p3(results),
        "P4": p4(results),
        "P4b": p4b(results),
        "P5": p5(results),
        "P6": p6(results),
    }
