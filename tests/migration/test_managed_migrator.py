"""Managed PostgreSQL: the migrator is not a superuser (docs/operations/runbook.md).

The migrator owns the database and is a member of ``symphony_owner`` (granted by an
administrator, never by a migration); the roles already exist in the cluster. The full chain
must apply and leave exactly the declared privilege matrix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from symphony_schema import privilege_catalog, privilege_diff, privileges
from symphony_schema.migration import api

pytestmark = [pytest.mark.integration, pytest.mark.migration]


@pytest.fixture
def managed_database(pg_server, migrated_template: str) -> Iterator[tuple[str, str]]:
    """(login, database) for a non-superuser migrator owning a fresh empty database."""
    del migrated_template  # ensures the cluster-wide Symphony roles exist, as on a managed cluster
    login = f"t_migrator_{uuid.uuid4().hex[:8]}"
    dbname = f"symphony_managed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(login)))
        admin.execute(
            sql.SQL("GRANT symphony_owner TO {} WITH INHERIT TRUE, SET TRUE").format(
                sql.Identifier(login)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(login)
            )
        )
        try:
            yield login, dbname
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def test_a_non_superuser_migrator_applies_the_chain_with_the_declared_privileges(
    pg_server, managed_database: tuple[str, str]
) -> None:
    login, dbname = managed_database
    api.upgrade(pg_server.sqlalchemy_url(dbname, user=login))

    with psycopg.connect(pg_server.conninfo(dbname, user=login)) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        applied_by = conn.execute(
            "SELECT DISTINCT applied_by FROM public.schema_migrations"
        ).fetchall()
    assert version == (api.head_revision(),)
    assert applied_by == [(login,)]
    with psycopg.connect(pg_server.conninfo(dbname)) as conn:
        problems = privilege_diff.diff_grants(
            privileges.expected_grants(), privilege_catalog.read_actual_grants(conn)
        )
        create_on_public = conn.execute(
            "SELECT has_schema_privilege('symphony_owner', 'public', 'CREATE')"
        ).fetchone()
        # The migrator's membership in symphony_owner is the one ADR 0070 allows.
        migrator = privilege_catalog.read_migrating_user(conn)
        memberships = privilege_diff.diff_memberships(
            privilege_catalog.read_memberships(conn), migrator
        )
        effective = privilege_diff.diff_effective_privileges(
            privilege_catalog.read_effective_privileges(conn)
        )
    assert migrator == login
    assert memberships == [] and effective == []
    assert problems == []
    assert create_on_public == (False,), "symphony_owner must not keep CREATE on public"
