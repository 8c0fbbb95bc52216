"""The migration ledger ``public.schema_migrations`` and its validation against revision files.

The ledger is owned by the engine, not by a revision: it must exist before the first revision runs
so that revision's row can commit in the same transaction as its DDL.
"""

from __future__ import annotations

import ast
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import Connection

from symphony_schema.migration.checksum import RevisionSourceError, revision_checksum
from symphony_schema.migration.loader import source_of
from symphony_schema.migration.sql import companion_sql_path

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


def revision_map_problem(scripts: ScriptDirectory, root: Path) -> str | None:
    """A message naming the revision file that keeps Alembic from loading the chain, if any."""
    versions_dir = Path(scripts.versions).resolve()
    try:
        scripts.revision_map.heads  # noqa: B018 - loads (imports) every revision module
    except RevisionSourceError as exc:
        return f"revision file {_relative(exc.path, root)} {exc.reason}. " + FIX_HINT
    except Exception as exc:  # a broken revision can raise anything on import
        culprit: Path | None = None
        if isinstance(exc, SyntaxError) and exc.filename:
            culprit = Path(exc.filename)
        else:
            for frame in reversed(traceback.extract_tb(exc.__traceback__)):
                if Path(frame.filename).resolve().parent == versions_dir:
                    culprit = Path(frame.filename)
                    break
        where = _relative(culprit, root) if culprit else f"a revision in {versions_dir}"
        return f"cannot load {where}: {type(exc).__name__}: {exc}. " + FIX_HINT
    return None


def _file_of(scripts: ScriptDirectory, version: str) -> Path | None:
    """The revision file of ``version``, found by name first (ids are file stems), so a revision
    that no longer imports is still checksummed, then through Alembic's revision map."""
    by_name = Path(scripts.versions) / f"{version}.py"
    if by_name.is_file():
        return by_name
    script = script_for(scripts, version)
    return Path(script.path) if script is not None else None


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
        path = _file_of(scripts, row.version)
        if path is None:
            problems.append(
                f"applied revision {row.version} has no revision file in "
                f"{_relative(versions_dir, root)}/ (ledger checksum {row.checksum}). "
                "Applied revisions are immutable: restore the deleted file from version control."
            )
            continue
        try:
            actual = revision_checksum(path)
        except RevisionSourceError as exc:
            problems.append(
                f"applied revision {row.version}: {_relative(exc.path, root)} {exc.reason}. "
                + FIX_HINT
            )
            continue
        if actual != row.checksum:
            problems.append(
                f"applied revision {row.version} was edited: {_relative(path, root)} "
                f"(and its .sql) now has checksum {actual}, the ledger recorded {row.checksum}. "
                + FIX_HINT
            )
    load_problem = revision_map_problem(scripts, root)
    if load_problem is not None:
        problems.append(load_problem)
        return problems
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


def _runs_sql_file(script: Script) -> bool:
    """Does the revision's ``.py`` call ``run_revision_sql`` (so it needs its ``.sql``)?"""
    source = source_of(script)
    text = source.py_text if source is not None else Path(script.path).read_text("utf-8-sig")
    for node in ast.walk(ast.parse(text, filename=script.path)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "run_revision_sql":
                return True
    return False


def pending_problems(scripts: ScriptDirectory, applied: Iterable[str], root: Path) -> list[str]:
    """What would make a pending revision fail half-way that can be seen before any DDL: a
    ``.py`` that runs its ``.sql`` when the ``.sql`` file is missing."""
    done = set(applied)
    problems: list[str] = []
    for script in scripts.walk_revisions():
        if script.revision in done:
            continue
        sql = companion_sql_path(script.path)
        if not sql.is_file() and _runs_sql_file(script):
            problems.append(
                f"pending revision {script.revision}: its SQL file {_relative(sql, root)} is "
                f"missing ({_relative(Path(script.path), root)} runs it). Add the .sql file "
                "(symphony-schema new-revision writes both) or remove the revision."
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
