"""The SQL lints on fixture revision directories: each lint fails its ``*_bad`` fixture with the
expected findings and passes its ``*_good`` fixture; the repository's own revisions pass them all.

The secrets fixture is written at test time (from pieces) instead of being committed: a committed
file full of credential-shaped strings would trip the repository's own secret scan.
"""

from __future__ import annotations

import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symphony_schema import project_root
from symphony_schema.invariants import lints
from symphony_schema.invariants.revisions import is_transactional, load_revisions
from tests.invariants.conftest import FIXTURES

LINT_FIXTURES = FIXTURES / "lints"


def run_lint(name: str, fixture: str | Path) -> list[str]:
    directory = fixture if isinstance(fixture, Path) else LINT_FIXTURES / fixture
    return lints.LINTS[name](load_revisions(directory), project_root())


def lines_of(problems: list[str]) -> list[str]:
    """``file:line`` of each problem, in file and line order."""
    located = {tuple(p.split(":", 2)[:2]) for p in problems}
    return [f"{file}:{line}" for file, line in sorted(located, key=lambda f: (f[0], int(f[1])))]


def test_repository_revisions_pass_every_lint() -> None:
    revisions = load_revisions()
    assert revisions, "alembic/versions has no .sql files"
    failures = {
        name: problems
        for name, lint in lints.LINTS.items()
        if (problems := lint(revisions, project_root()))
    }
    assert failures == {}


# -- lint:no-transaction-control (INV-020) --------------------------------------------------------


def test_no_transaction_control_flags_top_level_transaction_control() -> None:
    problems = run_lint("no-transaction-control", "transaction_control_bad")
    file = "0001_transaction_control.sql"
    assert lines_of(problems) == [f"{file}:{n}" for n in (2, 4, 5, 6, 7, 8, 12)]
    assert "top-level transaction control (BEGIN)" in problems[0]
    assert "COMMIT inside a DO block" in problems[-1]


def test_no_transaction_control_accepts_plpgsql_blocks() -> None:
    assert run_lint("no-transaction-control", "transaction_control_good") == []


def test_unparsable_sql_fails_the_parser_based_lints(tmp_path: Path) -> None:
    (tmp_path / "0001_broken.sql").write_text("CREATE TABEL public.t (id int);\n")
    for name in ("no-transaction-control", "definer-search-path", "no-legacy-references"):
        problems = run_lint(name, tmp_path)
        assert len(problems) == 1 and "cannot parse" in problems[0], name


# -- lint:definer-search-path (INV-007) -----------------------------------------------------------


def test_definer_search_path_flags_unpinned_functions() -> None:
    problems = run_lint("definer-search-path", "definer_bad")
    assert lines_of(problems) == [
        "0001_definers.sql:2",
        "0001_definers.sql:8",
        "0001_definers.sql:15",
        "0002_alter.sql:1",
        "0002_alter.sql:7",
    ]
    assert "public.unpinned(int4) does not pin search_path" in problems[0]
    assert "pg_temp must be listed last" in problems[1]


def test_definer_search_path_accepts_pinned_functions() -> None:
    assert run_lint("definer-search-path", "definer_good") == []


# -- lint:no-secrets (INV-021) --------------------------------------------------------------------


def _secret_revision(directory: Path) -> Path:
    aws = "AKIA" + "ABCDEFGHIJ" + "KLMNOP"
    key_header = "-----BEGIN " + "RSA PRIVATE KEY-----"
    sql = "\n".join(
        [
            "CREATE ROLE app_login LOGIN PASSWORD " + "'correct-horse-battery';",  # line 1
            "DO $$ BEGIN EXECUTE 'ALTER ROLE app_login PASSWORD ''" + "s3cr3t-value'''; END $$;",
            f"-- {aws} was the deploy key",  # line 3
            f"COMMENT ON ROLE app_login IS '{key_header}';",  # line 4
            "COMMENT ON TABLE public.t IS 'postgresql://deployer:" + "hunter2@db.internal/prod';",
            "SET symphony.api_token = '" + "tok_live_1234567890';",  # line 6
        ]
    )
    directory.mkdir()
    (directory / "0001_secrets.sql").write_text(sql + "\n")
    return directory


def test_no_secrets_flags_passwords_and_keys(tmp_path: Path) -> None:
    problems = run_lint("no-secrets", _secret_revision(tmp_path / "versions"))
    assert lines_of(problems) == [f"0001_secrets.sql:{n}" for n in (1, 2, 3, 4, 5, 6)]
    assert all("value not shown" in p for p in problems)
    assert not any("correct-horse" in p or "hunter2" in p for p in problems)


