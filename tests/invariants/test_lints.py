"""The SQL lints on fixture revision directories: each lint fails its ``*_bad`` fixture with the
expected findings and passes its ``*_good`` fixture; the repository's own revisions pass them all.

The secrets fixture is written at test time (from pieces) instead of being committed: a committed
file full of credential-shaped strings would trip the repository's own secret scan.
"""

from __future__ import annotations

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
