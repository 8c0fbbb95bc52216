"""``symphony-schema scan-secrets``: fail when the repository contains anything secret-looking."""

from __future__ import annotations

import argparse
from pathlib import Path

from symphony_schema import project_root
from symphony_schema.secrets_scan import scan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "scan-secrets",
        help="scan the repository for secrets (detect-secrets); exit 1 on any finding",
        description="Scan every git-tracked file with detect-secrets. Exit 1 and list "
        "file:line: kind for each finding. Allowlist a deliberate line inline with "
        "'pragma: allowlist secret'. Passwords belong in the environment, never in files.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: the project: the nearest alembic.ini upward, or -c)",
    )
    parser.set_defaults(handler=_scan)


def _scan(args: argparse.Namespace) -> int:
    root = (args.root or project_root()).resolve()
    findings = scan(root)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} potential secret(s) in {root}: move them to the environment")
        return 1
    print(f"no secrets found in {root}")
    return 0