def test_no_secrets_accepts_password_free_roles(tmp_path: Path) -> None:
    assert run_lint("no-secrets", "secrets_good") == []
    # Written here, not committed: the repository's secret scan cannot tell a method from a value.
    (tmp_path / "0001_method.sql").write_text("SET password_encryption = " + "'scram-sha-256';\n")
    assert run_lint("no-secrets", tmp_path) == []


# -- lint:no-concurrently-in-transaction (INV-022) ------------------------------------------------


def test_no_concurrently_flags_a_transactional_revision() -> None:
    problems = run_lint("no-concurrently-in-transaction", "concurrently_bad")
    assert lines_of(problems) == [f"0001_index.sql:{n}" for n in (1, 2, 3, 4, 7)]
    assert "CREATE INDEX CONCURRENTLY in a transactional revision" in problems[0]
    assert "transactional=False" in problems[0]


def test_no_concurrently_accepts_a_non_transactional_revision() -> None:
    assert not is_transactional(LINT_FIXTURES / "concurrently_good" / "0001_index.py")
    assert is_transactional(LINT_FIXTURES / "concurrently_bad" / "0001_index.py")
    assert run_lint("no-concurrently-in-transaction", "concurrently_good") == []


# -- lint:no-legacy-references (INV-023) ----------------------------------------------------------


def test_no_legacy_references_flags_legacy_schemas() -> None:
    problems = run_lint("no-legacy-references", "legacy_bad")
    assert lines_of(problems) == [f"0001_legacy.sql:{n}" for n in (1, 2, 3, 4, 5, 10, 15)]
    assert any("'symphony_archive'" in p for p in problems), "function bodies are checked"
    assert any("'payments_legacy'" in p for p in problems), "dynamic SQL is checked"
    assert any("DROP ... IF EXISTS" in p for p in problems)


def test_no_legacy_references_ignores_comments() -> None:
    assert run_lint("no-legacy-references", "legacy_good") == []


# -- lint:sqlfluff (INV-024) and lint:squawk (INV-025) --------------------------------------------


def test_sqlfluff_flags_style_violations() -> None:
    problems = run_lint("sqlfluff", "sqlfluff_bad")
    codes = {p.split("sqlfluff ", 1)[1].split()[0] for p in problems}
    assert {"CP01", "CP02", "CP04", "LT05"} <= codes


def test_sqlfluff_accepts_house_style() -> None:
    assert run_lint("sqlfluff", "sqlfluff_good") == []


def test_sqlfluff_runs_again_only_for_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symphony_schema.invariants import external_sql_lints

    real_run = external_sql_lints._run
    linted: list[list[str]] = []

    def counting_run(command: list[str]) -> subprocess.CompletedProcess[str]:
        linted.append([Path(arg).name for arg in command if arg.endswith(".sql")])
        return real_run(command)

    monkeypatch.setattr(external_sql_lints, "_run", counting_run)
    monkeypatch.setattr(external_sql_lints, "_SQLFLUFF_SEEN", {})
    directory = tmp_path / "versions"
    directory.mkdir()
    good = (LINT_FIXTURES / "sqlfluff_good" / "0001_style.sql").read_text()
    (directory / "0001_style.sql").write_text(good)
    (directory / "0002_same.sql").write_text(good)
    assert run_lint("sqlfluff", directory) == []
    assert run_lint("sqlfluff", directory) == []
    assert linted == [["0001_style.sql", "0002_same.sql"]], "the second lint asked sqlfluff again"
    # A file whose content changed is linted again and its findings are not hidden.
    bad = (LINT_FIXTURES / "sqlfluff_bad" / "0001_style.sql").read_text()
    (directory / "0002_same.sql").write_text(bad)
    problems = run_lint("sqlfluff", directory)
    assert linted[-1] == ["0002_same.sql"]
    assert problems and all(p.startswith("0002_same.sql:") for p in problems)
    assert problems == run_lint("sqlfluff", directory), "cached findings differ from the first"


def test_squawk_flags_unsafe_migrations() -> None:
    problems = run_lint("squawk", "squawk_bad")
    rules = {p.split("squawk ", 1)[1].split(":")[0] for p in problems}
    assert {
        "changing-column-type",
        "require-concurrent-index-creation",
        "adding-required-field",
    } <= rules
    assert lines_of(problems)[0] == "0001_unsafe.sql:2", "squawk's 0-based lines are shown 1-based"


def test_squawk_accepts_safe_migrations() -> None:
    assert run_lint("squawk", "squawk_good") == []


def test_external_linters_need_their_configuration(tmp_path: Path) -> None:
    revisions = load_revisions(LINT_FIXTURES / "squawk_good")
    for name, config in (("sqlfluff", ".sqlfluff"), ("squawk", ".squawk.toml")):
        problems = lints.LINTS[name](revisions, tmp_path)
        assert problems == [f"{tmp_path / config} is missing; restore it from version control"]


