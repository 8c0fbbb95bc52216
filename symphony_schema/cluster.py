"""A local Citus 14 cluster (coordinator + N workers) from the embedded PostgreSQL 18 binaries.

Each node is its own data directory under ``.symphony/cluster/`` (``coordinator``, ``worker1``,
...), listens on TCP ``127.0.0.1`` only (no Unix socket, never another address) on a free port
chosen at ``initdb`` time and recorded in its ``postgresql.auto.conf`` and in
``.symphony/cluster/cluster.json``, and preloads ``citus``. ``start`` creates the database and
the ``citus`` extension on every node and registers the workers with the coordinator. As root
(CI) the servers run as the wheel's unprivileged system user, exactly like ``db start``
(:mod:`symphony_schema.embedded`). Local authentication is ``trust`` on the loopback address: a
development and test cluster, never a production one (``docs/operations/citus.md``).

Citus itself is not in the wheel: ``scripts/install-citus.sh TARBALL`` builds it into the
virtualenv's embedded PostgreSQL 18 (ADR 0125).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from symphony_schema import SymphonyError, embedded, project_root

#: The loopback address every node listens on and is registered under. Never another address.
HOST = "127.0.0.1"
DEFAULT_WORKERS = 2
MAX_WORKERS = 16
STATE_FILE = "cluster.json"
#: What the project's install step is called (printed when Citus is missing).
INSTALL_COMMAND = "scripts/install-citus.sh ../shared/vendor/citus-14.0.1.tar.gz"

#: ``postgresql.auto.conf`` settings of every node, on top of the embedded server's. ``citus``
#: must come first in ``shared_preload_libraries``; ``wal_level = logical`` lets
#: ``citus_rebalance_start`` move shards; no Unix socket (TCP on the loopback only).
NODE_SETTINGS: dict[str, str] = {
    **embedded.SERVER_SETTINGS,
    "shared_preload_libraries": "'citus,pg_stat_statements'",
    "listen_addresses": f"'{HOST}'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
}


def default_dir() -> Path:
    """``SYMPHONY_CLUSTER_DIR`` or ``<project root>/.symphony/cluster``."""
    override = os.environ.get("SYMPHONY_CLUSTER_DIR")
    if override:
        return Path(override).resolve()
    return project_root() / ".symphony" / "cluster"


def pkglibdir() -> Path:
    """Where the embedded PostgreSQL 18 loads extensions' shared libraries from."""
    return embedded.bin_dir().parent / "lib"


def pg_config() -> Path:
    """The embedded PostgreSQL 18's ``pg_config`` (what the install step builds against)."""
    return embedded.binary("pg_config")


def citus_installed() -> bool:
    """Whether ``citus.so`` and its control file are in the embedded PostgreSQL 18."""
    share = embedded.bin_dir().parent / "share" / "extension"
    return (pkglibdir() / "citus.so").is_file() and (share / "citus.control").is_file()


def require_citus() -> None:
    if not citus_installed():
        raise SymphonyError(
            f"Citus is not installed in the embedded PostgreSQL 18 (no citus.so in "
            f"{pkglibdir()}): run {INSTALL_COMMAND}"
        )


@dataclass(frozen=True)
class Node:
    """One node of the local cluster."""

    name: str
    port: int
    pgdata: Path

    def conninfo(self, dbname: str = embedded.DEFAULT_DATABASE, user: str = "") -> str:
        return (
            f"host={HOST} port={self.port} user={user or embedded.SUPERUSER} dbname={dbname} "
            "connect_timeout=5"
        )

    def url(self, dbname: str = embedded.DEFAULT_DATABASE, user: str = "") -> str:
        """libpq URL (psql, pg_dump, ``alembic -x url=``, ``--url``)."""
        return f"postgresql://{user or embedded.SUPERUSER}@{HOST}:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return embedded.status(self.pgdata) is not None


