"""The boot check: is this database fit for services to boot? (docs/contract/schema.md §7,
ADR 0033).

It fails closed: no ACTIVE policy, a database behind the newest revision, a migration ledger that
disagrees with the revision files, or live drift in the security-relevant catalog each make it
fail, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import project_root
from symphony_schema.policy.document import CHECKSUM_RE, PinnedPolicy
from symphony_schema.redact import redact_text, url_secrets

#: The boot query of the services (docs/contract/schema.md §3), run verbatim by the boot check.
BOOT_QUERY = "SELECT version, checksum FROM public.policy_versions WHERE is_active ORDER BY version"


@dataclass(frozen=True)
class GraceVersion:
    """A GRACE policy version: accepted by services until ``expires_at`` (issue 14)."""

    version: str
    checksum: str
    expires_at: datetime
    accepted: bool

    def describe(self) -> str:
        when = self.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if self.accepted:
            return f"{self.version!r} accepted until {when}"
        return f"{self.version!r} expired at {when} (run 'symphony-schema policy retire-expired')"


@dataclass
class BootStatus:
    """What the boot check found. ``reasons`` empty means fit to boot."""

    head: str | None = None
    current: list[str] = field(default_factory=list)
    ledger_rows: int = 0
    active: list[tuple[str, str]] = field(default_factory=list)
    grace: list[GraceVersion] = field(default_factory=list)
    #: Set when the expected policy is an accepted GRACE version rather than the ACTIVE one.
    expected_in_grace: GraceVersion | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        version, checksum = self.active[0] if self.active else ("?", "?")
        line = (
            f"boot-check OK: at head {self.head}, ledger matches the revision files "
            f"({self.ledger_rows} revisions), ACTIVE policy {version!r} (checksum {checksum})"
        )
        if self.grace:
            line += "; GRACE: " + ", ".join(grace.describe() for grace in self.grace)
        if self.expected_in_grace is not None:
            pinned = self.expected_in_grace
            when = pinned.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            line += (
                f"; the expected policy {pinned.version!r} is GRACE, accepted until {when}: "
                f"deploy {version!r} before then"
            )
        return line


def boot_check(
    conninfo: str,
    *,
    expected: PinnedPolicy | None = None,
    script_location: Path | None = None,
) -> list[str]:
    """Reasons the database is not fit to boot; an empty list means it is.

    Fails closed on: no ACTIVE policy (or more than one), a database behind (or off) the head
    revision, a ledger that disagrees with the revision files, live drift in the security-relevant
    catalog (functions, triggers, ACLs, roles, memberships...: ADR 0080) and, when ``expected`` is
    given, an expected version and checksum that is neither the ACTIVE policy nor a GRACE one
    still accepted (ADR 0107).
    """
    return boot_status(conninfo, expected=expected, script_location=script_location).reasons


def boot_status(
    conninfo: str,
    *,
    expected: PinnedPolicy | None = None,
    script_location: Path | None = None,
) -> BootStatus:
    """Like :func:`boot_check`, with what was found (head, ledger size, ACTIVE policy)."""
    from symphony_schema.migration import api

    status = BootStatus()
    try:
        status.head = api.head_revision(script_location)
    except Exception as exc:  # alembic raises several unrelated types for a broken tree
        status.reasons.append(f"cannot read the revision files: {exc}")
    try:
        conn = psycopg.connect(conninfo, connect_timeout=30, autocommit=True)
    except psycopg.Error as exc:
        said = redact_text(str(exc).strip(), url_secrets(conninfo))
        status.reasons.append(f"cannot connect to the database: {said}")
        return status
    with conn:
        _check_migrations(conninfo, status, script_location)
        if not status.reasons:  # at head with a valid ledger: compare the catalog (ADR 0080)
            from symphony_schema.baseline.drift import boot_drift_reasons

            status.reasons += boot_drift_reasons(conninfo, script_location)
        try:
            _check_policy(conn, status, expected)
        except psycopg.Error as exc:
            status.reasons.append(f"cannot read the boot policy: {_pg_message(exc)}")
    return status


def _check_migrations(conninfo: str, status: BootStatus, script_location: Path | None) -> None:
    from symphony_schema.migration import api, ledger

    try:
        with psycopg.connect(conninfo, connect_timeout=30, autocommit=True) as conn:
            if status.head is None:  # the revision files are unreadable; already a reason
                status.current = ledger.read_alembic_heads(conn)
                status.ledger_rows = len(ledger.read_ledger(conn))
                return
            state = ledger.ledger_state(conn, api.script_directory(script_location), project_root())
    except psycopg.Error as exc:
        status.reasons.append(
            f"cannot read alembic_version / the migration ledger ({_pg_message(exc)}): "
            "run the boot check as the migrating user, which owns both tables"
        )
        return
    status.current = state.heads
    status.ledger_rows = len(state.rows)
    status.reasons += state.problems


def _check_policy(
    conn: psycopg.Connection[Any], status: BootStatus, expected: PinnedPolicy | None
) -> None:
    exists = conn.execute("SELECT to_regclass('public.policy_versions') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        status.reasons.append(
            "no ACTIVE policy: public.policy_versions does not exist (the database is not "
            "migrated to head)"
        )
        return
    try:
        rows = conn.execute(BOOT_QUERY).fetchall()
    except psycopg.Error as exc:
        status.reasons.append(f"the boot query failed: {_pg_message(exc)}")
        return
    status.active = [(str(version), str(checksum)) for version, checksum in rows]
    if not rows:
        status.reasons.append(
            "no ACTIVE policy in public.policy_versions: seed one with "
            "'symphony-schema seed-policy --file PATH' or '--from-env'"
        )
    elif len(rows) > 1:
        names = ", ".join(repr(version) for version, _ in status.active)
        status.reasons.append(
            f"{len(rows)} ACTIVE policies ({names}); exactly one is allowed. The unique index "
            "uq_policy_versions_one_active must have been dropped: the database was tampered with."
        )
    for version, checksum in status.active:
        if not CHECKSUM_RE.fullmatch(checksum):
            status.reasons.append(
                f"ACTIVE policy {version!r} has checksum {checksum!r}, which is not a lowercase "
                "hex SHA-256: the row was not written by seed-policy"
            )
    _read_grace(conn, status)
    if expected is not None and len(rows) == 1:
        _check_expected(conn, status, expected)


#: GRACE versions and whether services accept them now: the database's own answer
#: (public.policy_version_accepted, revision 0016), never a second copy of the rule.
_GRACE_QUERY = """
SELECT pv.version, pv.checksum, pv.grace_expires_at, public.policy_version_accepted(pv.version)
  FROM public.policy_versions AS pv
 WHERE pv.status = 'GRACE'::public.policy_version_status
 ORDER BY pv.grace_expires_at, pv.version
