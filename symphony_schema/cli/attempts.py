"""``symphony-schema attempts ...``: the partitioned attempts ledger (issue 15, ADR 0130-0133)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import SymphonyError, attempts
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "attempts",
        help="the partitioned attempts ledger: partitions, archive, restore",
        description=(
            "The attempts ledger (public.payment_outbox_attempts) is partitioned by UTC enqueue "
            "day in schema symphony_ledger. These commands create partitions ahead, archive old "
            "ones to verified files and restore them. They need a superuser or a member of "
            "symphony_owner."
        ),
    )
    commands = parser.add_subparsers(dest="attempts_command", metavar="COMMAND", required=True)

    partitions = commands.add_parser(
        "partitions",
        help="list or create the ledger's partitions",
        description="List the ledger's partitions, or create the days ahead (ensure).",
    )
    partition_commands = partitions.add_subparsers(
        dest="partitions_command", metavar="COMMAND", required=True
    )
    ensure = partition_commands.add_parser(
        "ensure",
        help="create the daily partitions from today to --days-ahead days ahead",
        description=(
            "Create the daily partitions (UTC days) from today to --days-ahead days ahead with "
            "public.ensure_ledger_partitions(), and give every partition, including one created "
            "by hand, its append-only protection. Idempotent; run it daily (the gate fails when "
            "fewer than 7 days ahead exist)."
        ),
    )
    add_url_argument(ensure)
    ensure.add_argument(
        "--days-ahead",
        type=int,
        default=14,
        metavar="N",
        help="days after today to create (1-366, default 14)",
    )
    ensure.set_defaults(handler=_ensure)
    listing = partition_commands.add_parser(
        "list",
        help="print each partition with its range and estimated rows",
        description="Print each partition of the ledger with its bounds and estimated row count.",
    )
    add_url_argument(listing)
    listing.set_defaults(handler=_list)

    archive = commands.add_parser(
        "archive",
        help="write old partitions to verified files, record them and drop them",
        description=(
            "For every partition whose whole day is older than --older-than and that holds no "
            "queued job: COPY it to DIR/NAME.copy.gz (gzip), re-read the file, write "
            "DIR/NAME.manifest.json with its row count and sha256, then in one transaction check "
            "the row count again, record it in public.archived_ledger_partitions and drop the "
            "partition. A crash at any step leaves the partition or a verified archive."
        ),
    )
    add_url_argument(archive)
    archive.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="a number of days such as 90d: partitions whose day ended before now - AGE",
    )
    archive.add_argument(
        "--to", required=True, type=Path, metavar="DIR", help="existing writable directory"
    )
    archive.set_defaults(handler=_archive)

    restore = commands.add_parser(
        "restore",
        help="bring one archived partition back from its file, verified",
        description=(
            "Check that FILE's sha256 and row count match the archive record in "
            "public.archived_ledger_partitions, then recreate the partition, load the rows and "
            "mark the archive RESTORED, in one transaction. A changed file restores nothing."
        ),
    )
    add_url_argument(restore)
    restore.add_argument("file", type=Path, metavar="FILE", help="a NAME.copy.gz archive file")
    restore.set_defaults(handler=_restore)


def _connect(args: argparse.Namespace) -> psycopg.Connection[Any]:
    selected = select_database(args.url)
    return psycopg.connect(selected.conninfo, autocommit=True)


def _ensure(args: argparse.Namespace) -> int:
    if not 1 <= args.days_ahead <= 366:
        raise SymphonyError(f"--days-ahead: expected 1 to 366, got {args.days_ahead}")
    with _connect(args) as conn:
        done = attempts.ensure_partitions(conn, args.days_ahead)
    for name, action in done:
        print(f"{action} {name}")
    print(f"ledger partitions: {len(done)} created or fixed, {args.days_ahead} days ahead ensured")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        for part in attempts.list_partitions(conn):
            print(f"{attempts.SCHEMA}.{part.name}  {part.bound}  ~{part.rows_estimate} rows")
    return 0


def _archive(args: argparse.Namespace) -> int:
    days = attempts.parse_older_than(args.older_than)
    count = 0
    with _connect(args) as conn:
        for done in attempts.archive(conn, days, args.to):
            count += 1
            print(f"archived {done.partition}: {done.rows} rows, sha256 {done.sha256}, {done.file}")
    print(f"archived {count} partition(s) older than {days} days to {args.to}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        done = attempts.restore(conn, args.file)
    print(f"restored {done.partition}: {done.rows} rows, sha256 {done.sha256} verified")
    return 0
