"""Throw-away databases on the server the URL rule selects, dropped afterwards even on failure.

Generation and drift need databases nobody else touches: one migrated from the revisions, one built
from ``baseline.sql``, one built from the Core models. Each is created from ``template0`` (so
nothing an administrator installed in ``template1`` leaks into a dump) with a fixed encoding and
locale, named ``symphony_scratch_<purpose>_<random>`` so a leftover from a killed run is easy to
recognise, and dropped ``WITH (FORCE)`` when the block ends.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError
from symphony_schema.database import to_conninfo
from symphony_schema.redact import redact_url

NAME_PREFIX = "symphony_scratch"

# template0 and an explicit encoding and libc "C" locale: the scratch database is the same on
# every server, whatever template1 or the cluster default looks like.
_CREATE = "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER libc LOCALE 'C'"


@dataclass(frozen=True)
class ScratchDatabase:
    """One throw-away database: its name, SQLAlchemy URL and libpq conninfo."""

    name: str
    url: str

    @property
    def conninfo(self) -> str:
        return to_conninfo(self.url)


def scratch_name(purpose: str) -> str:
    """``symphony_scratch_<purpose>_<10 hex>``, within PostgreSQL's 63-byte identifier limit."""
    return f"{NAME_PREFIX}_{purpose}_{uuid.uuid4().hex[:10]}"[:63]


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(to_conninfo(url), autocommit=True, connect_timeout=30)
    except psycopg.OperationalError as exc:
        shown = redact_url(url)
        raise SymphonyError(
            f"cannot connect to {shown} to create scratch databases: {exc}".rstrip()
        ) from exc


@contextmanager
def scratch_database(server_url: str, purpose: str) -> Iterator[ScratchDatabase]:
    """Create a uniquely named empty database next to ``server_url``'s; drop it afterwards.

    ``server_url`` is the database the URL rule selected; the scratch database is created from a
    connection to it (any database of the server will do), so the user needs CREATEDB there.
    """
    name = scratch_name(purpose)
    with _admin(server_url) as conn:
        try:
            conn.execute(sql.SQL(_CREATE).format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SymphonyError(
                f"cannot create scratch database {name}: {exc.diag.message_primary} "
                f"(SQLSTATE {exc.sqlstate}). Connect as a role with CREATEDB, or use the "
                "embedded server (unset --url / SYMPHONY_DATABASE_URL / DATABASE_URL)."
            ) from exc
    try:
        yield ScratchDatabase(name, _with_database(server_url, name))
    finally:
        drop_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS ... WITH (FORCE)``; a failure is reported, never raised, so it
    cannot hide the error that ended the block."""
    try:
        with _admin(server_url) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except (psycopg.Error, SymphonyError) as exc:
        print(
            f"warning: could not drop scratch database {name}: {exc}; drop it by hand",
            file=sys.stderr,
        )
