"""Policy rotation in the database (issue 14, revision 0016, ADRs 0105-0107):
``rotate_policy_version``, ``policy_version_accepted``, ``retire_expired_policy_versions``, the
immutability triggers (enabled ALWAYS) and the one-ACTIVE rule at commit.

Controlled time: a rotation with a grace of a few milliseconds expires after a short sleep
(``_wait_past``), never minutes; a long grace stays open for the whole test.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema.privileges import AUDITOR, CONTROL, EXECUTOR, INGEST, READONLY, TEST_USER

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.conftest import LoginFactory, Outbox

pytestmark = pytest.mark.integration

A = "a" * 64
B = "b" * 64
C = "c" * 64
SEED = (
    "INSERT INTO public.policy_versions (version, status, checksum) "
    "VALUES (%s, 'ACTIVE'::public.policy_version_status, %s)"
)
ROTATE = "SELECT * FROM public.rotate_policy_version(%s, %s, %s::interval)"
ACCEPTED = "SELECT public.policy_version_accepted(%s)"
RETIRE = "SELECT * FROM public.retire_expired_policy_versions()"
ONE_ACTIVE = "SELECT version FROM public.policy_versions WHERE is_active"


def table(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every row and hidden tuple identity, to prove that "nothing was written"."""
    return conn.execute(
        "SELECT version, status::text, grace_expires_at, checksum, created_at, xmin::text "
        "FROM public.policy_versions ORDER BY version"
    ).fetchall()


def rotate(
    conn: psycopg.Connection[Any], version: str, checksum: str, grace: str = "1 hour"
) -> dict[str, Any]:
    cur = conn.execute(ROTATE, (version, checksum, grace))
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return {col.name: value for col, value in zip(cur.description, row, strict=True)}


def statuses(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(conn.execute("SELECT version, status::text FROM public.policy_versions").fetchall())


def _wait_past(conn: psycopg.Connection[Any], moment: dt.datetime) -> None:
    """Sleep (a few milliseconds) until the server's clock is past ``moment``."""
    for _ in range(200):
        row = conn.execute("SELECT statement_timestamp() > %s", (moment,)).fetchone()
        if row and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"the server clock never passed {moment}")


@pytest.fixture
def seeded(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute(SEED, ("v1", A))
    return db


# -- happy path ------------------------------------------------------------------------------------


def test_rotation_makes_the_new_version_active_and_the_old_one_grace(
    seeded: psycopg.Connection[Any],
) -> None:
    before = seeded.execute("SELECT statement_timestamp()").fetchone()
    assert before is not None
    row = rotate(seeded, "v2", B, "24 hours")
    assert row["version"] == "v2"
    assert row["status"] == "ACTIVE"
    assert row["created"] is True
    assert row["demoted_version"] == "v1"
    expires = row["demoted_grace_expires_at"]
    assert (
        before[0] + dt.timedelta(hours=24)
        <= expires
        <= before[0] + dt.timedelta(hours=24, minutes=1)
    )
    assert statuses(seeded) == {"v1": "GRACE", "v2": "ACTIVE"}
    assert seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone() == (expires,)
    assert seeded.execute(ONE_ACTIVE).fetchall() == [("v2",)]


def test_replay_with_the_same_checksum_changes_nothing(seeded: psycopg.Connection[Any]) -> None:
    rotate(seeded, "v2", B)
    snapshot = table(seeded)
    again = rotate(seeded, "v2", B, "5 minutes")
    assert again["created"] is False
    assert again["status"] == "ACTIVE"
    assert again["demoted_version"] is None
    assert table(seeded) == snapshot
    # Still a no-op once a later rotation made it GRACE.
    rotate(seeded, "v3", C)
    snapshot = table(seeded)
    late = rotate(seeded, "v2", B)
    assert (late["created"], late["status"]) == (False, "GRACE")
    assert table(seeded) == snapshot


# -- refusals: each with its SQLSTATE and nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("version", "checksum", "grace", "sqlstate", "match"),
    [
        ("v1", B, "1 hour", "P7101", "POLICY_CHECKSUM_CONFLICT"),
        ("v0", B, "1 hour", "P7102", "POLICY_VERSION_NOT_NEWER"),
        ("v01", B, "1 hour", "P7102", "POLICY_VERSION_NOT_NEWER"),
        ("v2", B, "0 seconds", "22023", "p_grace"),
        ("v2", B, "-1 hour", "22023", "p_grace"),
        ("v2", B, "1 day -25 hours", "22023", "p_grace"),
        ("v2", B, "infinity", "22023", "p_grace"),
        ("v2", B, "367 days", "22023", "p_grace"),
        ("v2", B, None, "22023", "p_grace"),
        (None, B, "1 hour", "22023", "p_version"),
        ("", B, "1 hour", "22023", "p_version"),
        ("   ", B, "1 hour", "22023", "p_version"),
        (" v2", B, "1 hour", "22023", "p_version"),
        ("v2\n", B, "1 hour", "22023", "p_version"),
        ("v\x012", B, "1 hour", "22023", "p_version"),
        ("v" * 201, B, "1 hour", "22023", "p_version"),
        ("v2", None, "1 hour", "22023", "p_checksum"),
        ("v2", B.upper(), "1 hour", "22023", "p_checksum"),
        ("v2", B[:-1], "1 hour", "22023", "p_checksum"),
        ("v2", "sha256:" + B, "1 hour", "22023", "p_checksum"),
    ],
)
def test_refusals_write_nothing(
    seeded: psycopg.Connection[Any],
    outbox: Outbox,
    version: str | None,
    checksum: str | None,
    grace: str | None,
    sqlstate: str,
    match: str,
) -> None:
    snapshot = table(seeded)
    with outbox.raises(sqlstate, match=match):
        seeded.execute(ROTATE, (version, checksum, grace))
    assert table(seeded) == snapshot


