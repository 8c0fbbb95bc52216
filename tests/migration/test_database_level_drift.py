"""Database- and cluster-level state in the baseline and the drift checks (issue 18 item 2,
ADR 0080).

Each test adds one throw-away revision to a copy of the real revision tree that changes state
outside the schema (database settings and ACL, role validity, role settings, a login's
membership, publications, subscriptions, event triggers, extensions) and shows that
``baseline drift`` fails naming it. Roles are cluster-wide, so what a revision does to them is
undone after each test (``cluster_cleanup``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from symphony_schema.baseline.drift import DriftInputs, DriftKind, run_drift
from symphony_schema.baseline.generate import BASELINE_SQL, generate
from tests.migration.test_baseline_drift import result, tree_with_real_revisions

pytestmark = [pytest.mark.integration, pytest.mark.migration]


ON_THIS_DATABASE = """\
DO $revision$
BEGIN
    EXECUTE pg_catalog.format({statement}, pg_catalog.current_database());
END
$revision$;
"""


def on_this_database(statement: str) -> str:
    """SQL running ``statement`` (with ``%I`` for the database name) on the current database."""
    return ON_THIS_DATABASE.format(statement="'" + statement.replace("'", "''") + "'")


@pytest.fixture
def cluster_cleanup(pg_server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Undo what the test revisions do to the cluster-wide Symphony roles."""
    yield
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("REVOKE symphony_owner FROM test_user")
        admin.execute(
            "UPDATE pg_catalog.pg_authid SET rolvaliduntil = NULL "
            "WHERE rolname IN ('test_user', 'symphony_executor')"
        )
        admin.execute("ALTER ROLE symphony_executor RESET ALL")
        admin.execute("ALTER ROLE test_user RESET ALL")


def baseline_drift(server_url: str, baseline: Path, tmp_path: Path, sql: str) -> str:
    """Add a revision running ``sql`` to a copy of the tree; the failing check-1 diff."""
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add("outside_the_schema", sql)
    report = run_drift(
        server_url,
        DriftInputs(
            baseline_dir=baseline,
            kinds=(DriftKind.BASELINE,),
            script_location=tree.root / "alembic",
        ),
    )
    return result(report, DriftKind.BASELINE)


def test_a_database_setting_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    sql = on_this_database("ALTER DATABASE %I SET symphony.outbox_retry_ceiling = '99'")
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert "+database (this database) setting symphony.outbox_retry_ceiling=99" in diff


def test_a_database_grant_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    sql = on_this_database("GRANT CREATE ON DATABASE %I TO symphony_executor")
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert (
        "+database (this database) ACL: symphony_executor CREATE (granted by (database owner))"
        in diff
    )
    assert "GRANT CREATE ON DATABASE %I TO symphony_executor" in diff


def test_a_login_membership_in_the_owner_role_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path, cluster_cleanup: None
) -> None:
    diff = baseline_drift(
        server_url, fresh_baseline, tmp_path, "GRANT symphony_owner TO test_user;"
    )
    assert "+symphony_owner -> test_user: admin=False inherit=True set=True" in diff
    assert "+GRANT symphony_owner TO test_user WITH ADMIN FALSE, INHERIT TRUE, SET TRUE;" in diff


def test_a_role_validity_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path, cluster_cleanup: None
) -> None:
    diff = baseline_drift(
        server_url, fresh_baseline, tmp_path, "ALTER ROLE test_user VALID UNTIL 'infinity';"
    )
    assert "+role test_user: LOGIN" in diff and "VALID UNTIL 'infinity'" in diff


def test_a_role_setting_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path, cluster_cleanup: None
) -> None:
    sql = "ALTER ROLE symphony_executor SET statement_timeout = 0;\n" + on_this_database(
        "ALTER ROLE test_user IN DATABASE %I SET lock_timeout = '1s'"
    )
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert "+role symphony_executor in every database setting statement_timeout=0" in diff
    assert "+role test_user in (this database) setting lock_timeout=1s" in diff


def test_a_publication_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    sql = "CREATE PUBLICATION symphony_leak FOR TABLE public.payment_outbox_attempts;"
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert "+publication symphony_leak table public.payment_outbox_attempts" in diff
    assert "+CREATE PUBLICATION symphony_leak" in diff


def test_a_subscription_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    sql = (
        "CREATE SUBSCRIPTION symphony_feed CONNECTION 'dbname=elsewhere' PUBLICATION p "
        "WITH (connect = false);"
    )
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert "+subscription symphony_feed: owner=(migrating user) enabled=False" in diff


EVENT_TRIGGER = """\
CREATE FUNCTION public.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    NULL;
END
$$;
CREATE EVENT TRIGGER symphony_note_ddl ON ddl_command_end EXECUTE FUNCTION public.note_ddl();
"""


