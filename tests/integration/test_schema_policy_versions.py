"""public.policy_versions (revisions 0005 and 0016): checks, the at-most-one-ACTIVE index, the
generated is_active column and the boot query, and who may read or write it."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.privileges import CONTROL, EXECUTOR

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

CHECKSUM = "0123456789abcdef" * 4
INSERT = (
    "INSERT INTO public.policy_versions (version, status, grace_expires_at, checksum)"
    " VALUES (%s, %s, %s, %s)"
)
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


ROTATE = "SELECT * FROM public.rotate_policy_version(%s, %s, %s::interval)"


def _history(conn: psycopg.Connection[Any]) -> None:
    """2024.1 RETIRED, 2024.2 GRACE, 2024.3 ACTIVE, made the only way there is: seed, rotate,
    retire (revision 0016 refuses to insert anything but an ACTIVE row)."""
    conn.execute(INSERT, ("2024.1", "ACTIVE", None, CHECKSUM))
    conn.execute(ROTATE, ("2024.2", CHECKSUM, "1 millisecond"))
    time.sleep(0.01)
    conn.execute(ROTATE, ("2024.3", CHECKSUM, "1 hour"))
    conn.execute("SELECT public.retire_expired_policy_versions()")


def test_boot_query_returns_the_active_version(db: psycopg.Connection[Any]) -> None:
    _history(db)

    assert db.execute("SELECT version FROM public.policy_versions WHERE is_active").fetchall() == [
        ("2024.3",)
    ]
    assert db.execute(
        "SELECT version, status::text, is_active FROM public.policy_versions ORDER BY version"
    ).fetchall() == [
        ("2024.1", "RETIRED", False),
        ("2024.2", "GRACE", False),
        ("2024.3", "ACTIVE", True),
    ]


def test_is_active_follows_status(db: psycopg.Connection[Any]) -> None:
    db.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    db.execute(ROTATE, ("v2", CHECKSUM, "1 hour"))
    assert db.execute(
        "SELECT version, is_active FROM public.policy_versions ORDER BY version"
    ).fetchall() == [("v1", False), ("v2", True)]


def test_is_active_cannot_be_written(outbox: Outbox) -> None:
    with outbox.raises("428C9"):
        outbox.conn.execute(
            "INSERT INTO public.policy_versions (version, status, checksum, is_active)"
            " VALUES ('v1', 'RETIRED', %s, true)",
            (CHECKSUM,),
        )


def test_at_most_one_active_version(outbox: Outbox) -> None:
    outbox.conn.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    with outbox.raises("23505", match="uq_policy_versions_one_active"):
        outbox.conn.execute(INSERT, ("v2", "ACTIVE", None, CHECKSUM))
    # Any number of GRACE versions.
    for version in ("v3", "v4", "v5"):
        outbox.conn.execute(ROTATE, (version, CHECKSUM, "1 hour"))
    assert outbox.conn.execute(
        "SELECT status::text, count(*) FROM public.policy_versions GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("ACTIVE", 1), ("GRACE", 3)]


@pytest.mark.parametrize(
    ("status", "grace", "checksum", "constraint"),
    [
        ("ACTIVE", LATER, CHECKSUM, "ck_policy_versions_active_without_grace"),
        ("ACTIVE", None, CHECKSUM.upper(), "ck_policy_versions_checksum_sha256_hex"),
        ("ACTIVE", None, CHECKSUM[:-1], "ck_policy_versions_checksum_sha256_hex"),
        ("ACTIVE", None, CHECKSUM + "0", "ck_policy_versions_checksum_sha256_hex"),
        ("ACTIVE", None, "sha256:" + CHECKSUM, "ck_policy_versions_checksum_sha256_hex"),
        ("ACTIVE", None, "g" * 64, "ck_policy_versions_checksum_sha256_hex"),
        ("ACTIVE", None, "", "ck_policy_versions_checksum_sha256_hex"),
    ],
)
def test_policy_checks(
    outbox: Outbox, status: str, grace: dt.datetime | None, checksum: str, constraint: str
) -> None:
    with outbox.raises("23514", match=constraint):
        outbox.conn.execute(INSERT, ("v1", status, grace, checksum))
    assert outbox.conn.execute("SELECT count(*) FROM public.policy_versions").fetchone() == (0,)


def test_a_grace_version_needs_its_expiry(outbox: Outbox) -> None:
    outbox.conn.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    with outbox.raises("23514", match="ck_policy_versions_grace_with_expiry"):
        outbox.conn.execute("UPDATE public.policy_versions SET status = 'GRACE'")


def test_retired_keeps_its_grace_expiry(db: psycopg.Connection[Any]) -> None:
    _history(db)
    row = db.execute(
        "SELECT status::text, grace_expires_at IS NOT NULL FROM public.policy_versions"
        " WHERE version = '2024.1'"
    ).fetchone()
    assert row == ("RETIRED", True)


def test_executor_reads_the_policy_and_control_maintains_it(
    db: psycopg.Connection[Any], login: LoginFactory, outbox_for: type[Outbox]
) -> None:
    control = login(CONTROL).conn
    control.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    with control.transaction():  # a rotation by hand: both in one transaction (0016)
        control.execute(
            "UPDATE public.policy_versions SET status = 'GRACE', grace_expires_at = now()"
        )
        control.execute(INSERT, ("v2", "ACTIVE", None, CHECKSUM))
    with outbox_for(control).raises("42501"):
        control.execute("DELETE FROM public.policy_versions")

    executor = login(EXECUTOR).conn
    assert executor.execute(
        "SELECT version FROM public.policy_versions WHERE is_active"
    ).fetchall() == [("v2",)]
    with outbox_for(executor).raises("42501"):
        executor.execute(INSERT, ("v3", "RETIRED", None, CHECKSUM))
