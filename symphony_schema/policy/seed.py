"""Seeding ``public.policy_versions`` with the boot policy (docs/contract/schema.md §7, ADR 0030).

Seeding is outside migrations on purpose: the schema says *where* the policy lives, the
environment says *which* policy it is. Seeding inserts the version as the ACTIVE row, in one
transaction holding ``SHARE ROW EXCLUSIVE`` on the table (self-conflicting: two seeders
serialise, and no other writer can slip an ACTIVE row in between the check and the insert).
Seeding the same version with the same checksum again is a no-op; anything else that would change
or add an ACTIVE row is refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from symphony_schema.errors import migrate_first
from symphony_schema.policy.document import (
    PinnedPolicy,
    PolicyError,
    load_policy_file,
    pinned_policy_from_env,
    pinned_policy_of,
    validate_checksum,
    validate_version,
)
from symphony_schema.redact import redact_text, url_secrets

#: How long seeding waits for the table lock before giving up (a running service never holds a
#: conflicting lock; a stuck control-plane transaction would).
SEED_LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class SeedResult:
    """Outcome of a successful seeding: ``created`` is False for the idempotent no-op."""

    version: str
    checksum: str
    created: bool
    source: str

    def __str__(self) -> str:
        return self.message

    @property
    def message(self) -> str:
        if self.created:
            return (
                f"seeded policy version {self.version!r} as ACTIVE "
                f"(checksum {self.checksum}, from {self.source})"
            )
        return (
            f"policy version {self.version!r} is already ACTIVE with the same checksum "
            f"{self.checksum}: nothing to do"
        )


def seed_policy_document(
    conninfo: str, document: Mapping[str, Any], *, source: str = "the policy document"
) -> SeedResult:
    """Seed a parsed policy document as the ACTIVE version."""
    return seed_pinned_policy(conninfo, pinned_policy_of(document, source))


def seed_policy_file(conninfo: str, path: Path) -> SeedResult:
    """Seed the policy document in ``path`` (JSON) as the ACTIVE version."""
    path = Path(path)
    return seed_policy_document(conninfo, load_policy_file(path), source=f"policy file {path}")


def seed_policy_from_env(conninfo: str, env: Mapping[str, str] | None = None) -> SeedResult:
    """Seed from ``POLICY_VERSION`` plus ``POLICY_DOCUMENT``, ``POLICY_FILE`` or
    ``POLICY_CHECKSUM`` (see :func:`pinned_policy_from_env`)."""
    return seed_pinned_policy(conninfo, pinned_policy_from_env(env))


def seed_pinned_policy(conninfo: str, pinned: PinnedPolicy) -> SeedResult:
    """Insert ``pinned`` as the ACTIVE row, or confirm it is already there; refuse otherwise.

    One transaction: ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`` (conflicts with itself and
    with every writer), read, decide, insert. The unique index on ACTIVE rows stays the last
    line of defence; its violation is turned into the same clear message.
    """
    validate_version(pinned.version, pinned.source)
    validate_checksum(pinned.checksum, f"the checksum from {pinned.source}")
    try:
        with psycopg.connect(conninfo, connect_timeout=30) as conn, conn.transaction():
            return _seed_locked(conn, pinned)
    except psycopg.Error as exc:
        raise _seed_error(exc, pinned, conninfo) from exc


def _seed_locked(conn: psycopg.Connection[Any], pinned: PinnedPolicy) -> SeedResult:
    conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (SEED_LOCK_TIMEOUT,))
    conn.execute("LOCK TABLE public.policy_versions IN SHARE ROW EXCLUSIVE MODE")
    existing = conn.execute(
        "SELECT status::text, checksum FROM public.policy_versions WHERE version = %s",
        (pinned.version,),
    ).fetchone()
    if existing is not None:
        return _confirm_existing(pinned, status=existing[0], checksum=existing[1])
    active = conn.execute(
        "SELECT version, checksum FROM public.policy_versions "
        "WHERE status = 'ACTIVE'::public.policy_version_status ORDER BY version"
    ).fetchall()
    if active:
        names = ", ".join(f"{row[0]!r} (checksum {row[1]})" for row in active)
        raise PolicyError(
            f"refusing to seed policy version {pinned.version!r}: version {names} is already "
            "ACTIVE and there can be only one. Seeding never retires or changes an ACTIVE row: "
            "to replace it, use 'symphony-schema policy rotate'; nothing was written."
        )
    conn.execute(
        "INSERT INTO public.policy_versions (version, status, checksum) "
        "VALUES (%s, 'ACTIVE'::public.policy_version_status, %s)",
        (pinned.version, pinned.checksum),
    )
    return SeedResult(pinned.version, pinned.checksum, created=True, source=pinned.source)


def _confirm_existing(pinned: PinnedPolicy, *, status: str, checksum: str) -> SeedResult:
    if checksum != pinned.checksum:
        raise PolicyError(
            f"refusing to seed policy version {pinned.version!r}: it already exists ({status}) "
            f"with checksum {checksum}, but {pinned.source} has checksum {pinned.checksum}. A "
            "published version is immutable: give the changed document a new policyVersion. "
            "Nothing was written."
        )
    if status != "ACTIVE":
        raise PolicyError(
            f"refusing to seed policy version {pinned.version!r}: it already exists with the "
            f"same checksum but is {status}; a version never becomes ACTIVE again (ADR 0106): "
            "publish the document under a new policyVersion and rotate to it. Nothing was written."
        )
    return SeedResult(pinned.version, pinned.checksum, created=False, source=pinned.source)


_SEED_HINTS: dict[type[psycopg.Error], Callable[[PinnedPolicy], str]] = {
    pg_errors.UndefinedTable: lambda p: migrate_first("public.policy_versions"),
    pg_errors.UndefinedObject: lambda p: (
        "the policy schema is incomplete (type public.policy_version_status is missing): "
        "migrate the database to head first"
    ),
    pg_errors.InsufficientPrivilege: lambda p: (
        "this login may not lock and insert into public.policy_versions: seed as the migrating "
        "user or a login that is a member of symphony_control"
    ),
    pg_errors.LockNotAvailable: lambda p: (
        f"another session held a lock on public.policy_versions for more than {SEED_LOCK_TIMEOUT}"
        " (see pg_stat_activity / pg_locks); retry when it has finished"
    ),
    pg_errors.UniqueViolation: lambda p: (
        f"another ACTIVE policy version or version {p.version!r} was inserted concurrently "
        "(unique index uq_policy_versions_one_active or the primary key refused it); run "
        "seed-policy again to see which version is ACTIVE"
    ),
    pg_errors.CheckViolation: lambda p: (
        "a constraint of public.policy_versions refused the row (checksum format or "
        "status/grace_expires_at rules)"
    ),
}


def _seed_error(exc: psycopg.Error, pinned: PinnedPolicy, conninfo: str) -> PolicyError:
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        said = redact_text(str(exc).strip(), url_secrets(conninfo))
        return PolicyError(f"cannot connect to the database to seed the policy: {said}")
    hint = next(
        (make(pinned) for kind, make in _SEED_HINTS.items() if isinstance(exc, kind)),
        "seeding failed",
    )
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first_line = redact_text(first_line, url_secrets(conninfo))
    return PolicyError(
        f"{hint}. PostgreSQL said: SQLSTATE {exc.sqlstate}: {first_line}. "
        "The transaction was rolled back; nothing was written."
    )
