"""``symphony-schema baseline generate``: migrate a scratch database, read it, write ``baseline/``.

The same reading (:func:`read_baseline`) produces the text the drift check compares against the
committed files, so "what generate writes" and "what drift expects" cannot diverge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.util import CommandError

from symphony_schema import SymphonyError, project_root
from symphony_schema.baseline import catalog
from symphony_schema.baseline.dump import normalise_dump, pg_dump_schema
from symphony_schema.baseline.privileges_report import read_report, render_privileges_md
from symphony_schema.baseline.render import render_baseline_sql, render_catalog_txt
from symphony_schema.baseline.scratch import ScratchDatabase, scratch_database
from symphony_schema.database import to_conninfo
from symphony_schema.migration import api, ledger

BASELINE_SQL = "baseline.sql"
PRIVILEGES_MD = "privileges.md"
CATALOG_TXT = "catalog.txt"


def default_baseline_dir() -> Path:
    """``<project root>/baseline``."""
    return project_root() / "baseline"


@dataclass(frozen=True)
class GeneratedBaseline:
    """The generated files' contents and the head revision they describe."""

    head: str
    baseline_sql: str
    privileges_md: str
    catalog_txt: str

    def files(self) -> dict[str, str]:
        return {
            BASELINE_SQL: self.baseline_sql,
            PRIVILEGES_MD: self.privileges_md,
            CATALOG_TXT: self.catalog_txt,
        }


def migrate(url: str, script_location: Path | None = None) -> None:
    """Migrate ``url`` to head through the real checksummed engine."""
    try:
        api.upgrade(url, script_location=script_location, quiet=True)
    except CommandError as exc:
        raise SymphonyError(f"migrating a scratch database to head failed: {exc}") from exc


@contextmanager
def migrated_scratch(
    server_url: str, purpose: str, script_location: Path | None = None
) -> Iterator[ScratchDatabase]:
    """A scratch database migrated to head (dropped when the block ends)."""
    with scratch_database(server_url, purpose) as scratch:
        migrate(scratch.url, script_location)
        yield scratch


def schema_dump(url: str, conn: catalog.Conn) -> str:
    """The normalised ``pg_dump --schema-only`` of the database ``conn`` is connected to."""
    user, quoted_user = catalog.current_user(conn)
    return normalise_dump(pg_dump_schema(url), user, quoted_user)


def read_baseline(url: str) -> GeneratedBaseline:
    """Read a migrated database into the text of ``baseline.sql``, ``privileges.md`` and
    ``catalog.txt`` (the last one by :func:`catalog.read_snapshot`, which live drift uses too)."""
    with catalog.connect(to_conninfo(url)) as conn:
        heads = ledger.read_alembic_heads(conn)
        head = ", ".join(heads) or "base"
        roles = catalog.read_roles(conn)
        baseline_sql = render_baseline_sql(
            head=head,
            roles=roles,
            memberships=catalog.read_memberships(conn, roles),
            schema_dump=schema_dump(url, conn),
            ledger=ledger.read_ledger(conn),
            heads=heads,
            settings=catalog.read_settings(conn, roles),
            database_acl=catalog.read_database_acl(conn),
        )
        privileges_md = render_privileges_md(read_report(conn, head))
        catalog_txt = render_catalog_txt(head, catalog.read_snapshot(conn))
    return GeneratedBaseline(head, baseline_sql, privileges_md, catalog_txt)


def generate(
    server_url: str, output_dir: Path, script_location: Path | None = None
) -> GeneratedBaseline:
    """Migrate a scratch database to head and write ``baseline.sql``, ``privileges.md`` and
    ``catalog.txt``."""
    with migrated_scratch(server_url, "generate", script_location) as scratch:
        generated = read_baseline(scratch.url)
    write_files(generated, output_dir)
    return generated


def write_files(generated: GeneratedBaseline, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in generated.files().items():
        # newline="" : the files are LF on every platform, byte for byte.
        (output_dir / name).write_text(text, encoding="utf-8", newline="")
