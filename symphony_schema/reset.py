"""``symphony-schema reset``: drop and recreate schema ``public``, then migrate to head (dev only).

A development convenience with these guards (ADR 0032, ADR 0066):

* **Locality, decided before connecting** from the connection parameters libpq will actually
  use: the URL (host, ``host``/``hostaddr`` query parameters) completed the way libpq completes
  it, from the ``PG*`` environment variables (``PGHOSTADDR`` applies even when the URL names a
  host). The target must be a Unix-domain socket, ``localhost`` or a loopback address; a
  ``service`` (``pg_service.conf``) cannot be judged and counts as remote.
* **Locality, confirmed by the server** once connected, before anything is dropped: the
  session must run over a Unix-domain socket (``inet_server_addr()`` is NULL) or a loopback
  address. Either refusal can be overridden with ``--force`` only.
* **Every other check before the first destructive statement**: the server version (18+), the
  privileges the drop and the migration need, and the deploy lock.
* **The fresh state, not a looser one.** The recreated ``public`` is exactly what
  ``CREATE DATABASE`` gives on PostgreSQL 15+: owned by ``pg_database_owner``, with USAGE (and
  never CREATE) for PUBLIC, so that the revisions run against the same starting point as on a
  new database (0004 then revokes PUBLIC's USAGE as well).

The drop runs under the deploy lock (ADR 0065), so a reset never interleaves with a migration.
Cluster-wide state (roles, their memberships and passwords) and database-level settings
(``ALTER DATABASE ... SET``) are not touched.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import pq
from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError
from symphony_schema.database import to_conninfo
from symphony_schema.redact import redact_url

__all__ = [
    "RECREATE_PUBLIC_SQL",
    "ResetRefused",
    "libpq_parameters",
    "locality",
    "recreate_public",
    "reset_database",
    "server_locality",
]

#: The statements that give back a fresh database's ``public`` (PostgreSQL 15+ defaults), without
#: the ledger partitions' schema ``symphony_ledger``.
RECREATE_PUBLIC_SQL: tuple[LiteralString, ...] = (
    # The attempts ledger's partitions (revision 0025, ADR 0130) live beside public.
    "DROP SCHEMA IF EXISTS symphony_ledger CASCADE",
    "DROP SCHEMA IF EXISTS public CASCADE",
    "CREATE SCHEMA public AUTHORIZATION pg_database_owner",
    "COMMENT ON SCHEMA public IS 'standard public schema'",
    "REVOKE ALL ON SCHEMA public FROM PUBLIC",
    "GRANT USAGE ON SCHEMA public TO PUBLIC",
)

#: How long the reset waits for the deploy lock and for table locks held by other sessions.
RESET_LOCK_TIMEOUT = "10s"

_LOCAL_NAMES = {"localhost"}


class ResetRefused(SymphonyError):
    """The reset refused to run; nothing was dropped."""


@dataclass(frozen=True)
class Locality:
    local: bool
    description: str


def _split_hosts(values: Iterable[str]) -> list[str]:
    hosts: list[str] = []
    for value in values:
        hosts.extend(part.strip() for part in value.split(",") if part.strip())
    return hosts


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:5432
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:5432 (SQLAlchemy multi-host form)
        return host.split(":", 1)[0]
    return host


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _is_local_host(host: str) -> bool:
    if host.startswith(("/", "@")):  # Unix-domain socket directory (or Linux abstract socket)
        return True
    name = _strip_port(host).lower()
    return name in _LOCAL_NAMES or _is_loopback(name)


def _query_values(query: Mapping[str, Any], key: str) -> list[str]:
    value = query.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def libpq_parameters(url: str, env: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """The connection parameters libpq will use for ``url``: ``{keyword: (value, origin)}``.

    libpq takes every keyword the connection string does not set from its environment variable
    (``PGHOST``, ``PGHOSTADDR``, ``PGSERVICE``, ...; see "Environment Variables" in the libpq
    docs), whatever else the string says. This does the same with ``env`` (default:
    ``os.environ``), using libpq's own parser and keyword table (``PQconninfoParse``). Values
    from a service file are not read: a service makes the target unknown.
    """
    env = os.environ if env is None else env
    try:
        options = pq.Conninfo.parse(to_conninfo(url).encode())
    except psycopg.Error as exc:
        raise ResetRefused(f"cannot parse the database URL: {exc}; nothing was dropped") from None
    resolved: dict[str, tuple[str, str]] = {}
    for option in options:
        keyword = option.keyword.decode()
        if option.val is not None:
            resolved[keyword] = (option.val.decode(), "the URL")
        elif option.envvar is not None and env.get(option.envvar.decode()):
            name = option.envvar.decode()
            resolved[keyword] = (env[name], name)
    return resolved


def locality(url: str, env: Mapping[str, str] | None = None) -> Locality:
    """Whether ``url`` points at a local server, judged without connecting.

    Every host libpq may use must be local: the hosts and addresses the URL spells (SQLAlchemy's
    reading, which keeps repeated ``host`` parameters) and those libpq resolves, environment
    included (:func:`libpq_parameters`).
    """
    env = os.environ if env is None else env
    parsed = make_url(url)
    query = parsed.query
    resolved = libpq_parameters(url, env)
    if "service" in query or "service" in resolved:
        origin = resolved.get("service", ("", "the URL"))[1]
        return Locality(
            False, f"a pg_service.conf service (from {origin}; cannot tell where it points)"
        )
    candidates: list[tuple[str, str]] = []  # (host or address, where it came from)
    url_hosts = ([parsed.host] if parsed.host else []) + _query_values(query, "host")
    candidates += [(host, "the URL") for host in _split_hosts(url_hosts)]
    candidates += [(a, "the URL") for a in _split_hosts(_query_values(query, "hostaddr"))]
    for keyword in ("host", "hostaddr"):
        if keyword in resolved:
            value, origin = resolved[keyword]
            candidates += [(part, origin) for part in _split_hosts([value])]
    if not candidates:
        return Locality(True, "the default local Unix-domain socket")
    remote: dict[str, str] = {}
    for host, origin in candidates:
        if not _is_local_host(host):
            remote.setdefault(host, origin)
    if remote:
        shown = ", ".join(f"{host} (from {origin})" for host, origin in remote.items())
        return Locality(False, f"host {shown}")
    seen = dict.fromkeys(host for host, _ in candidates)
    shown = ", ".join(
        f"Unix socket in {host}" if host.startswith(("/", "@")) else host for host in seen
    )
    return Locality(True, f"local: {shown}")


#: The server's side of the connection: NULL over a Unix-domain socket.
SERVER_ADDRESS_SQL: LiteralString = "SELECT pg_catalog.host(pg_catalog.inet_server_addr())"


def _server_address(conn: psycopg.Connection[Any]) -> str | None:
    """The address the server accepted this session on (None: a Unix-domain socket)."""
    row = conn.execute(SERVER_ADDRESS_SQL).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def server_locality(conn: psycopg.Connection[Any]) -> Locality:
    """Locality as the server sees the session: Unix socket or a loopback address."""
    address = _server_address(conn)
    if address is None:
        return Locality(True, "the server reports a Unix-domain socket")
    if _is_loopback(address):
        return Locality(True, f"the server reports loopback address {address}")
    return Locality(False, f"the server reports address {address}, not loopback")


def _refusal(url: str, where: Locality) -> ResetRefused:
    shown = redact_url(url)
    return ResetRefused(
        f"refusing to reset {shown}: {where.description} does not look like a local "
        "development database (the embedded server, a Unix socket, localhost or a loopback "
        "address). reset drops every object in schema public. If you really mean it, add "
        "--force. Nothing was dropped."
    )


def reset_database(
    url: str, *, force: bool = False, quiet: bool = True, lock_timeout: str = RESET_LOCK_TIMEOUT
) -> Locality:
    """Check everything that can refuse, recreate ``public``, migrate to head.

    Refuses non-local targets unless ``force``. Returns the locality that was judged (for the
    caller's output).
    """
    where = locality(url)
    if not where.local and not force:
        raise _refusal(url, where)
    recreate_public(to_conninfo(url), lock_timeout=lock_timeout, force=force, url=url)
    from symphony_schema.migration import MigrationRefused, api

    try:
        api.upgrade(url, quiet=quiet)
    except MigrationRefused as exc:
        raise SymphonyError(
            f"schema public was recreated, but migrating it failed: {exc}. Fix the cause and run "
            "'alembic upgrade head' (same URL)."
        ) from exc
    return where


#: What the session may do, read before anything is dropped.
_PRIVILEGES_SQL: LiteralString = """
SELECT r.rolsuper,
       pg_catalog.pg_has_role(r.oid, n.nspowner, 'USAGE'),
       pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CREATE'),
       pg_catalog.to_regrole('symphony_owner') IS NOT NULL
         AND pg_catalog.pg_has_role(r.oid, 'symphony_owner', 'SET')
  FROM pg_catalog.pg_roles AS r
  LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = 'public'
 WHERE r.rolname = current_user
"""


def _preflight(conn: psycopg.Connection[Any], url: str, *, force: bool) -> None:
    """Every refusal that does not need the lock, before the first destructive statement."""
    seen = server_locality(conn)
    if not seen.local and not force:
        raise _refusal(url, seen)
    from symphony_schema.migration.engine import MIN_SERVER_VERSION, MIN_SERVER_VERSION_NUM

    if conn.info.server_version < MIN_SERVER_VERSION_NUM:
        shown = conn.info.parameter_status("server_version") or "?"
        raise ResetRefused(
            f"Symphony requires PostgreSQL {MIN_SERVER_VERSION}+ (server is "
            f"{shown.split()[0]}); reset would drop public and then fail to migrate. "
            "Nothing was dropped."
        )
    row = conn.execute(_PRIVILEGES_SQL).fetchone()
    assert row is not None
    superuser, owns_public, create_on_db, sets_owner = (bool(value) for value in row)
    if superuser:
        return
    missing = []
    if not owns_public:
        missing.append("ownership of schema public (be the database owner)")
    if not create_on_db:
        missing.append("CREATE on the database")
    if not sets_owner:
        missing.append("membership in symphony_owner WITH SET TRUE (the migration needs it)")
    if missing:
        raise ResetRefused(
            f"user {conn.info.user!r} could drop public but not rebuild it; it lacks "
            + "; ".join(missing)
            + ". Reset as a superuser or as the managed migrator (docs/operations/runbook.md). "
            "Nothing was dropped."
        )


def recreate_public(
    conninfo: str,
    *,
    lock_timeout: str = RESET_LOCK_TIMEOUT,
    force: bool = False,
    url: str | None = None,
) -> None:
    """Check, then drop and recreate ``public`` in one transaction under the deploy lock."""
    from symphony_schema.migration import deploy_lock

    try:
        with psycopg.connect(conninfo, connect_timeout=30) as conn:
            _preflight(conn, url or conninfo, force=force)
            conn.rollback()
            with conn.transaction():
                try:
                    with conn.transaction():  # a savepoint: a refusal leaves the rest usable
                        deploy_lock.lock_in_transaction(conn, lock_timeout, origin="lock_timeout")
                except deploy_lock.DeployLockDenied:
                    # The ledger belongs to another user (e.g. migrated by a superuser, reset by
                    # the managed migrator). The DROP below needs ACCESS EXCLUSIVE on it, which
                    # conflicts with a deployer's lock just the same, under the same timeout.
                    pass
                conn.execute(
                    "SELECT pg_catalog.set_config('lock_timeout', %s, true)", (lock_timeout,)
                )
                for statement in RECREATE_PUBLIC_SQL:
                    conn.execute(statement)
    except deploy_lock.DeployLockError as exc:
        raise ResetRefused(f"{exc} Nothing was dropped.") from None
    except psycopg.errors.LockNotAvailable as exc:
        raise ResetRefused(
            f"another session held a lock on an object in public for more than {lock_timeout} "
            f"(a running application?): stop it and retry. SQLSTATE {exc.sqlstate}; nothing was "
            "dropped."
        ) from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        state = f"SQLSTATE {exc.sqlstate}: " if exc.sqlstate else ""
        raise ResetRefused(
            f"could not recreate schema public: {state}{first}. Reset as the database owner or "
            "a superuser; the transaction was rolled back, nothing was dropped."
        ) from None
