"""Root fixtures: the embedded PostgreSQL 18 server and fresh databases cloned from a template.

The template is migrated to head once per session through the real engine; each test that needs
a database gets its own copy (``CREATE DATABASE ... TEMPLATE``), so no test shares mutable state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from symphony_schema import embedded
from symphony_schema.migration import api

os.environ.setdefault("SYMPHONY_QUIET", "1")
# Tests choose their databases explicitly: a developer's DATABASE_URL must never be migrated or
# dropped by the test suite.
for _var in ("SYMPHONY_DATABASE_URL", "DATABASE_URL"):
    os.environ.pop(_var, None)


@dataclass(frozen=True)
class PgServer:
    """The running embedded server, as the tests see it."""

    info: embedded.ServerInfo

    @property
    def host(self) -> str:
        return str(self.info.socket_dir)

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def user(self) -> str:
        return embedded.SUPERUSER

    def conninfo(self, dbname: str, user: str | None = None) -> str:
        return self.info.conninfo(dbname, user or self.user)

    def sqlalchemy_url(self, dbname: str, user: str | None = None) -> str:
        return self.info.sqlalchemy_url(dbname, user or self.user)


@dataclass(frozen=True)
class Database:
    """One throw-away database on the embedded server."""

    name: str
    conninfo: str
    url: str


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    return PgServer(embedded.start())


def _janitor(server: PgServer, dbname: str, **kwargs: object) -> DatabaseJanitor:
    return DatabaseJanitor(
        user=server.user,
        host=server.host,
        port=server.port,
        dbname=dbname,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def migrated_template(pg_server: PgServer) -> Iterator[str]:
    """A template database migrated to head once per session, through the real engine."""
    name = unique_name("symphony_tmpl")
    with _janitor(pg_server, name, as_template=True):
        api.upgrade(pg_server.sqlalchemy_url(name))
        yield name


def _database(server: PgServer, name: str) -> Database:
    return Database(name, server.conninfo(name), server.sqlalchemy_url(name))


@pytest.fixture
def migrated_db(pg_server: PgServer, migrated_template: str) -> Iterator[Database]:
    """A fresh database at head, cloned from the session template."""
    name = unique_name("symphony_test")
    with _janitor(pg_server, name, template_dbname=migrated_template):
        yield _database(pg_server, name)


@pytest.fixture
def empty_db(pg_server: PgServer) -> Iterator[Database]:
    """A fresh empty database."""
    name = unique_name("symphony_empty")
    with _janitor(pg_server, name):
        yield _database(pg_server, name)


@pytest.fixture
def db(migrated_db: Database) -> Iterator[psycopg.Connection]:
    """Superuser connection (autocommit) to a fresh migrated database."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        yield conn
