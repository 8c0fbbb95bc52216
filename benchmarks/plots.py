"""Figures (matplotlib, Agg backend) for docs/benchmarks/. Each one names the command that made
it in its footer."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

Results = dict[str, Any]

COLORS = {
    "ours": "#1f6f8b",
    "pgmq": "#d1495b",
    "ceiling": "#555555",
    "batched": "#3a7d44",
    "pgbench": "#999999",
}


def _footer(fig: Figure, command: str) -> None:
    fig.text(
        0.01, 0.005, f"made by: {command}", fontsize=7, color="#666666", ha="left", va="bottom"
    )


def _band(
    ax: Any,
    xs: list[int],
    summaries: list[dict[str, float]],
    label: str,
    color: str,
    style: str = "-",
) -> None:
    medians = [s["median"] for s in summaries]
    ax.plot(xs, medians, style, marker="o", color=color, label=label)
    ax.fill_between(
        xs,
        [s["min"] for s in summaries],
        [s["max"] for s in summaries],
        color=color,
        alpha=0.15,
        linewidth=0,
    )


def throughput_vs_workers(results: Results, path: Path, command: str) -> Path | None:
    """W2 jobs/s against workers, one panel per claim batch size: ours, PGMQ, ours with batched
    completion, and half the driver ceiling (the limit of two commits per job)."""
    cycle = results.get("cycle")
    if not cycle:
        return None
    batches = sorted({int(k.split("x")[1]) for k in cycle["ours"]})
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.8), squeeze=False)
    ceiling = results.get("ceiling", {}).get("driver", {})
    batched = results.get("batched", {})
    for ax, batch in zip(axes[0], batches, strict=True):
        for system in ("ours", "pgmq"):
            keys = sorted(
                (k for k in cycle[system] if k.endswith(f"x{batch}")),
                key=lambda k: int(k.split("x")[0]),
            )
            xs = [int(k.split("x")[0]) for k in keys]
            _band(
                ax,
                xs,
                [cycle[system][k]["throughput"] for k in keys],
                "ours (claim + complete)" if system == "ours" else "PGMQ (read + delete)",
                COLORS[system],
            )
        if batched.get("ours"):
            keys = sorted(
                (k for k in batched["ours"] if k.endswith(f"x{batch}")),
                key=lambda k: int(k.split("x")[0]),
            )
            if keys:
                _band(
                    ax,
                    [int(k.split("x")[0]) for k in keys],
                    [batched["ours"][k]["throughput"] for k in keys],
                    "ours, batched completion",
                    COLORS["batched"],
                    "--",
                )
        if ceiling and batch == 1:
            xs = sorted(int(c) for c in ceiling)
            ax.plot(
                xs,
                [ceiling[str(c)]["throughput"]["median"] / 2 for c in xs],
                ":",
                color=COLORS["ceiling"],
                label="driver ceiling / 2",
            )
        ax.set_title(f"claim batch {batch}")
        ax.set_xlabel("workers (processes, one connection each)")
        ax.set_ylabel("jobs/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({int(k.split("x")[0]) for k in cycle["ours"]}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("W2 steady state: throughput vs workers (median, band = min-max)")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    _footer(fig, command)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def enqueue_vs_clients(results: Results, path: Path, command: str) -> Path | None:
    enqueue = results.get("enqueue")
    if not enqueue:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    palette = ["#1f6f8b", "#4f9fbb", "#8fc7db", "#e09f3e"]
    ours_keys = [k for k in enqueue if k.startswith("ours_")]
    for color, key in zip(palette, ours_keys, strict=False):
        xs = sorted(int(c) for c in enqueue[key])
        label = key.replace("ours_dup", "ours, ").replace("_p", "% dup, participants ")
        _band(ax, xs, [enqueue[key][str(c)]["throughput"] for c in xs], label, color)
    xs = sorted(int(c) for c in enqueue["pgmq_send"])
    _band(
        ax,
        xs,
        [enqueue["pgmq_send"][str(c)]["throughput"] for c in xs],
        "PGMQ send",
        COLORS["pgmq"],
    )
    ceiling = results.get("ceiling", {}).get("driver", {})
    cs: list[int] = []  # a partial run (``--only enqueue``) measures no ceiling
    if ceiling:
        cs = sorted(int(c) for c in ceiling)
        _band(
            ax,
            cs,
            [ceiling[str(c)]["throughput"] for c in cs],
            "driver INSERT ceiling",
            COLORS["ceiling"],
            ":",
        )
    ax.set_xlabel("clients")
    ax.set_ylabel("enqueues/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({int(c) for series in enqueue.values() for c in series} | set(cs)))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("W1 enqueue: throughput vs clients (median, band = min-max)")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _footer(fig, command)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def claim_vs_backlog(results: Results, path: Path, command: str) -> Path | None:
    """W5 claim (ours) / read (PGMQ) latency p50 and p99 against the backlog size, 90% of the due
    rows leased / invisible at the head, with and without dead tuples."""
    backlog = results.get("backlog")
    if not backlog or not backlog.get("ours"):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    for ax, quantile in zip(axes, ("p50", "p99"), strict=True):
        for system, label in (("ours", "ours claim"), ("pgmq", "PGMQ read")):
            entries = sorted(backlog.get(system, []), key=lambda e: e["size"])
            for state, style in (("clean", "-"), ("dead", "--")):
                points = [
                    (e["size"], e[state]["claim_ms"][quantile])
                    for e in entries
                    if state in e and e[state]["claim_ms"]["count"]
                ]
                if points:
                    ax.plot(
                        [p[0] for p in points],
                        [p[1] for p in points],
                        style,
                        marker="o",
                        color=COLORS[system],
                        label=f"{label}{', after dead tuples' if state == 'dead' else ''}",
                    )
        if quantile == "p99":
            ax.axhline(5.0, color="#888888", linestyle=":", linewidth=1, label="P3: 5 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.get_xaxis().set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}")
        )
        ax.get_yaxis().set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
        )
        ax.set_xlabel("pending rows (90% of the due head leased)")
        ax.set_ylabel(f"{quantile} per call (ms)")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"claim {quantile}")
    axes[0].legend(fontsize=7)
    fig.suptitle("W5 backlog growth: one claim (batch 1) vs backlog size")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    _footer(fig, command)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TIMELINE_STYLE = {
    "ours": ("ours (queue autovacuum of revision 0009)", COLORS["ours"], "-"),
    "ours_autovacuum_defaults": ("ours, server-default autovacuum", "#8fc7db", "--"),
    "pgmq": ("PGMQ (pgmq.q_bench)", COLORS["pgmq"], "-"),
}


def dead_tuples_over_time(results: Results, path: Path, command: str) -> Path | None:
    """Steady state at a fixed offered load: dead tuples, claim p99 and throughput per second."""
    timeline = results.get("timeline")
    if not timeline:
        return None
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 7.2), sharex=True)
    for name, series in timeline.items():
        samples = series.get("samples", [])
        if not samples:
            continue
        label, color, style = TIMELINE_STYLE.get(name, (name, "#777777", "-"))
        top.plot(
            [s["t"] for s in samples], [s["dead"] for s in samples], style, color=color, label=label
        )
        for prev, s in itertools.pairwise(samples):
            if s["autovacuums"] > prev["autovacuums"]:
                top.axvline(s["t"], color=color, alpha=0.5, linestyle=":")
        tracked = [p for p in series.get("tracked", []) if p["count"] and p["p99"] > 0]
        middle.plot(
            [p["t"] for p in tracked], [p["p99"] for p in tracked], style, color=color, label=label
        )
        bottom.plot(
            [s["t"] for s in samples], [s["rate"] for s in samples], style, color=color, label=label
        )
    offered = next((s.get("offered_per_s") for s in timeline.values()), None)
    top.set_ylabel("n_dead_tup")
    top.set_title("dead tuples of the queue table (dotted: an autovacuum of it finished)")
    middle.set_ylabel("claim / read p99 (ms)")
    if any(series.get("tracked") for series in timeline.values()):
        middle.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}")
    middle.get_yaxis().set_major_formatter(plain)
    middle.get_yaxis().set_minor_formatter(plain)
    bottom.set_ylabel("jobs/s (1 s buckets)")
    bottom.set_xlabel("seconds into the run")
    bottom.set_ylim(bottom=0)
    for ax in (top, middle, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=7)
    fig.suptitle(
        f"Steady state at {offered:.0f} jobs/s offered (producers + claim batch 1 consumers)"
        if offered
        else "Steady state over time"
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    _footer(fig, command)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def steady_state(results: Results, path: Path, command: str) -> Path | None:
    """P1 in the steady state: completed jobs/s and dead tuples of the queue table per second,
    both systems, every worker count back to back (dashed lines: the next worker count)."""
    steady = results.get("steady")
    if not steady or not steady.get("by_participants"):
        return None
    groups = steady["by_participants"]
    fig, axes = plt.subplots(
        2, len(groups), figsize=(6.5 * len(groups), 6.5), sharex="col", squeeze=False
    )
    for col, (participants, series) in enumerate(groups.items()):
        rate_ax, dead_ax = axes[0][col], axes[1][col]
        for system in ("ours", "pgmq"):
            points = [p for run in series[system] for p in run["samples"]]
            color = COLORS[system]
            rate_ax.plot(
                [p["t"] for p in points], [p["rate"] for p in points], color=color, label=system
            )
            dead_ax.plot(
                [p["t"] for p in points],
                [p["dead"] for p in points],
                color=color,
                label=f"{system} queue table",
            )
            for prev, cur in itertools.pairwise(points):
                if cur["autovacuums"] > prev["autovacuums"]:
                    dead_ax.axvline(cur["t"], color=color, alpha=0.5, linestyle=":")
        for run in series["ours"][1:]:
            start = run["samples"][0]["t"] - 1 if run["samples"] else None
            if start is not None:
                for ax in (rate_ax, dead_ax):
                    ax.axvline(start, color="#999999", linestyle="--", linewidth=0.8)
        workers = ", ".join(str(run["workers"]) for run in series["ours"])
        rate_ax.set_title(f"{participants} participants; workers {workers} in turn")
        rate_ax.set_ylabel("completed jobs/s")
        rate_ax.set_ylim(bottom=0)
        dead_ax.set_ylabel("n_dead_tup (dotted: autovacuum)")
        dead_ax.set_xlabel("seconds of measured window")
        for ax in (rate_ax, dead_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        f"Steady state: {steady['offered_per_s']:g} jobs/s offered by producers, workers claim"
        " (batch 1) + complete, no manual VACUUM"
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    _footer(fig, command)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_all(results: Results, out_dir: Path, command: str) -> list[Path]:
    made = [
        steady_state(results, out_dir / "steady_state.png", command),
        throughput_vs_workers(results, out_dir / "throughput_vs_workers.png", command),
        enqueue_vs_clients(results, out_dir / "enqueue_vs_clients.png", command),
        claim_vs_backlog(results, out_dir / "claim_vs_backlog.png", command),
        dead_tuples_over_time(results, out_dir / "dead_tuples_over_time.png", command),
    ]
    return [path for path in made if path is not None]
