"""pytest-alembic's standard checks, run in the default test run (issue 12.4).

Imported explicitly (see ``conftest.py`` for why the plugin's collection is not used) and run
through the real engine against a scratch database (``alembic_engine``):

* ``test_single_head_revision``, ``test_upgrade``, ``test_model_definitions_match_ddl``;
* ``test_up_down_consistency`` and experimental ``test_downgrade_leaves_no_trace`` do not apply:
  Symphony migrations are forward-only and the engine refuses ``downgrade``. They are replaced by
  :func:`test_downgrade_is_refused_and_leaves_the_database_at_head`;
* experimental ``test_all_models_register_on_metadata`` does not apply: it looks for model
  modules that ``env.py`` forgot to import by walking a models *package*, and fails on a single
  module ("Invalid module name: symphony_schema.models", tried with the metadata wired in). All
  Core tables live in the one module ``symphony_schema.models``, which ``env.py``'s
  ``target_metadata`` comes from, so no model module can be left out.

The tests below the imports check that it really was the scratch database that got migrated.
"""

from __future__ import annotations

import psycopg
import pytest
from alembic.util import CommandError
from pytest_alembic import MigrationContext
from pytest_alembic.tests import default, test_single_head_revision, test_upgrade

from symphony_schema.migration import api
from tests.conftest import Database, PgServer

pytestmark = [pytest.mark.integration, pytest.mark.migration]

__all__ = ["test_single_head_revision", "test_upgrade"]


def test_model_definitions_match_ddl(alembic_runner: MigrationContext) -> None:
    """pytest-alembic's model check: autogenerate against the migrated scratch database finds
    nothing (``target_metadata`` is the Core models', ADR 0098)."""
    default.test_model_definitions_match_ddl(alembic_runner)


def _scratch_state(conninfo: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(conninfo) as conn:
        ledger = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        heads = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    return ledger, heads


def _symphony_ledger(pg_server: PgServer) -> object:
    """The URL rule's database (embedded ``symphony``): what pytest-alembic must NOT migrate."""
    with psycopg.connect(pg_server.conninfo("postgres")) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'symphony'").fetchone() is None:
            return None
    with psycopg.connect(pg_server.conninfo("symphony")) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone() == (None,):
            return []
        return conn.execute(
            "SELECT version, applied_at FROM public.schema_migrations ORDER BY 1"
        ).fetchall()


def test_pytest_alembic_upgrade_migrates_the_scratch_database(
    alembic_runner: MigrationContext, empty_db: Database, pg_server: PgServer
) -> None:
    before = _symphony_ledger(pg_server)
    test_upgrade(alembic_runner)
    head = api.head_revision()
    ledger, heads = _scratch_state(empty_db.conninfo)
    revisions = [script.revision for script in api.script_directory().walk_revisions()]
    assert ledger == sorted(revisions) and heads == [head]
    assert alembic_runner.current == head
    assert _symphony_ledger(pg_server) == before


def test_downgrade_is_refused_and_leaves_the_database_at_head(
    alembic_runner: MigrationContext, empty_db: Database
) -> None:
    """Replaces pytest-alembic's ``test_up_down_consistency``: downgrades must be refused."""
    alembic_runner.migrate_up_to("heads", return_current=False)
    at_head = _scratch_state(empty_db.conninfo)
    with pytest.raises(CommandError, match="downgrade is refused"):
        alembic_runner.migrate_down_one()
    with pytest.raises(CommandError, match="downgrade is refused"):
        alembic_runner.migrate_down_to("base")
    assert _scratch_state(empty_db.conninfo) == at_head
