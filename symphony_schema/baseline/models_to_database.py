"""Build a database from the SQLAlchemy Core models, for drift check 3.

Comparing the models' own Python objects with reflection misses what matters most here (check
constraint and index predicate expressions, server defaults, generated columns, enum labels):
they would have to be parsed and normalised by hand. Instead the models' compiled DDL
(``metadata.create_all``) runs in a scratch database and PostgreSQL renders both sides the same
way (ADR 0013).

What the models reference but do not define is provided first: the enum types the models declare
with ``create_type=False`` (created from the *models'* labels, so a label drift shows), the
schemas they name, and copies of the migrated database's functions (column defaults call
``public.uuid_v7_or_random()``), created with ``check_function_bodies = off``.
"""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import NullPool

from symphony_schema import SymphonyError
from symphony_schema.baseline.catalog import connect
from symphony_schema.database import to_conninfo


def model_enums(metadata: sa.MetaData) -> list[postgresql.ENUM]:
    """The PostgreSQL enum types the models use but leave to the revisions to create."""
    found: dict[tuple[str | None, str], postgresql.ENUM] = {}
    for table in metadata.tables.values():
        for column in table.columns:
            type_ = column.type
            if isinstance(type_, postgresql.ENUM) and not type_.create_type and type_.name:
                found.setdefault((type_.schema or table.schema, type_.name), type_)
    return [found[key] for key in sorted(found, key=lambda k: (k[0] or "", k[1]))]


def _schemas(metadata: sa.MetaData) -> set[str]:
    names = {table.schema for table in metadata.tables.values() if table.schema}
    names |= {enum.schema for enum in model_enums(metadata) if enum.schema}
    return names


def _function_definitions(source_conninfo: str) -> list[str]:
    with connect(source_conninfo) as conn:
        rows = conn.execute(
            """
            SELECT pg_catalog.pg_get_functiondef(p.oid)
              FROM pg_catalog.pg_proc AS p
              JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind = 'f'
             ORDER BY p.oid
            """
        ).fetchall()
    return [str(row[0]) for row in rows]


def _create_prerequisites(
    conn: psycopg.Connection[Any], metadata: sa.MetaData, functions: list[str]
) -> None:
    conn.execute("SET check_function_bodies = off")
    for schema in sorted(_schemas(metadata)):
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for enum in model_enums(metadata):
        name = sql.Identifier(*(part for part in (enum.schema, enum.name) if part))
        labels = sql.SQL(", ").join(sql.Literal(label) for label in enum.enums)
        conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ({})").format(name, labels))
    for definition in functions:
        # Only there so that defaults resolve: one that cannot be created (say, its argument
        # type drifted away from the models) is skipped; create_all then reports what breaks.
        try:
            with conn.transaction():
                conn.execute(definition.encode())
        except psycopg.Error:
            continue


def build_from_models(url: str, metadata: sa.MetaData, *, functions_from_url: str) -> None:
    """Create the models' tables (and what they need) in the empty database at ``url``.

    Raises :class:`SymphonyError` naming the failing statement when the models' DDL is invalid.
    """
    functions = _function_definitions(to_conninfo(functions_from_url))
    with psycopg.connect(to_conninfo(url)) as conn:
        _create_prerequisites(conn, metadata, functions)
        conn.commit()
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
    except sa.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        statement = getattr(exc, "statement", None)
        where = f"\n  while running: {statement.strip()}" if statement else ""
        raise SymphonyError(
            f"the Core models do not compile to valid PostgreSQL DDL: {detail}{where}"
        ) from exc
    finally:
        engine.dispose()
