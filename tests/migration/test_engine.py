"""The checksummed engine on throw-away revision trees (real alembic, real PostgreSQL 18)."""

from __future__ import annotations

import psycopg
import pytest

from symphony_schema.migration.checksum import revision_checksum
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def ledger(conninfo: str) -> list[tuple[str, str, str, int | None]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT version, description, checksum, execution_ms FROM public.schema_migrations "
            "ORDER BY version"
        ).fetchall()


def alembic_version(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def table_exists(conninfo: str, name: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{name}",)).fetchone()
        return bool(row and row[0])


def test_raw_sql_helper_passes_colons_percent_and_json_untouched(
    tree: RevisionTree, empty_db
) -> None:
    tree.add(
        "tricky",
        """\
        CREATE TABLE tricky (note text, doc jsonb);
        INSERT INTO tricky VALUES ('a :name, 50% and %(x)s', '{"a":true}');
        """,
    )
    result = tree.alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db.conninfo) as conn:
        row = conn.execute("SELECT note, doc FROM tricky").fetchone()
    assert row == ("a :name, 50% and %(x)s", {"a": True})


def test_fresh_upgrade_writes_one_checksummed_row_per_revision_then_noop(
    tree: RevisionTree, empty_db
) -> None:
    first = tree.add("one", "CREATE TABLE one (id int);", doc="Create table one.")
    second = tree.add("two", "CREATE TABLE two (id int);", doc="Create table two.")
    result = tree.alembic("upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert f"applied {first}" in result.stdout and f"applied {second}" in result.stdout
    assert "migrated to 0002_two: 2 revision(s)" in result.stdout
    rows = ledger(empty_db.conninfo)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (first, "Create table one.", revision_checksum(tree.versions / f"{first}.py")),
        (second, "Create table two.", revision_checksum(tree.versions / f"{second}.py")),
    ]
    assert all(r[2].startswith("sha256:") and r[3] is not None for r in rows)
    assert alembic_version(empty_db.conninfo) == [second]

    again = tree.alembic("upgrade", "head")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert ledger(empty_db.conninfo) == rows


def test_edited_applied_revision_is_refused_before_any_ddl(tree: RevisionTree, empty_db) -> None:
    first = tree.add("one", "CREATE TABLE one (id int);")
    assert tree.alembic("upgrade", "head").returncode == 0
    recorded = ledger(empty_db.conninfo)[0][2]
    sql_file = tree.versions / f"{first}.sql"
    sql_file.write_text(sql_file.read_text() + "CREATE TABLE sneaky (id int);\n")
    tree.add("two", "CREATE TABLE two (id int);")

    result = tree.alembic("upgrade", "head")

    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"alembic/versions/{first}.py" in message
    assert recorded in message and revision_checksum(tree.versions / f"{first}.py") in message
    assert "immutable" in message and "add a new revision" in message
    assert not table_exists(empty_db.conninfo, "two"), "the pending revision must not run"
    assert not table_exists(empty_db.conninfo, "sneaky")
    assert [r[0] for r in ledger(empty_db.conninfo)] == [first]


def test_whitespace_only_line_ending_and_bom_changes_are_not_edits(
    tree: RevisionTree, empty_db
) -> None:
    first = tree.add("one", "CREATE TABLE one (id int);\n")
    assert tree.alembic("upgrade", "head").returncode == 0
    sql_file = tree.versions / f"{first}.sql"
    sql_file.write_bytes(b"\xef\xbb\xbf" + sql_file.read_bytes().replace(b"\n", b"\r\n"))
    result = tree.alembic("upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr


def test_applied_revision_whose_file_was_deleted_is_refused(tree: RevisionTree, empty_db) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    second = tree.add("two", "CREATE TABLE two (id int);")
    assert tree.alembic("upgrade", "head").returncode == 0
    (tree.versions / f"{second}.py").unlink()
    (tree.versions / f"{second}.sql").unlink()

    result = tree.alembic("upgrade", "head")

    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"applied revision {second} has no revision file" in message


def test_offline_mode_prints_sql_with_ledger_inserts(tree: RevisionTree) -> None:
    first = tree.add("one", "CREATE TABLE one (note text DEFAULT ':x 5%');")
    result = tree.alembic("upgrade", "head", "--sql")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Symphony requires PostgreSQL 18+" in out
    assert "CREATE TABLE IF NOT EXISTS public.schema_migrations" in out
    assert "CREATE TABLE one (note text DEFAULT ':x 5%');" in out
    checksum = revision_checksum(tree.versions / f"{first}.py")
    assert "INSERT INTO public.schema_migrations" in out and checksum in out
    assert out.index("CREATE TABLE one") < out.index(checksum) < out.rindex("COMMIT")


@pytest.mark.parametrize("args", [("downgrade", "base"), ("stamp", "head")])
def test_downgrade_and_stamp_are_refused(
    tree: RevisionTree, empty_db, args: tuple[str, str]
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    assert tree.alembic("upgrade", "head").returncode == 0
    result = tree.alembic(*args)
    assert result.returncode != 0
    assert "refused" in result.stdout + result.stderr
    assert table_exists(empty_db.conninfo, "one")


# Waiting for the deploy lock (and deploy_lock_wait=0): tests/migration/test_deploy_lock.py.


def test_bad_timeout_setting_is_a_clear_error(tree: RevisionTree, empty_db) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    result = tree.alembic("-x", "lock_timeout=soon", "upgrade", "head")
    assert result.returncode != 0
    assert "invalid lock_timeout='soon'" in result.stdout + result.stderr
    assert not table_exists(empty_db.conninfo, "one")


def test_statement_timeout_stops_a_runaway_revision(tree: RevisionTree, empty_db) -> None:
    tree.add("slow", "CREATE TABLE slow (id int); SELECT pg_sleep(5);")
    result = tree.alembic("-x", "statement_timeout=200ms", "upgrade", "head")
    assert result.returncode != 0
    assert "canceling statement due to statement timeout" in result.stdout + result.stderr
    assert "rolled back" in result.stdout + result.stderr
    assert not table_exists(empty_db.conninfo, "slow")
    assert ledger(empty_db.conninfo) == []