"""


def _read_grace(conn: psycopg.Connection[Any], status: BootStatus) -> None:
    found = conn.execute(
        "SELECT f IS NOT NULL AND pg_catalog.has_function_privilege(f, 'EXECUTE') "
        "FROM pg_catalog.to_regprocedure('public.policy_version_accepted(text)') AS f"
    ).fetchone()
    if not found or not found[0]:
        # Before revision 0016 (not at head: already a reason), or a login that may not ask
        # (a runtime login: it cannot read the ledger either, already a reason).
        return
    try:
        rows = conn.execute(_GRACE_QUERY).fetchall()
    except psycopg.Error as exc:
        status.reasons.append(f"cannot read the GRACE policy versions: {_pg_message(exc)}")
        return
    status.grace = [GraceVersion(str(v), str(c), e, bool(a)) for v, c, e, a in rows]


def _check_expected(
    conn: psycopg.Connection[Any], status: BootStatus, expected: PinnedPolicy
) -> None:
    version, checksum = status.active[0]
    if version != expected.version:
        _check_expected_elsewhere(conn, status, expected, active=version)
    elif checksum != expected.checksum:
        status.reasons.append(
            f"the ACTIVE policy {version!r} has checksum {checksum}, but {expected.source} has "
            f"checksum {expected.checksum}: the seeded document is not the expected one"
        )


def _pg_message(exc: BaseException | None) -> str:
    if isinstance(exc, psycopg.Error):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"SQLSTATE {exc.sqlstate}: {first}"
    return str(exc)


def _check_expected_elsewhere(
    conn: psycopg.Connection[Any], status: BootStatus, expected: PinnedPolicy, *, active: str
) -> None:
    """The expected version is not the ACTIVE one: fit only while it is an accepted GRACE
    version with the same checksum (a service rolled out before the rotation, issue 14)."""
    grace = next((g for g in status.grace if g.version == expected.version), None)
    if grace is None:
        row = conn.execute(
            "SELECT status::text FROM public.policy_versions WHERE version = %s",
            (expected.version,),
        ).fetchone()
        if row is not None and row[0] == "RETIRED":
            status.reasons.append(
                f"the expected policy {expected.version!r} is RETIRED: services must run the "
                f"ACTIVE policy {active!r}"
            )
        else:
            status.reasons.append(
                f"the ACTIVE policy is {active!r}, but {expected.source} expects "
                f"{expected.version!r}"
            )
    elif grace.checksum != expected.checksum:
        status.reasons.append(
            f"the GRACE policy {grace.version!r} has checksum {grace.checksum}, but "
            f"{expected.source} has checksum {expected.checksum}: not the expected document"
        )
    elif not grace.accepted:
        when = grace.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        status.reasons.append(
            f"the expected policy {grace.version!r} is GRACE but its grace window ended at "
            f"{when}: services must run the ACTIVE policy {active!r}"
        )
    else:
        status.expected_in_grace = grace
