"""Fixtures of the torture suite (docs/contract/quality.md R1-R5, S1-S4).

The root fixtures (``pg_server``, ``migrated_template``, ``migrated_db``, ``empty_db``, ``db``)
come from ``tests/conftest.py``. Here: throw-away non-superuser logins with runtime-role
memberships (roles are cluster-wide: unique names, dropped afterwards) and the catalog
fingerprint of the real chain at every revision boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import pytest

from symphony_schema.migration import api
from tests.torture import support


class _Server(Protocol):
    def conninfo(self, dbname: str, user: str | None = None) -> str: ...

    def sqlalchemy_url(self, dbname: str, user: str | None = None) -> str: ...


class _Database(Protocol):
    name: str
    conninfo: str
    url: str


@dataclass(frozen=True)
class TortureLogin:
    """A throw-away LOGIN role and how to connect as it."""

    name: str
    conninfo: str

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=autocommit)


class LoginMaker(Protocol):
    def __call__(self, *roles: str, inherit: bool = True) -> TortureLogin: ...


@pytest.fixture
def make_login(
    pg_server: _Server, migrated_db: _Database, db: psycopg.Connection[Any]
) -> Iterator[LoginMaker]:
    """Factory: ``make_login("symphony_executor")`` -> a uniquely named non-superuser login with
    that membership, usable on the test's migrated database; dropped (with its sessions, objects
    and grants) at teardown."""
    created: list[str] = []

    def make(*roles: str, inherit: bool = True) -> TortureLogin:
        name = support.create_login(db, *roles, inherit=inherit)
        created.append(name)
        return TortureLogin(name, pg_server.conninfo(migrated_db.name, user=name))

    yield make
    for name in created:
        support.drop_login(db, name)


@dataclass(frozen=True)
class Boundaries:
    """The real chain and the catalog fingerprint after each of its revisions.

    ``fingerprints[k]`` is the state after the first ``k`` revisions (``k = 0``: nothing applied;
    the engine tables are left out there, because the engine creates its ledger before the first
    revision and a run killed in between leaves an empty ledger behind).
    """

    revisions: list[str]
    fingerprints: list[dict[str, list[tuple[str, ...]]]]

    def fingerprint_of(self, conn: psycopg.Connection[Any], applied: int) -> Any:
        return support.catalog_fingerprint(conn, include_engine_tables=applied > 0)


@pytest.fixture(scope="session")
def boundaries(pg_server: _Server) -> Boundaries:
    """Fingerprints of the real chain at every revision boundary, each migrated through the real
    engine into its own scratch database (``alembic upgrade <revision>``)."""
    revisions = [rev.revision for rev in support.real_revisions()]
    fingerprints = []
    for applied in range(len(revisions) + 1):
        with support.scratch_database(pg_server, "t_torture_ref") as scratch:
            if applied:
                api.upgrade(scratch.url, revision=revisions[applied - 1])
            with psycopg.connect(scratch.conninfo, autocommit=True) as conn:
                fingerprints.append(
                    support.catalog_fingerprint(conn, include_engine_tables=applied > 0)
                )
    return Boundaries(revisions, fingerprints)


@pytest.fixture
def planted(db: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Grants planted inside a transaction that is rolled back (memberships are cluster-wide)."""
    with psycopg.connect(db.info.dsn) as conn:
        yield conn
        conn.rollback()
