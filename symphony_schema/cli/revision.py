"""``symphony-schema new-revision MESSAGE``: a new forward-only revision with a sortable id."""

from __future__ import annotations

import argparse

from alembic.util import CommandError

from alembic import command
from symphony_schema import SymphonyError
from symphony_schema.migration.api import alembic_config
from symphony_schema.migration.autogen import MAX_REVISION_ID_LENGTH, next_revision_id
from symphony_schema.migration.sql import companion_sql_path

__all__ = ["MAX_REVISION_ID_LENGTH", "next_revision_id", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "new-revision",
        help="create alembic/versions/NNNN_slug.py + .sql on top of the current head",
        description="Create the next revision: a thin NNNN_slug.py (from alembic/script.py.mako) "
        "and an empty NNNN_slug.sql next to it, with down_revision set to the current head. "
        "The message becomes the one-line docstring recorded in the ledger. The same code as "
        "'alembic revision -m MESSAGE'; no database is needed.",
    )
    parser.add_argument("message", help="one line of intent, e.g. 'Add batched completion'")
    parser.set_defaults(handler=_new_revision)


def _new_revision(args: argparse.Namespace) -> int:
    # The same code as `alembic revision -m MESSAGE`: env.py hands the revision to
    # symphony_schema.migration.autogen, which names it and writes its .sql (ADR 0098).
    try:
        script = command.revision(alembic_config(), message=args.message)
    except CommandError as exc:  # the engine's refusals (MigrationRefused) included
        raise SymphonyError(str(exc)) from None
    assert script is not None and not isinstance(script, list)
    sql_path = companion_sql_path(script.path)
    print(f"created {script.path}\ncreated {sql_path}")
    return 0
