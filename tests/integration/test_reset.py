"""``symphony-schema reset``: refuses non-local targets before connecting; locally it gives back a
freshly migrated database whose ``public`` started exactly as a new database's does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import policy, reset
from symphony_schema.cli import main
from symphony_schema.migration import api
from symphony_schema.reset import ResetRefused, locality
from tests.helpers import run_cli

HEAD = api.head_revision()

# --------------------------------------------------------------------------------------------
# Locality (no database)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@/db",  # default Unix socket
        "postgresql://u@/db?host=/var/run/postgresql",
        "postgresql://u@localhost/db",
        "postgresql://u@LOCALHOST:5433/db",
        "postgresql://u@127.0.0.1/db",
        "postgresql://u@127.0.0.2/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql://u@/db?host=localhost&host=/tmp",
        "postgresql://u@/db?hostaddr=127.0.0.1",
    ],
)
def test_local_targets(url: str) -> None:
    assert locality(url, env={}).local, url


@pytest.mark.parametrize(
    ("url", "env", "named"),
    [
        ("postgresql://u@db.example.com/db", {}, "db.example.com"),
        ("postgresql://u@10.0.0.5:5432/db", {}, "10.0.0.5"),
        ("postgresql://u@/db?host=/tmp&host=prod.internal", {}, "prod.internal"),
        ("postgresql://u@localhost/db?hostaddr=10.1.2.3", {}, "10.1.2.3"),
        ("postgresql://u@/db?service=prod", {}, "pg_service.conf"),
        ("postgresql://u@/db", {"PGHOST": "db.example.com"}, "db.example.com (from PGHOST)"),
        ("postgresql://u@/db", {"PGHOSTADDR": "192.0.2.1"}, "192.0.2.1"),
        ("postgresql://u@/db", {"PGSERVICE": "prod"}, "pg_service.conf"),
        ("postgresql://u@localhost.example.com/db", {}, "localhost.example.com"),
    ],
)
def test_remote_or_unknown_targets(url: str, env: dict[str, str], named: str) -> None:
    where = locality(url, env=env)
    assert not where.local and named in where.description


def test_pghost_is_ignored_when_the_url_names_a_host() -> None:
    assert locality("postgresql://u@localhost/db", env={"PGHOST": "db.example.com"}).local


# --------------------------------------------------------------------------------------------
# Refusal before connecting
# --------------------------------------------------------------------------------------------


def test_remote_url_is_refused_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # db.invalid never resolves: had the command tried to connect, the error would say so.
    code = main(["reset", "--url", "postgresql://admin:s3cret@db.invalid:5432/payments"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "refusing to reset" in err and "db.invalid" in err and "--force" in err
    assert "Nothing was dropped" in err
    assert "s3cret" not in err  # the password in the URL is masked


def test_pghost_pointing_elsewhere_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGHOST", "db.invalid")
    code = main(["reset", "--url", "postgresql://admin@/payments"])
    assert code == 2 and "db.invalid (from PGHOST)" in capsys.readouterr().err


def test_force_skips_the_locality_guard() -> None:
    """--force goes on to connect: proven by getting the connection error, not the refusal."""
    with pytest.raises(ResetRefused, match="could not recreate schema public") as caught:
        reset.reset_database("postgresql://nobody@db.invalid:1/x", force=True)
    assert "does not look like a local" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Local reset on scratch databases
# --------------------------------------------------------------------------------------------


def _public_acl(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT n.nspacl::text[], n.nspowner::regrole::text, "
            "pg_catalog.obj_description(n.oid, 'pg_namespace') "
            "FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'public'"
        ).fetchone()
    assert row is not None
    return [*sorted(row[0] or []), row[1], row[2]]


@pytest.mark.integration
def test_recreated_public_matches_a_fresh_database(migrated_db: Any, empty_db: Any) -> None:
    reset.recreate_public(migrated_db.conninfo)
    recreated = _public_acl(migrated_db.conninfo)
    assert recreated == _public_acl(empty_db.conninfo)
    assert not any(entry.startswith("=") and "C" in entry.split("/")[0] for entry in recreated)
    with psycopg.connect(migrated_db.conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchone()
    assert row == (0,)


@pytest.mark.integration
def test_reset_gives_back_a_freshly_migrated_database(
    migrated_db: Any,
    migrated_template: str,
    pg_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy.seed_policy_document(migrated_db.conninfo, {"policyVersion": "before-reset"})
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.scratch_junk (x int)")
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    code = main(["reset", "--url", migrated_db.url, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"reset database {migrated_db.name!r}" in out and "migrated to head" in out
    with psycopg.connect(migrated_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.scratch_junk')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM public.policy_versions").fetchone() == (0,)
        ledger = conn.execute("SELECT version FROM public.schema_migrations ORDER BY 1").fetchall()
        heads = conn.execute("SELECT version_num FROM public.alembic_version").fetchall()
    assert heads == [(HEAD,)] and ledger[-1] == (HEAD,)
    # Same schema ACL as a database migrated from scratch: PUBLIC has neither CREATE nor USAGE.
    template = pg_server.conninfo(migrated_template)
    assert _public_acl(migrated_db.conninfo) == _public_acl(template)
    assert not any(entry.startswith("=") for entry in _public_acl(migrated_db.conninfo)[:-2])
    # Only the policy is missing for a boot: reset seeds nothing.
    reasons = policy.boot_check(migrated_db.conninfo)
    assert len(reasons) == 1 and reasons[0].startswith("no ACTIVE policy")


@pytest.mark.integration
def test_reset_waits_for_a_running_deployer_and_then_refuses(migrated_db: Any) -> None:
    from symphony_schema.migration.deploy_lock import DEPLOY_LOCK_SQL

    with psycopg.connect(migrated_db.conninfo) as deployer:
        deployer.execute(DEPLOY_LOCK_SQL)
        with pytest.raises(ResetRefused, match="held the deploy lock") as caught:
            reset.reset_database(migrated_db.url, lock_timeout="200ms")
    assert "SQLSTATE 55P03" in str(caught.value)
    with psycopg.connect(migrated_db.conninfo) as conn:  # nothing was dropped
        assert conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone() != (0,)


@pytest.mark.integration
def test_console_script_resets_a_local_database(migrated_db: Any) -> None:
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.scratch_junk (x int)")
    done = run_cli("reset", "--url", migrated_db.url)
    assert done.returncode == 0, done.stderr
    assert "schema public recreated and migrated to head" in done.stdout
    with psycopg.connect(migrated_db.conninfo) as conn:
        assert conn.execute("SELECT to_regclass('public.scratch_junk')").fetchone() == (None,)


# --------------------------------------------------------------------------------------------
# Issue 11 item 6: locality from what libpq will use, confirmed by the server
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "env", "named"),
    [
        # libpq applies PGHOSTADDR whatever host the URL names: it connects to that address.
        ("postgresql://u@localhost/db", {"PGHOSTADDR": "192.0.2.1"}, "192.0.2.1 (from PGHOSTADDR)"),
        ("postgresql://u@127.0.0.1/db", {"PGHOSTADDR": "192.0.2.1"}, "192.0.2.1 (from PGHOSTADDR)"),
        ("postgresql://u@/db?host=/tmp", {"PGHOSTADDR": "192.0.2.1"}, "192.0.2.1"),
        ("postgresql://u@localhost/db", {"PGSERVICE": "prod"}, "pg_service.conf"),
    ],
)
def test_environment_libpq_applies_anyway_is_judged(
    url: str, env: dict[str, str], named: str
) -> None:
    where = locality(url, env=env)
    assert not where.local and named in where.description, where


def test_loopback_hostaddr_from_the_environment_is_local() -> None:
    assert locality("postgresql://u@localhost/db", env={"PGHOSTADDR": "127.0.0.1"}).local
    assert locality("postgresql://u@localhost/db", env={"PGHOSTADDR": "::ffff:127.0.0.1"}).local


def test_pghostaddr_elsewhere_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """URL says localhost, PGHOSTADDR points elsewhere: refused without any connection attempt.

    192.0.2.1 (TEST-NET-1) is never contacted: a tripwire replaces psycopg.connect, so a
    regression fails here instead of sending a packet.
    """

    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("reset tried to connect before refusing")

    monkeypatch.setattr(psycopg, "connect", tripwire)
    monkeypatch.setenv("PGHOSTADDR", "192.0.2.1")
    code = main(["reset", "--url", "postgresql://admin@localhost/payments"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "192.0.2.1 (from PGHOSTADDR)" in err and "Nothing was dropped" in err


def _user_table_survives(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('public.keep_me') IS NOT NULL").fetchone()
    return bool(row and row[0])


@pytest.mark.integration
def test_the_server_side_answer_is_a_unix_socket_here(migrated_db: Any) -> None:
    with psycopg.connect(migrated_db.conninfo) as conn:
        seen = reset.server_locality(conn)
    assert seen.local and "Unix-domain socket" in seen.description


@pytest.mark.integration
def test_a_server_that_reports_a_non_loopback_address_is_refused_before_dropping(
    migrated_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the server's answer is simulated (no non-loopback traffic is ever sent)."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.keep_me (x int)")
    monkeypatch.setattr(reset, "_server_address", lambda conn: "192.0.2.10")
    with pytest.raises(ResetRefused, match=r"server reports address 192\.0\.2\.10") as caught:
        reset.reset_database(migrated_db.url)
    assert "Nothing was dropped" in str(caught.value)
    assert _user_table_survives(migrated_db.conninfo)
    # --force is the only way past it.
    reset.reset_database(migrated_db.url, force=True)
    assert not _user_table_survives(migrated_db.conninfo)


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.0.2.10", False),
        ("::ffff:10.0.0.5", False),
    ],
)
def test_server_addresses(address: str, local: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reset, "_server_address", lambda conn: address)
    assert reset.server_locality(None).local is local  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Issue 11 item 7: every check that can refuse runs before the first destructive statement
# --------------------------------------------------------------------------------------------


@pytest.fixture
def owner_login(pg_server: Any, migrated_db: Any) -> Iterator[str]:
    """A non-superuser login that owns ``migrated_db`` (so it may drop public)."""
    login = f"t_reset_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(migrated_db.name), sql.Identifier(login)
            )
        )
        try:
            yield login
        finally:
            with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                        sql.Identifier(login), sql.Identifier(pg_server.user)
                    )
                )
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


@pytest.mark.integration
def test_a_database_owner_who_cannot_migrate_is_refused_before_dropping(
    pg_server: Any, migrated_db: Any, owner_login: str
) -> None:
    """The owner of the database may drop public, but without symphony_owner the migration
    would fail afterwards, leaving an empty database: refused first, the table stays."""
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.keep_me (x int)")
    url = pg_server.sqlalchemy_url(migrated_db.name, user=owner_login)
    with pytest.raises(ResetRefused, match="membership in symphony_owner") as caught:
        reset.reset_database(url)
    assert "Nothing was dropped" in str(caught.value)
    assert _user_table_survives(migrated_db.conninfo)


@pytest.mark.integration
def test_the_managed_migrator_can_reset(pg_server: Any, migrated_db: Any, owner_login: str) -> None:
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("GRANT symphony_owner TO {} WITH INHERIT TRUE, SET TRUE").format(
                sql.Identifier(owner_login)
            )
        )
    with psycopg.connect(migrated_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.keep_me (x int)")
    reset.reset_database(pg_server.sqlalchemy_url(migrated_db.name, user=owner_login))
    assert not _user_table_survives(migrated_db.conninfo)
    with psycopg.connect(migrated_db.conninfo) as conn:
        heads = conn.execute("SELECT version_num FROM public.alembic_version").fetchall()
    assert heads == [(HEAD,)]


@pytest.mark.integration
def test_a_reset_user_who_may_not_lock_the_ledger_still_waits_for_a_deployer(
    pg_server: Any, migrated_db: Any, owner_login: str
) -> None:
    """The managed migrator cannot LOCK a ledger a superuser created; its DROP still conflicts
    with the deployer's lock, so the reset is refused after the wait and nothing is dropped."""
    from symphony_schema.migration.deploy_lock import DEPLOY_LOCK_SQL

    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("GRANT symphony_owner TO {} WITH INHERIT TRUE, SET TRUE").format(
                sql.Identifier(owner_login)
            )
        )
    url = pg_server.sqlalchemy_url(migrated_db.name, user=owner_login)
    with psycopg.connect(migrated_db.conninfo) as deployer:
        deployer.execute(DEPLOY_LOCK_SQL)
        with pytest.raises(ResetRefused, match="SQLSTATE 55P03") as caught:
            reset.reset_database(url, lock_timeout="300ms")
    assert "nothing was dropped" in str(caught.value)
    with psycopg.connect(migrated_db.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone() != (0,)
