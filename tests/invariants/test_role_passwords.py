"""``gate:role-passwords`` (INV-038): the semantic secrets check of issue 18.4.

Each evasion that beats the lexical scans (dynamic SQL with format(), concatenation, decode(...,
'base64'), SQL sent from the .py, re-setting a verifier a role already has) is a revision of a
throw-away tree on top of the real 0001-0010; migrating it must leave a role with a password that
the check names. Roles are cluster-wide: every role a test creates has a unique name and is
dropped afterwards.
"""

from __future__ import annotations

import base64
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from symphony_schema import project_root
from symphony_schema.invariants import role_passwords, runner
from symphony_schema.invariants.results import timed
from symphony_schema.migration import api
from tests.conftest import Database, PgServer
from tests.migration.conftest import RevisionTree, make_tree

EVASION_PY = '''"""Sets a password from the .py (issue 18.4)."""

from alembic import op

from symphony_schema.migration.sql import run_revision_sql

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__)
    op.execute("ALTER ROLE {role} PASSWORD 'from-the-py'")
'''


@pytest.fixture
def roles(pg_server: PgServer) -> Iterator[list[str]]:
    """Unique role names for one test; every one of them is dropped afterwards."""
    names: list[str] = []
    yield names
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def _tree(tmp_path: Path, url: str) -> RevisionTree:
    """The real revisions 0001-0010 in a throw-away tree, ready for more."""
    tree = make_tree(tmp_path / "project", url)
    for path in (project_root() / "alembic" / "versions").glob("[0-9]*"):
        if path.suffix in {".py", ".sql"}:
            shutil.copy(path, tree.versions / path.name)
    tree.revisions = sorted(p.stem for p in tree.versions.glob("*.py"))
    return tree


def _step(tree: RevisionTree, db: Database, rev: str) -> list[str]:
    """Migrate to ``rev`` between two snapshots; the check's problems."""
    before = role_passwords.snapshot(db.conninfo)
    assert not isinstance(before, str), before
    api.upgrade(db.url, rev, script_location=tree.root / "alembic")
    return role_passwords.check(db.conninfo, before)


def test_role_passwords_flags_each_evasion(
    tmp_path: Path, migrated_db: Database, roles: list[str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    login, fmt, concat, b64, from_py = (
        roles.append(f"h6_{kind}_{tag}") or f"h6_{kind}_{tag}"
        for kind in ("login", "format", "concat", "b64", "py")
    )
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        # A login whose password an operator set outside migrations, and a role a revision alters.
        conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD 'set-by-an-operator'")
        conn.execute(f"CREATE ROLE {b64} LOGIN")
        (verifier,) = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (login,)
        ).fetchone()  # type: ignore[misc]
    tree = _tree(tmp_path, migrated_db.url)

    benign = tree.add("benign", "CREATE TABLE public.h6_benign (id integer);\n")
    assert _step(tree, migrated_db, benign) == []  # the operator's login is not reported

    statement = f"ALTER ROLE {b64} PASSWORD 'decoded'"
    encoded = base64.b64encode(statement.encode()).decode()
    evasions = {
        fmt: "DO $$ BEGIN EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', "
        f"'{fmt}', 'pw-' || 'fmt'); END $$;\n",
        concat: f"DO $$ BEGIN EXECUTE 'CREATE ROLE {concat} LOGIN PASS' || 'WORD ' "
        "|| quote_literal('concat'); END $$;\n",
        b64: f"DO $$ BEGIN EXECUTE convert_from(decode('{encoded}', 'base64'), 'UTF8'); END $$;\n",
        # The same verifier again: the value does not change, the row version does.
        login: f"DO $$ BEGIN EXECUTE 'ALTER ROLE {login} PASSWORD ' || quote_literal("
        f"'{verifier}'); END $$;\n",
    }
    for role, sql in evasions.items():
        rev = tree.add(f"evasion_{role[3:8]}", sql)
        problems = _step(tree, migrated_db, rev)
        assert len(problems) == 1, (role, problems)
        assert problems[0].startswith(f"role {role} was created or altered by the migrations")

    down = tree.revisions[-1]
    rev = f"{len(tree.revisions) + 1:04d}_evasion_py"
    (tree.versions / f"{rev}.py").write_text(EVASION_PY.format(rev=rev, down=down, role=from_py))
    (tree.versions / f"{rev}.sql").write_text(f"CREATE ROLE {from_py} LOGIN;\n")
    tree.revisions.append(rev)
    problems = _step(tree, migrated_db, rev)
    assert [p.split(" was ", 1)[0] for p in problems] == [f"role {from_py}"]


def test_role_passwords_flags_a_symphony_role_with_a_password(
    pg_server: PgServer, migrated_db: Database
) -> None:
    assert role_passwords.check(migrated_db.conninfo) == []
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("ALTER ROLE symphony_readonly PASSWORD 'h6-distinct-value'")
        try:
            run = runner.new_run("test")
            for result in runner.gate_results(migrated_db.conninfo):
                run.add(result)
        finally:
            conn.execute("ALTER ROLE symphony_readonly PASSWORD NULL")
    (result,) = [r for r in run.results if r.ref == role_passwords.CHECK_REF]
    assert result.failed
    assert result.invariant_id == "INV-038"
    assert result.details[0].startswith("role symphony_readonly has a password")
    assert "h6-distinct-value" not in " ".join(result.details)


def test_role_passwords_is_skipped_for_a_user_that_cannot_read_pg_authid(
    pg_server: PgServer, migrated_db: Database
) -> None:
    conninfo = pg_server.conninfo(migrated_db.name, "test_user")
    result = timed(role_passwords.CHECK_REF, lambda: role_passwords.check(conninfo))
    assert result.status == "skip"
    assert "superusers only" in str(result.note)


def test_verify_reports_a_password_set_from_the_py(
    tmp_path: Path, migrated_db: Database, roles: list[str]
) -> None:
    role = f"h6_verify_{uuid.uuid4().hex[:8]}"
    roles.append(role)
    tree = _tree(tmp_path, migrated_db.url)
    rev = f"{len(tree.revisions) + 1:04d}_evasion_py"
    (tree.versions / f"{rev}.py").write_text(
        EVASION_PY.format(rev=rev, down=tree.revisions[-1], role=role)
    )
    (tree.versions / f"{rev}.sql").write_text(f"CREATE ROLE {role} LOGIN;\n")
    run = runner.new_run("test")
    runner.verify_sequence(
        run,
        migrated_db.url,
        versions_dir=tree.versions,
        stop_on_lint_failure=False,
        script_location=tree.root / "alembic",
    )
    failed = {r.invariant_id: r for r in run.results if r.failed}
    assert set(failed) >= {"INV-037", "INV-038"}, [(r.ref, r.details) for r in run.failed]
    assert failed["INV-038"].details[0].startswith(f"role {role} was created or altered")
    assert failed["INV-037"].details[0].startswith(f"{rev}.py:3: imports alembic")