def test_rotation_without_an_active_version_is_refused(
    db: psycopg.Connection[Any], outbox: Outbox
) -> None:
    with outbox.raises("P7103", match="NO_ACTIVE_POLICY"):
        db.execute(ROTATE, ("v1", A, "1 hour"))
    assert table(db) == []


def test_a_replay_with_another_checksum_after_later_rotations_is_refused(
    seeded: psycopg.Connection[Any], outbox: Outbox
) -> None:
    rotate(seeded, "v2", B)
    rotate(seeded, "v3", C)
    snapshot = table(seeded)
    with outbox.raises("P7101", match="'v2'"):
        seeded.execute(ROTATE, ("v2", C, "1 hour"))
    assert table(seeded) == snapshot


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2025.9", "2025.10"),
        ("1.0", "1.0.1"),
        ("1.0", "1.0-rc1"),
        ("dev-2025.1", "dev-2025.2"),
        ("a", "b"),
        ("v9", "v10"),
        ("2025-06-01.1", "2025-06-01.2"),
        ("9", "10"),
        ("1", "a"),
    ],
)
def test_newer_compares_digit_runs_as_numbers(
    db: psycopg.Connection[Any], outbox: Outbox, older: str, newer: str
) -> None:
    db.execute(SEED, (older, A))
    assert rotate(db, newer, B)["created"] is True
    assert statuses(db) == {older: "GRACE", newer: "ACTIVE"}


@pytest.mark.parametrize(
    ("newer", "older"), [("2025.10", "2025.9"), ("v10", "v9"), ("1.0.1", "1.0")]
)
def test_an_older_version_is_refused(
    db: psycopg.Connection[Any], outbox: Outbox, newer: str, older: str
) -> None:
    db.execute(SEED, (newer, A))
    with outbox.raises("P7102", match="POLICY_VERSION_NOT_NEWER"):
        db.execute(ROTATE, (older, B, "1 hour"))
    assert statuses(db) == {newer: "ACTIVE"}


def test_a_version_older_than_a_retired_one_is_refused(
    seeded: psycopg.Connection[Any], outbox: Outbox
) -> None:
    # Newer than every version ever published, not only than the ACTIVE one.
    rotate(seeded, "v5", B)
    with outbox.raises("P7102", match="'v5'"):
        seeded.execute(ROTATE, ("v3", C, "1 hour"))


# -- who may call what -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [EXECUTOR, INGEST, READONLY, AUDITOR, TEST_USER])
def test_only_control_rotates_and_retires(
    seeded: psycopg.Connection[Any], login: LoginFactory, outbox_for: type[Outbox], role: str
) -> None:
    conn = login(role).conn
    snapshot = table(seeded)
    with outbox_for(conn).raises("42501"):
        conn.execute(ROTATE, ("v2", B, "1 hour"))
    with outbox_for(conn).raises("42501"):
        conn.execute(RETIRE)
    assert table(seeded) == snapshot


