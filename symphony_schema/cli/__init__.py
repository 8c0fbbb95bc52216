"""``symphony-schema``: the command line of the project.

Each module in this package that defines ``register(subparsers)`` contributes its commands; they
are discovered at start-up, so features live beside each other without a central list to edit.
A command handler takes the parsed arguments and returns the process exit code.

Like ``alembic``, the commands act on the project in the current directory (the nearest
``alembic.ini`` at or above it) or the one named by ``-c/--config``. Errors a user can act on
are one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path

from symphony_schema import SymphonyError, use_config_file
from symphony_schema.redact import redact_text, url_secrets

#: Where a command's URL can come from (the selection rule of symphony_schema.database).
_URL_VARIABLES = ("SYMPHONY_DATABASE_URL", "DATABASE_URL")

PROG = "symphony-schema"

#: One or more example invocations per command (shown under "examples:" in its --help). A test
#: requires every command and subcommand to have a description and an entry here.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "attempts": ("symphony-schema attempts partitions ensure",),
    "attempts archive": (
        "symphony-schema attempts archive --older-than 90d --to /srv/ledger-archive",
    ),
    "attempts partitions": ("symphony-schema attempts partitions list",),
    "attempts partitions ensure": ("symphony-schema attempts partitions ensure --days-ahead 30",),
    "attempts partitions list": ("symphony-schema attempts partitions list",),
    "attempts restore": (
        "symphony-schema attempts restore /srv/ledger-archive/attempts_p20260101.copy.gz",
    ),
    "baseline": ("symphony-schema baseline drift",),
    "baseline apply": (
        "symphony-schema baseline apply --url postgresql://deployer@db.example/fresh",
    ),
    "baseline drift": (
        "symphony-schema baseline drift",
        "symphony-schema baseline drift --check privileges --summary report.md",
    ),
    "baseline generate": ("symphony-schema baseline generate",),
    "boot-check": (
        "symphony-schema boot-check",
        "symphony-schema boot-check --policy-file policy/dev-policy.json",
    ),
    "cluster": ("symphony-schema cluster status",),
    "cluster start": (
        "symphony-schema cluster start --workers 2",
        "symphony-schema cluster owner-login",
        'alembic -x url="$(symphony-schema cluster url)" upgrade head',
    ),
    "cluster owner-login": (
        "symphony-schema cluster owner-login",
        "symphony-schema cluster owner-login --database symphony",
    ),
    "cluster status": ("symphony-schema cluster status || symphony-schema cluster start",),
    "cluster stop": ("symphony-schema cluster stop",),
    "cluster url": (
        "symphony-schema cluster url",
        'psql "$(symphony-schema cluster url --node worker1)"',
    ),
    "db": ("symphony-schema db status",),
    "db psql": (
        "symphony-schema db psql",
        'symphony-schema db psql -- -Atc "SELECT version FROM public.policy_versions"',
        'symphony-schema db psql -U local_executor -- -c "SELECT 1"',
    ),
    "db start": ("symphony-schema db start",),
    "drift": (
        "symphony-schema drift",
        "symphony-schema drift --url postgresql://auditor@db.example/symphony --section functions",
    ),
    "db status": ("symphony-schema db status || symphony-schema db start",),
    "db stop": ("symphony-schema db stop",),
    "db url": (
        "symphony-schema db url",
        'psql "$(symphony-schema db url --show-password)"',
        "symphony-schema db url --sqlalchemy",
    ),
    "grant-login": (
        "symphony-schema grant-login local_executor --roles symphony_executor",
        "symphony-schema grant-login payments_executor --roles symphony_executor,symphony_readonly",
    ),
    "invariants": ("symphony-schema invariants",),
    "invariants docs": ("symphony-schema invariants docs --check",),
    "invariants exception": (
        "symphony-schema invariants exception new --id INV-012 --reason '...' "
        "--expires 2026-12-31 --owner alice",
    ),
    "invariants exception new": (
        "symphony-schema invariants exception new --id INV-012 --reason '...' "
        "--expires 2026-12-31 --owner alice",
    ),
    "invariants gate": ("symphony-schema invariants gate --url postgresql://...",),
    "invariants lint": ("symphony-schema invariants lint",),
    "invariants process": ("symphony-schema invariants process --base origin/main",),
    "ledger": ("symphony-schema ledger", "symphony-schema ledger --url postgresql://..."),
    "new-revision": ('symphony-schema new-revision "Add batched completion"',),
    "policy": ("symphony-schema policy status",),
    "policy retire-expired": ("symphony-schema policy retire-expired",),
    "policy rotate": (
        "symphony-schema policy rotate --file policy/2025-07-01.json --grace 24h",
        "POLICY_VERSION=2025-07-01.1 POLICY_FILE=/etc/symphony/policy.json "
        "symphony-schema policy rotate --from-env --grace 2d",
    ),
    "policy status": ("symphony-schema policy status",),
    "outbox": ("symphony-schema outbox status",),
    "outbox cancel": (
        "symphony-schema outbox cancel 0192f0c4-... --reason 'customer withdrew' --ticket OPS-123",
    ),
    "outbox metrics": (
        "symphony-schema outbox metrics --format prometheus > /var/lib/node_exporter/outbox.prom",
    ),
    "outbox redrive": (
        "symphony-schema outbox redrive 0192f0c4-... --reason 'rail fixed' --ticket OPS-124",
    ),
    "outbox show": ("symphony-schema outbox show 0192f0c4-7a4e-7c1d-9d7e-2f3b1c0a9e11",),
    "outbox status": (
        "symphony-schema outbox status",
        "symphony-schema outbox status --url postgresql://dashboards@db.example/symphony",
    ),
    "reset": ("symphony-schema reset", "symphony-schema reset --yes --quiet"),
    "scan-secrets": ("symphony-schema scan-secrets",),
    "seed-policy": (
        "symphony-schema seed-policy --file policy/dev-policy.json",
        "symphony-schema seed-policy --file policy/dev-policy.json --dry-run",
    ),
    "set-login-password": (
        "TEST_DB_PASSWORD=... symphony-schema set-login-password test_user "
        "--from-env TEST_DB_PASSWORD",
    ),
    "verify": ("symphony-schema verify --url postgresql://deployer@db.example/symphony",),
}


def _version() -> str:
    try:
        return metadata.version("symphony-schema")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap(
            "Symphony schema: manage the embedded PostgreSQL 18, the checksummed migrations, the "
            "baseline, the invariants and the boot policy.\n\n"
            "Project: like alembic, the nearest alembic.ini at or above the current directory "
            "(or -c FILE).\nDatabase everywhere: --url, else SYMPHONY_DATABASE_URL, else "
            "DATABASE_URL, else the embedded server under <project>/.symphony/pgdata."
        ),
        epilog="examples:\n  symphony-schema ledger\n  symphony-schema --url "
        "postgresql://deployer@db.example/symphony boot-check\n  symphony-schema db url --help",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="the project's Alembic config (default: the nearest alembic.ini at or above the "
        "current directory)",
    )
    parser.add_argument(
        "--url",
        dest="global_url",
        metavar="URL",
        help="database URL for the command (also accepted after it)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    for name, sub, help_text in iter_commands(parser):
        _decorate(name, sub, help_text)
    return parser


def iter_commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser, str | None]]:
    """Every command and subcommand as ``("db url", parser, help)``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                yield full, sub, helps.get(name)
                yield from iter_commands(sub, f"{full} ")


