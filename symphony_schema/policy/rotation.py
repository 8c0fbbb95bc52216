"""Rotating the boot policy (issue 14, revision 0016, ADRs 0105-0107): the Python side of
``rotate_policy_version``, ``retire_expired_policy_versions`` and ``policy_version_accepted``.

The database decides everything (who may rotate, what "newer" means, immutability); this module
validates the input first, so a bad argument never needs a connection, and turns the documented
SQLSTATEs into one-line :class:`~symphony_schema.policy.document.PolicyError` messages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from symphony_schema.policy.document import (
    PinnedPolicy,
    PolicyError,
    validate_checksum,
    validate_version,
)
from symphony_schema.redact import redact_text, url_secrets

__all__ = [
    "MAX_GRACE",
    "RotationResult",
    "VersionRow",
    "format_duration",
    "parse_grace",
    "policy_status",
    "retire_expired",
    "rotate_policy",
    "timestamp",
]

#: The longest grace window (the database refuses more with 22023, ADR 0105).
MAX_GRACE = dt.timedelta(days=366)
#: How long a rotation waits for the table lock (seeders and other rotations hold it briefly).
ROTATE_LOCK_TIMEOUT = "10s"

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_GRACE_RE = re.compile(r"(?:[0-9]{1,9}[wdhms])+")
_PART_RE = re.compile(r"([0-9]{1,9})([wdhms])")


def parse_grace(text: str, source: str = "--grace") -> dt.timedelta:
    """``24h``, ``90m``, ``1d12h``, ``2w``... as a timedelta: positive, at most 366 days."""
    value = text.strip().lower()
    if not _GRACE_RE.fullmatch(value):
        raise PolicyError(
            f"{source} {text!r} is not a duration: write a number and a unit, e.g. 24h, 90m, "
            "1d12h or 2w (units w, d, h, m, s); nothing was written."
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART_RE.findall(value))
    if seconds > MAX_GRACE.total_seconds():
        raise PolicyError(
            f"{source} {text!r} is longer than the {MAX_GRACE.days} days a grace window may "
            "last; nothing was written."
        )
    if seconds <= 0:
        raise PolicyError(
            f"{source} {text!r} is not positive: services holding the previous version need a "
            "grace window (e.g. 24h); nothing was written."
        )
    return dt.timedelta(seconds=seconds)


def format_duration(delta: dt.timedelta) -> str:
    """``1d 2h 3m`` (seconds only under a minute); ``0s`` for anything not positive."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    if seconds < 60:
        parts = [f"{secs}s"]
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class RotationResult:
    """What ``rotate_policy_version`` did: ``created`` is False for the idempotent replay."""

    version: str
    status: str
    checksum: str
    created: bool
    demoted_version: str | None
    demoted_grace_expires_at: dt.datetime | None
    source: str

    @property
    def message(self) -> str:
        if not self.created:
            later = (
                ""
                if self.status == "ACTIVE"
                else " (a later version replaced it; a rotation never re-activates a version)"
            )
            return (
                f"policy version {self.version!r} already exists ({self.status}) with the same "
                f"checksum {self.checksum}: nothing to do{later}"
            )
        return (
            f"rotated: policy version {self.version!r} is ACTIVE (checksum {self.checksum}, from "
            f"{self.source}); {self.demoted_version!r} is GRACE until "
            f"{timestamp(self.demoted_grace_expires_at)}"
        )


@dataclass(frozen=True)
class VersionRow:
    """One row of ``policy status``."""

    version: str
    status: str
    checksum: str
    accepted: bool
    grace_expires_at: dt.datetime | None
    grace_left: dt.timedelta | None
    created_at: dt.datetime


