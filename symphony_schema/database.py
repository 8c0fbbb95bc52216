"""The one database-selection rule, used by Alembic, the CLI, the tests and nox.

Precedence: an explicit URL (``alembic -x url=...`` or ``--url``), then ``SYMPHONY_DATABASE_URL``,
then ``DATABASE_URL``; with none of them, the embedded PostgreSQL 18 cluster under
``.symphony/pgdata``, started when needed (and said so in one line on stderr).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url

from symphony_schema import embedded

ENV_VARS = ("SYMPHONY_DATABASE_URL", "DATABASE_URL")


@dataclass(frozen=True)
class SelectedDatabase:
    """The database a command will talk to, and why."""

    url: str
    source: str  # "explicit", "SYMPHONY_DATABASE_URL", "DATABASE_URL" or "embedded"

    @property
    def sqlalchemy_url(self) -> URL:
        return make_url(self.url)

    @property
    def conninfo(self) -> str:
        """libpq/psycopg form of the URL."""
        return to_conninfo(self.url)


def normalise_url(url: str) -> str:
    """Make any ``postgres://`` / ``postgresql://`` URL use the psycopg 3 SQLAlchemy driver."""
    if url.startswith("postgres://"):  # the libpq/Heroku spelling SQLAlchemy does not accept
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def to_conninfo(url: str) -> str:
    """A libpq URI for psycopg / psql / pg_dump from a SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def select_database(explicit_url: str | None = None, *, announce: bool = True) -> SelectedDatabase:
    """Apply the selection rule; start the embedded server when nothing is configured."""
    if explicit_url:
        return SelectedDatabase(normalise_url(explicit_url), "explicit")
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return SelectedDatabase(normalise_url(value), var)
    info = embedded.start()
    version = embedded.ensure_database(info, embedded.DEFAULT_DATABASE)
    if announce:
        print(
            f"using embedded PostgreSQL {version} at {info.pgdata} "
            f"(database {embedded.DEFAULT_DATABASE!r})",
            file=sys.stderr,
        )
    return SelectedDatabase(info.sqlalchemy_url(embedded.DEFAULT_DATABASE), "embedded")