def _decorate(name: str, sub: argparse.ArgumentParser, help_text: str | None) -> None:
    """Give every command a description (its help line when it has none) and its examples."""
    if not sub.description and help_text:
        sub.description = help_text[0].upper() + help_text[1:] + "."
    examples = EXAMPLES.get(name)
    if examples:
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        if sub.description:
            sub.description = _wrap(sub.description)
        shown = "examples:\n" + "\n".join(f"  {example}" for example in examples)
        sub.epilog = f"{_wrap(sub.epilog)}\n\n{shown}" if sub.epilog else shown


def _wrap(text: str) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width=100) if line else "" for line in text.split("\n"))


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--url`` option shared by every command that talks to a database."""
    parser.add_argument(
        "--url",
        help="database URL (default: SYMPHONY_DATABASE_URL, then DATABASE_URL, then the embedded "
        "PostgreSQL 18); may also be given before the command",
    )


def _merge_url(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    global_url = getattr(args, "global_url", None)
    if global_url is None:
        return
    command = " ".join(
        str(part) for part in (args.command, getattr(args, "action", None)) if isinstance(part, str)
    )
    if not hasattr(args, "url"):
        parser.error(f"--url does not apply to '{command}' (it does not use a database)")
    if args.url is not None and args.url != global_url:
        parser.error("--url was given twice with different values")
    args.url = global_url


def _secrets(args: argparse.Namespace | None) -> list[str]:
    """Credential values a message might quote: of ``--url``, the URL variables, PGPASSWORD."""
    secrets = url_secrets(
        getattr(args, "url", None), *(os.environ.get(var) for var in _URL_VARIABLES)
    )
    return secrets + [os.environ[var] for var in ("PGPASSWORD",) if os.environ.get(var)]


def _database_error(exc: Exception, secrets: list[str]) -> int:
    """One line for a database error that reached the top: exit 2 for a connection failure."""
    from symphony_schema import database

    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    text = redact_text(" ".join(str(orig).split()), secrets)
    connection = sqlstate is None or sqlstate[:2] in {"08", "28", "3D"} or sqlstate == "57P03"
    if connection:
        where = database.last_selected.describe() if database.last_selected else "the database"
        print(f"{PROG}: error: cannot connect to {where}: {text}", file=sys.stderr)
        return 2
    print(f"{PROG}: error: database error (SQLSTATE {sqlstate}): {text}", file=sys.stderr)
    return 1


def _config_option(argv: list[str]) -> Path | None:
    """The value of ``-c/--config`` among the options before the command, if any."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-c", "--config"):
            return Path(argv[index + 1]) if index + 1 < len(argv) else None
        if arg.startswith("--config="):
            return Path(arg.removeprefix("--config="))
        if arg.startswith("-c") and not arg.startswith("--"):
            return Path(arg[2:])
        if not arg.startswith("-") or arg == "--":
            return None  # the command: what follows belongs to it
        index += 2 if arg == "--url" else 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import psycopg
    from sqlalchemy import exc as sa_exc

    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        # Before the commands are imported: some compute project paths at import time.
        use_config_file(_config_option(arguments))
    except SymphonyError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        _merge_url(parser, args)
        code = args.handler(args)
    except SymphonyError as exc:
        # Messages may quote a URL or conninfo: never with its credentials (ADR 0078).
        print(f"{PROG}: error: {redact_text(str(exc), _secrets(args))}", file=sys.stderr)
        return 2
    except (psycopg.Error, sa_exc.DBAPIError) as exc:
        return _database_error(exc, _secrets(args))
    finally:
        use_config_file(None)
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
