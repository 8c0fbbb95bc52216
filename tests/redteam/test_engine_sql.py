"""Red team: the server must read a revision's SQL the way the lints and reviewers read it.

The lints (and ``statement_pieces``) parse revisions with pglast, which, like every reader of
the repository, takes ``standard_conforming_strings = on`` (backslashes are ordinary characters
in ``'...'``). A server session with it ``off`` (``PGOPTIONS``, a role or database setting, the
server's configuration) reads ``\\'`` as an escaped quote instead, so a string literal ends
elsewhere and text the lints saw inside a literal runs as a statement.
"""

from __future__ import annotations

import psycopg
import pytest

from symphony_schema.migration.sql import statement_pieces
from tests.conftest import Database
from tests.migration.conftest import RevisionTree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

HIDDEN_DROP = """\
CREATE TABLE public.victim (id integer);
COMMENT ON TABLE public.victim IS 'a\\''; DROP TABLE public.victim; --';
"""


def test_the_lints_see_one_comment_statement() -> None:
    """The premise: for pglast the DROP is inside the comment's literal."""
    pieces = statement_pieces(HIDDEN_DROP)
    assert len(pieces) == 2 and pieces[1].lstrip().startswith("COMMENT ON TABLE"), pieces


@pytest.mark.parametrize("transactional", [True, False], ids=["transactional", "non-tx"])
def test_standard_conforming_strings_off_cannot_change_what_a_revision_runs(
    tree: RevisionTree, empty_db: Database, transactional: bool
) -> None:
    tree.add("hidden_drop", HIDDEN_DROP, transactional=transactional)
    if not transactional:
        # Non-transactional revisions may not CREATE TABLE; the table comes from before.
        with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.victim (id integer)")
        sql = HIDDEN_DROP.split("\n", 1)[1]
        (tree.versions / f"{tree.revisions[0]}.sql").write_text(sql)
    done = tree.alembic("upgrade", "head", env={"PGOPTIONS": "-c standard_conforming_strings=off"})
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT obj_description(to_regclass('public.victim'), 'pg_class')"
        ).fetchone()
        exists = conn.execute("SELECT to_regclass('public.victim') IS NOT NULL").fetchone()
    assert exists == (True,), f"the hidden DROP TABLE ran:\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, done.stderr
    assert row == ("a\\'; DROP TABLE public.victim; --",)
