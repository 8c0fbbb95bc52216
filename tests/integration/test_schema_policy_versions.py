"""public.policy_versions (revision 0005): checks, the at-most-one-ACTIVE index, the generated
is_active column and the boot query, and who may read or write it."""

from __future__ import annotations

import datetime as dt
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


def test_boot_query_returns_the_active_version(db: psycopg.Connection[Any]) -> None:
    db.execute(INSERT, ("2024.1", "RETIRED", None, CHECKSUM))
    db.execute(INSERT, ("2024.2", "GRACE", LATER, CHECKSUM))
    db.execute(INSERT, ("2024.3", "ACTIVE", None, CHECKSUM))

    assert db.execute("SELECT version FROM public.policy_versions WHERE is_active").fetchall() == [
        ("2024.3",)
    ]
    assert db.execute(
        "SELECT version, is_active FROM public.policy_versions ORDER BY version"
    ).fetchall() == [("2024.1", False), ("2024.2", False), ("2024.3", True)]


def test_is_active_follows_status(db: psycopg.Connection[Any]) -> None:
    db.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    db.execute("UPDATE public.policy_versions SET status = 'RETIRED'")
    assert db.execute("SELECT is_active FROM public.policy_versions").fetchone() == (False,)


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
    # Any number of GRACE and RETIRED versions.
    for version in ("v3", "v4"):
        outbox.conn.execute(INSERT, (version, "GRACE", LATER, CHECKSUM))
        outbox.conn.execute(INSERT, (version + "r", "RETIRED", None, CHECKSUM))


@pytest.mark.parametrize(
    ("status", "grace", "checksum", "constraint"),
    [
        ("ACTIVE", LATER, CHECKSUM, "ck_policy_versions_active_without_grace"),
        ("GRACE", None, CHECKSUM, "ck_policy_versions_grace_with_expiry"),
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


def test_retired_may_keep_its_grace_expiry(db: psycopg.Connection[Any]) -> None:
    db.execute(INSERT, ("v1", "RETIRED", LATER, CHECKSUM))


def test_executor_reads_the_policy_and_control_maintains_it(
    db: psycopg.Connection[Any], login: LoginFactory, outbox_for: type[Outbox]
) -> None:
    control = login(CONTROL).conn
    control.execute(INSERT, ("v1", "ACTIVE", None, CHECKSUM))
    control.execute("UPDATE public.policy_versions SET status = 'GRACE', grace_expires_at = now()")
    control.execute(INSERT, ("v2", "ACTIVE", None, CHECKSUM))
    with outbox_for(control).raises("42501"):
        control.execute("DELETE FROM public.policy_versions")

    executor = login(EXECUTOR).conn
    assert executor.execute(
        "SELECT version FROM public.policy_versions WHERE is_active"
    ).fetchall() == [("v2",)]
    with outbox_for(executor).raises("42501"):
        executor.execute(INSERT, ("v3", "RETIRED", None, CHECKSUM))
