"""The migration ledger ``public.schema_migrations`` and its validation against revision files.

The ledger is owned by the engine, not by a revision: it must exist before the first revision runs
so that revision's row can commit in the same transaction as its DDL.
"""

from __future__ import annotations

import ast
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script, ScriptDirectory

from symphony_schema.errors import LedgerInvalid, RevisionEdited, RevisionMissing
from symphony_schema.migration.checksum import RevisionSourceError, revision_checksum
from symphony_schema.migration.connections import AnyConnection, fetch_all
from symphony_schema.migration.loader import source_of
from symphony_schema.migration.sql import companion_sql_path

LEDGER_TABLE = "schema_migrations"
#: The two tables this module alone reads and writes (Alembic keeps writing ``alembic_version``
#: itself while it migrates; everything else reads it here).
LEDGER_REGCLASS = f"public.{LEDGER_TABLE}"
VERSION_REGCLASS = "public.alembic_version"

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


@dataclass(frozen=True)
class LedgerRecord(LedgerRow):
    """A ledger row with who applied it, when, and how long it took."""

    applied_at: datetime
    applied_by: str
    execution_ms: int | None


class LedgerProblem(str):
    """One line of :func:`validation_problems`, with its ``kind``: ``edited`` (checksum differs),
    ``missing`` (no revision file), ``unreadable`` (a file that cannot be read or imported),
    ``disagree`` (ledger vs ``alembic_version``) or ``pending`` (a pending revision's ``.sql``)."""

    kind: str

    def __new__(cls, text: str, kind: str) -> LedgerProblem:
        problem = super().__new__(cls, text)
        problem.kind = kind
        return problem


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


def ledger_exists(conn: AnyConnection) -> bool:
    return bool(
        fetch_all(conn, f"SELECT pg_catalog.to_regclass('{LEDGER_REGCLASS}') IS NOT NULL")[0][0]
    )


def read_ledger(conn: AnyConnection) -> list[LedgerRow]:
    """``public.schema_migrations`` (version, description, checksum) by version; empty if absent."""
    if not ledger_exists(conn):
        return []
    rows = fetch_all(
        conn, f"SELECT version, description, checksum FROM {LEDGER_REGCLASS} ORDER BY version"
    )
    return [
        LedgerRow(str(version), str(description), str(checksum))
        for version, description, checksum in rows
    ]


def read_ledger_records(conn: AnyConnection) -> list[LedgerRecord]:
    """Every ledger column by version (``symphony-schema db ledger``, the evidence bundle)."""
    if not ledger_exists(conn):
        return []
    rows = fetch_all(
        conn,
        "SELECT version, description, checksum, applied_at, applied_by, execution_ms "
        f"FROM {LEDGER_REGCLASS} ORDER BY version",
    )
    return [LedgerRecord(*row) for row in rows]


def alembic_version_exists(conn: AnyConnection) -> bool:
    return bool(
        fetch_all(conn, f"SELECT pg_catalog.to_regclass('{VERSION_REGCLASS}') IS NOT NULL")[0][0]
    )


def alembic_version_readable(conn: AnyConnection) -> bool:
    """Whether the connected role may read ``public.alembic_version`` (only the migrating user
    may; True when the table does not exist)."""
    return bool(
        fetch_all(
            conn,
            f"SELECT pg_catalog.to_regclass('{VERSION_REGCLASS}') IS NULL"
            f" OR pg_catalog.has_table_privilege('{VERSION_REGCLASS}', 'SELECT')",
        )[0][0]
    )


