"""``symphony-schema baseline generate|drift|apply``: the committed snapshot and the drift gate."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from symphony_schema import SymphonyError
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database

CHECKS = ("baseline", "round-trip", "models", "privileges")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    baseline = subparsers.add_parser(
        "baseline",
        help="generate baseline/, check drift, bring up a database from the baseline",
        description="The committed baseline (baseline/baseline.sql, baseline/privileges.md, "
        "baseline/catalog.txt) and "
        "the drift gate. Scratch databases are created on the server the URL rule selects and "
        "dropped afterwards.",
    )
    actions = baseline.add_subparsers(dest="action", metavar="ACTION", required=True)

    generate = actions.add_parser(
        "generate",
        help="migrate a scratch database to head and write baseline/ (nox -s baseline)",
        description="Create a scratch database on the server the URL rule selects, migrate it "
        "to head through the engine, write baseline/baseline.sql and baseline/privileges.md "
        "from it (saying which files changed) and drop it. Commit baseline/ with the revision "
        "that changed it.",
    )
    add_url_argument(generate)
    generate.add_argument(
        "--output-dir", type=Path, help="where to write the files (default: <project>/baseline)"
    )
    generate.set_defaults(handler=_generate)

    drift = actions.add_parser(
        "drift",
        help="exit 1 with unified diffs when migrations, baseline, models and privileges "
        "disagree (nox -s drift)",
        description="The drift gate, on scratch databases: the committed baseline/ against what "
        "a freshly migrated database generates (baseline), a database built from baseline.sql "
        "against one built by the migrations (round-trip), the Core models against the "
        "migrated database (models), the declared privilege matrix and roles against the "
        "catalog (privileges). Exit 0 when all agree, 1 with unified diffs otherwise.",
    )
    add_url_argument(drift)
    drift.add_argument(
        "--baseline-dir",
        type=Path,
        help="committed baseline to check (default: <project>/baseline)",
    )
    drift.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="also append a markdown summary (diffs in ```diff fences) to FILE, e.g. "
        '"$GITHUB_STEP_SUMMARY"',
    )
    drift.add_argument(
        "--check",
        action="append",
        choices=CHECKS,
        help="run only this check (repeatable; default: all four)",
    )
    drift.set_defaults(handler=_drift)

    apply = actions.add_parser(
        "apply",
        help="bring up an EMPTY database from baseline/baseline.sql (refuses a non-empty one)",
        description="Bring up an empty database from baseline/baseline.sql in one transaction "
        "under the deploy lock, ledger and alembic_version included, so that 'alembic upgrade "
        "head' continues from there. Refused, with nothing written: a server older than "
        "PostgreSQL 18, a database that already holds anything of its own, a baseline whose "
        "ledger disagrees with the revision files.",
    )
    add_url_argument(apply)
    apply.add_argument(
        "--file", type=Path, help="baseline to apply (default: <project>/baseline/baseline.sql)"
    )
    apply.set_defaults(handler=_apply)


def _generate(args: argparse.Namespace) -> int:
    from symphony_schema.baseline.generate import default_baseline_dir, generate

    output_dir: Path = args.output_dir or default_baseline_dir()
    before = {p.name: p.read_bytes() for p in output_dir.glob("*") if p.is_file()}
    started = time.monotonic()
    generated = generate(select_database(args.url).url, output_dir)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    for name, text in generated.files().items():
        state = "unchanged" if before.get(name) == text.encode("utf-8") else "written"
        print(f"{output_dir / name}: {state}")
    print(f"baseline generated at {generated.head} in {elapsed_ms} ms")
    return 0


def _drift(args: argparse.Namespace) -> int:
    from symphony_schema.baseline.drift import (
        DriftInputs,
        DriftKind,
        render_markdown,
        render_text,
        run_drift,
    )
    from symphony_schema.baseline.generate import default_baseline_dir

    selected = {
        DriftKind.BASELINE: "baseline",
        DriftKind.ROUND_TRIP: "round-trip",
        DriftKind.MODELS: "models",
        DriftKind.PRIVILEGES: "privileges",
    }
    kinds = tuple(k for k, name in selected.items() if not args.check or name in args.check)
    inputs = DriftInputs(baseline_dir=args.baseline_dir or default_baseline_dir(), kinds=kinds)
    try:
        report = run_drift(select_database(args.url).url, inputs)
    except SymphonyError as exc:
        # The job summary must say why there is no report (say, a revision that fails).
        _append(args.summary, f"## ❌ Schema drift could not run\n\n```text\n{exc}\n```\n")
        raise
    print(render_text(report))
    _append(args.summary, render_markdown(report))
    return 0 if report.ok else 1


def _append(summary: Path | None, markdown: str) -> None:
    """Append (GitHub's $GITHUB_STEP_SUMMARY convention) when a summary file was asked for."""
    if summary is not None:
        with summary.open("a", encoding="utf-8") as handle:
            handle.write(markdown)


def _apply(args: argparse.Namespace) -> int:
    from symphony_schema.baseline.apply import apply_baseline
    from symphony_schema.baseline.generate import BASELINE_SQL, default_baseline_dir

    baseline_file: Path = args.file or default_baseline_dir() / BASELINE_SQL
    result = apply_baseline(select_database(args.url).url, baseline_file)
    at = ", ".join(result.heads) or "base"
    print(
        f"applied {baseline_file} to database {result.database!r} at {at} in "
        f"{result.elapsed_ms} ms; 'alembic upgrade head' continues from there",
        file=sys.stdout,
    )
    return 0