def test_control_rotates_and_retires(seeded: psycopg.Connection[Any], login: LoginFactory) -> None:
    control = login(CONTROL).conn
    assert rotate(control, "v2", B, "1 millisecond")["created"] is True
    expires = seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone()
    assert expires is not None
    _wait_past(control, expires[0])
    assert control.execute(RETIRE).fetchall() == [("v1", expires[0])]
    assert statuses(seeded) == {"v1": "RETIRED", "v2": "ACTIVE"}


@pytest.mark.parametrize("role", [EXECUTOR, INGEST, CONTROL])
def test_services_ask_whether_a_version_is_accepted(
    seeded: psycopg.Connection[Any], login: LoginFactory, role: str
) -> None:
    conn = login(role).conn
    assert conn.execute(ACCEPTED, ("v1",)).fetchone() == (True,)
    assert conn.execute(ACCEPTED, ("v9",)).fetchone() == (False,)


@pytest.mark.parametrize("role", [READONLY, AUDITOR, TEST_USER])
def test_other_roles_may_not_ask(
    seeded: psycopg.Connection[Any], login: LoginFactory, outbox_for: type[Outbox], role: str
) -> None:
    conn = login(role).conn
    with outbox_for(conn).raises("42501"):
        conn.execute(ACCEPTED, ("v1",))


# -- acceptance and retirement with controlled time ------------------------------------------------


def test_acceptance_before_and_after_the_grace_window(seeded: psycopg.Connection[Any]) -> None:
    rotate(seeded, "v2", B, "1 millisecond")
    assert rotate(seeded, "v2", B, "1 hour")["created"] is False  # a replay keeps the grace
    grace_end = seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone()
    assert grace_end is not None
    accepted = {v: seeded.execute(ACCEPTED, (v,)).fetchone() for v in ("v2", "v3", None)}
    assert (accepted["v2"], accepted["v3"], accepted[None]) == ((True,), (False,), (False,))

    _wait_past(seeded, grace_end[0])
    # Expired but not retired yet: no longer accepted (accepted-ness never waits for the retirer).
    assert statuses(seeded)["v1"] == "GRACE"
    assert seeded.execute(ACCEPTED, ("v1",)).fetchone() == (False,)
    assert seeded.execute(ACCEPTED, ("v2",)).fetchone() == (True,)


def test_a_grace_version_is_accepted_until_its_expiry(seeded: psycopg.Connection[Any]) -> None:
    rotate(seeded, "v2", B, "1 hour")
    assert seeded.execute(ACCEPTED, ("v1",)).fetchone() == (True,)
    assert seeded.execute(RETIRE).fetchall() == []
    assert statuses(seeded) == {"v1": "GRACE", "v2": "ACTIVE"}


def test_retire_expired_retires_only_expired_grace_versions(
    seeded: psycopg.Connection[Any],
) -> None:
    rotate(seeded, "v2", B, "1 millisecond")
    rotate(seeded, "v3", C, "1 hour")
    row = seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone()
    assert row is not None
    _wait_past(seeded, row[0])
    assert seeded.execute(RETIRE).fetchall() == [("v1", row[0])]
    assert seeded.execute(RETIRE).fetchall() == []
    assert statuses(seeded) == {"v1": "RETIRED", "v2": "GRACE", "v3": "ACTIVE"}
    assert seeded.execute(ACCEPTED, ("v1",)).fetchone() == (False,)
    assert seeded.execute(ACCEPTED, ("v2",)).fetchone() == (True,)
    # A RETIRED version keeps its grace expiry, for audit.
    assert seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone() == (row[0],)


# -- immutability: the owner and a superuser, also in replica mode ---------------------------------

