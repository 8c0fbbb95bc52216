"""The migration ledger ``public.schema_migrations`` and its validation against revision files.

The ledger is owned by the engine, not by a revision: it must exist before the first revision runs
so that revision's row can commit in the same transaction as its DDL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import Connection

from symphony_schema.migration.checksum import revision_checksum

LEDGER_TABLE = "schema_migrations"

# Created idempotently on first use, under the deploy lock (so concurrent first runs cannot race
# on the catalog). REVOKE: the ledger is for the owner and the auditor only.
LEDGER_DDL = """\
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version text PRIMARY KEY,
    description text NOT NULL,
    checksum text NOT NULL CONSTRAINT ck_schema_migrations_checksum
        CHECK (checksum ~ '^sha256:[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL DEFAULT current_user,
    execution_ms integer CONSTRAINT ck_schema_migrations_execution_ms
        CHECK (execution_ms IS NULL OR execution_ms >= 0)
);
REVOKE ALL ON TABLE public.schema_migrations FROM PUBLIC;
COMMENT ON TABLE public.schema_migrations IS
    'Migration ledger written by the Symphony migration engine: one row per applied revision '
    'with the checksum of its files. Applied revisions are immutable.'"""

_ledger = sa.table(
    LEDGER_TABLE,
    sa.column("version", sa.Text),
    sa.column("description", sa.Text),
    sa.column("checksum", sa.Text),
    sa.column("execution_ms", sa.Integer),
    schema="public",
)

FIX_HINT = "Applied revisions are immutable; revert the edit and add a new revision instead."


@dataclass(frozen=True)
class LedgerRow:
    version: str
    description: str
    checksum: str


def description_of(script: Script) -> str:
    """The first line of the revision's docstring (its one-line intent)."""
    doc = (script.module.__doc__ or script.doc or "").strip()
    return doc.splitlines()[0].strip() if doc else script.revision


def ledger_insert(
    version: str, description: str, checksum: str, execution_ms: int | None
) -> sa.Insert:
    return sa.insert(_ledger).values(
        version=version, description=description, checksum=checksum, execution_ms=execution_ms
    )


def ledger_exists(conn: Connection) -> bool:
    return bool(
        conn.exec_driver_sql("SELECT to_regclass('public.schema_migrations') IS NOT NULL").scalar()
    )


def read_ledger(conn: Connection) -> list[LedgerRow]:
    if not ledger_exists(conn):
        return []
    result = conn.exec_driver_sql(
        "SELECT version, description, checksum FROM public.schema_migrations ORDER BY version"
    )
    return [LedgerRow(*row) for row in result]


def read_alembic_heads(conn: Connection, version_table: str = "alembic_version") -> list[str]:
    exists = conn.execute(
        sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"public.{version_table}"}
    ).scalar()
    if not exists:
        return []
    return [
        row[0] for row in conn.exec_driver_sql(f"SELECT version_num FROM public.{version_table}")
    ]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def expected_applied(scripts: ScriptDirectory, heads: Sequence[str]) -> set[str]:
    """Every revision at or below the heads recorded in ``alembic_version``."""
    if not heads:
        return set()
    return {rev.revision for rev in scripts.revision_map.iterate_revisions(tuple(heads), "base")}


def validation_problems(
    rows: Iterable[LedgerRow], heads: Sequence[str], scripts: ScriptDirectory, root: Path
) -> list[str]:
    """Everything wrong between the ledger, ``alembic_version`` and the revision files.

    An empty list means every applied revision still has its file with the recorded checksum.
    """
    problems: list[str] = []
    versions_dir = Path(scripts.versions)
    ledger_versions: set[str] = set()
    for row in rows:
        ledger_versions.add(row.version)
        script = script_for(scripts, row.version)
        if script is None:
            problems.append(
                f"applied revision {row.version} has no revision file in "
                f"{_relative(versions_dir, root)}/ (ledger checksum {row.checksum}). "
                "Applied revisions are immutable: restore the deleted file from version control."
            )
            continue
        path = Path(script.path)
        actual = revision_checksum(path)
        if actual != row.checksum:
            problems.append(
                f"applied revision {row.version} was edited: {_relative(path, root)} "
                f"(and its .sql) now has checksum {actual}, the ledger recorded {row.checksum}. "
                + FIX_HINT
            )
    unknown_heads = [head for head in heads if script_for(scripts, head) is None]
    if unknown_heads:
        problems.append(
            f"alembic_version names {', '.join(unknown_heads)}, which has no revision file. "
            "Restore the deleted revision from version control."
        )
        return problems
    expected = expected_applied(scripts, heads)
    if expected != ledger_versions:
        missing = sorted(expected - ledger_versions)
        extra = sorted(ledger_versions - expected)
        problems.append(
            "the ledger and alembic_version disagree"
            + (
                f"; applied per alembic_version but not in the ledger: {', '.join(missing)}"
                if missing
                else ""
            )
            + (
                f"; in the ledger but not applied per alembic_version: {', '.join(extra)}"
                if extra
                else ""
            )
            + ". Something bypassed the engine (alembic stamp, manual SQL); restore from the "
            "baseline or fix the ledger by hand with an auditor present."
        )
    return problems


def script_for(scripts: ScriptDirectory, revision: str) -> Script | None:
    """The revision file with exactly this id (no partial-id matching), or ``None``."""
    try:
        script = scripts.revision_map.get_revision(revision)
    except Exception:  # alembic raises ResolutionError / RevisionError subclasses
        return None
    if isinstance(script, Script) and script.revision == revision:
        return script
    return None
