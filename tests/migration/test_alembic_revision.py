"""Issue 12 items 2 and 3: ``alembic check``, ``alembic revision --autogenerate`` and plain
``alembic revision`` behave like Alembic and produce our ``NNNN_slug.py`` + ``.sql`` pairs.

Each test works on a throw-away copy of the whole project (``alembic.ini``, ``env.py``, the
template and every revision) and a scratch database cloned from the migrated template, and runs
``alembic`` as a subprocess, exactly as a developer does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from symphony_schema import project_root
from symphony_schema.invariants.lints import lint_alembic_files, revision_py_problems
from tests.helpers import run_cli
from tests.migration.conftest import RevisionTree


@pytest.fixture
def project(tmp_path: Path, migrated_db: object) -> RevisionTree:
    """A copy of this project (all revisions) pointed at a scratch database at head."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(project_root() / "alembic.ini", root / "alembic.ini")
    shutil.copytree(
        project_root() / "alembic",
        root / "alembic",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    tree = RevisionTree(root, migrated_db.url)  # type: ignore[attr-defined]
    tree.revisions = sorted(path.stem for path in tree.versions.glob("*.py"))
    return tree


def _next_number(tree: RevisionTree) -> str:
    return f"{max(int(rev[:4]) for rev in tree.revisions) + 1:04d}"


def _files(tree: RevisionTree) -> set[str]:
    return {path.name for path in tree.versions.iterdir()}


def _ledger(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def _columns(conninfo: str, table: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return [row[0] for row in rows]


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _lints_pass(tree: RevisionTree) -> None:
    problems = lint_alembic_files(tree.versions, tree.root)
    for path in sorted(tree.versions.glob("*.py")):
        problems += revision_py_problems(path)
    assert problems == []


# -- item 2: alembic check / alembic revision --autogenerate ---------------------------------------


def test_alembic_check_at_head_finds_nothing_without_lock_or_ledger_write(
    project: RevisionTree, migrated_db
) -> None:
    before = _ledger(migrated_db.conninfo)
    # Another deployer holds the deploy lock: check does not migrate, so it must not wait for it.
    with psycopg.connect(migrated_db.conninfo) as holder:
        holder.execute("LOCK TABLE public.schema_migrations IN SHARE UPDATE EXCLUSIVE MODE")
        result = project.alembic("check", env={"SYMPHONY_DEPLOY_LOCK_WAIT": "0"})
        holder.rollback()

    assert result.returncode == 0, _output(result)
    assert "No new upgrade operations detected" in result.stdout
    assert "Traceback" not in _output(result)
    assert _ledger(migrated_db.conninfo) == before


def test_alembic_check_names_a_column_the_models_do_not_have(
    project: RevisionTree, migrated_db
) -> None:
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute("ALTER TABLE public.payment_outbox_pending ADD COLUMN h10_stray text")

    result = project.alembic("check")

    assert result.returncode != 0
    assert "h10_stray" in _output(result)
    assert "Traceback" not in _output(result)


def test_alembic_check_names_a_changed_server_default(project: RevisionTree, migrated_db) -> None:
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute(
            "ALTER TABLE public.payment_outbox_pending ALTER COLUMN attempt_count SET DEFAULT 7"
        )

    result = project.alembic("check")

    assert result.returncode != 0
    assert "attempt_count" in _output(result) and "modify_default" in _output(result)


def test_autogenerate_writes_the_next_pair_with_the_diff_as_postgresql_sql(
    project: RevisionTree, migrated_db
) -> None:
    with psycopg.connect(migrated_db.conninfo) as conn:
        conn.execute("ALTER TABLE public.payment_outbox_pending ADD COLUMN h10_stray text")
    before = _files(project)
    rev = f"{_next_number(project)}_drop_the_stray_column"

    result = project.alembic("revision", "--autogenerate", "-m", "Drop the stray column")

    assert result.returncode == 0, _output(result)
    assert _files(project) - before == {f"{rev}.py", f"{rev}.sql"}
    sql = (project.versions / f"{rev}.sql").read_text()
    assert "ALTER TABLE public.payment_outbox_pending DROP COLUMN h10_stray;" in sql
    py = (project.versions / f"{rev}.py").read_text()
    assert "op." not in py and "sa." not in py
    _lints_pass(project)

    # The pair is an ordinary revision: it applies through the engine, and then the models and
    # the database agree again.
    upgraded = project.alembic("upgrade", "head")
    assert upgraded.returncode == 0, _output(upgraded)
    assert "h10_stray" not in _columns(migrated_db.conninfo, "payment_outbox_pending")
    assert _ledger(migrated_db.conninfo)[-1] == rev
    checked = project.alembic("check")
    assert checked.returncode == 0, _output(checked)


def test_autogenerate_refuses_a_database_that_is_not_at_head(
    project: RevisionTree, empty_db
) -> None:
    before = _files(project)

    result = project.alembic(
        "revision", "--autogenerate", "-m", "x", env={"SYMPHONY_DATABASE_URL": empty_db.url}
    )

    assert result.returncode != 0
    assert "not up to date" in _output(result)
    assert "Traceback" not in _output(result)
    assert _files(project) == before


# -- item 3: plain alembic revision ----------------------------------------------------------------


def test_plain_alembic_revision_makes_the_numbered_pair_that_applies(
    project: RevisionTree, migrated_db
) -> None:
    before = _files(project)
    rev = f"{_next_number(project)}_add_thing"
    # No database is needed to write a revision: an unreachable URL must not matter.
    unreachable = {
        "SYMPHONY_DATABASE_URL": "postgresql+psycopg://nobody@/nowhere?host=/nonexistent"
    }

    result = project.alembic("revision", "-m", "Add thing", env=unreachable)

    assert result.returncode == 0, _output(result)
    assert _files(project) - before == {f"{rev}.py", f"{rev}.sql"}
    _lints_pass(project)
    (project.versions / f"{rev}.sql").write_text(
        (project.versions / f"{rev}.sql").read_text() + "CREATE TABLE public.h10_thing (id int);\n"
    )
    upgraded = project.alembic("upgrade", "head")
    assert upgraded.returncode == 0, _output(upgraded)
    assert _ledger(migrated_db.conninfo)[-1] == rev
    assert _columns(migrated_db.conninfo, "h10_thing") == ["id"]


def test_alembic_revision_and_new_revision_write_the_same_files(
    project: RevisionTree, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(project.root, other)
    rev = f"{_next_number(project)}_add_thing"

    by_alembic = project.alembic("revision", "-m", "Add thing")
    env = project.env({"SYMPHONY_PROJECT_ROOT": str(other)})
    by_cli = run_cli("new-revision", "Add thing", cwd=other, env=env)

    assert by_alembic.returncode == 0, _output(by_alembic)
    assert by_cli.returncode == 0, _output(by_cli)
    for suffix in (".py", ".sql"):
        mine = (project.versions / f"{rev}{suffix}").read_text()
        theirs = (other / "alembic" / "versions" / f"{rev}{suffix}").read_text()
        assert mine == theirs


@pytest.mark.parametrize(
    "args",
    [
        ["--head", "base"],
        ["--splice", "--head", "0001_init"],
        ["--branch-label", "side"],
        ["--depends-on", "0001_init"],
        ["--version-path", "elsewhere"],
        ["--rev-id", "abc123"],
        ["--rev-id", "0003_too_low"],
    ],
)
def test_branching_and_foreign_ids_are_refused_and_write_nothing(
    project: RevisionTree, args: list[str]
) -> None:
    before = _files(project)

    result = project.alembic("revision", "-m", "Side thing", *args)

    assert result.returncode != 0
    assert "FAILED" in result.stdout and "Traceback" not in _output(result)
    assert _files(project) == before


def test_an_explicit_rev_id_with_the_next_number_is_accepted(project: RevisionTree) -> None:
    rev = f"{_next_number(project)}_short"

    result = project.alembic("revision", "-m", "A long message about the thing", "--rev-id", rev)

    assert result.returncode == 0, _output(result)
    assert {f"{rev}.py", f"{rev}.sql"} <= _files(project)
    _lints_pass(project)


def test_alembic_revision_without_a_message_is_refused(project: RevisionTree) -> None:
    before = _files(project)

    result = project.alembic("revision")

    assert result.returncode != 0
    assert "-m" in result.stdout and "Traceback" not in _output(result)
    assert _files(project) == before


@pytest.mark.parametrize("message", ["!!!", 'say """hi"""', "two\nlines"])
def test_new_revision_refuses_a_bad_message_in_one_line_with_exit_2(
    project: RevisionTree, message: str
) -> None:
    before = _files(project)

    result = run_cli("new-revision", message, cwd=project.root, env=project.env())

    assert result.returncode == 2, _output(result)
    assert result.stderr.startswith("symphony-schema: error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _files(project) == before


def test_alembic_check_without_temporary_privilege_is_a_one_line_refusal(
    project: RevisionTree, migrated_db, pg_server
) -> None:
    """Defaults are compared through a temporary table: a login without TEMPORARY on the
    database gets one line saying so, not a wrong list of changed defaults."""
    login = f"h10_checker_{migrated_db.name[-10:]}"
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN")
        try:
            admin.execute(f'REVOKE TEMPORARY ON DATABASE "{migrated_db.name}" FROM PUBLIC')
            admin.execute(f"GRANT USAGE ON SCHEMA public TO {login}")
            admin.execute(f"GRANT SELECT ON public.alembic_version TO {login}")
            result = project.alembic(
                "check",
                env={"SYMPHONY_DATABASE_URL": pg_server.sqlalchemy_url(migrated_db.name, login)},
            )
        finally:
            admin.execute(f"DROP OWNED BY {login}")
            admin.execute(f"DROP ROLE {login}")

    assert result.returncode != 0
    assert "TEMPORARY" in result.stdout and "modify_default" not in _output(result)
    assert "Traceback" not in _output(result)


def test_alembic_merge_is_refused_and_writes_nothing(project: RevisionTree) -> None:
    before = _files(project)

    result = project.alembic("merge", "heads", "-m", "merge")

    assert result.returncode != 0
    assert "merge is refused" in result.stdout and "Traceback" not in _output(result)
    assert _files(project) == before


def test_a_caller_hook_that_drops_the_revision_writes_nothing(
    project: RevisionTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic's documented ``directives[:] = []`` (e.g. "skip empty autogenerate revisions",
    pytest-alembic's probes) runs before ours: nothing is written and nothing is refused."""
    from alembic import command
    from symphony_schema.migration.api import alembic_config

    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(project.root))
    before = _files(project)

    written = command.revision(
        alembic_config(),
        message="Nothing",
        process_revision_directives=lambda context, revision, directives: directives.clear(),
    )

    assert written == []
    assert _files(project) == before