IMMUTABLE_WRITES = {
    "checksum of the ACTIVE row": "UPDATE public.policy_versions SET checksum = %(c)s "
    "WHERE version = 'v3'",
    "checksum of a GRACE row": "UPDATE public.policy_versions SET checksum = %(c)s "
    "WHERE version = 'v2'",
    "version of a GRACE row": "UPDATE public.policy_versions SET version = 'v2b' "
    "WHERE version = 'v2'",
    "created_at": "UPDATE public.policy_versions SET created_at = now() WHERE version = 'v3'",
    "a RETIRED row, no-op": "UPDATE public.policy_versions SET status = status "
    "WHERE version = 'v1'",
    "a RETIRED row's expiry": "UPDATE public.policy_versions SET grace_expires_at = now() "
    "WHERE version = 'v1'",
    "RETIRED back to GRACE": "UPDATE public.policy_versions SET status = 'GRACE' "
    "WHERE version = 'v1'",
    "GRACE back to ACTIVE": "UPDATE public.policy_versions SET status = 'ACTIVE', "
    "grace_expires_at = NULL WHERE version = 'v2'",
    "a GRACE row's expiry extended": "UPDATE public.policy_versions "
    "SET grace_expires_at = grace_expires_at + interval '1 year' WHERE version = 'v2'",
    "ACTIVE straight to RETIRED": "UPDATE public.policy_versions SET status = 'RETIRED' "
    "WHERE version = 'v3'",
    "delete a RETIRED row": "DELETE FROM public.policy_versions WHERE version = 'v1'",
    "delete a GRACE row": "DELETE FROM public.policy_versions WHERE version = 'v2'",
    "insert a GRACE row": "INSERT INTO public.policy_versions "
    "(version, status, grace_expires_at, checksum) VALUES ('v9', 'GRACE', now(), %(c)s)",
    "insert a RETIRED row": "INSERT INTO public.policy_versions (version, status, checksum) "
    "VALUES ('v9', 'RETIRED', %(c)s)",
    "truncate": "TRUNCATE public.policy_versions",
    "truncate cascade": "TRUNCATE public.policy_versions CASCADE",
}


