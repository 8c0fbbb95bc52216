"""``symphony-schema new-revision MESSAGE``: a new forward-only revision with a sortable id."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from alembic.script import ScriptDirectory

from alembic import command
from symphony_schema import SymphonyError
from symphony_schema.migration.api import alembic_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "new-revision",
        help="create alembic/versions/NNNN_slug.py + .sql on top of the current head",
        description="Create the next revision: a thin NNNN_slug.py (from alembic/script.py.mako) "
        "and an empty NNNN_slug.sql next to it, with down_revision set to the current head. "
        "The message becomes the one-line docstring recorded in the ledger.",
    )
    parser.add_argument("message", help="one line of intent, e.g. 'Add batched completion'")
    parser.set_defaults(handler=_new_revision)


#: ``alembic_version.version_num`` is ``varchar(32)``: a longer id fails when it is recorded.
MAX_REVISION_ID_LENGTH = 32


def next_revision_id(existing: list[str], message: str) -> str:
    """``NNNN_slug`` with NNNN one more than the highest existing number, at most 32 characters."""
    numbers = [int(rev[:4]) for rev in existing if re.match(r"^\d{4}_", rev)]
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    slug = slug[: MAX_REVISION_ID_LENGTH - 5].rstrip("_")
    if not slug:
        raise SymphonyError("the message must contain letters or digits (it becomes the slug)")
    return f"{max(numbers, default=0) + 1:04d}_{slug}"


def _new_revision(args: argparse.Namespace) -> int:
    config = alembic_config()
    scripts = ScriptDirectory.from_config(config)
    rev_id = next_revision_id(
        [script.revision for script in scripts.walk_revisions()], args.message
    )
    script = command.revision(config, message=args.message.strip(), rev_id=rev_id)
    assert script is not None and not isinstance(script, list)
    sql_path = Path(script.path).with_suffix(".sql")
    sql_path.write_text(
        f"-- {rev_id}: {args.message.strip()}\n"
        "-- Raw SQL, run in one transaction with the ledger row (no BEGIN/COMMIT here).\n"
    )
    print(f"created {script.path}\ncreated {sql_path}")
    return 0
