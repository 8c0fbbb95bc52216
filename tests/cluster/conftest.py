"""The Citus cluster suite: a coordinator and two workers started once per session.

The tests here are marked ``citus``. They run in the default test run wherever Citus is installed
into the virtualenv's embedded PostgreSQL 18 (``scripts/install-citus.sh``, which ``.ci/run``
and ``nox -s citus`` call); elsewhere they are deselected with one line in the header saying how
to install it. ``SYMPHONY_REQUIRE_CITUS=1`` (set by ``.ci/run`` and ``nox -s citus``) turns a
missing Citus into an error instead, so CI can never pass without running them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from symphony_schema import cluster, project_root

HERE = Path(__file__).parent
ALEMBIC = Path(sys.executable).with_name("alembic")
CLI = Path(sys.executable).with_name("symphony-schema")


def _is_cluster_test(item: pytest.Item) -> bool:
    return HERE in Path(str(item.fspath)).parents


def pytest_report_header(config: pytest.Config) -> str:
    if cluster.citus_installed():
        return f"citus: installed in {cluster.pkglibdir()} (tests/cluster runs)"
    return f"citus: NOT installed: tests/cluster deselected (run {cluster.INSTALL_COMMAND})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _is_cluster_test(item)]
    if not ours or cluster.citus_installed():
        return
    if os.environ.get("SYMPHONY_REQUIRE_CITUS") == "1":
        raise pytest.UsageError(
            f"SYMPHONY_REQUIRE_CITUS=1 but Citus is not installed: run {cluster.INSTALL_COMMAND}"
        )
    config.hook.pytest_deselected(items=ours)
    items[:] = [item for item in items if not _is_cluster_test(item)]
    # (pytest_report_header is only asked of the conftests given on the command line)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"citus: NOT installed: {len(ours)} test(s) of tests/cluster deselected "
            f"(run {cluster.INSTALL_COMMAND})"
        )


def env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("SYMPHONY_DATABASE_URL", "DATABASE_URL")
    }


def run(
    *args: str | Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env={**env(), **(extra_env or {})},
        timeout=180,
        cwd=project_root(),
    )


def new_cluster_dir() -> Path:
    # Short, under the project's .symphony/ like the embedded server (the wheel's system user
    # can traverse it when the tests run as root).
    return project_root() / ".symphony" / f"tc-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[cluster.Cluster]:
    """A fresh coordinator + 2 workers through the CLI, stopped and removed after the session."""
    directory = new_cluster_dir()
    result = run(
        CLI,
        "cluster",
        "start",
        "--workers",
        "2",
        extra_env={"SYMPHONY_CLUSTER_DIR": str(directory)},
    )
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        found = cluster.load(directory)
        assert found is not None
        yield found
    finally:
        cluster.stop(directory, immediate=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_cluster(citus_cluster: cluster.Cluster) -> cluster.Cluster:
    """The session cluster, the owner logging in between its nodes (``cluster owner-login``, ADR
    0146) and its coordinator migrated to head by ``alembic -x url=``: distributed (ADR 0149)."""
    login = run(
        CLI,
        "cluster",
        "owner-login",
        extra_env={"SYMPHONY_CLUSTER_DIR": str(citus_cluster.directory)},
    )
    assert login.returncode == 0, login.stdout + login.stderr
    result = run(ALEMBIC, "-x", f"url={citus_cluster.coordinator.url()}", "upgrade", "head")
    assert result.returncode == 0, result.stdout + result.stderr
    return citus_cluster


def owner_logs_in(found: cluster.Cluster) -> None:
    """Give the owner LOGIN again after a module migrated another database of the session
    cluster (revision 0003 makes it NOLOGIN on every migration; its password, pg_hba.conf line
    and pg_dist_authinfo rows stay)."""
    import psycopg

    with psycopg.connect(found.coordinator.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER ROLE symphony_owner LOGIN")
