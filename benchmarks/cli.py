"""``python -m benchmarks [--quick] [--url URL] [--out DIR] [--only SECTION,...]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import (
    backlog,
    db,
    engine,
    enqueue_batch,
    evaluate,
    expiry,
    heads,
    ledger,
    machine,
    plots,
    profile,
    report,
    steady,
    wake,
    workloads,
)
from benchmarks.config import FULL, QUICK
from benchmarks.engine2 import engine2 as engine_vs_plain_alembic
from symphony_schema import SymphonyError, project_root
from symphony_schema.database import select_database
from symphony_schema.migration import api

SECTIONS = (
    "profile",
    "ceiling",
    "statements",
    "enqueue",
    "enqueue_batch",
    "cycle",
    "batched",
    "retries",
    "expiry",
    "backlog",
    "timeline",
    "steady",
    "wake",
    "engine",
    "engine2",
    "ledger",
    "heads",
)
#: Sections a run without --only leaves out: evidence for a design decision rather than a
#: target of quality.md (``heads``, ADR 0169: about 20 minutes).
ONLY_WHEN_NAMED = ("heads",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the Symphony outbox against PGMQ and the commit ceiling "
        "(docs/contract/quality.md §1) on the server the URL rule selects (default: the embedded "
        "PostgreSQL 18), in scratch databases that are dropped afterwards.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of every selected section in under two minutes (written to "
        ".symphony/bench-quick unless --out is given)",
    )
    parser.add_argument(
        "--url",
        help="server to benchmark on (default: SYMPHONY_DATABASE_URL, "
        "then DATABASE_URL, then the embedded PostgreSQL 18)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for results.json, the figures and README.md "
        "(default: docs/benchmarks, or .symphony/bench-quick with --quick)",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run ({', '.join(SECTIONS)}); without it, every "
        f"section but {', '.join(ONLY_WHEN_NAMED)}",
    )
    parser.add_argument("--repeats", type=int, help="repeats per configuration (default 3)")
    parser.add_argument(
        "--seconds",
        type=float,
        help="measured seconds per run (default 3; --quick 1); also the length of each "
        "steady-state run (default 15 s per worker count) and of the wake-up run (default 20 s)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: redraw the figures and rewrite README.md from the results.json "
        "already in the output directory",
    )
    return parser


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _selected(only: str | None) -> tuple[str, ...]:
    if not only:
        return tuple(section for section in SECTIONS if section not in ONLY_WHEN_NAMED)
    chosen = tuple(part.strip() for part in only.split(",") if part.strip())
    unknown = [part for part in chosen if part not in SECTIONS]
    if unknown:
        raise SymphonyError(
            f"unknown section(s) {', '.join(unknown)} in --only; choose from {', '.join(SECTIONS)}"
        )
    return chosen


def _clean(value: Any) -> Any:
    """JSON without NaN (written as null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _top_statements(conn: psycopg.Connection[Any], limit: int = 25) -> list[dict[str, Any]]:
    """The scratch database's most expensive statements over the whole run."""
    rows = conn.execute(
        "SELECT s.query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows,"
        " s.shared_blks_hit + s.shared_blks_read, s.wal_bytes"
        " FROM pg_stat_statements AS s"
        " WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d"
        "                  WHERE d.datname = current_database())"
        " ORDER BY s.total_exec_time DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [
        {
            "query": str(r[0])[:300],
            "calls": int(r[1]),
            "total_ms": round(float(r[2]), 1),
            "mean_ms": round(float(r[3]), 4),
            "rows": int(r[4]),
            "buffers": int(r[5]),
            "wal_bytes": int(r[6]),
        }
        for r in rows
    ]


def _merge(
    out_dir: Path, meta: dict[str, Any], measured: dict[str, Any], *, partial: bool
) -> dict[str, Any]:
    """A full run replaces results.json; a run of some sections (--only) replaces just those
    sections of an existing results.json (same output directory) and says so in its meta."""
    path = out_dir / "results.json"
    if not partial or not path.is_file():
        return {"meta": meta, **measured}
    previous: dict[str, Any] = json.loads(path.read_text())
    previous.setdefault("meta", meta).setdefault("reruns", []).append(
        {
            "command": meta["command"],
            "started_at": meta["started_at"],
            "git_commit": meta["git_commit"],
            "sections": meta["sections"],
            "load_before": meta["load_before"],
            "load_after": meta["load_after"],
            "duration_s": meta["duration_s"],
        }
    )
    previous.update(measured)
    return previous


def _write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    figures = plots.make_all(results, out_dir, results["meta"]["command"])
    (out_dir / "README.md").write_text(report.render(results, figures))
    return figures


def _report_only(out_dir: Path) -> int:
    path = out_dir / "results.json"
    if not path.is_file():
        raise SymphonyError(
            f"{path} does not exist: run the benchmarks first (without "
            "--report-only), or point --out at a directory that has results"
        )
    results = json.loads(path.read_text())
    results["evaluation"] = _clean(evaluate.evaluate(results))
    path.write_text(json.dumps(results, indent=1) + "\n")
    figures = _write_report(results, out_dir)
    _log(f"rewrote {out_dir / 'README.md'} and {len(figures)} figure(s) from {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args, argv if argv is not None else sys.argv[1:])
    except SymphonyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    if args.repeats is not None and args.repeats < 1:
        raise SymphonyError(f"--repeats must be at least 1, got {args.repeats}")
    if args.seconds is not None and args.seconds <= 0:
        raise SymphonyError(f"--seconds must be positive, got {args.seconds}")
    settings = (QUICK if args.quick else FULL).with_overrides(args.repeats, args.seconds)
    sections = _selected(args.only)
    out_dir: Path = args.out or (
        project_root() / (".symphony/bench-quick" if args.quick else "docs/benchmarks")
    )
    if args.report_only:
        return _report_only(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    server = select_database(args.url)
    command = "python -m benchmarks" + (" " + shlex.join(argv) if argv else "")
    started = time.monotonic()
    results: dict[str, Any] = {}
    meta: dict[str, Any] = {
        "command": command,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": machine.git_commit(),
        "head": api.head_revision(),
        "machine": machine.machine_info(),
        "load_before": machine.load_average(),
        "settings": dataclasses.asdict(settings),
        "sections": list(sections),
        "pgmq_version": db.pgmq_version(),
    }
    _log(f"benchmarks: {meta['machine']['line']}; sections {', '.join(sections)}; output {out_dir}")
    with psycopg.connect(server.conninfo, autocommit=True) as stats:
        meta["server"] = machine.server_info(stats)
        if not meta["server"]["pg_stat_statements"]:
            _log("pg_stat_statements is not preloaded on this server: not collected")
        with db.bench_database(server.url, "main") as database, database.connect() as admin:
            ctx = workloads.Context(
                database=database,
                admin=admin,
                stats=stats,
                settings=settings,
                body=db.payload(settings.payload_bytes),
                log=_log,
            )
            steps: dict[str, Callable[[], Any]] = {
                "profile": lambda: profile.profile(ctx),
                "ceiling": lambda: workloads.ceiling(ctx),
                "statements": lambda: workloads.statement_costs(ctx),
                "enqueue": lambda: workloads.enqueue(ctx),
                "enqueue_batch": lambda: enqueue_batch.enqueue_batch(ctx),
                "cycle": lambda: workloads.cycle(ctx),
                "batched": lambda: workloads.batched(ctx),
                "retries": lambda: workloads.retries(ctx),
                "expiry": lambda: expiry.lease_expiry(ctx),
                "backlog": lambda: backlog.backlog(ctx),
                "timeline": lambda: workloads.timeline(ctx),
                "steady": lambda: steady.steady(ctx),
                "wake": lambda: wake.wake(ctx),
                "engine": lambda: engine.engine(ctx, server.url),
                "engine2": lambda: engine_vs_plain_alembic(
                    server.url, max(3, settings.engine_repeats)
                ),
                "ledger": lambda: ledger.ledger(ctx),
                "heads": lambda: heads.heads(ctx),
            }
            keys = {"statements": "statement_costs"}
            if meta["server"]["pg_stat_statements"]:
                admin.execute("SELECT pg_stat_statements_reset()")
            for section in sections:
                section_started = time.monotonic()
                results[keys.get(section, section)] = steps[section]()
                _log(f"{section} done in {time.monotonic() - section_started:.0f} s")
            if meta["server"]["pg_stat_statements"]:
                results["pg_stat_statements"] = _top_statements(admin)
    meta["load_after"] = machine.load_average()
    meta["duration_s"] = round(time.monotonic() - started, 1)
    results = _merge(out_dir, meta, results, partial=args.only is not None)
    results["evaluation"] = evaluate.evaluate(results)
    results = _clean(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    figures = _write_report(results, out_dir)
    for name, verdict in results["evaluation"].items():
        _log(f"{name}: {verdict.get('verdict')}")
    _log(
        f"wrote {out_dir / 'README.md'}, results.json and {len(figures)} figure(s) in "
        f"{meta['duration_s'] / 60:.1f} min"
    )
    return 0
