"""The one database-selection rule: explicit > SYMPHONY_DATABASE_URL > DATABASE_URL > embedded."""

from __future__ import annotations

import pytest

from symphony_schema.database import (
    DatabaseUrlError,
    normalise_url,
    select_database,
    to_conninfo,
)
from symphony_schema.migration.engine import EngineSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SYMPHONY_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return monkeypatch


def test_explicit_url_wins_over_both_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SYMPHONY_DATABASE_URL", "postgresql://a@h1/one")
    clean_env.setenv("DATABASE_URL", "postgresql://b@h2/two")
    selected = select_database("postgresql://c@h3/three")
    assert (selected.source, selected.url) == ("explicit", "postgresql+psycopg://c@h3/three")


def test_symphony_variable_wins_over_database_url(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SYMPHONY_DATABASE_URL", "postgresql://a@h1/one")
    clean_env.setenv("DATABASE_URL", "postgresql://b@h2/two")
    assert select_database().source == "SYMPHONY_DATABASE_URL"


def test_database_url_is_used_last(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgres://b@h2/two")
    selected = select_database()
    assert (selected.source, selected.url) == ("DATABASE_URL", "postgresql+psycopg://b@h2/two")


def test_non_postgresql_url_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatabaseUrlError, match="not a PostgreSQL URL"):
        select_database("sqlite:///x.db")


def test_urls_convert_between_sqlalchemy_and_libpq_forms() -> None:
    credentials = "u:" + "p%40ss"  # an escaped '@' in the password must survive both ways
    url = normalise_url(f"postgresql://{credentials}@/db?host=/tmp/sock&port=5432")
    assert url.startswith(f"postgresql+psycopg://{credentials}@/db")
    assert to_conninfo(url).startswith(f"postgresql://{credentials}@/db")


def test_engine_settings_precedence_x_argument_then_environment_then_default() -> None:
    settings = EngineSettings.from_sources(
        {"lock_timeout": "3s"},
        {"SYMPHONY_LOCK_TIMEOUT": "9s", "SYMPHONY_STATEMENT_TIMEOUT": "1min"},
    )
    assert settings.lock_timeout == "3s"
    assert settings.statement_timeout == "1min"
    assert settings.deploy_lock_wait == EngineSettings.deploy_lock_wait
    assert not settings.quiet
    assert EngineSettings.from_sources({"quiet": "true"}, {}).quiet
