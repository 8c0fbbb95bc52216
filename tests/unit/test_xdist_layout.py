"""The parallel test run's layout (ADR 0164): one embedded server per xdist worker, the Citus
cluster suite whole on one worker.

The first test runs pytest itself with two workers over ``tests/cluster`` and two small unit
files through the ``tests.xdist_probe`` plugin (no test body runs, no server or cluster starts:
each test records its worker and that worker's data directory), so it sees the real collection
hook, scheduler and ``addopts`` at work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from symphony_schema import embedded, project_root
from tests.conftest import PgServer

CLI = Path(sys.executable).with_name("symphony-schema")
PYTEST = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "tests.xdist_probe"]


def _probe(tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "probe"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(SYMPHONY_XDIST_PROBE=str(out), SYMPHONY_PGDATA=str(tmp_path / "pgdata"))
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [*PYTEST, "tests/cluster", "tests/unit/test_checksum.py", "tests/unit/test_redact.py"],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root(),
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads(line) for f in out.glob("*.jsonl") for line in f.read_text().splitlines()]


def test_each_worker_has_its_own_server_and_the_cluster_suite_one_worker(tmp_path: Path) -> None:
    runs = _probe(tmp_path)
    workers = {run["worker"] for run in runs}
    assert workers == {"gw0", "gw1"}, f"the default run is not parallel: {sorted(workers)}"
    pgdata = {run["worker"]: run["pgdata"] for run in runs}
    for worker in workers:
        assert {run["pgdata"] for run in runs if run["worker"] == worker} == {pgdata[worker]}
    # Roles are cluster-wide: two workers on one data directory would share one role namespace.
    assert pgdata == {w: str(tmp_path / f"pgdata-{w}") for w in workers}, pgdata
    cluster = [run for run in runs if "tests/cluster/" in run["nodeid"]]
    assert len(cluster) > 5, "tests/cluster was not collected"
    placed = {run["worker"] for run in cluster}
    assert len(placed) == 1, f"the cluster suite ran on {sorted(placed)}: one cluster per worker"


def test_this_worker_and_its_subprocesses_use_one_server(pg_server: PgServer) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    mine = embedded.default_pgdata()
    if worker:
        assert mine.name.endswith(f"-{worker}"), mine
    assert pg_server.info.pgdata == mine
    with psycopg.connect(pg_server.conninfo("postgres")) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None and Path(row[0]).resolve() == mine
    # A CLI subprocess of this test (what the CLI and Alembic tests start) finds the same server.
    result = subprocess.run(
        [str(CLI), "db", "url"], capture_output=True, text=True, timeout=120, cwd=project_root()
    )
    assert result.returncode == 0, result.stderr
    assert str(pg_server.info.socket_dir) in result.stdout, result.stdout
