"""pytest-alembic's fixtures, bound to a scratch database migrated through the real engine.

Why the plugin is not used as a plugin: its auto-collection (``--test-alembic``) fails under
pytest 9 (``TestCollector`` has no ``_nodeid``: it appends to a private attribute pytest no longer
sets before ``__init__`` returns), so ``pyproject.toml`` disables it with
``-p no:pytest_alembic``. Its tests are plain functions taking ``alembic_runner``: the test
module imports them explicitly, and this conftest provides the fixtures the plugin would have
(``alembic_runner`` is the plugin's own fixture, re-exported; ``alembic_config`` and
``alembic_engine`` are ours, as the plugin expects projects to override them).

``alembic_engine`` is an Engine on a fresh empty database: pytest-alembic hands it to ``env.py``
as ``config.attributes["connection"]``, and the engine migrates that database (ADR 0095).
"""

from __future__ import annotations

from collections.abc import Iterator

import alembic.config
import pytest
import sqlalchemy as sa
from pytest_alembic.plugin.fixtures import alembic_runner
from sqlalchemy.pool import NullPool

from symphony_schema.migration import api
from tests.conftest import Database, PgServer

__all__ = ["alembic_config", "alembic_engine", "alembic_runner"]


@pytest.fixture
def alembic_config() -> alembic.config.Config:
    """The project's ``alembic.ini``, exactly as ``symphony-schema``/``alembic`` read it."""
    return api.alembic_config()


@pytest.fixture
def alembic_engine(
    empty_db: Database, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sa.Engine]:
    """An Engine on a fresh empty database.

    The server's socket directory travels as ``PGHOST`` (and ``PGPORT``), not in the URL:
    experimental ``test_all_models_register_on_metadata`` hands the rendered URL to a
    subprocess that writes it into an ``alembic.ini`` section, and configparser rejects the
    ``%2F`` of a socket path in a URL as bad interpolation syntax.
    """
    monkeypatch.setenv("PGHOST", pg_server.host)
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    url = sa.URL.create("postgresql+psycopg", username=pg_server.user, database=empty_db.name)
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
