"""``symphony-schema drift``: compare a live database with ``baseline/catalog.txt`` (ADR 0080)."""

from __future__ import annotations

import argparse
from pathlib import Path

from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from symphony_schema.baseline.catalog import SECTIONS

    drift = subparsers.add_parser(
        "drift",
        help="exit 1 with unified diffs when a live database differs from what baseline/ says "
        "its head should be (hot patches, disabled triggers, extra grants or memberships)",
        description=(
            "Read the live database's catalog - roles with their attributes, validity and "
            "settings, every membership involving a Symphony role, the database's settings and "
            "ACL, functions (body and attributes), triggers (enabled state), every ACL and "
            "default ACL, row security, publications, subscriptions, event triggers, "
            "extensions, the ledger, tables, columns, constraints and indexes - with the same "
            "reader that writes baseline/catalog.txt, and print a unified diff per differing "
            "section. Exit 0 when equal, 1 on any difference or when the database is not at "
            "the baseline's head ('behind head' / 'unknown head': nothing is compared), 2 on "
            "bad input (unreadable or stale baseline, no connection, a role that cannot read "
            "the catalog). Needs no superuser: the migrating user, or a login in "
            "symphony_auditor (SELECT on public.schema_migrations), can run it. Read-only."
        ),
    )
    add_url_argument(drift)
    drift.add_argument(
        "--baseline-dir",
        type=Path,
        help="baseline holding catalog.txt (default: <project>/baseline)",
    )
    drift.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        help="compare only this section (repeatable; default: all)",
    )
    drift.set_defaults(handler=_drift)


def _drift(args: argparse.Namespace) -> int:
    from symphony_schema.baseline.drift import live_drift, render_live

    selected = select_database(args.url)
    report = live_drift(selected.conninfo, baseline_dir=args.baseline_dir, sections=args.section)
    print(render_live(report))
    return 0 if report.ok else 1
