"""docs/benchmarks/README.md, generated from the results document (never edited by hand)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.analysis import analysis_sections
from benchmarks.evaluate import ratio, unpaired_ratio

Results = dict[str, Any]


def n(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def wal(run: Mapping[str, Any]) -> str:
    """WAL bytes per job with the full-page images per job next to them (ADR 0150: a full-page
    image is most of a job's WAL right after a checkpoint)."""
    return f"{n(run.get('wal_bytes_per_job'))} ({n(run.get('wal_fpi_per_job'), 3)} FPI)"


def rng(summary: Mapping[str, Any] | None, digits: int = 0) -> str:
    """``median (min-max)``."""
    if not summary:
        return "-"
    if summary["min"] == summary["max"]:
        return n(summary["median"], digits)
    return (
        f"{n(summary['median'], digits)} ({n(summary['min'], digits)}-{n(summary['max'], digits)})"
    )


def x(summary: Mapping[str, Any] | None) -> str:
    if not summary:
        return "-"
    if summary["min"] == summary["max"]:
        return f"{summary['median']:.2f}x"
    return f"{summary['median']:.2f}x ({summary['min']:.2f}-{summary['max']:.2f})"


def _median_run(record: dict[str, Any]) -> dict[str, Any]:
    """The repeat whose throughput is the median one (for per-job and latency columns)."""
    runs = sorted(record["runs"], key=lambda r: r["throughput"])
    return runs[len(runs) // 2]  # type: ignore[no-any-return]


def _lat(run: dict[str, Any], name: str) -> str:
    lat = run["latency_ms"].get(name)
    if not lat:
        return "-"
    return f"{lat['p50']:.2f} / {lat['p99']:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _x(value: float | None) -> str:
    """A ratio with two decimals, or n/a when the run did not measure it (a partial --only run)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}x"


def _targets(ev: dict[str, Any]) -> list[str]:
    p1, p2, p3, p4, p5 = (ev[k] for k in ("P1", "P2", "P3", "P4", "P5"))
    p2b = ev.get("P2b", {})
    rows = [
        [
            "P1 steady state (W2, claim batch 1, one completion per transaction)",
            "≥ 1.2x PGMQ read+delete and ≥ 0.45x driver ceiling, every worker count",
            f"worst {_x(p1.get('worst_vs_pgmq'))} PGMQ ({p1.get('vs_pgmq_verdict')}),"
            f" worst {_x(p1.get('worst_vs_ceiling'))} ceiling"
            f" ({p1.get('vs_ceiling_verdict')})",
            f"**{p1['verdict']}**",
        ],
        [
            "P2 batched claim + batched completion",
            "≥ 3x the unbatched rate",
            f"worst {_x(p2.get('worst_factor'))}",
            f"**{p2['verdict']}**",
        ],
        [
            "P2b batched claim + batched completion vs PGMQ batched read + batched delete",
            "≥ 0.8x PGMQ at batch 10 and 100, every worker count",
            (
                f"worst {_x(p2b.get('worst_vs_pgmq'))}, best {_x(p2b.get('best_vs_pgmq'))} PGMQ"
                if p2b.get("verdict", "n/a") != "n/a"
                else "-"
            ),
            f"**{p2b.get('verdict', 'n/a')}**",
        ],
        [
            "P3 claim cost vs backlog (90% of the due head leased)",
            "p99 < 5 ms at the largest backlog and < 3x its value at the smallest",
            (
                f"p99 {p3['p99_large_ms']:.2f} ms at {p3['large_size']:,}, {p3['growth']:.2f}x the"
                f" {p3['small_size']:,} value"
                if p3.get("verdict") != "n/a"
                else "-"
            ),
            f"**{p3['verdict']}**",
        ],
        [
            "P4 enqueue (W1, 0% duplicates)",
            "≥ 0.9x PGMQ send and ≥ 0.7x driver ceiling, 1/4/8",
            f"worst {_x(p4.get('worst_vs_pgmq'))} PGMQ ({p4.get('vs_pgmq_verdict')}),"
            f" worst {_x(p4.get('worst_vs_ceiling'))} ceiling"
            f" ({p4.get('vs_ceiling_verdict')})",
            f"**{p4['verdict']}**",
        ],
        [
            "P5 engine vs plain Alembic (`engine2`)",
            f"no-op `alembic upgrade head` ≤ {p5['noop_target']}x plain Alembic with its stock"
            f" `env.py`; a 10-revision chain ≤ {p5['chain_target']}x",
            f"no-op {p5['noop_vs_plain']:.2f}x, chain {p5['chain_vs_plain']:.2f}x plain Alembic",
            f"**{p5['verdict']}**",
        ]
        if p5.get("against") == "plain Alembic"
        else [
            "P5 engine and baseline",
            "engine ≤ 1.5x psql; baseline ≥ 3x faster than the chain",
            (
                f"engine {p5['engine_vs_psql_cli']:.2f}x psql (CLI; in process"
                f" {p5['engine_vs_psql_in_process']:.2f}x, {p5['engine_verdict']}); baseline"
                f" {p5['baseline_speedup_cli']:.2f}x faster (CLI; in process"
                f" {p5['baseline_speedup_in_process']:.2f}x, {p5['baseline_verdict']})"
                if p5.get("verdict") != "n/a"
                else "-"
            ),
            f"**{p5['verdict']}**",
        ],
    ]
    steady, p6 = ev.get("P1_steady", {}), ev.get("P6", {})
    if steady.get("verdict", "n/a") != "n/a":
        rows.insert(
            1,
            [
                "P1 in the steady state (producers running, no manual VACUUM; `steady`)",
                "≥ 1.2x PGMQ read+delete, every worker and participant count",
                f"worst {steady['worst_vs_pgmq']:.2f}x, best {steady['best_vs_pgmq']:.2f}x PGMQ",
                f"**{steady['verdict']}**",
            ],
        )
    p4b = ev.get("P4b", {})
    if p4b.get("verdict", "n/a") != "n/a":
        rows.append(
            [
                "P4b batch enqueue, batch 100 (`enqueue_batch`)",
                "≥ 0.8x `pgmq.send_batch` and ≥ 5x single enqueue",
                f"worst {p4b['worst_vs_send_batch']:.2f}x send_batch,"
                f" worst {p4b['worst_vs_single']:.2f}x single enqueue",
                f"**{p4b['verdict']}**",
            ]
        )
    if p6.get("verdict", "n/a") != "n/a":
        rows.append(
            [
                "P6 wake-up without polling (`wake`)",
                "enqueue → claimed p99 < 10 ms at 10 jobs/s; < 1 claim/s per idle worker",
                f"p99 {p6['p99_ms']:.1f} ms (PGMQ notify {p6['pgmq_p99_ms']:.1f} ms);"
                f" {p6['idle_claims_per_worker_s']:.2f} claims/s per idle worker",
                f"**{p6['verdict']}**",
            ]
        )
    return _table(["target", "required", "measured (median ratios)", "verdict"], rows)


def _steady_table(results: Results) -> list[str]:
    steady = results["steady"]
    vacuumed = results.get("cycle", {})
    rows = []
    for participants, series in steady["by_participants"].items():
        for ours, pgmq in zip(series["ours"], series["pgmq"], strict=True):
            o, q = ours["per_second"], pgmq["per_second"]
            key = f"{ours['workers']}x1"
            then = (
                x(ratio(vacuumed["ours"][key], vacuumed["pgmq"][key]))
                if key in vacuumed.get("ours", {}) and key in vacuumed.get("pgmq", {})
                else "-"
            )
            last_o = ours["samples"][-1] if ours["samples"] else {}
            last_q = pgmq["samples"][-1] if pgmq["samples"] else {}
            rows.append(
                [
                    participants,
                    str(ours["workers"]),
                    rng(o),
                    rng(q),
                    f"{o['median'] / q['median']:.2f}x" if q["median"] else "-",
                    then,
                    f"{n(last_o.get('dead'))} / {n(last_q.get('dead'))}",
                    n(last_o.get("side_dead")),
                    wal(ours["run"]) + " / " + wal(pgmq["run"]),
                    _lat(ours["run"], "claim") + " · " + _lat(pgmq["run"], "read"),
                    "yes" if ours["ran_dry"] or pgmq["ran_dry"] else "no",
                ]
            )
    return _table(
        [
            "participants",
            "workers",
            "ours jobs/s per second (median, min-max)",
            "PGMQ jobs/s per second",
            "ours / PGMQ",
            "vacuumed W2 ratio (same run's `cycle`, if measured)",
            "dead tuples at the end (ours / PGMQ queue table)",
            "dead allocator rows (ours)",
            "WAL bytes (full-page images) of producers and workers per completed job (ours / PGMQ)",
            "claim · read p50/p99 ms",
            "a queue ran dry",
        ],
        rows,
    )


def _enqueue_batch_table(results: Results) -> list[str]:
    data = results["enqueue_batch"]
    rows = []
    for clients in sorted(data["ours_batch"], key=int):
        ours, pgmq, single = (
            data[k][clients] for k in ("ours_batch", "pgmq_send_batch", "ours_single")
        )
        rows.append(
            [
                clients,
                rng(ours["throughput"]),
                rng(pgmq["throughput"]),
                rng(single["throughput"]),
                x(ratio(ours, pgmq)),
                x(ratio(ours, single)),
                _lat(_median_run(ours), "enqueue_batch"),
            ]
        )
    return _table(
        [
            "clients",
            f"ours batch {data['batch']} jobs/s",
            "pgmq.send_batch jobs/s",
            "ours single enqueue jobs/s",
            "batch / send_batch",
            "batch / single",
            "batch call p50/p99 ms",
        ],
        rows,
    )


def _wake_table(results: Results) -> list[str]:
    wake = results["wake"]

    def pair(lat: dict[str, Any] | None) -> str:
        if not lat:  # not measured (results of an older run)
            return "-"
        return f"{lat.get('p50', math.nan):.2f} / {lat.get('p99', math.nan):.2f}"

    rows = []
    for system in ("ours", "pgmq"):
        if system not in wake:
            continue
        busy, idle = wake[system]["offered"], wake[system]["idle"]
        for label, run in (
            (str(wake["workers"]), busy),
            ("1", wake[system].get("one_worker")),
        ):
            if not run:
                continue
            lat = run.get("wake_ms") or {}
            rows.append(
                [
                    system,
                    label,
                    str(run["jobs"]),
                    f"{lat.get('p50', math.nan):.2f} / {lat.get('p99', math.nan):.2f} /"
                    f" {lat.get('max', math.nan):.2f}",
                    pair(run.get("enqueue_ms")),
                    pair(run.get("woken_ms")),
                    pair(run.get("after_wake_ms")),
                    f"{run['claims_per_worker_s']:.2f}",
                    # Claims that found nothing, per job claimed (ADR 0159; older runs: "-").
                    "-"
                    if run.get("empty_claims_per_job") is None
                    else f"{run['empty_claims_per_job']:.2f}",
                    f"{idle['claims_per_worker_s']:.2f}" if run is busy else "-",
                ]
            )
    return _table(
        [
            "system",
            "workers",
            "jobs",
            "enqueue → claimed p50 / p99 / max ms",
            "enqueue call p50 / p99 ms",
            "stamp → woken p50 / p99 ms",
            "woken → claimed p50 / p99 ms",
            f"claims per worker-second at {wake['offered_per_s']:g} jobs/s",
            "empty claims per job",
            "claims per worker-second, idle",
        ],
        rows,
    )


def _profile_table(results: Results) -> list[str]:
    lines: list[str] = []
    for name, prof in results["profile"].items():
        if name == "dead_entry_growth":
            lines += [
                "**Claim reads between vacuums** (10,000 participants, autovacuum off,"
                " synchronous_commit off): buffers one claim of 1 reads in the claimable-head"
                " index and in the lease index.",
                "",
                *_table(
                    [
                        "jobs since VACUUM",
                        "claimable index",
                        "lease index",
                        "dead tuples",
                        "claim+complete jobs/s up to here",
                    ],
                    [
                        [
                            f"{p['jobs']:,}",
                            str(p["claimable"]),
                            str(p["lease_expires"]),
                            f"{p['dead_tuples']:,}",
                            n(p["jobs_per_s"]),
                        ]
                        for p in prof["points"]
                    ]
                    + [
                        [
                            "after VACUUM",
                            str(prof["after_vacuum"]["claimable"]),
                            str(prof["after_vacuum"]["lease_expires"]),
                            "0",
                            f"{n(prof['before_vacuum_jobs_per_s'])} before →"
                            f" {n(prof['after_vacuum_jobs_per_s'])} after",
                        ]
                    ],
                ),
                "",
            ]
            continue
        keys = ("claim_ms", "complete_ms") if name != "pgmq" else ("read_ms", "delete_ms")
        over = f", {prof['participants']:,} participants" if "participants" in prof else ""
        lines += [
            f"**{name}** ({prof['cycles']:,} jobs on one connection, {prof['jobs_queued']:,}"
            f" queued{over}):"
            f" {prof[keys[0]]:.3f} + {prof[keys[1]]:.3f} ms per job from the client;"
            f" {prof['wal_bytes_per_job']:,.0f} WAL bytes, {prof['wal_records_per_job']:.1f} WAL"
            f" records, {prof['wal_fpi_per_job']:.3f} full-page images per job.",
            "",
            *_table(
                [
                    "top",
                    "statement",
                    "calls",
                    "mean ms",
                    "buffers/call",
                    "WAL records/call",
                    "WAL bytes/call",
                ],
                [
                    [
                        "yes" if st["toplevel"] else "",
                        f"`{st['query'][:110]}`",
                        str(st["calls"]),
                        f"{st['mean_ms']:.4f}",
                        f"{st['buffers_per_call']:.1f}",
                        f"{st['wal_records_per_call']:.2f}",
                        f"{st['wal_bytes_per_call']:.0f}",
                    ]
                    for st in prof["statements"][:12]
                ],
            ),
            "",
        ]
    return lines


def _cycle_table(results: Results, ev: dict[str, Any]) -> list[str]:
    rows = []
    cycle = results["cycle"]
    for row in ev["P1"]["rows"]:
        key = f"{row['workers']}x{row['batch']}"
        ours_run = _median_run(cycle["ours"][key])
        pgmq_run = _median_run(cycle["pgmq"][key])
        rows.append(
            [
                str(row["workers"]),
                str(row["batch"]),
                rng(row["ours"]),
                rng(row["pgmq"]),
                x(row["vs_pgmq"]),
                rng(row.get("ceiling")),
                x(row.get("vs_ceiling")),
                f"{n(ours_run['commits_per_job'], 2)} / {n(pgmq_run['commits_per_job'], 2)}",
                f"{wal(ours_run)} / {wal(pgmq_run)}",
                f"{_lat(ours_run, 'claim')} · {_lat(ours_run, 'complete')}",
                f"{_lat(pgmq_run, 'read')} · {_lat(pgmq_run, 'delete')}",
            ]
        )
    return _table(
        [
            "workers",
            "claim batch",
            "ours jobs/s",
            "PGMQ jobs/s",
            "ours / PGMQ",
            "driver ceiling",
            "ours / ceiling",
            "commits per job (ours / PGMQ)",
            "WAL bytes (full-page images) per job (ours / PGMQ)",
            "ours claim · complete p50/p99 ms",
            "PGMQ read · delete p50/p99 ms",
        ],
        rows,
    )


def _batched_table(results: Results, ev: dict[str, Any]) -> list[str]:
    rows = []
    for row in ev["P2"]["rows"]:
        run = _median_run(results["batched"][row["system"]][f"{row['workers']}x{row['batch']}"])
        names = ("claim", "complete_batch") if row["system"] == "ours" else ("read", "delete_batch")
        rows.append(
            [
                "ours" if row["system"] == "ours" else "PGMQ",
                str(row["workers"]),
                str(row["batch"]),
                rng(row["batched"]),
                rng(row["unbatched"]),
                x(row["factor"]),
                x(row.get("claim_only_factor")),
                n(run["commits_per_job"], 3),
                wal(run),
                f"{_lat(run, names[0])} · {_lat(run, names[1])}",
            ]
        )
    return _table(
        [
            "system",
            "workers",
            "batch",
            "batched jobs/s",
            "unbatched (claim 1) jobs/s",
            "batched / unbatched",
            "claim batching only",
            "commits per job",
            "WAL bytes (full-page images) per job",
            "claim · batch completion p50/p99 ms",
        ],
        rows,
    )


def _p2b_table(results: Results, ev: dict[str, Any]) -> list[str]:
    """P2b: ours batched against PGMQ batched, the same workers and batch, side by side."""
    rows = []
    for row in ev["P2b"]["rows"]:
        key = f"{row['workers']}x{row['batch']}"
        ours_run = _median_run(results["batched"]["ours"][key])
        pgmq_run = _median_run(results["batched"]["pgmq"][key])
        rows.append(
            [
                str(row["workers"]),
                str(row["batch"]),
                rng(row["ours"]),
                rng(row["pgmq"]),
                x(row["vs_pgmq"]),
                f"{wal(ours_run)} / {wal(pgmq_run)}",
                f"{_lat(ours_run, 'claim')} · {_lat(ours_run, 'complete_batch')}",
                f"{_lat(pgmq_run, 'read')} · {_lat(pgmq_run, 'delete_batch')}",
            ]
        )
    return _table(
        [
            "workers",
            "batch",
            "ours jobs/s (batched claim + complete_outbox_attempts_batch)",
            "PGMQ jobs/s (read of B + pgmq.delete(queue, ids[]))",
            "ours / PGMQ",
            "WAL bytes (full-page images) per job (ours / PGMQ)",
            "ours claim · batch completion p50/p99 ms",
            "PGMQ read · batch delete p50/p99 ms",
        ],
        rows,
    )


def _enqueue_table(results: Results, ev: dict[str, Any]) -> list[str]:
    enqueue = results["enqueue"]
    ceiling = results.get("ceiling", {}).get("driver", {})
    rows = []
    for key in sorted(k for k in enqueue if k.startswith("ours_")):
        for clients in sorted(enqueue[key], key=int):
            ours = enqueue[key][clients]
            pgmq = enqueue["pgmq_send"].get(clients)
            run = _median_run(ours)
            rows.append(
                [
                    key.removeprefix("ours_").replace("dup", "").replace("_p", "% dup, ")
                    + " participants",
                    clients,
                    rng(ours["throughput"]),
                    rng(pgmq["throughput"]) if pgmq else "-",
                    x(ratio(ours, pgmq)) if pgmq else "-",
                    x(unpaired_ratio(ours, ceiling[clients])) if clients in ceiling else "-",
                    n(run["commits_per_job"], 2),
                    n(run["wal_bytes_per_job"]),
                    _lat(run, "enqueue"),
                ]
            )
    return _table(
        [
            "workload",
            "clients",
            "ours enqueues/s",
            "PGMQ send/s",
            "ours / PGMQ",
            "ours / driver ceiling",
            "commits per call",
            "WAL bytes per call",
            "enqueue p50/p99 ms",
        ],
        rows,
    )


def _retry_table(results: Results) -> list[str]:
    retries = results["retries"]
    rows = []
    for system, label, names in (
        ("ours", "ours", ("claim", "complete")),
        ("pgmq", "PGMQ", ("read", "delete")),
    ):
        run = _median_run(retries[system])
        rows.append(
            [
                label,
                rng(retries[system]["throughput"]),
                n(run["commits_per_job"], 2),
                n(run["wal_bytes_per_job"]),
                f"{_lat(run, names[0])} · {_lat(run, names[1])}",
            ]
        )
    rows.append(["ours / PGMQ", x(ratio(retries["ours"], retries["pgmq"])), "", "", ""])
    return _table(
        [
            "system",
            "completions/s",
            "commits per completion",
            "WAL bytes per completion",
            "claim · complete p50/p99 ms",
        ],
        rows,
    )


def _pair(latency: dict[str, float]) -> str:
    return f"{latency['p50']:.0f} / {latency['max']:.0f}"


def _expiry_table(results: Results) -> list[str]:
    rows = []
    for system, label in (("ours", "ours"), ("pgmq", "PGMQ")):
        for run in results["expiry"][system]:
            rows.append(
                [
                    label,
                    f"{run['reclaimed']}/{run['held']}",
                    f"{run['lease_seconds']} s",
                    _pair(run["reclaim_after_kill_ms"]),
                    _pair(run["reclaim_after_expiry_ms"]),
                    f"{run['stale_completions_rejected']} rejected,"
                    f" {run['stale_completions_accepted']} accepted",
                    f"{run['survivor_completions_recorded']} recorded,"
                    f" {run['survivor_completions_lost']} lost",
                ]
            )
    return _table(
        [
            "system",
            "jobs reclaimed",
            "lease / visibility timeout",
            "claimable again after the kill, p50 / max ms",
            "after the lease expired, p50 / max ms",
            "late completions of the killed workers",
            "completions of the survivor",
        ],
        rows,
    )


def _backlog_table(results: Results) -> list[str]:
    rows = []
    for system, label in (("ours", "ours claim"), ("pgmq", "PGMQ read")):
        for entry in sorted(results["backlog"].get(system, []), key=lambda e: e["size"]):
            for state in ("clean", "dead"):
                if state not in entry:
                    continue
                data = entry[state]
                ev = data["explain"]
                scans = "; ".join(
                    f"{s['index'] or s['node']}: {s['rows']} rows, {s['buffers']} buf"
                    + (f", {s['removed_by_filter']:,} filtered" if s["removed_by_filter"] else "")
                    for s in ev.get("scans", [])
                )
                per_row = (ev["buffers"] / ev["rows"]) if ev.get("rows") else None
                server = data.get("server_claim_ms")
                rows.append(
                    [
                        label,
                        f"{entry['size']:,}",
                        state,
                        f"{data['n_dead_tup']:,}",
                        f"{data['claim_ms']['p50']:.3f}",
                        f"{data['claim_ms']['p99']:.3f}",
                        f"{server['p50']:.3f} / {server['p99']:.3f}" if server else "-",
                        str(data["claim_ms"]["count"]),
                        n(per_row, 1),
                        scans or "-",
                    ]
                )
    return _table(
        [
            "call",
            "pending rows",
            "state",
            "dead tuples",
            "p50 ms",
            "p99 ms",
            "inside the server p50 / p99 ms (claim of 1)",
            "calls",
            "buffers per claimed row (batch 10)",
            "EXPLAIN (ANALYZE, BUFFERS) of the scans",
        ],
        rows,
    )


def _engine2_table(results: Results) -> list[str]:
    labels = {
        "noop": "no-op `alembic upgrade head` (database at head)",
        "chain10": "10-revision chain on an empty database",
    }
    rows = [
        [
            labels.get(name, name),
            f"{side['engine_s']:.3f}",
            f"{side['plain_s']:.3f}",
            f"{side['ratio']:.2f}x",
            f"{side['client_cpu_ratio']:.2f}x",
            f"≤ {side['target']}x",
        ]
        for name, side in results["engine2"].items()
        if isinstance(side, dict) and "ratio" in side
    ]
    return _table(
        ["run", "engine s (median)", "plain Alembic s", "ratio", "client CPU ratio", "target"],
        rows,
    )


def _engine_table(results: Results) -> list[str]:
    engine = results["engine"]["timings_s"]
    labels = {
        "alembic_upgrade_cli": "`alembic upgrade head` (CLI, empty database)",
        "psql_rendered_sql": "`psql -f` the SQL of `alembic upgrade head --sql`",
        "engine_in_process": "engine in process (`api.upgrade`)",
        "baseline_apply_cli": "`symphony-schema baseline apply` (CLI)",
        "baseline_apply_in_process": "baseline apply in process (`apply_baseline`)",
        "baseline_drift_cli": "`symphony-schema baseline drift`",
        "invariants_cli": "`symphony-schema invariants`",
        "python_startup": "Python start-up + imports alone",
    }
    rows = [[labels.get(name, name), rng(summary, 3)] for name, summary in engine.items()]
    return _table(["step", "seconds"], rows)


def _engine_profile(results: Results) -> list[str]:
    profile = results["engine"].get("profile_in_process") or []
    if not profile:
        return []
    rows = [
        [f"`{entry['function']}`", str(entry["calls"]), f"{entry['cumulative_s']:.3f}"]
        for entry in profile[:15]
    ]
    return [
        "",
        "Where the in-process engine spends its time (cProfile of one `api.upgrade` on an"
        " empty database, cumulative seconds):",
        "",
        *_table(["function", "calls", "cumulative s"], rows),
    ]


def _timeline_table(results: Results) -> list[str]:
    rows = []
    for name, series in results["timeline"].items():
        samples = series.get("samples", [])
        tracked = [p for p in series.get("tracked", []) if p.get("count")]
        p99s = sorted(p["p99"] for p in tracked)
        vacuums = (
            max(s["autovacuums"] for s in samples) - min(s["autovacuums"] for s in samples)
            if samples
            else 0
        )
        rows.append(
            [
                name.replace("_", " "),
                n(series.get("offered_per_s")),
                n(series["run"]["throughput"]),
                n(max((s["dead"] for s in samples), default=None)),
                str(vacuums),
                f"{p99s[len(p99s) // 2]:.2f}" if p99s else "-",
                f"{p99s[-1]:.2f}" if p99s else "-",
                ", ".join(series.get("reloptions") or []) or "server defaults",
            ]
        )
    return _table(
        [
            "series",
            "offered jobs/s",
            "completed jobs/s",
            "peak dead tuples",
            "autovacuums of the queue",
            "claim/read p99 per second: median ms",
            "worst second ms",
            "queue table options",
        ],
        rows,
    )


def _statement_table(results: Results) -> list[str]:
    rows = []
    for script, statements in results["statement_costs"].items():
        for statement, summary in statements.items():
            rows.append([script, f"`{statement}`", rng(summary, 3)])
    return _table(["script", "statement", "server ms per call (median, min-max)"], rows)


def _ceiling_table(results: Results) -> list[str]:
    ceiling = results["ceiling"]
    rows = []
    for clients in sorted(ceiling["driver"], key=int):
        drv = ceiling["driver"][clients]
        bench = ceiling["pgbench"].get(clients)
        run = _median_run(drv)
        versus = unpaired_ratio(drv, bench) if bench else None
        rows.append(
            [
                clients,
                rng(bench["throughput"]) if bench else "-",
                rng(drv["throughput"]),
                x(versus),
                n(run["wal_bytes_per_job"]),
                _lat(run, "insert"),
            ]
        )
    return _table(
        [
            "clients",
            "pgbench tps",
            "driver tps",
            "driver / pgbench",
            "WAL bytes per transaction",
            "driver INSERT p50/p99 ms",
        ],
        rows,
    )


def _ledger_table(results: Results) -> list[str]:
    led = results["ledger"]
    rows = []
    for layout, entries in led["layouts"].items():
        for entry in entries:
            cells = [layout, f"{entry['size']:,}"]
            for op in ("enqueue", "claim_complete", "batched_10"):
                m = entry[op]
                cells.append(
                    f"{m['median_ms']:.3f} ({m['p95_ms']:.3f}) ms, {m['wal_bytes_per_job']:,.0f} B"
                )
            rows.append(cells)
    lines = _table(
        ["layout", "ledger rows", "enqueue", "claim(1)+complete per job", "claim(10)+batch of 10"],
        rows,
    )
    for layout, entries in led["layouts"].items():
        first, last = entries[0], entries[-1]
        ratios = ", ".join(
            f"{op} {last[op]['median_ms'] / first[op]['median_ms']:.2f}x"
            for op in ("enqueue", "claim_complete", "batched_10")
            if first[op]["median_ms"]
        )
        lines.append(f"- **{layout}**: {last['size']:,} rows vs {first['size']:,}: {ratios}.")
        for entry in entries:
            ar = entry.get("archive_restore")
            if ar:
                lines.append(
                    f"- **Archive/restore** of a partition of {ar['rows']:,} rows: archive "
                    f"{ar['archive_s']} s ({ar['archive_rows_per_s']:,} rows/s, file "
                    f"{ar['file_bytes']:,} bytes), restore {ar['restore_s']} s "
                    f"({ar['restore_rows_per_s']:,} rows/s)."
                )
    return lines


def heads_lines(section: Mapping[str, Any]) -> list[str]:
    """Section ``heads`` (ADR 0169): per participant count, jobs/s and their paired ratios, the
    no-VACUUM phases (jobs/s, buffers per claim, WAL per job) and server ms per statement."""
    plan = section["plan"]
    checkpoints = ", ".join(f"{c:,}" for c in plan["checkpoints"])
    lines = [
        "`python -m benchmarks --only heads`: the same work per job as plain SQL through"
        " `pgbench -M prepared -r` (synchronous_commit off) in three scratch schemas: `cur`"
        " (today's layout and statements), `slim` (today's without the payload in the queue"
        " row) and `heads` (immutable queue rows, a claimable-heads table, a lease table), with"
        f" PGMQ read + delete in the same repeat. A queue of {plan['fill_rows']:,} jobs, VACUUM"
        " ANALYZE, autovacuum off; buffers per claim (EXPLAIN ANALYZE BUFFERS, rolled back)"
        f" after 0 and {checkpoints} jobs done at one worker without VACUUM; then VACUUM and"
        f" {plan['seconds']} s at {', '.join(map(str, plan['workers']))} worker(s). Median of"
        f" {plan['repeats']} repeat(s) (range); ratios paired by repeat. Analysis: ADR 0169.",
        "",
    ]
    for participants, entry in section["by_participants"].items():
        summary = entry["summary"]
        systems = [k for k in summary if k != "ratios"]
        phases = [f"{p['from']:,}-{p['to']:,}" for p in summary[systems[0]]["no_vacuum"]]
        lines += [f"### {int(participants):,} participants", ""]
        rows = []
        for system in systems:
            s = summary[system]
            rows.append(
                [
                    system + (" (ran dry)" if s["ran_dry"] else ""),
                    *(rng(s["jobs_per_s"][str(w)]) for w in plan["workers"]),
                    *(rng(p["jobs_per_s"]) for p in s["no_vacuum"]),
                    " / ".join(n(v["median"]) for v in s["buffers_per_claim"].values()),
                    " / ".join(n(p["wal_bytes_per_job"]["median"]) for p in s["no_vacuum"]),
                    " / ".join(n(p["wal_records_per_job"]["median"], 1) for p in s["no_vacuum"]),
                    " / ".join(n(p["wal_fpi_per_job"]["median"], 2) for p in s["no_vacuum"]),
                ]
            )
        after = " / ".join(f"{int(k):,}" for k in summary[systems[0]]["buffers_per_claim"])
        lines += _table(
            [
                "system",
                *(f"jobs/s {w}w (vacuumed)" for w in plan["workers"]),
                *(f"jobs/s 1w, jobs {ph} (no VACUUM)" for ph in phases),
                f"buffers per claim after {after} jobs",
                f"WAL bytes/job ({' / '.join(phases)})",
                "WAL records/job",
                "full-page images/job",
            ],
            rows,
        )
        lines.append("")
        lines += _table(
            [
                "ratio (paired)",
                *(f"{w}w vacuumed" for w in plan["workers"]),
                *(f"1w no VACUUM, jobs {ph}" for ph in phases),
            ],
            [
                [
                    key,
                    *(x(ratio["jobs_per_s"][str(w)]) for w in plan["workers"]),
                    *(x(r) for r in ratio["no_vacuum_jobs_per_s"]),
                ]
                for key, ratio in summary["ratios"].items()
            ],
        )
        lines.append("")
        statement_rows = []
        for system in systems:
            phase_list = summary[system]["no_vacuum"]
            for label in phase_list[0]["statement_ms"]:
                statement_rows.append(
                    [
                        system,
                        f"`{label}`",
                        *(f"{p['statement_ms'][label]['median']:.3f}" for p in phase_list),
                    ]
                )
            statement_rows.append(
                [
                    system,
                    "**per job**",
                    *(
                        f"**{sum(v['median'] for v in p['statement_ms'].values()):.3f}**"
                        for p in phase_list
                    ),
                ]
            )
        lines += _table(
            ["system", "statement", *(f"ms per call, jobs {ph}" for ph in phases)],
            statement_rows,
        )
        lines.append("")
    return lines


def render(results: Results, figures: list[Path]) -> str:
    meta = results["meta"]
    ev = results["evaluation"]
    server = meta["server"]
    settings = server["settings"]
    lines = [
        "# Outbox benchmarks",
        "",
        "<!-- GENERATED FILE - DO NOT EDIT. Regenerate with `nox -s bench`. -->",
        "",
        f"Made by `{meta['command']}` on {meta['started_at']} in {meta['duration_s'] / 60:.1f}"
        f" minutes, from commit `{meta['git_commit']}` (schema head `{meta['head']}`)."
        " Reproduce with `nox -s bench` (or `.venv/bin/python -m benchmarks`); a two-minute smoke"
        " run is `nox -s bench -- --quick`. Raw numbers: [results.json](results.json).",
        "",
        *(
            [
                "Sections measured again later, in the same way, replacing those of the first run: "
                + "; ".join(
                    f"{', '.join(r['sections'])} by `{r['command']}` on {r['started_at']}"
                    f" (load {r['load_before']} / {r['load_after']})"
                    for r in meta["reruns"]
                )
                + ".",
                "",
            ]
            if meta.get("reruns")
            else []
        ),
        f"- **Machine:** {meta['machine']['line']}. Load average before / after the run:"
        f" {meta['load_before']} / {meta['load_after']} (other jobs shared the machine; ratios"
        " are taken between systems measured back to back).",
        f"- **PostgreSQL:** {server['version'].split(',')[0]};"
        + "; ".join(f" {k} = {v}" for k, v in settings.items() if k != "server_version")
        + ".",
        f"- **Method:** one psycopg {meta['machine']['psycopg']} driver for every system:"
        f" worker processes with one connection each, autocommit (one transaction per call),"
        f" the same {meta['settings']['payload_bytes']}-byte JSON payload,"
        f" {meta['settings']['warmup_s']:g} s warm-up, {meta['settings']['measure_s']:g} s"
        f" measured, {meta['settings']['repeats']} repeats (median, min-max in brackets); every"
        " run starts from emptied tables, the same queued rows and VACUUM ANALYZE (checkpoints come"
        " when the server schedules them; full-page images per job are reported)."
        f" PGMQ {meta['pgmq_version']} is installed from the `pgmq` package's SQL into the same"
        " scratch database; our schema is migrated through the real engine. Commits per job"
        " come from `pg_stat_database`, WAL per job from each worker's"
        " `pg_stat_get_backend_wal()` (exact even on a shared server).",
        "- **pg_stat_statements:** "
        + (
            "collected (the table at the end; the `profile` section's own tables track nested"
            " statements too)."
            if server["pg_stat_statements"] or results.get("pg_stat_statements")
            else "not collected: the running server does not preload it (`shared_preload_libraries`"
            " is empty; `symphony_schema.embedded` writes it only when it initialises a cluster,"
            " so this cluster predates that setting). Per-statement costs below come from the"
            " driver's timings, `auto_explain` and `pgbench -r` instead."
        ),
        "",
        "## Targets (docs/contract/quality.md §1)",
        "",
        *_targets(ev),
        "",
    ]
    lines += analysis_sections(results)
    if "cycle" in results:
        lines += [
            "",
            "## W2 steady state: claim + complete vs PGMQ read + delete (P1)",
            "",
            *_cycle_table(results, ev),
            "",
        ]
    if "batched" in results:
        lines += ["## Batched claim and completion (P2)", "", *_batched_table(results, ev), ""]
        if ev["P2b"]["rows"]:
            lines += [
                "## Batched against PGMQ batched (P2b)",
                "",
                "Median of the repeats; ratios paired run by run (measured back to back).",
                "",
                *_p2b_table(results, ev),
                "",
            ]
    if "enqueue" in results:
        lines += ["## W1 enqueue (P4)", "", *_enqueue_table(results, ev), ""]
    if "retries" in results:
        lines += [
            "## W3 retry-heavy: 30% retries due 2 s later, 5% terminal failures",
            "",
            "PGMQ has no retry semantics of its own: a retry there is `pgmq.set_vt` (the"
            " message reappears 2 s later), a failure `pgmq.archive`, the rest"
            " `pgmq.delete`. Ours records every outcome in the attempts ledger.",
            "",
            *_retry_table(results),
            "",
        ]
    if "expiry" in results:
        lines += [
            "## W4 lease expiry: workers killed (SIGKILL) while holding leases",
            "",
            *_expiry_table(results),
            "",
        ]
    if "backlog" in results:
        lines += ["## W5 backlog growth (P3)", "", *_backlog_table(results), ""]
    if "timeline" in results:
        lines += [
            "## Steady state over time: dead tuples and claim latency",
            "",
            "Producers enqueue (ours) / send (PGMQ) at a fixed rate while consumers claim"
            " and complete one job per call, so the queue stays short as in production; the"
            " figure below plots every second.",
            "",
            *_timeline_table(results),
            "",
        ]
    if "steady" in results:
        st = results["steady"]
        lines += [
            "## P1 in the steady state: producers and workers together, no manual VACUUM",
            "",
            f"`python -m benchmarks --only steady [--seconds N]`: each queue is filled once per"
            f" participant count ({', '.join(st['by_participants'])}) and ANALYZEd (never"
            f" VACUUMed); {st['producers']} paced producer(s) offer {st['offered_per_s']:g} jobs/s"
            " in total while the workers claim (batch 1) and complete as fast as they can,"
            f" {st['seconds']:g} s per worker count, the worker counts back to back on the same"
            " tables (ours, then PGMQ, at each), so each run inherits the dead tuples of the runs"
            " before it and only autovacuum cleans up. Rates are per second of the window.",
            "",
            *_steady_table(results),
            "",
        ]
    if "enqueue_batch" in results:
        lines += [
            "## P4b batch enqueue",
            "",
            "`python -m benchmarks --only enqueue_batch`: `enqueue_payment_outbox_batch` with 100"
            " jobs over 10,000 participants per call (revision 0027, set-based since 0031: ADRs"
            " 0152, 0136) against `pgmq.send_batch` of 100 messages and against single enqueues,"
            " back to back.",
            "",
            *_enqueue_batch_table(results),
            "",
        ]
    if "wake" in results:
        wk = results["wake"]
        lines += [
            "## P6 wake-up without polling",
            "",
            f"`python -m benchmarks --only wake`: {wk['workers']} workers sleep in"
            " `reference_worker.wait_for_work` (LISTEN, fallback poll every"
            f" {wk['poll_s']:g} s) and claim only when woken; one producer offers"
            f" {wk['offered_per_s']:g} jobs/s for {wk['seconds']:g} s. Latency runs from the"
            " start of the enqueue call (its commit included) to the return of the claim."
            " PGMQ: `pgmq.enable_notify_insert(queue, 0)` (no throttle) and the same waiting"
            " helper. The parts: the producer's enqueue call (its commit included), the stamp"
            " to the moment the worker's wait returned on the notification, and the claim that"
            " followed (only jobs claimed right after a notification count in the last two)."
            " Enqueue at 4 clients with our notify trigger / without it:"
            f" {n(wk.get('enqueue_4_clients', {}).get('on'))} /"
            f" {n(wk.get('enqueue_4_clients', {}).get('off'))} jobs/s.",
            "",
            *_wake_table(results),
            "",
        ]
    if "profile" in results:
        lines += [
            "## Profile: where a job's time goes (pg_stat_statements, track = all)",
            "",
            "`python -m benchmarks --only profile`: claim (batch 1) + complete on one"
            " connection against pgmq.read + pgmq.delete; nested statements (the functions'"
            " own statements and the head-promotion trigger) are listed under their callers."
            " Analysis and plans: ADR 0150.",
            "",
            *_profile_table(results),
        ]
    if "statement_costs" in results:
        lines += [
            "## Server time per statement (pgbench -r, 1 client, synchronous_commit off)",
            "",
            *_statement_table(results),
            "",
        ]
    if "engine2" in results:
        lines += ["## Engine vs plain Alembic (P5)", "", *_engine2_table(results), ""]
    if "engine" in results:
        lines += ["## Engine (P5)", "", *_engine_table(results), *_engine_profile(results), ""]
    if "ceiling" in results:
        lines += ["## Reference points: the commit ceiling", "", *_ceiling_table(results), ""]
    if "ledger" in results:
        lines += [
            "## The attempts ledger at 10M rows: partitioned vs single table (issue 15)",
            "",
            "One client, autocommit, per-call medians (p95) over the same calls at each ledger"
            " size; WAL bytes per job from the client's own `pg_stat_get_backend_wal()`."
            " `partitioned` is the schema at head (daily partitions, ADR 0130), `single` the"
            " ledger of revision 0012. The historical rows are one DISPATCHED attempt per job"
            " spread over 89 days, with their key-table rows (`benchmarks/ledger.py`). Target:"
            " hot-path cost at 10M within 1.2x of 10k, WAL per job not worse than the single"
            " table.",
            "",
            *_ledger_table(results),
            "",
        ]
    if "heads" in results:
        lines += [
            "## A claimable-heads table, measured (ADR 0150 item 5, ADR 0169)",
            "",
            *heads_lines(results["heads"]),
        ]
    if results.get("pg_stat_statements"):
        lines += [
            "## pg_stat_statements (whole run, scratch database)",
            "",
            *_table(
                ["query", "calls", "mean ms", "buffers", "WAL bytes"],
                [
                    [
                        f"`{q['query'][:90]}`",
                        str(q["calls"]),
                        f"{q['mean_ms']:.3f}",
                        str(q["buffers"]),
                        str(q["wal_bytes"]),
                    ]
                    for q in results["pg_stat_statements"]
                ],
            ),
            "",
        ]
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            lines += [f"![{path.stem.replace('_', ' ')}]({path.name})", ""]
    return "\n".join(lines).rstrip() + "\n"
