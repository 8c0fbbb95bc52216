"""The errors the project raises for a user to act on: one root, specific subclasses (ADR 0111).

Every one is a :class:`SymphonyError`, so the ``symphony-schema`` CLI prints its message as one
line on stderr and exits 2. The engine's refusals are also Alembic ``CommandError``s, so the
``alembic`` command prints ``FAILED: <message>`` and exits 1 instead of a traceback. Callers
catch what they mean (``except RevisionEdited``, ``except DeployLockBusy``) instead of matching
message text.

Errors owned by one module stay there and subclass :class:`SymphonyError`:
:class:`symphony_schema.policy.PolicyError`, :class:`symphony_schema.logins.LoginError`,
:class:`symphony_schema.reset.ResetRefused`.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic.util import CommandError

__all__ = [
    "DatabaseUrlError",
    "DeployLockBusy",
    "DeployLockDenied",
    "DeployLockError",
    "InvalidIndexLeft",
    "InvalidWait",
    "LedgerInvalid",
    "MigrationRefused",
    "RevisionEdited",
    "RevisionMissing",
    "ServerTooOld",
    "SymphonyError",
    "migrate_first",
]


class SymphonyError(Exception):
    """An error the user can act on; the message says what to do next."""


def migrate_first(missing: str) -> str:
    """The one line for a database that lacks the schema a command reads: ``missing`` names the
    object PostgreSQL did not find (the policy and outbox commands say it the same way)."""
    return (
        f"{missing} does not exist: migrate the database first "
        "('alembic upgrade head' with the same URL)"
    )


class DatabaseUrlError(SymphonyError, CommandError):
    """A database URL that cannot be used; the message names its source and what is wrong."""


class MigrationRefused(SymphonyError, CommandError):
    """The engine refused to migrate; nothing was applied. The message says how to fix it."""


class ServerTooOld(MigrationRefused):
    """The server is older than PostgreSQL 18."""


class InvalidIndexLeft(MigrationRefused):
    """An INVALID index is in the database (a failed ``CREATE INDEX CONCURRENTLY``)."""


class LedgerInvalid(MigrationRefused):
    """The ledger, ``alembic_version`` and the revision files disagree (checked before any DDL).

    ``problems`` holds one line per problem; the subclasses say when all of them are of one kind.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class RevisionEdited(LedgerInvalid):
    """An applied revision's files no longer have the checksum the ledger recorded."""


class RevisionMissing(LedgerInvalid):
    """An applied revision (or the one ``alembic_version`` names) has no revision file."""


class DeployLockError(MigrationRefused):
    """The deploy lock could not be taken; nothing was changed."""


class DeployLockBusy(DeployLockError):
    """Another session held the lock for longer than the configured wait (55P03)."""


class DeployLockDenied(DeployLockError):
    """The connecting user may not take the lock (42501)."""


class InvalidWait(DeployLockError):
    """``deploy_lock_wait`` is not a valid duration."""
