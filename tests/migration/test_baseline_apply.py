"""Bringing up a database from the committed baseline, then continuing with the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from symphony_schema import SymphonyError, project_root
from symphony_schema.baseline.apply import apply_baseline, database_contents
from symphony_schema.cli import main as cli_main
from symphony_schema.migration import api
from symphony_schema.migration.checksum import revision_checksum
from tests.migration.conftest import make_tree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

BASELINE = project_root() / "baseline" / "baseline.sql"


def ledger(conninfo: str) -> list[tuple[object, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT version, checksum, applied_at, applied_by, execution_ms "
            "FROM public.schema_migrations ORDER BY version"
        ).fetchall()


def contents(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return database_contents(conn)
    finally:
        engine.dispose()


def test_apply_then_upgrade_is_a_no_op_then_a_later_revision_applies(
    empty_db,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    result = apply_baseline(empty_db.url, BASELINE)
    head = api.head_revision()
    assert result.heads == [head]

    scripts = ScriptDirectory.from_config(api.alembic_config())
    rows = ledger(empty_db.conninfo)
    assert [(r[0], r[1]) for r in rows] == [
        (s.revision, revision_checksum(Path(s.path)))
        for s in sorted(scripts.walk_revisions(), key=lambda s: s.revision)
    ]
    assert all(r[2] is not None and r[3] and r[4] is None for r in rows)

    api.upgrade(empty_db.url, quiet=False)
    assert f"already at {head}: nothing to do" in capsys.readouterr().out
    assert ledger(empty_db.conninfo) == rows

    tree = make_tree(tmp_path / "project", empty_db.url)
    for path in (project_root() / "alembic" / "versions").glob("[0-9]*"):
        if path.suffix in {".py", ".sql"}:
            shutil.copy(path, tree.versions / path.name)
    tree.revisions = sorted(p.stem for p in tree.versions.glob("*.py"))
    later = tree.add("later", "CREATE TABLE public.later_probe (id integer);")
    api.upgrade(empty_db.url, script_location=tree.root / "alembic")
    assert [r[0] for r in ledger(empty_db.conninfo)][-2:] == [head, later]
    with psycopg.connect(empty_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.later_probe')").fetchone() == (
            "later_probe",
        )


def test_apply_refuses_a_database_that_is_not_empty_and_writes_nothing(migrated_db) -> None:  # type: ignore[no-untyped-def]
    before = ledger(migrated_db.conninfo)
    with pytest.raises(SymphonyError, match=r"is not empty \(found .*alembic_version") as info:
        apply_baseline(migrated_db.url, BASELINE)
    assert "alembic upgrade head" in str(info.value)
    assert ledger(migrated_db.conninfo) == before


def test_apply_refuses_a_stale_baseline_and_leaves_the_database_empty(
    empty_db,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    stale = tmp_path / "baseline.sql"
    text = BASELINE.read_text()
    checksum = revision_checksum(project_root() / "alembic" / "versions" / "0001_init.py")
    assert checksum in text
    stale.write_text(text.replace(checksum, "sha256:" + "0" * 64))
    with pytest.raises(SymphonyError, match="does not match the revision files") as info:
        apply_baseline(empty_db.url, stale)
    assert "applied revision 0001_init was edited" in str(info.value)
    assert "nox -s baseline" in str(info.value)
    assert contents(empty_db.url) == []


def test_cli_apply_exits_2_with_a_message_on_a_second_run(
    empty_db,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    assert cli_main(["baseline", "apply", "--url", empty_db.url]) == 0
    assert f"'{empty_db.name}' at {api.head_revision()}" in capsys.readouterr().out
    assert cli_main(["baseline", "apply", "--url", empty_db.url]) == 2
    assert "refusing to apply the baseline" in capsys.readouterr().err


def test_apply_reports_a_missing_baseline_file(empty_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SymphonyError, match="generate it with 'nox -s baseline'"):
        apply_baseline(empty_db.url, tmp_path / "nope.sql")
