"""``symphony-schema reset``: development-only drop, recreate and migrate of schema public."""

from __future__ import annotations

import argparse
import sys

from symphony_schema import reset
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reset",
        help="DEVELOPMENT ONLY: drop and recreate schema public, then migrate to head",
        description=(
            "Development only. Drop schema public with everything in it (tables, data, the "
            "migration ledger, alembic_version) and schema symphony_ledger (the attempts "
            "ledger's partitions), recreate public as a fresh PostgreSQL 18 database "
            "has it (owned by pg_database_owner, USAGE but never CREATE for PUBLIC), then migrate "
            "to head through the checksummed engine. Refuses, before connecting, any target that "
            "is not the embedded server, a Unix socket, localhost or a loopback address, judged "
            "from what libpq will use (PGHOSTADDR/PGHOST/PGSERVICE apply whenever the URL does "
            "not set that keyword), and, once connected, a server reporting a non-loopback "
            "address; --force skips only these locality checks. Before dropping anything it "
            "also refuses servers older than PostgreSQL 18, users that could not rebuild the "
            "schema, and a deploy lock held by a running migration. Roles, memberships, "
            "passwords and ALTER DATABASE settings are kept. No policy is seeded: run "
            "seed-policy afterwards."
        ),
    )
    add_url_argument(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help=(
            "reset even though the target does not look local, before or after connecting "
            "(you are about to lose its data); the other checks still apply"
        ),
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (it is asked only when stdin is a terminal)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="do not print one line per applied revision"
    )
    parser.set_defaults(handler=_reset)


def _reset(args: argparse.Namespace) -> int:
    selected = select_database(args.url)
    if not args.yes and sys.stdin.isatty():
        question = f"reset {selected.describe()}: drop schema public with all its data? [y/N] "
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip().lower() not in {"y", "yes"}:
            print("reset cancelled: nothing was changed")
            return 1
    where = reset.reset_database(selected.url, force=args.force, quiet=args.quiet)
    database = selected.sqlalchemy_url.database
    print(
        f"reset database {database!r} ({where.description}): schema public recreated and "
        "migrated to head. Next: symphony-schema seed-policy --file policy/dev-policy.json"
    )
    return 0
