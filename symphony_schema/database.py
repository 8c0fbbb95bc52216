"""The one database-selection rule, used by Alembic, the CLI, the tests and nox.

Precedence: an explicit URL (``alembic -x url=...`` or ``--url``), then ``SYMPHONY_DATABASE_URL``,
then ``DATABASE_URL``; with none of them, the embedded PostgreSQL 18 cluster under
``.symphony/pgdata``, started when needed (and said so in one line on stderr).

A URL that cannot be used (not a URL, not PostgreSQL, a bad port, an unknown libpq option) is a
:class:`DatabaseUrlError` naming where it came from; the CLI prints it as one line (exit 2) and
the ``alembic`` command as one ``FAILED:`` line, never a traceback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from symphony_schema import embedded
from symphony_schema.errors import DatabaseUrlError
from symphony_schema.redact import redact_url

ENV_VARS = ("SYMPHONY_DATABASE_URL", "DATABASE_URL")

#: How each source is named in messages.
SOURCE_NAMES = {
    "explicit": "the explicit URL (--url / -x url=)",
    "SYMPHONY_DATABASE_URL": "SYMPHONY_DATABASE_URL",
    "DATABASE_URL": "DATABASE_URL",
    "embedded": "the embedded server",
}


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

    def describe(self) -> str:
        """``<URL with the password masked> (from <source>)`` for messages."""
        return f"{redact_url(libpq_url(self.url))} (from {SOURCE_NAMES[self.source]})"


#: The last database selected in this process: the CLI names it when a connection fails.
last_selected: SelectedDatabase | None = None


def normalise_url(url: str, source: str = "explicit") -> str:
    """Make any ``postgres://`` / ``postgresql://`` URL use the psycopg 3 SQLAlchemy driver.

    Raises :class:`DatabaseUrlError` naming ``source`` when the URL cannot be used.
    """
    where = SOURCE_NAMES.get(source, source)
    text = url.strip()
    if text.startswith("postgres://"):  # the libpq/Heroku spelling SQLAlchemy does not accept
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        parsed = make_url(text)
    except sa_exc.ArgumentError:
        raise DatabaseUrlError(
            f"{where} is not a database URL (expected postgresql://user@host:port/dbname)"
        ) from None
    except ValueError as exc:  # a non-numeric port
        raise DatabaseUrlError(
            f"{where} has an invalid port (not a number 1-65535): {exc}"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseUrlError(
            f"{where} is not a PostgreSQL URL: {redact_url(url)} (expected postgresql://...)"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise DatabaseUrlError(f"{where} has an invalid port {parsed.port} (expected 1-65535)")
    normalised = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    _check_libpq_options(normalised, where)
    return normalised


def _check_libpq_options(url: str, where: str) -> None:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(to_conninfo(url))
    except ProgrammingError as exc:
        raise DatabaseUrlError(f"{where} is not a usable libpq URL: {str(exc).strip()}") from None
    port = options.get("port")
    if port is not None:
        for part in str(port).split(","):
            if part and not (part.isdigit() and 1 <= int(part) <= 65535):
                raise DatabaseUrlError(f"{where} has an invalid port {part!r} (expected 1-65535)")


def libpq_url(url: str, *, hide_password: bool = False) -> str:
    """The libpq URI (what ``psql``, ``pg_dump`` and psycopg accept) of a SQLAlchemy URL.

    Query values are percent-encoded the way libpq decodes them (``%20`` for a space, never
    ``+``), so Unix-socket directories with spaces survive.
    """
    parsed = make_url(url)
    base = parsed.set(drivername="postgresql", query={}).render_as_string(
        hide_password=hide_password
    )
    pairs = []
    for key, value in parsed.query.items():
        values = value if isinstance(value, tuple) else (value,)
        pairs += [f"{quote(key, safe='')}={quote(item, safe='/')}" for item in values]
    return base + ("?" + "&".join(pairs) if pairs else "")


def to_conninfo(url: str) -> str:
    """A libpq URI for psycopg / psql / pg_dump from a SQLAlchemy URL."""
    return libpq_url(url)


def select_database(explicit_url: str | None = None, *, announce: bool = True) -> SelectedDatabase:
    """Apply the selection rule; start the embedded server when nothing is configured."""
    global last_selected
    if explicit_url:
        last_selected = SelectedDatabase(normalise_url(explicit_url, "explicit"), "explicit")
        return last_selected
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            last_selected = SelectedDatabase(normalise_url(value, var), var)
            return last_selected
    info = embedded.start()
    version = embedded.ensure_database(info, embedded.DEFAULT_DATABASE)
    if announce:
        print(
            f"using embedded PostgreSQL {version} at {info.pgdata} "
            f"(database {embedded.DEFAULT_DATABASE!r})",
            file=sys.stderr,
        )
    last_selected = SelectedDatabase(info.sqlalchemy_url(embedded.DEFAULT_DATABASE), "embedded")
    return last_selected
