"""Read queries that run on either connection the project uses: psycopg 3 (CLI, gate, boot
check, baseline) or the SQLAlchemy connection the engine migrates on."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy.engine import Connection

#: A connection :func:`fetch_all` accepts.
AnyConnection = Connection | psycopg.Connection[Any]


def fetch_all(conn: AnyConnection, query: str) -> list[tuple[Any, ...]]:
    """Rows of a parameterless query, in the caller's transaction, on either kind of connection."""
    if isinstance(conn, Connection):
        return [tuple(row) for row in conn.exec_driver_sql(query).all()]
    return [tuple(row) for row in conn.execute(query).fetchall()]