@pytest.mark.parametrize("name", sorted(lints.LINTS))
def test_every_lint_passes_an_empty_directory(name: str, tmp_path: Path) -> None:
    assert lints.LINTS[name](load_revisions(tmp_path), project_root()) == []


# -- lint:alembic-files (INV-036) -----------------------------------------------------------------

GOOD_PY = '''"""A revision."""

from symphony_schema.migration.sql import run_revision_sql

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__{extra})
'''


def _alembic_tree(root: Path) -> Path:
    """``root/alembic`` with the support files and one good revision pair; returns versions/."""
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (root / "alembic" / name).write_text((project_root() / "alembic" / name).read_text())
    (versions / "0001_a.py").write_text(GOOD_PY.format(rev="0001_a", down="None", extra=""))
    (versions / "0001_a.sql").write_text("CREATE TABLE public.a (id integer);\n")
    return versions


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _bytecode(versions: Path, mode: py_compile.PycInvalidationMode) -> Path:
    """A pyc for 0001_a.py compiled from *other* source, as the issue 18.1 attack does."""
    evil = versions.parent.parent / "evil.py"
    evil.write_text("raise SystemExit('not the reviewed source')\n")
    target = versions / "__pycache__" / f"0001_a.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(evil), cfile=str(target), invalidation_mode=mode, doraise=True)
    evil.unlink()
    return target


def test_alembic_files_flags_a_committed_pycache(tmp_path: Path) -> None:
    versions = _alembic_tree(tmp_path)
    shutil.copy(project_root() / ".gitignore", tmp_path / ".gitignore")
    pyc = _bytecode(versions, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    # A local cache git ignores does not ship: a developer's run passes.
    assert lints.lint_alembic_files(versions, project_root()) == []
    _git(tmp_path, "add", "-f", str(pyc))
    _git(tmp_path, "commit", "-q", "-m", "sneak bytecode in")
    problems = lints.lint_alembic_files(versions, project_root())
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"alembic/versions/__pycache__/{pyc.name}: compiled bytecode")
    assert "tracked by git" in problems[0]


def test_alembic_files_outside_git_refuses_bytecode_python_never_writes(tmp_path: Path) -> None:
    versions = _alembic_tree(tmp_path)
    pyc = _bytecode(versions, py_compile.PycInvalidationMode.TIMESTAMP)
    assert lints.lint_alembic_files(versions, project_root()) == []  # a cache Python writes
    pyc.unlink()
    _bytecode(versions, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    problems = lints.lint_alembic_files(versions, project_root())
    assert [p.split(":", 1)[0] for p in problems] == [f"alembic/versions/__pycache__/{pyc.name}"]
    assert "outside a git checkout" in problems[0]


def test_alembic_files_flags_unpaired_and_unknown_files(tmp_path: Path) -> None:
    versions = _alembic_tree(tmp_path)
    (versions / "0002_b.py").write_text(GOOD_PY.format(rev="0002_b", down='"0001_a"', extra=""))
    (versions / "0003_c.sql").write_text("SELECT 1;\n")
    (versions / "notes.txt").write_text("todo\n")
    (versions / "sub").mkdir()
    (versions / "sub" / "0004_d.sql").write_text("SELECT 1;\n")
    (tmp_path / "alembic" / "helpers.py").write_text("X = 1\n")
    (versions / "0005_e.sql").symlink_to(versions / "0001_a.sql")
    (versions / "0005_e.py").write_text(GOOD_PY.format(rev="0005_e", down='"0001_a"', extra=""))
    problems = lints.lint_alembic_files(versions, project_root())
    located = sorted(p.split(":", 1)[0] for p in problems)
    assert located == [
        "alembic/helpers.py",
        "alembic/versions/0002_b.py",
        "alembic/versions/0003_c.sql",
        "alembic/versions/0005_e.py",
        "alembic/versions/0005_e.sql",
        "alembic/versions/notes.txt",
        "alembic/versions/sub/0004_d.sql",
    ], problems
    text = "\n".join(problems)
    assert "alembic/versions/0002_b.py: revision without its .sql" in text
    assert "alembic/versions/0003_c.sql: revision without its .py" in text
    assert "alembic/versions/0005_e.sql: a symbolic link" in text


def test_repository_alembic_tree_passes_the_file_lints() -> None:
    versions = project_root() / "alembic" / "versions"
    assert {name: fn(versions, project_root()) for name, fn in lints.TREE_LINTS.items()} == {
        name: [] for name in lints.TREE_LINTS
    }


# -- lint:revision-py-runs-sql-only (INV-037) -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            GOOD_PY.replace(
                "    run_revision_sql(__file__{extra})",
                '    from alembic import op\n\n    op.execute("SELECT 1")',
            ),
            ["12: upgrade() may only call run_revision_sql", "14: upgrade() calls op.execute"],
        ),
        ("import os\n" + GOOD_PY, ["1: imports os; a revision imports only"]),
        (
            GOOD_PY.replace(
                "from symphony_schema.migration.sql",
                "from alembic.op import execute\nfrom symphony_schema.migration.sql",
            ),
            ["3: imports alembic.op"],
        ),
        (
            GOOD_PY.replace("{extra})", '{extra}.replace(".py", "_other.py"))'),
            ["is not run_revision_sql(__file__) or"],
        ),
        (GOOD_PY + "\n\ndef helper() -> None:\n    pass\n", ["FunctionDef helper is not allowed"]),
        (GOOD_PY + "\nupgrade()\n", ["Expr is not allowed"]),
        (
            GOOD_PY.replace('revision = "{rev}"', 'revision = "{rev}".upper()'),
            ["only the literals"],
        ),
        (GOOD_PY.replace("{extra})", "{extra})\n    run_revision_sql(__file__)"), ["exactly one"]),
        (
            GOOD_PY.replace("def upgrade", "def upgrayedd"),
            ["FunctionDef upgrayedd", "defines upgrade() 0 times"],
        ),
    ],
)
def test_revision_py_flags_anything_but_the_sql_runner(
    tmp_path: Path, body: str, expected: list[str]
) -> None:
    (tmp_path / "0001_a.py").write_text(body.format(rev="0001_a", down="None", extra=""))
    problems = lints.lint_revision_py_runs_sql_only(tmp_path, project_root())
    assert problems, "the lint passed a revision that does more than run its SQL"
    text = "\n".join(problems)
    for fragment in expected:
        assert fragment in text, problems
    assert all(p.startswith("0001_a.py:") for p in problems)


