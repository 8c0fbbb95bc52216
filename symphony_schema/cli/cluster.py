"""``symphony-schema cluster start|stop|status|url``: a local Citus cluster (ADR 0125)."""

from __future__ import annotations

import argparse

from symphony_schema import SymphonyError, cluster


def _workers(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 <= number <= cluster.MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {cluster.MAX_WORKERS}")
    return number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="manage a local Citus 14 cluster (coordinator + workers) under .symphony/cluster",
        description="Manage a local Citus 14 cluster built from the embedded PostgreSQL 18 "
        "binaries: a coordinator and N workers, each its own data directory under "
        "<project>/.symphony/cluster (override with SYMPHONY_CLUSTER_DIR), listening on TCP "
        "127.0.0.1 only, on free ports recorded in cluster.json. Citus must be installed into "
        f"the virtualenv first: {cluster.INSTALL_COMMAND}. Development and tests only "
        "(trust authentication on the loopback address).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="start the coordinator and the workers (initialising them if needed)",
        description="Start the coordinator and N workers (initdb first for a node that has no "
        "data directory yet, on a free port of 127.0.0.1), with citus preloaded; create the "
        "database 'symphony' and the citus extension on every node; register the workers with "
        "the coordinator; print the coordinator URL. A no-op for nodes that already run. "
        "--workers defaults to the recorded number, or 2 for a new cluster; a different number "
        "than the recorded one is refused.",
    )
    start.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help=f"number of workers, 0-{cluster.MAX_WORKERS} (default: as recorded, else "
        f"{cluster.DEFAULT_WORKERS})",
    )
    start.set_defaults(handler=_start)
    actions.add_parser(
        "stop",
        help="stop every node (fast shutdown); the data directories are kept",
        description="Stop the workers and the coordinator (pg_ctl stop -m fast). The data "
        "directories and ports are kept, so 'cluster start' brings the same cluster back.",
    ).set_defaults(handler=_stop)
    actions.add_parser(
        "status",
        help="each node: running, port, registered; exit 1 unless all run",
        description="Print one line per node (name, port, data directory, running or not, "
        "and for workers whether the coordinator lists them as active). Exit 0 when every "
        "node runs and every worker is registered, 1 otherwise (also when there is no cluster).",
    ).set_defaults(handler=_status)
    url = actions.add_parser(
        "url",
        help="print the coordinator's URL (for alembic -x url=, --url, psql)",
        description="Print the libpq URL of the cluster's coordinator "
        "(postgresql://postgres@127.0.0.1:PORT/symphony), which alembic -x url=, --url and "
        "psql accept. Exit 2 when there is no cluster.",
    )
    url.add_argument("--node", default="coordinator", help="print this node's URL instead")
    url.set_defaults(handler=_url)
    owner = actions.add_parser(
        "owner-login",
        help="let symphony_owner log in between the nodes (before the distribution revision)",
        description="ADR 0146 on the local cluster: give symphony_owner LOGIN and a new random "
        "password that only Citus holds (pg_dist_authinfo on every node, in every database with "
        "the citus extension: the password is the role's), and put 'host all symphony_owner "
        "127.0.0.1/32 scram-sha-256' first in every node's pg_hba.conf, so nobody else logs in "
        "as the owner. "
        "Creates the role if no migration has yet. Run it before migrating a cluster (the "
        "distribution revision refuses without it) and again after migrating another database "
        "of the cluster (revision 0003 makes the owner NOLOGIN again). Rotates the password.",
    )
    owner.add_argument(
        "--database",
        action="append",
        metavar="NAME",
        help="refuse unless this database has the citus extension (repeatable); every such "
        "database gets the new password either way",
    )
    owner.set_defaults(handler=_owner_login)


def _start(args: argparse.Namespace) -> int:
    started = cluster.start(args.workers)
    for state in cluster.status(started.directory):
        print(_line(state))
    print(started.coordinator.url())
    return 0


def _stop(args: argparse.Namespace) -> int:
    if cluster.load() is None:
        print(f"no cluster under {cluster.default_dir()}")
        return 0
    stopped = cluster.stop()
    print(f"stopped: {', '.join(stopped)}" if stopped else "not running")
    return 0


def _line(state: cluster.NodeStatus) -> str:
    node = state.node
    registered = ""
    if state.registered is not None:
        registered = ", registered" if state.registered else ", NOT registered"
    running = "running" if state.running else "stopped"
    return f"{node.name:<12} {cluster.HOST}:{node.port:<6} {running}{registered}  {node.pgdata}"


def _status(args: argparse.Namespace) -> int:
    states = cluster.status()
    if not states:
        print(f"no cluster under {cluster.default_dir()} (symphony-schema cluster start)")
        return 1
    for state in states:
        print(_line(state))
    healthy = all(s.running and s.registered is not False for s in states)
    return 0 if healthy else 1


def _owner_login(args: argparse.Namespace) -> int:
    found = cluster.load()
    if found is None:
        raise SymphonyError(
            f"no cluster under {cluster.default_dir()}: run symphony-schema cluster start"
        )
    databases = cluster.owner_login(found, args.database)
    print(
        f"{cluster.OWNER} logs in between the nodes: pg_hba.conf of {len(found.nodes)} node(s), "
        f"pg_dist_authinfo in {', '.join(databases)}"
    )
    return 0


def _url(args: argparse.Namespace) -> int:
    found = cluster.load()
    if found is None:
        raise SymphonyError(
            f"no cluster under {cluster.default_dir()}: run symphony-schema cluster start"
        )
    for node in found.nodes:
        if node.name == args.node:
            print(node.url())
            return 0
    names = ", ".join(node.name for node in found.nodes)
    raise SymphonyError(f"--node: no node {args.node!r} in the cluster (nodes: {names})")
