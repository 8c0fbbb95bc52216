"""``symphony-schema cluster start|stop|status|url``: a real coordinator and workers."""

from __future__ import annotations

import shutil
import socket
import subprocess

import psycopg
import pytest

from symphony_schema import cluster
from tests.cluster.conftest import CLI, new_cluster_dir, run
from tests.cluster.conftest import env as base_env

pytestmark = pytest.mark.citus


def test_the_cluster_has_a_coordinator_and_two_registered_workers(
    citus_cluster: cluster.Cluster,
) -> None:
    env = {"SYMPHONY_CLUSTER_DIR": str(citus_cluster.directory)}
    status = run(CLI, "cluster", "status", extra_env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["coordinator", "worker1", "worker2"]
    assert all("running" in line for line in lines)
    assert sum("registered" in line and "NOT" not in line for line in lines) == 2
    with psycopg.connect(citus_cluster.coordinator.conninfo()) as conn:
        nodes = conn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND groupid <> 0 "
            "ORDER BY nodeport"
        ).fetchall()
        assert nodes == sorted((cluster.HOST, w.port) for w in citus_cluster.workers)
        # The workers really take part: a distributed query reaches both of them.
        workers = conn.execute(
            "SELECT count(*) FROM run_command_on_workers('SELECT 1') WHERE success"
        ).fetchone()
        assert workers == (2,)


def test_every_node_listens_on_the_loopback_only_with_citus_preloaded(
    citus_cluster: cluster.Cluster,
) -> None:
    for node in citus_cluster.nodes:
        with psycopg.connect(node.conninfo()) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('listen_addresses', 'unix_socket_directories', 'shared_preload_libraries', "
                    "'port')"
                ).fetchall()
            )
            extension = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
            ).fetchone()
        assert settings["listen_addresses"] == "127.0.0.1", node.name
        assert settings["unix_socket_directories"] == "", node.name
        assert settings["shared_preload_libraries"].split(",")[0] == "citus", node.name
        assert int(settings["port"]) == node.port
        assert extension is not None and extension[0].startswith("14."), node.name


def test_url_prints_the_coordinator_and_start_again_is_a_no_op(
    citus_cluster: cluster.Cluster,
) -> None:
    env = {"SYMPHONY_CLUSTER_DIR": str(citus_cluster.directory)}
    url = run(CLI, "cluster", "url", extra_env=env)
    assert url.returncode == 0 and url.stdout.strip() == citus_cluster.coordinator.url()
    assert url.stdout.strip().startswith(f"postgresql://postgres@{cluster.HOST}:")
    again = run(CLI, "cluster", "start", extra_env=env)
    assert again.returncode == 0, again.stderr
    assert cluster.load(citus_cluster.directory) == citus_cluster  # same ports, same nodes
    wrong = run(CLI, "cluster", "start", "--workers", "3", extra_env=env)
    assert wrong.returncode == 2
    assert "has 2 worker(s), not 3" in wrong.stderr and "Traceback" not in wrong.stderr


def test_concurrent_starts_a_busy_port_and_a_missing_cluster() -> None:
    directory = new_cluster_dir()
    env = {"SYMPHONY_CLUSTER_DIR": str(directory)}
    try:
        missing = run(CLI, "cluster", "url", extra_env=env)
        assert missing.returncode == 2
        assert missing.stderr.count("\n") == 1 and "cluster start" in missing.stderr
        status = run(CLI, "cluster", "status", extra_env=env)
        assert status.returncode == 1 and "no cluster" in status.stdout
        login = run(CLI, "cluster", "owner-login", extra_env=env)
        assert login.returncode == 2, login.stdout + login.stderr
        assert login.stderr.count("\n") == 1 and "cluster start" in login.stderr

        # Two starts at once make one cluster (they used to pick two sets of ports and run
        # initdb twice into the same directory, ending in a traceback).
        starts = [
            subprocess.Popen(
                [str(CLI), "cluster", "start", "--workers", "1"],
                env={**base_env(), **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(*p.communicate(timeout=180), p.returncode) for p in starts]
        for out, err, code in results:
            assert code == 0, out + err
        found = cluster.load(directory)
        assert found is not None
        states = cluster.status(directory)
        assert [s.running for s in states] == [True, True] and states[1].registered is True
        assert {out.strip().splitlines()[-1] for out, _, _ in results} == {found.coordinator.url()}

        stop = run(CLI, "cluster", "stop", extra_env=env)
        assert stop.returncode == 0 and "coordinator" in stop.stdout
        stopped = run(CLI, "cluster", "status", extra_env=env)
        assert stopped.returncode == 1 and "stopped" in stopped.stdout
        login = run(CLI, "cluster", "owner-login", extra_env=env)
        assert login.returncode == 2, login.stdout + login.stderr
        assert "coordinator is not running" in login.stderr and login.stderr.count("\n") == 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind((cluster.HOST, found.coordinator.port))
            squatter.listen()
            busy = run(CLI, "cluster", "start", extra_env=env)
        assert busy.returncode == 2
        assert f"port {found.coordinator.port} on 127.0.0.1 is in use" in busy.stderr
        assert busy.stderr.count("\n") == 1 and "Traceback" not in busy.stderr
    finally:
        cluster.stop(directory, immediate=True)
        shutil.rmtree(directory, ignore_errors=True)