@pytest.fixture
def history(seeded: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """v1 RETIRED, v2 GRACE (one hour), v3 ACTIVE."""
    rotate(seeded, "v2", B, "1 millisecond")
    row = seeded.execute(
        "SELECT grace_expires_at FROM public.policy_versions WHERE version = 'v1'"
    ).fetchone()
    assert row is not None
    _wait_past(seeded, row[0])
    rotate(seeded, "v3", C, "1 hour")
    seeded.execute(RETIRE)
    assert statuses(seeded) == {"v1": "RETIRED", "v2": "GRACE", "v3": "ACTIVE"}
    return seeded


@pytest.mark.parametrize("as_whom", ["superuser", "owner", "superuser in replica mode"])
@pytest.mark.parametrize("write", sorted(IMMUTABLE_WRITES))
def test_published_versions_are_immutable(
    history: psycopg.Connection[Any], outbox: Outbox, as_whom: str, write: str
) -> None:
    snapshot = table(history)
    with history.transaction():
        if as_whom == "owner":
            history.execute("SET LOCAL ROLE symphony_owner")
        elif as_whom == "superuser in replica mode":
            history.execute("SET LOCAL session_replication_role = replica")
        with outbox.raises("P7104", match="POLICY_VERSION_IMMUTABLE"):
            history.execute(IMMUTABLE_WRITES[write], {"c": "d" * 64})
    assert table(history) == snapshot


def test_control_cannot_rewrite_a_version_either(
    history: psycopg.Connection[Any], login: LoginFactory, outbox_for: type[Outbox]
) -> None:
    control = login(CONTROL).conn
    snapshot = table(history)
    with outbox_for(control).raises("P7104"):
        control.execute("UPDATE public.policy_versions SET checksum = %s", ("d" * 64,))
    with outbox_for(control).raises("P7104"):
        control.execute("UPDATE public.policy_versions SET status = 'GRACE' WHERE version = 'v1'")
    assert table(history) == snapshot


def test_the_legal_moves_stay_possible_by_hand(history: psycopg.Connection[Any]) -> None:
    # GRACE -> RETIRED before its expiry (ending a grace window early), keeping the expiry.
    history.execute("UPDATE public.policy_versions SET status = 'RETIRED' WHERE version = 'v2'")
    assert statuses(history)["v2"] == "RETIRED"
    # A no-op update of the ACTIVE row.
    history.execute("UPDATE public.policy_versions SET status = status WHERE version = 'v3'")
    # ACTIVE -> GRACE together with a new ACTIVE row in the same transaction (a hand rotation).
    with history.transaction():
        history.execute(
            "UPDATE public.policy_versions SET status = 'GRACE', "
            "grace_expires_at = now() + interval '1 hour' WHERE version = 'v3'"
        )
        history.execute(SEED, ("v4", "e" * 64))
    assert statuses(history) == {"v1": "RETIRED", "v2": "RETIRED", "v3": "GRACE", "v4": "ACTIVE"}


@pytest.mark.parametrize("mode", ["deferred", "immediate", "replica"])
def test_a_transaction_never_ends_without_an_active_version(
    history: psycopg.Connection[Any], outbox: Outbox, mode: str
) -> None:
    snapshot = table(history)
    with outbox.raises("P7103", match="NO_ACTIVE_POLICY"), history.transaction():
        if mode == "immediate":
            history.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if mode == "replica":
            history.execute("SET LOCAL session_replication_role = replica")
        history.execute(
            "UPDATE public.policy_versions SET status = 'GRACE', "
            "grace_expires_at = now() + interval '1 hour' WHERE version = 'v3'"
        )
    assert table(history) == snapshot


def test_rotation_works_when_constraints_are_immediate(seeded: psycopg.Connection[Any]) -> None:
    with seeded.transaction():
        seeded.execute("SET CONSTRAINTS ALL IMMEDIATE")
        rotate(seeded, "v2", B)
    assert statuses(seeded) == {"v1": "GRACE", "v2": "ACTIVE"}


# -- concurrency -----------------------------------------------------------------------------------


def _race(
    connect: Callable[[], psycopg.Connection[Any]], calls: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Run one rotation per (version, checksum) on its own connection, all released together."""
    conns = [connect() for _ in calls]
    barrier = threading.Barrier(len(calls))
    done: list[dict[str, Any]] = []
    refused: list[str] = []
    lock = threading.Lock()

    def run(conn: psycopg.Connection[Any], version: str, checksum: str) -> None:
        barrier.wait()
        try:
            row = rotate(conn, version, checksum)
        except psycopg.Error as exc:
            with lock:
                refused.append(f"{version}:{exc.sqlstate}")
        else:
            with lock:
                done.append(row)

    threads = [
        threading.Thread(target=run, args=(conn, version, checksum))
        for conn, (version, checksum) in zip(conns, calls, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return done, refused


def test_eight_concurrent_rotations_leave_one_active_and_a_chain(
    seeded: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    calls = [(f"v{n}", f"{n:x}" * 64) for n in range(2, 10)]
    observed: list[int] = []
    stop = threading.Event()
    watcher = connect()

    def watch() -> None:  # the boot query, as often as it can, during the race
        while not stop.is_set():
            observed.append(len(watcher.execute(ONE_ACTIVE).fetchall()))

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        done, refused = _race(connect, calls)
    finally:
        stop.set()
        thread.join(30)

    assert len(done) + len(refused) == 8
    assert all(r.endswith(":P7102") for r in refused), refused  # only "not newer"
    assert observed and set(observed) == {1}, set(observed)
    rows = seeded.execute(
        "SELECT version, status::text FROM public.policy_versions ORDER BY created_at"
    ).fetchall()
    assert [status for _, status in rows].count("ACTIVE") == 1
    # The chain: in commit order, each rotation demoted the one before it, versions ascending.
    created = [row["version"] for row in sorted(done, key=lambda r: int(r["version"][1:]))]
    assert [v for v, _ in rows] == ["v1", *created]
    demoted = {row["version"]: row["demoted_version"] for row in done}
    previous = "v1"
    for version in created:
        assert demoted[version] == previous
        previous = version
    assert rows[-1] == (created[-1], "ACTIVE")
    assert "v9" in created  # the newest can never be refused


def test_the_boot_query_sees_exactly_one_active_version_during_a_rotation(
    seeded: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    reader = connect()
    with seeded.transaction():
        rotate(seeded, "v2", B)
        # Demoted and inserted, not committed: readers still see the old ACTIVE version only.
        assert reader.execute(ONE_ACTIVE).fetchall() == [("v1",)]
        assert reader.execute(ACCEPTED, ("v2",)).fetchone() == (False,)
    assert reader.execute(ONE_ACTIVE).fetchall() == [("v2",)]
    assert reader.execute(ACCEPTED, ("v1",)).fetchone() == (True,)


def test_eight_concurrent_replays_create_one_row(
    seeded: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    done, refused = _race(connect, [("v2", B)] * 8)
    assert refused == []
    assert sorted(row["created"] for row in done) == [False] * 7 + [True]
    assert statuses(seeded) == {"v1": "GRACE", "v2": "ACTIVE"}


def test_a_stale_snapshot_cannot_rotate_from_an_old_active_version(
    seeded: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]], outbox: Outbox
) -> None:
    # REPEATABLE READ: the snapshot predates a rotation that committed meanwhile; the function
    # must not demote the old ACTIVE row again (or insert beside the new one): 40001, retry.
    stale = connect()
    stale.autocommit = False
    stale.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    assert stale.execute(ONE_ACTIVE).fetchall() == [("v1",)]
    rotate(seeded, "v2", B)
    with outbox.raises("40001"):
        stale.execute(ROTATE, ("v3", C, "1 hour"))
    stale.rollback()
    assert statuses(seeded) == {"v1": "GRACE", "v2": "ACTIVE"}