def test_an_event_trigger_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, EVENT_TRIGGER)
    assert "+event trigger symphony_note_ddl on ddl_command_end" in diff


def test_an_extension_fails_baseline_drift(
    server_url: str, fresh_baseline: Path, tmp_path: Path
) -> None:
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, "CREATE EXTENSION pg_trgm;")
    assert "+extension pg_trgm version" in diff


def test_baseline_apply_reproduces_database_and_cluster_level_state(
    server_url: str, tmp_path: Path, cluster_cleanup: None
) -> None:
    """A baseline generated from such a revision rebuilds it: the round trip is clean."""
    tree = tree_with_real_revisions(tmp_path / "project")
    tree.add(
        "outside_the_schema",
        "\n".join(
            [
                on_this_database("ALTER DATABASE %I SET symphony.x = 'on'"),
                on_this_database("GRANT CREATE ON DATABASE %I TO symphony_executor"),
                on_this_database("REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC"),
                on_this_database("ALTER ROLE test_user IN DATABASE %I SET search_path = a, b"),
                "GRANT symphony_owner TO test_user;",
                "ALTER ROLE test_user VALID UNTIL '2100-01-01 00:00:00+00';",
                "ALTER ROLE symphony_executor SET statement_timeout = 0;",
                "CREATE PUBLICATION symphony_leak FOR TABLE public.payment_outbox_attempts;",
                EVENT_TRIGGER,
            ]
        ),
    )
    location = tree.root / "alembic"
    generate(server_url, tmp_path / "baseline", script_location=location)
    text = (tmp_path / "baseline" / BASELINE_SQL).read_text()
    assert "ALTER DATABASE %I ' || 'SET symphony.x TO ''on''" in text
    assert "SET search_path TO a, b" in text
    report = run_drift(
        server_url,
        DriftInputs(
            baseline_dir=tmp_path / "baseline",
            kinds=(DriftKind.BASELINE, DriftKind.ROUND_TRIP),
            script_location=location,
        ),
    )
    assert report.ok, "\n".join(f"{r.kind.label}: {r.error}\n{r.diff}" for r in report.failed)


@pytest.fixture
def drop_outside_role(pg_server) -> Iterator[None]:  # type: ignore[no-untyped-def]
    yield
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS symphony_test_backdoor")


def test_an_outside_role_granted_a_symphony_role_is_listed_with_its_attributes(
    server_url: str, fresh_baseline: Path, tmp_path: Path, drop_outside_role: None
) -> None:
    sql = (
        "CREATE ROLE symphony_test_backdoor LOGIN CREATEROLE;\n"
        "GRANT symphony_owner TO symphony_test_backdoor;"
    )
    diff = baseline_drift(server_url, fresh_baseline, tmp_path, sql)
    assert "+role symphony_test_backdoor: LOGIN NOSUPERUSER NOCREATEDB CREATEROLE" in diff
    assert "+symphony_owner -> symphony_test_backdoor: admin=False" in diff
    assert "('symphony_test_backdoor', true, false, false, true," in diff


def test_a_hand_edited_membership_and_role_setting_are_named_and_undone(
    server_url: str,
    fresh_baseline: Path,
    tmp_path: Path,
    pg_server,
    cluster_cleanup: None,  # type: ignore[no-untyped-def]
) -> None:
    import shutil

    baseline = Path(shutil.copytree(fresh_baseline, tmp_path / "edited"))
    path = baseline / BASELINE_SQL
    text = path.read_text()
    marker = "-- Memberships involving a Symphony role: none."
    assert marker in text
    path.write_text(
        text.replace(
            marker,
            "GRANT symphony_owner TO test_user;\n"
            "ALTER ROLE symphony_executor SET statement_timeout = 0;",
            1,
        )
    )
    report = run_drift(
        server_url, DriftInputs(baseline_dir=baseline, kinds=(DriftKind.ROUND_TRIP,))
    )
    diff = result(report, DriftKind.ROUND_TRIP)
    assert "+symphony_owner -> test_user: admin=False inherit=True set=True" in diff
    assert "+role symphony_executor in every database setting statement_timeout=0" in diff
    with psycopg.connect(pg_server.conninfo("postgres")) as conn:
        member = conn.execute(
            "SELECT pg_has_role('test_user', 'symphony_owner', 'MEMBER')"
        ).fetchone()
        settings = conn.execute(
            "SELECT count(*) FROM pg_db_role_setting WHERE setrole = 'symphony_executor'::regrole"
        ).fetchone()
    assert member == (False,), "the drift check must revoke the membership the baseline added"
    assert settings == (0,), "the drift check must reset the role setting the baseline added"