def rotate_policy(conninfo: str, pinned: PinnedPolicy, grace: dt.timedelta) -> RotationResult:
    """Make ``pinned`` the ACTIVE version, the current ACTIVE one GRACE for ``grace``."""
    validate_version(pinned.version, pinned.source)
    validate_checksum(pinned.checksum, f"the checksum from {pinned.source}")
    if not dt.timedelta(0) < grace <= MAX_GRACE:
        raise PolicyError(
            f"the grace window must be positive and at most {MAX_GRACE.days} days, got {grace}; "
            "nothing was written."
        )
    try:
        with psycopg.connect(conninfo, connect_timeout=30) as conn, conn.transaction():
            conn.execute(
                "SELECT pg_catalog.set_config('lock_timeout', %s, true)", (ROTATE_LOCK_TIMEOUT,)
            )
            row = conn.execute(
                "SELECT version, status, checksum, created, demoted_version, "
                "demoted_grace_expires_at FROM public.rotate_policy_version(%s, %s, %s)",
                (pinned.version, pinned.checksum, grace),
            ).fetchone()
    except psycopg.Error as exc:
        raise _error("rotation", exc, conninfo, pinned) from exc
    assert row is not None
    version, status, checksum, created, demoted, expires = row
    return RotationResult(version, status, checksum, created, demoted, expires, pinned.source)


def retire_expired(conninfo: str) -> list[tuple[str, dt.datetime]]:
    """Retire every GRACE version past its expiry; the retired versions and their expiry."""
    try:
        with psycopg.connect(conninfo, connect_timeout=30) as conn, conn.transaction():
            rows = conn.execute(
                "SELECT version, grace_expires_at FROM public.retire_expired_policy_versions() "
                "ORDER BY grace_expires_at, version"
            ).fetchall()
    except psycopg.Error as exc:
        raise _error("retiring", exc, conninfo) from exc
    return [(str(version), expires) for version, expires in rows]


_STATUS_QUERY = """
SELECT pv.version, pv.status::text, pv.checksum, public.policy_version_accepted(pv.version),
       pv.grace_expires_at, pv.grace_expires_at - statement_timestamp(), pv.created_at
  FROM public.policy_versions AS pv
 ORDER BY pv.created_at, pv.version
"""


def policy_status(conninfo: str) -> list[VersionRow]:
    """Every policy version, oldest first, with whether services accept it now."""
    try:
        with psycopg.connect(conninfo, connect_timeout=30, autocommit=True) as conn:
            rows = conn.execute(_STATUS_QUERY).fetchall()
    except psycopg.Error as exc:
        raise _error("reading the policy versions", exc, conninfo) from exc
    return [VersionRow(*row) for row in rows]


def timestamp(value: dt.datetime | None) -> str:
    """A moment as ``2026-01-31 12:00:00 UTC`` (``-`` for none)."""
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_HINTS: dict[str, Callable[[PinnedPolicy | None], str]] = {
    "P7101": lambda p: (
        "a published version never changes: give the changed document a new policyVersion"
    ),
    "P7102": lambda p: (
        "a rotation needs a version newer than every published one (digit runs "
        "compare as numbers, ADR 0105)"
    ),
    "P7103": lambda p: "seed the first version with 'symphony-schema seed-policy'",
    "P7104": lambda p: "policy versions are immutable but for ACTIVE -> GRACE -> RETIRED",
    "22023": lambda p: "an argument was refused",
    "42501": lambda p: (
        "this login may not do that: run it as the migrating user or a login "
        "that is a member of symphony_control"
    ),
    "42883": lambda p: (
        "the policy rotation functions are missing: migrate the database to head "
        "first ('alembic upgrade head' with the same URL)"
    ),
    "42P01": lambda p: "public.policy_versions does not exist: migrate the database first",
    "55P03": lambda p: (
        f"another session held a lock on public.policy_versions for more than "
        f"{ROTATE_LOCK_TIMEOUT} (see pg_stat_activity / pg_locks); retry when it has finished"
    ),
}


def _error(
    what: str, exc: psycopg.Error, conninfo: str, pinned: PinnedPolicy | None = None
) -> PolicyError:
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        said = redact_text(str(exc).strip(), url_secrets(conninfo))
        return PolicyError(f"cannot connect to the database ({what}): {said}")
    make_hint = _HINTS.get(exc.sqlstate or "")
    hint = make_hint(pinned) if make_hint else f"{what} failed"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = redact_text(first, url_secrets(conninfo))
    done = "" if what.startswith("reading") else " Nothing was written."
    return PolicyError(f"{hint}. PostgreSQL said: SQLSTATE {exc.sqlstate}: {first}.{done}")