def read_alembic_heads(conn: AnyConnection) -> list[str]:
    """The revision(s) ``public.alembic_version`` records; empty if the table is absent."""
    if not alembic_version_exists(conn):
        return []
    return [
        str(row[0])
        for row in fetch_all(conn, f"SELECT version_num FROM {VERSION_REGCLASS} ORDER BY 1")
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
) -> list[LedgerProblem]:
    """Everything wrong between the ledger, ``alembic_version`` and the revision files.

    An empty list means every applied revision still has its file with the recorded checksum.
    """
    problems: list[LedgerProblem] = []
    versions_dir = Path(scripts.versions)
    ledger_versions: set[str] = set()
    for row in rows:
        ledger_versions.add(row.version)
        path = _file_of(scripts, row.version)
        if path is None:
            problems.append(
                LedgerProblem(
                    f"applied revision {row.version} has no revision file in "
                    f"{_relative(versions_dir, root)}/ (ledger checksum {row.checksum}). "
                    "Applied revisions are immutable: restore the deleted file from version "
                    "control.",
                    "missing",
                )
            )
            continue
        try:
            actual = revision_checksum(path)
        except RevisionSourceError as exc:
            problems.append(
                LedgerProblem(
                    f"applied revision {row.version}: {_relative(exc.path, root)} {exc.reason}. "
                    + FIX_HINT,
                    "unreadable",
                )
            )
            continue
        if actual != row.checksum:
            problems.append(
                LedgerProblem(
                    f"applied revision {row.version} was edited: {_relative(path, root)} "
                    f"(and its .sql) now has checksum {actual}, the ledger recorded "
                    f"{row.checksum}. " + FIX_HINT,
                    "edited",
                )
            )
    load_problem = revision_map_problem(scripts, root)
    if load_problem is not None:
        problems.append(LedgerProblem(load_problem, "unreadable"))
        return problems
    unknown_heads = [head for head in heads if script_for(scripts, head) is None]
    if unknown_heads:
        problems.append(
            LedgerProblem(
                f"alembic_version names {', '.join(unknown_heads)}, which has no revision file. "
                "Restore the deleted revision from version control.",
                "missing",
            )
        )
        return problems
    expected = expected_applied(scripts, heads)
    if expected != ledger_versions:
        missing = sorted(expected - ledger_versions)
        extra = sorted(ledger_versions - expected)
        problems.append(
            LedgerProblem(
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
                + ". Something bypassed the engine (alembic stamp, manual SQL); restore from "
                "the baseline or fix the ledger by hand with an auditor present.",
                "disagree",
            )
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


def pending_problems(
    scripts: ScriptDirectory, applied: Iterable[str], root: Path
) -> list[LedgerProblem]:
    """What would make a pending revision fail half-way that can be seen before any DDL: a
    ``.py`` that runs its ``.sql`` when the ``.sql`` file is missing."""
    done = set(applied)
    problems: list[LedgerProblem] = []
    for script in scripts.walk_revisions():
        if script.revision in done:
            continue
        sql = companion_sql_path(script.path)
        if not sql.is_file() and _runs_sql_file(script):
            problems.append(
                LedgerProblem(
                    f"pending revision {script.revision}: its SQL file {_relative(sql, root)} "
                    f"is missing ({_relative(Path(script.path), root)} runs it). Add the .sql "
                    "file (symphony-schema new-revision writes both) or remove the revision.",
                    "pending",
                )
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


@dataclass(frozen=True)
class LedgerState:
    """The one answer to "is this database at head with a valid ledger?" (the boot check and
    ``gate:ledger-matches-files`` both ask :func:`ledger_state`)."""

    #: The newest revision file, None when the revision files cannot be read.
    head: str | None
    #: What ``alembic_version`` records.
    heads: list[str]
    rows: list[LedgerRow]
    #: Why the database is not at head with a valid ledger; empty when it is.
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def refusal(problems: Sequence[LedgerProblem]) -> LedgerInvalid:
    """The engine's refusal for ``problems``: :class:`RevisionEdited` or :class:`RevisionMissing`
    when every problem is of that kind, :class:`LedgerInvalid` otherwise."""
    kinds = {problem.kind for problem in problems}
    kind = {frozenset({"edited"}): RevisionEdited, frozenset({"missing"}): RevisionMissing}.get(
        frozenset(kinds), LedgerInvalid
    )
    return kind(
        "refusing to migrate; nothing was applied:\n  - " + "\n  - ".join(problems), problems
    )


def ledger_state(conn: AnyConnection, scripts: ScriptDirectory, root: Path) -> LedgerState:
    """Read the ledger and ``alembic_version`` on ``conn`` and judge them against the files."""
    heads = read_alembic_heads(conn)
    present = ledger_exists(conn)
    rows = read_ledger(conn) if present else []
    problems: list[str] = []
    if not present:
        problems.append(f"the migration ledger {LEDGER_REGCLASS} is missing; migrate the database")
    else:
        problems += [
            f"the migration ledger disagrees with the revision files: {problem}"
            for problem in validation_problems(rows, heads, scripts, root)
        ]
    head: str | None = None
    load_problem = revision_map_problem(scripts, root)
    if load_problem is not None and not present:
        problems.append(load_problem)  # validation_problems reports it when the ledger exists
    if load_problem is None:
        try:
            head = scripts.get_current_head()
        except Exception as exc:  # alembic: several heads, or none
            problems.append(f"cannot read the revision files: {exc}")
    if head is not None and heads != [head]:
        at = ", ".join(heads) if heads else "no revision (not migrated)"
        problems.append(
            f"the database is not at the newest revision: it is at {at}, head is {head}. "
            "Run 'alembic upgrade head' (same URL)."
        )
    return LedgerState(head=head, heads=heads, rows=rows, problems=problems)
