"""What runs is what was hashed (ADR 0055): bytecode, the SQL sender, unreadable, missing files."""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import psycopg
import pytest

from symphony_schema.migration import MigrationRefused, api
from symphony_schema.migration import sql as sql_module
from symphony_schema.migration.checksum import revision_checksum
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

EVIL_PY = '''\
"""Test revision one."""

from pathlib import Path

from symphony_schema.migration.sql import execute_sql

Path({marker!r}).write_text("module-level code of the bytecode ran")

revision = {rev!r}
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_sql("CREATE TABLE evil (id int)")
'''


def _tables(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = "
                "'public'::regnamespace AND relname NOT IN ('schema_migrations', "
                "'alembic_version') ORDER BY 1"
            )
        ]


def _ledger(conninfo: str) -> list[tuple[str, str]]:
    with psycopg.connect(conninfo) as conn:
        if not conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0]:  # type: ignore[index]
            return []
        return conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY 1").fetchall()


def test_unchecked_hash_bytecode_beside_a_revision_never_runs(
    tree: RevisionTree, empty_db, tmp_path: Path
) -> None:
    rev = tree.add("one", "CREATE TABLE harmless (id int);", doc="Test revision one.")
    py = tree.versions / f"{rev}.py"
    evil_source = tmp_path / "evil.py"
    marker = tmp_path / "bytecode-ran"
    evil_source.write_text(EVIL_PY.format(rev=rev, marker=str(marker)))
    pyc = Path(importlib.util.cache_from_source(str(py)))
    pyc.parent.mkdir()
    py_compile.compile(
        str(evil_source),
        cfile=str(pyc),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )

    result = tree.alembic("upgrade", "head")

    assert result.returncode == 0, result.stdout + result.stderr
    assert _tables(empty_db.conninfo) == ["harmless"], "the bytecode ran instead of the source"
    assert _ledger(empty_db.conninfo) == [(rev, revision_checksum(py))]
    assert not marker.exists(), "the bytecode's module-level code ran"


def _in_process_upgrade(tree: RevisionTree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(tree.root))
    monkeypatch.setenv("SYMPHONY_DATABASE_URL", tree.url)
    api.upgrade(tree.url)


def test_a_sender_that_alters_the_sql_text_is_refused_and_records_nothing(
    tree: RevisionTree, empty_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.add("one", "CREATE TABLE harmless (id int);")
    original = sql_module.execute_sql
    # The attack of issue 11 item 8: a one-line text replacement in migration/sql.py.
    monkeypatch.setattr(
        sql_module, "execute_sql", lambda text: original(text.replace("harmless", "tampered"))
    )

    with pytest.raises(MigrationRefused) as refused:
        _in_process_upgrade(tree, monkeypatch)

    assert "is not the text of" in str(refused.value)
    assert _tables(empty_db.conninfo) == []
    assert _ledger(empty_db.conninfo) == []


def test_a_sender_that_bypasses_the_runner_is_refused_and_records_nothing(
    tree: RevisionTree, empty_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.add("one", "CREATE TABLE harmless (id int);")

    def send_directly(text: str) -> None:
        from alembic import op

        dbapi = op.get_bind().connection.dbapi_connection
        assert dbapi is not None
        dbapi.cursor().execute(text.replace("harmless", "tampered"))  # type: ignore[call-overload]

    monkeypatch.setattr(sql_module, "execute_sql", send_directly)

    with pytest.raises(MigrationRefused):
        _in_process_upgrade(tree, monkeypatch)

    assert _tables(empty_db.conninfo) == []
    assert _ledger(empty_db.conninfo) == []


def test_invalid_utf8_in_an_applied_revision_is_one_line_naming_file_and_revision(
    tree: RevisionTree, empty_db
) -> None:
    rev = tree.add("one", "CREATE TABLE one (id int);")
    assert tree.alembic("upgrade", "head").returncode == 0
    sql_file = tree.versions / f"{rev}.sql"
    sql_file.write_bytes(sql_file.read_bytes() + b"-- caf\xe9\n")

    result = tree.alembic("upgrade", "head")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    line = next(line for line in output.splitlines() if "UTF-8" in line)
    assert f"alembic/versions/{rev}.sql" in line and f"revision {rev}" in line


def test_invalid_utf8_in_a_pending_revision_is_refused_before_any_ddl(
    tree: RevisionTree, empty_db
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    rev = tree.add("two", "CREATE TABLE two (id int);")
    (tree.versions / f"{rev}.py").write_bytes(
        (tree.versions / f"{rev}.py").read_bytes() + b"# \xff\n"
    )

    result = tree.alembic("upgrade", "head")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    assert f"alembic/versions/{rev}.py" in output and "UTF-8" in output
    assert _tables(empty_db.conninfo) == []


def test_a_revision_whose_sql_file_is_missing_is_refused_before_any_ddl(
    tree: RevisionTree, empty_db
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    rev = tree.add("two", "CREATE TABLE two (id int);")
    (tree.versions / f"{rev}.sql").unlink()

    result = tree.alembic("upgrade", "head")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output and "FileNotFoundError" not in output
    assert f"alembic/versions/{rev}.sql" in output and "missing" in output
    assert _tables(empty_db.conninfo) == []
    assert _ledger(empty_db.conninfo) == []


def test_offline_script_with_a_missing_sql_file_is_a_one_line_refusal(tree: RevisionTree) -> None:
    rev = tree.add("one", "CREATE TABLE one (id int);")
    (tree.versions / f"{rev}.sql").unlink()

    result = tree.alembic("upgrade", "head", "--sql")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output and "FileNotFoundError" not in output
    assert f"{rev}.sql" in output and "missing" in output
