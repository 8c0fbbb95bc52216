"""``symphony-schema reset``: drop and recreate schema ``public``, then migrate to head (dev only).

A development convenience with two guards (ADR 0032):

* **Locality, decided before connecting.** The target must be the embedded server or look local:
  a Unix-domain socket, ``localhost``, or a loopback address, taking into account every way
  libpq can be told where to connect (URL host, ``host``/``hostaddr`` query parameters, and,
  when the URL names no host, ``PGHOST``/``PGHOSTADDR``). A ``service`` (``pg_service.conf``)
  cannot be judged and counts as remote. Anything else needs ``--force``.
* **The fresh state, not a looser one.** The recreated ``public`` is exactly what
  ``CREATE DATABASE`` gives on PostgreSQL 15+: owned by ``pg_database_owner``, with USAGE (and
  never CREATE) for PUBLIC, so that the revisions run against the same starting point as on a
  new database (0004 then revokes PUBLIC's USAGE as well).

The drop runs under the engine's deploy lock, so a reset never interleaves with a migration.
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
from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError
from symphony_schema.database import to_conninfo

__all__ = ["RECREATE_PUBLIC_SQL", "ResetRefused", "locality", "recreate_public", "reset_database"]

#: The statements that give back a fresh database's ``public`` (PostgreSQL 15+ defaults).
RECREATE_PUBLIC_SQL: tuple[LiteralString, ...] = (
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


def _is_local_host(host: str) -> bool:
    if host.startswith(("/", "@")):  # Unix-domain socket directory (or Linux abstract socket)
        return True
    name = _strip_port(host).lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _query_values(query: Mapping[str, Any], key: str) -> list[str]:
    value = query.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def locality(url: str, env: Mapping[str, str] | None = None) -> Locality:
    """Whether ``url`` points at a local server, judged without connecting."""
    env = os.environ if env is None else env
    parsed = make_url(url)
    query = parsed.query
    if "service" in query or (not parsed.host and "host" not in query and env.get("PGSERVICE")):
        return Locality(False, "a pg_service.conf service (cannot tell where it points)")
    hosts = _split_hosts(([parsed.host] if parsed.host else []) + _query_values(query, "host"))
    addrs = _split_hosts(_query_values(query, "hostaddr"))
    origin = "the URL"
    if not hosts and not addrs:
        hosts = _split_hosts([env["PGHOST"]] if env.get("PGHOST") else [])
        addrs = _split_hosts([env["PGHOSTADDR"]] if env.get("PGHOSTADDR") else [])
        origin = "PGHOST/PGHOSTADDR"
    if not hosts and not addrs:
        return Locality(True, "the default local Unix-domain socket")
    remote = [host for host in hosts + addrs if not _is_local_host(host)]
    if remote:
        return Locality(False, f"host {', '.join(remote)} (from {origin})")
    shown = ", ".join(
        f"Unix socket in {host}" if host.startswith(("/", "@")) else host for host in hosts + addrs
    )
    return Locality(True, f"local: {shown}")


def reset_database(
    url: str, *, force: bool = False, quiet: bool = True, lock_timeout: str = RESET_LOCK_TIMEOUT
) -> Locality:
    """Refuse non-local targets unless ``force``; recreate ``public``; migrate to head.

    Returns the locality that was judged (for the caller's output).
    """
    where = locality(url)
    if not where.local and not force:
        shown = make_url(url).render_as_string(hide_password=True)
        raise ResetRefused(
            f"refusing to reset {shown}: {where.description} does not look like a local "
            "development database (the embedded server, a Unix socket, localhost or a loopback "
            "address). reset drops every object in schema public. If you really mean it, add "
            "--force. Nothing was dropped."
        )
    recreate_public(to_conninfo(url), lock_timeout=lock_timeout)
    from symphony_schema.migration import MigrationRefused, api

    try:
        api.upgrade(url, quiet=quiet)
    except MigrationRefused as exc:
        raise SymphonyError(
            f"schema public was recreated, but migrating it failed: {exc}. Fix the cause and run "
            "'alembic upgrade head' (same URL)."
        ) from exc
    return where


def recreate_public(conninfo: str, *, lock_timeout: str = RESET_LOCK_TIMEOUT) -> None:
    """Drop and recreate ``public`` in one transaction, under the deploy lock."""
    from symphony_schema.migration.engine import DEPLOY_LOCK_SQL, DEPLOY_UNLOCK_SQL

    try:
        with psycopg.connect(conninfo, connect_timeout=30, autocommit=True) as conn:
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, false)", (lock_timeout,))
            conn.execute(DEPLOY_LOCK_SQL)
            try:
                with conn.transaction():
                    for statement in RECREATE_PUBLIC_SQL:
                        conn.execute(statement)
            finally:
                conn.execute(DEPLOY_UNLOCK_SQL)
    except psycopg.errors.LockNotAvailable as exc:
        raise ResetRefused(
            f"another session held the deploy lock or a lock on an object in public for more "
            f"than {lock_timeout} (a migration or a running application): stop it and "
            f"retry. SQLSTATE {exc.sqlstate}; nothing was dropped."
        ) from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        state = f"SQLSTATE {exc.sqlstate}: " if exc.sqlstate else ""
        raise ResetRefused(
            f"could not recreate schema public: {state}{first}. Reset as the database owner or "
            "a superuser; the transaction was rolled back, nothing was dropped."
        ) from None
