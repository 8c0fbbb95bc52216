"""Statistics of repeated runs and latency samples (no numpy: a few hundred values at most per
summary, and the harness must not depend on more than psycopg, matplotlib and pgmq)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict


class Summary(TypedDict):
    """Median and range of one quantity over the repeats of a run."""

    median: float
    min: float
    max: float
    values: list[float]


class LatencySummary(TypedDict):
    """Per-call latency in milliseconds, pooled over the workers of one run."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


def summarize(values: Sequence[float]) -> Summary:
    """Median, min and max of the repeats (all values kept for the raw results)."""
    if not values:
        raise ValueError("summarize() needs at least one value")
    return {
        "median": float(statistics.median(values)),
        "min": float(min(values)),
        "max": float(max(values)),
        "values": [float(v) for v in values],
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linear between closest ranks."""
    if not sorted_values:
        raise ValueError("percentile() of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(sorted_values[low])
    weight = position - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


def latency_summary(samples_ms: Sequence[float]) -> LatencySummary:
    """Count, mean, p50/p90/p99 and max of latency samples."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {
            "count": 0,
            "mean": math.nan,
            "p50": math.nan,
            "p90": math.nan,
            "p99": math.nan,
            "max": math.nan,
        }
    return {
        "count": len(ordered),
        "mean": float(statistics.fmean(ordered)),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": float(ordered[-1]),
    }


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> Summary:
    """Ratios of runs measured side by side (repeat i against repeat i), summarized.

    Pairing keeps a slow moment of a shared machine from landing on one side only: both runs of
    a pair were measured back to back.
    """
    if len(numerators) != len(denominators):
        raise ValueError(
            f"paired_ratio() needs as many numerators as denominators, got "
            f"{len(numerators)} and {len(denominators)}"
        )
    ratios = [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]
    if not ratios:
        raise ValueError("paired_ratio() found no positive denominator")
    return summarize(ratios)
