"""The standard migration-history checks (what pytest-alembic's defaults cover) on the real chain.

pytest-alembic's plugin cannot collect under pytest 9 (ADR 0001), and its runner bypasses our
engine's URL rule; these tests do the same checks through the real engine instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from symphony_schema.migration import api

pytestmark = [pytest.mark.integration, pytest.mark.migration]


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(api.alembic_config())


def test_single_head_revision() -> None:
    heads = _scripts().get_heads()
    assert len(heads) == 1, f"expected one head, found {heads}: merge the branches"


def test_revision_ids_are_sortable_and_documented() -> None:
    revisions = list(reversed(list(_scripts().walk_revisions())))
    ids = [script.revision for script in revisions]
    assert ids == sorted(ids), "revision ids must sort in chain order"
    for number, script in enumerate(revisions, start=1):
        assert re.fullmatch(rf"{number:04d}_[a-z0-9_]+", script.revision), script.revision
        assert len(script.revision) <= 32, "alembic_version.version_num is varchar(32)"
        assert Path(script.path).stem == script.revision, "the file is named after its id"
        assert (script.module.__doc__ or "").strip(), (
            f"{script.revision} needs a one-line docstring"
        )
        assert not hasattr(script.module, "downgrade"), "revisions are forward-only"


def test_upgrade_one_revision_at_a_time_reaches_head(empty_db) -> None:
    revisions = [s.revision for s in reversed(list(_scripts().walk_revisions()))]
    for revision in revisions:
        api.upgrade(empty_db.url, revision)
        with psycopg.connect(empty_db.conninfo) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            count = conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone()
        assert row == (revision,)
        assert count == (revisions.index(revision) + 1,)