def test_revision_py_accepts_the_template_forms(tmp_path: Path) -> None:
    (tmp_path / "0001_a.py").write_text(GOOD_PY.format(rev="0001_a", down="None", extra=""))
    (tmp_path / "0002_b.py").write_text(
        GOOD_PY.format(rev="0002_b", down='"0001_a"', extra=", transactional=False")
    )
    assert lints.lint_revision_py_runs_sql_only(tmp_path, project_root()) == []


# -- lint:no-secrets on the .py and on format() placeholders (INV-021, issue 18.4) ---------------


def test_no_secrets_scans_revision_py_and_format_placeholders(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text(
        "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', 'x', 'y'); END $$;\n"
    )
    (tmp_path / "0001_a.py").write_text(
        GOOD_PY.format(rev="0001_a", down="None", extra="")
        + "\n\nop_execute = \"ALTER ROLE x PASSWORD '"
        + "abc'\"\n"
        + 'db_password = "'
        + 'hunter22hunter"\n'
    )
    problems = run_lint("no-secrets", tmp_path)
    assert lines_of(problems) == ["0001_a.py:15", "0001_a.py:16", "0001_a.sql:1"], problems


def test_a_revision_from_new_revision_passes_the_file_lints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ``symphony-schema new-revision`` writes from ``alembic/script.py.mako`` is exactly
    what the file lints allow: the template and the lints cannot drift apart."""
    from symphony_schema.cli import main

    root = tmp_path / "project"
    shutil.copytree(
        project_root() / "alembic", root / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(project_root() / "alembic.ini", root / "alembic.ini")
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(root))
    assert main(["new-revision", "add a thing"]) == 0, capsys.readouterr()
    versions = root / "alembic" / "versions"
    assert len(list(versions.glob("*_add_a_thing.py"))) == 1
    assert {name: fn(versions, root) for name, fn in lints.TREE_LINTS.items()} == {
        name: [] for name in lints.TREE_LINTS
    }


def test_alembic_files_in_git_flags_untracked_files_that_would_be_added(tmp_path: Path) -> None:
    versions = _alembic_tree(tmp_path)
    shutil.copy(project_root() / ".gitignore", tmp_path / ".gitignore")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    (versions / "0002_wip.py").write_text(GOOD_PY.format(rev="0002_wip", down='"0001_a"', extra=""))
    (tmp_path / "alembic" / ".gitignore").write_text("*.sql\n")
    problems = lints.lint_alembic_files(versions, project_root())
    assert sorted(p.split(":", 1)[0] for p in problems) == [
        "alembic/.gitignore",
        "alembic/versions/0002_wip.py",
    ], problems
