"""``symphony-schema``: the command line of the project.

Each module in this package that defines ``register(subparsers)`` contributes its commands; they
are discovered at start-up, so features live beside each other without a central list to edit.
A command handler takes the parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from symphony_schema import SymphonyError
from symphony_schema.redact import redact_text, url_secrets

#: Where a command's URL can come from (the selection rule of symphony_schema.database).
_URL_VARIABLES = ("SYMPHONY_DATABASE_URL", "DATABASE_URL")

PROG = "symphony-schema"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Symphony schema: manage the embedded PostgreSQL 18, the checksummed migrations, the "
            "baseline, the invariants and the boot policy. Database selection everywhere: --url, "
            "else SYMPHONY_DATABASE_URL, else DATABASE_URL, else the embedded server under "
            ".symphony/pgdata."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--url`` option shared by every command that talks to a database."""
    parser.add_argument(
        "--url",
        help="database URL (default: SYMPHONY_DATABASE_URL, then DATABASE_URL, then the embedded "
        "PostgreSQL 18)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except SymphonyError as exc:
        # Messages may quote a URL or conninfo: never with its credentials (ADR 0078).
        secrets = url_secrets(
            getattr(args, "url", None), *(os.environ.get(var) for var in _URL_VARIABLES)
        )
        secrets += [os.environ[var] for var in ("PGPASSWORD",) if os.environ.get(var)]
        print(f"{PROG}: error: {redact_text(str(exc), secrets)}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