@dataclass(frozen=True)
class Cluster:
    """The nodes recorded in ``cluster.json``: the coordinator first, then the workers."""

    directory: Path
    nodes: tuple[Node, ...]

    @property
    def coordinator(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> tuple[Node, ...]:
        return self.nodes[1:]


def _node_names(workers: int) -> list[str]:
    return ["coordinator", *(f"worker{i}" for i in range(1, workers + 1))]


def load(directory: Path | None = None) -> Cluster | None:
    """The cluster recorded under ``directory``, or ``None`` when there is none."""
    directory = (directory or default_dir()).resolve()
    state = directory / STATE_FILE
    if not state.is_file():
        return None
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
        nodes = tuple(
            Node(str(n["name"]), int(n["port"]), directory / str(n["name"])) for n in data["nodes"]
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SymphonyError(
            f"{state} is not a cluster state file ({exc}); remove {directory}"
        ) from exc
    if not nodes or nodes[0].name != "coordinator":
        raise SymphonyError(f"{state} names no coordinator; remove {directory}")
    return Cluster(directory, nodes)


def _save(cluster: Cluster) -> None:
    data = {"host": HOST, "nodes": [{"name": n.name, "port": n.port} for n in cluster.nodes]}
    state = cluster.directory / STATE_FILE
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(state)


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def port_in_use(port: int) -> bool:
    """Whether another socket listens on the port. SO_REUSEADDR as PostgreSQL binds: connections
    of a node that just crashed linger in TIME_WAIT for a minute and must not count as in use
    (they made ``start`` refuse to bring a crashed worker back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def _initdb(node: Node) -> None:
    node.pgdata.mkdir(parents=True, exist_ok=True)
    try:
        embedded._initdb(node.pgdata)
    except subprocess.CalledProcessError as exc:
        raise SymphonyError(
            f"cluster {node.name}: initdb failed in {node.pgdata} (exit {exc.returncode}); "
            f"remove {node.pgdata.parent} and start again"
        ) from exc  # the embedded server's initdb (as root: its system user)
    settings = {**NODE_SETTINGS, "port": str(node.port)}
    with (node.pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as handle:
        handle.write("# written by symphony_schema.cluster\n")
        handle.write("".join(f"{key} = {value}\n" for key, value in settings.items()))


def _start_node(node: Node) -> None:
    if node.running:
        return
    if port_in_use(node.port):
        raise SymphonyError(
            f"cluster {node.name}: port {node.port} on {HOST} is in use by another process; "
            f"stop it, or remove {node.pgdata.parent} to start a new cluster on free ports"
        )
    log = node.pgdata / "log"
    try:
        embedded._run_binary("pg_ctl", ["-w", "-t", "60", "-l", str(log), "start"], node.pgdata)
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        raise SymphonyError(
            f"cluster {node.name} (port {node.port}) did not start: {last or exc} (log: {log})"
        ) from exc


def _prepare(node: Node, dbname: str) -> None:
    """Create ``dbname`` and the ``citus`` extension on one node (idempotent)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            is None
        ):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with psycopg.connect(node.conninfo(dbname), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citus")


def _register(cluster: Cluster, dbname: str) -> None:
    """Tell the coordinator where it is and add every worker that is not in pg_dist_node yet."""
    import psycopg

    with psycopg.connect(cluster.coordinator.conninfo(dbname), autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (HOST, cluster.coordinator.port))
        known = {
            int(row[0])
            for row in conn.execute(
                "SELECT nodeport FROM pg_dist_node WHERE nodename = %s AND groupid <> 0", (HOST,)
            )
        }
        for worker in cluster.workers:
            if worker.port not in known:
                conn.execute("SELECT citus_add_node(%s, %s)", (HOST, worker.port))


def start(
    workers: int | None = None,
    directory: Path | None = None,
    dbname: str = embedded.DEFAULT_DATABASE,
) -> Cluster:
    """Start (initialising if needed) the coordinator and ``workers`` workers; idempotent."""
    if workers is not None and not 0 <= workers <= MAX_WORKERS:
        raise SymphonyError(f"--workers must be between 0 and {MAX_WORKERS}, not {workers}")
    require_citus()
    directory = (directory or default_dir()).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        return _start_locked(workers, directory, dbname)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One ``start``/``stop`` at a time per cluster directory (two at once would pick two sets
    of ports and run ``initdb`` twice into the same data directories)."""
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_locked(workers: int | None, directory: Path, dbname: str) -> Cluster:
    cluster = load(directory)
    if cluster is not None and workers is not None and workers != len(cluster.workers):
        raise SymphonyError(
            f"the cluster under {directory} has {len(cluster.workers)} worker(s), not {workers}: "
            f"use --workers {len(cluster.workers)}, or stop it and remove {directory} first"
        )
    if cluster is None:
        taken: set[int] = set()
        nodes = []
        for name in _node_names(DEFAULT_WORKERS if workers is None else workers):
            port = _free_port(taken)
            taken.add(port)
            nodes.append(Node(name, port, directory / name))
        cluster = Cluster(directory, tuple(nodes))
        _save(cluster)
    for node in cluster.nodes:
        if not (node.pgdata / "PG_VERSION").is_file():
            _initdb(node)
    for node in cluster.nodes:
        _start_node(node)
    for node in cluster.nodes:
        _prepare(node, dbname)
    _register(cluster, dbname)
    return cluster


def stop(directory: Path | None = None, *, immediate: bool = False) -> list[str]:
    """Stop every running node (fast shutdown; ``immediate``: no shutdown checkpoint, for
    throw-away clusters about to be deleted); the names of those that were stopped."""
    directory = (directory or default_dir()).resolve()
    cluster = load(directory)
    if cluster is None:
        return []
    with _locked(directory):
        stopped = []
        for node in reversed(cluster.nodes):
            if immediate and node.running:
                embedded._run_binary("pg_ctl", ["-m", "immediate", "-w", "stop"], node.pgdata)
                stopped.append(node.name)
            elif embedded.stop(node.pgdata):
                stopped.append(node.name)
        return stopped


@dataclass(frozen=True)
class NodeStatus:
    node: Node
    running: bool
    registered: bool | None  # None: unknown (coordinator down, or the coordinator itself)


def status(
    directory: Path | None = None, dbname: str = embedded.DEFAULT_DATABASE
) -> list[NodeStatus]:
    """Each node: running, and (for workers) active in the coordinator's ``pg_dist_node``."""
    cluster = load(directory)
    if cluster is None:
        return []
    registered: set[int] | None = None
    if cluster.coordinator.running:
        import psycopg

        try:
            with psycopg.connect(cluster.coordinator.conninfo(dbname), autocommit=True) as conn:
                registered = {
                    int(row[0])
                    for row in conn.execute(
                        "SELECT nodeport FROM pg_dist_node WHERE isactive AND groupid <> 0"
                    )
                }
        except psycopg.Error:
            registered = None
    return [
        NodeStatus(
            node,
            node.running,
            None if registered is None or node.name == "coordinator" else node.port in registered,
        )
        for node in cluster.nodes
    ]


# ------------------------------------------------------------------------------------------------
# ADR 0146: on a cluster the owner logs in between the nodes, and only there
# ------------------------------------------------------------------------------------------------

#: The role Citus connects as inside the outbox functions (their SECURITY DEFINER owner).
OWNER = "symphony_owner"
#: The ``pg_hba.conf`` line that makes the owner authenticate with its password (scram) from the
#: nodes' own address, ahead of the loopback ``trust`` lines: only Citus, which reads the password
#: from ``pg_dist_authinfo``, can log in as the owner.
OWNER_HBA_LINE = f"host all {OWNER} {HOST}/32 scram-sha-256"


def _citus_databases(cluster: Cluster) -> list[str]:
    """The coordinator's databases that have the citus extension (where pg_dist_authinfo is)."""
    import psycopg

    with psycopg.connect(cluster.coordinator.conninfo("postgres"), autocommit=True) as conn:
        names = [
            str(row[0])
            for row in conn.execute(
                "SELECT datname FROM pg_catalog.pg_database"
                " WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres'"
                " ORDER BY datname"
            )
        ]
    found = []
    for name in names:
        with psycopg.connect(cluster.coordinator.conninfo(name), autocommit=True) as conn:
            if conn.execute(
                "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'"
            ).fetchone():
                found.append(name)
    return found


def owner_login(cluster: Cluster, databases: list[str] | None = None) -> list[str]:
    """Let ``symphony_owner`` log in between the nodes of the local cluster (ADR 0146), the
    operator's step before the distribution revision: a new random password that only
    ``pg_dist_authinfo`` holds (every node, every Citus database: the password is the role's, so
    a database left with the old one would fail every call that reaches another node), the role
    created with it if it does not exist yet (revision 0003 then makes it NOLOGIN, the
    distribution revision lets it log in) or else given LOGIN and the password, and every node's
    ``pg_hba.conf`` asking the owner for it before the ``trust`` lines. ``databases``, if given,
    must each have the citus extension (checked before anything is written). Idempotent; rotates
    the password each time. Returns the databases whose ``pg_dist_authinfo`` was written."""
    import secrets

    import psycopg
    from psycopg import sql

    for node in cluster.nodes:
        if not node.running:
            raise SymphonyError(
                f"cluster {node.name} is not running: symphony-schema cluster start"
            )
    targets = _citus_databases(cluster)
    if not targets:
        raise SymphonyError("no database of the cluster has the citus extension: cluster start")
    unknown = sorted(set(databases or ()) - set(targets))
    if unknown:
        raise SymphonyError(
            f"--database {', '.join(unknown)}: not a database of the cluster with the citus "
            "extension (nothing written)"
        )
    password = secrets.token_urlsafe(24)
    for node in cluster.nodes:
        hba = node.pgdata / "pg_hba.conf"
        text = hba.read_text(encoding="utf-8")
        if OWNER_HBA_LINE not in text.splitlines():
            hba.write_text(OWNER_HBA_LINE + "\n" + text, encoding="utf-8")
        with psycopg.connect(node.conninfo("postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_catalog.pg_reload_conf()")
    with psycopg.connect(cluster.coordinator.conninfo(targets[0]), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (OWNER,))
        verb = "ALTER" if exists.fetchone() else "CREATE"
        # Citus propagates CREATE/ALTER ROLE (with the password) to the workers.
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(OWNER), sql.Literal(password)
            )
        )
    for dbname in targets:
        for node in cluster.nodes:
            with (
                psycopg.connect(node.conninfo(dbname), autocommit=True) as conn,
                conn.transaction(),
            ):
                conn.execute(
                    "DELETE FROM pg_catalog.pg_dist_authinfo WHERE rolename = %s", (OWNER,)
                )
                conn.execute(
                    "INSERT INTO pg_catalog.pg_dist_authinfo (nodeid, rolename, authinfo)"
                    " VALUES (0, %s, %s)",
                    (OWNER, f"password={password}"),
                )
    return targets


#: The end of the distribution revision's id (ADR 0149), whatever its number.
DISTRIBUTION_REVISION_SUFFIX = "_distribute_on_citus"


def revision_before_distribution() -> str:
    """The id of the revision the distribution revision follows: a database migrated to it on
    a cluster has the whole schema on the coordinator, nothing distributed (the probe and the
    routing benchmark distribute by hand from there). Read from the revision chain the engine
    loads (``api.script_directory``)."""
    from symphony_schema.migration import api

    found = [
        script
        for script in api.script_directory().walk_revisions()
        if script.revision.endswith(DISTRIBUTION_REVISION_SUFFIX)
    ]
    if len(found) != 1 or not isinstance(found[0].down_revision, str):
        raise SymphonyError(
            f"expected one revision *{DISTRIBUTION_REVISION_SUFFIX} with one down_revision"
        )
    return found[0].down_revision
