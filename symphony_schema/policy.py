"""Boot policy: seeding ``public.policy_versions`` and the boot check (docs/contract/schema.md §7).

Seeding is outside migrations on purpose: the schema says *where* the policy lives, the
environment says *which* policy it is. The contract:

* A policy document is a JSON object whose ``policyVersion`` (a non-empty string) is the version.
  Its checksum is the lowercase hex SHA-256 of the RFC 8785 (JCS) canonical JSON of the whole
  document, so key order and whitespace never change it.
* Seeding inserts the version as the ACTIVE row, in one transaction holding
  ``SHARE ROW EXCLUSIVE`` on the table (self-conflicting: two seeders serialise, and no other
  writer can slip an ACTIVE row in between the check and the insert). Seeding the same version
  with the same checksum again is a no-op; anything else that would change or add an ACTIVE row
  is refused with nothing written.
* The boot check fails closed: no ACTIVE policy, a database behind the newest revision, or a
  migration ledger that disagrees with the revision files each make it fail, with a reason.

The ``--from-env`` contract (ADR 0030): ``POLICY_VERSION`` plus exactly one of
``POLICY_DOCUMENT`` (the JSON text) or ``POLICY_FILE`` (a path), or only ``POLICY_CHECKSUM``
(the pinned checksum of a document kept elsewhere). ``POLICY_CHECKSUM`` given together with a
document pins it: the computed checksum must match.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import psycopg
from psycopg import errors as pg_errors

from symphony_schema import SymphonyError, project_root
from symphony_schema.redact import redact_text, url_secrets

__all__ = [
    "DEFAULT_POLICY_FILE",
    "ENV_CHECKSUM",
    "ENV_DOCUMENT",
    "ENV_FILE",
    "ENV_VERSION",
    "MAX_POLICY_BYTES",
    "BootStatus",
    "PinnedPolicy",
    "PolicyError",
    "SeedResult",
    "boot_check",
    "boot_status",
    "canonical_checksum",
    "load_policy_file",
    "parse_policy_text",
    "pinned_policy_from_env",
    "pinned_policy_of",
    "policy_version_of",
    "seed_pinned_policy",
    "seed_policy_document",
    "seed_policy_file",
    "seed_policy_from_env",
]

#: The sample policy for development, seeded by ``symphony-schema seed-policy --file`` in the
#: local-dev guide. It is a development policy: CI and production seed their own.
DEFAULT_POLICY_FILE: Path = project_root() / "policy" / "dev-policy.json"

ENV_VERSION = "POLICY_VERSION"
ENV_DOCUMENT = "POLICY_DOCUMENT"
ENV_FILE = "POLICY_FILE"
ENV_CHECKSUM = "POLICY_CHECKSUM"

#: Policy documents are small configuration files; anything bigger is a mistake (a wrong path).
MAX_POLICY_BYTES = 1024 * 1024
#: Upper bound on a version string: it is a label, shown in logs and dashboards.
MAX_VERSION_LENGTH = 200
#: How long seeding waits for the table lock before giving up (a running service never holds a
#: conflicting lock; a stuck control-plane transaction would).
SEED_LOCK_TIMEOUT = "10s"

_CHECKSUM_RE = re.compile(r"[0-9a-f]{64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
VERSION_FIELD = "policyVersion"

#: The boot query of the services (docs/contract/schema.md §3), run verbatim by the boot check.
BOOT_QUERY = "SELECT version, checksum FROM public.policy_versions WHERE is_active ORDER BY version"


class PolicyError(SymphonyError):
    """Seeding refused; nothing was written. The message names the problem and the fix."""


# --------------------------------------------------------------------------------------------
# Documents and checksums (no database)
# --------------------------------------------------------------------------------------------


def canonical_checksum(document: Mapping[str, Any]) -> str:
    """Lowercase hex SHA-256 of the RFC 8785 canonical JSON of ``document``.

    Raises :class:`PolicyError` when the document has no canonical form: NaN or infinite
    numbers, integers beyond the I-JSON safe range (2**53 - 1), non-UTF-8 strings (lone
    surrogates), or values that are not JSON at all.
    """
    import rfc8785

    try:
        canonical = rfc8785.dumps(dict(document))
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise PolicyError(
            f"cannot compute the policy checksum: the document has no RFC 8785 canonical form "
            f"({exc}). Use finite numbers, integers within +/-(2**53-1) and valid Unicode text; "
            "nothing was written."
        ) from exc
    return hashlib.sha256(canonical).hexdigest()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


class _NumberText(str):
    """A JSON number as the document spells it, until :func:`_exact_numbers` has judged it."""


_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENTIFIER_RE.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _exact_number(text: str, path: str, source: str) -> int | float:
    """The number ``text`` as JSON consumers read it (an IEEE 754 double), refused unless the
    double's shortest decimal form denotes exactly the same value (ADR 0076).

    RFC 8785 canonicalises numbers as doubles, so two different texts that round to the same
    double (``9007199254740993`` and ``9007199254740992``) would share a checksum while a
    consumer reading them with arbitrary precision sees different policies.
    """
    as_double = float(text)
    shortest = repr(as_double)
    exact = math.isfinite(as_double) and (
        text == shortest
        or text == shortest.removesuffix(".0")
        or Decimal(text) == Decimal(shortest)
    )
    if not exact:
        shown = text if len(text) <= 80 else f"{text[:40]}...({len(text)} characters)"
        reads = (
            f"read it as {shortest.removesuffix('.0')}"
            if math.isfinite(as_double)
            else "cannot read it as a finite number"
        )
        raise PolicyError(
            f"{source}: the number {shown} at {path} does not round-trip exactly through an "
            f"IEEE 754 double (JSON consumers {reads}): readers would disagree on its value and "
            "documents differing there would share a checksum. Write the number a double holds "
            "(or a string); nothing was written."
        )
    if _INTEGER_TEXT_RE.fullmatch(text) and abs(int(text)) <= MAX_SAFE_INTEGER:
        return int(text)
    # Beyond the I-JSON safe integers (or written with a fraction/exponent): the double itself,
    # which RFC 8785 serialises in its shortest ECMAScript form.
    return as_double


_INTEGER_TEXT_RE = re.compile(r"-?(0|[1-9][0-9]*)")
#: Largest integer RFC 8785 (I-JSON) accepts as an integer: 2**53 - 1.
MAX_SAFE_INTEGER = 2**53 - 1


def _exact_numbers(value: Any, path: str, source: str) -> Any:
    if isinstance(value, _NumberText):
        return _exact_number(str(value), path, source)
    if isinstance(value, dict):
        return {
            key: _exact_numbers(item, _child_path(path, key), source) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_exact_numbers(item, _child_path(path, i), source) for i, item in enumerate(value)]
    return value


def parse_policy_text(text: str, source: str) -> dict[str, Any]:
    """Parse strict JSON (RFC 8785 works on I-JSON): an object, no duplicate keys, no NaN, and
    every number exactly an IEEE 754 double (the offending value's JSON path is named)."""
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_object,
            parse_float=_NumberText,
            parse_int=_NumberText,
        )
    except (ValueError, RecursionError) as exc:
        raise PolicyError(
            f"{source} is not valid JSON ({exc}); fix the document, nothing was written."
        ) from exc
    try:
        value = _exact_numbers(value, "$", source)
    except RecursionError as exc:
        raise PolicyError(f"{source} is nested too deeply; nothing was written.") from exc
    if not isinstance(value, dict):
        raise PolicyError(
            f"{source} must be a JSON object with a {VERSION_FIELD!r} field, "
            f"not a JSON {_json_kind(value)}; nothing was written."
        )
    return value


def _json_kind(value: object) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (list, "array"),
        (str, "string"),
        (bool, "boolean"),
        ((int, float), "number"),
    ]
    for kind, name in kinds:
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def load_policy_file(path: Path) -> dict[str, Any]:
    """Read and parse a policy file (UTF-8, an optional BOM is ignored).

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a directory is
    refused without reading it), and at most :data:`MAX_POLICY_BYTES`: the limit is enforced
    on the bytes actually read, not on what ``stat`` said (ADR 0075).
    """
    source = f"policy file {path}"
    try:
        raw = _read_regular_file(path, source)
    except OSError as exc:
        raise PolicyError(
            f"cannot read {source}: {exc.strerror or exc}. Check the path "
            f"(the development policy is {DEFAULT_POLICY_FILE}); nothing was written."
        ) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source} is not UTF-8 ({exc}); nothing was written.") from exc
    return parse_policy_text(text, source)


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _read_regular_file(path: Path, source: str) -> bytes:
    # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting forever;
    # the kind is judged on the opened descriptor (fstat), so a path swapped after a check
    # cannot slip a device in. Regular files ignore O_NONBLOCK.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise PolicyError(
                f"{source} is not a regular file ({kind}); give the path of a JSON file (or the "
                f"text in {ENV_DOCUMENT} with --from-env). Nothing was read or written."
            )
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_POLICY_BYTES:
            chunk = handle.read(MAX_POLICY_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > MAX_POLICY_BYTES:
        raise PolicyError(
            f"{source} has more than the {MAX_POLICY_BYTES} bytes a policy document may have; "
            "check the path. Nothing was written."
        )
    return b"".join(chunks)


def _check_document_size(text: str, source: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(
            f"{source} is {size} bytes, more than the {MAX_POLICY_BYTES} bytes a policy document "
            "may have; nothing was written."
        )


def validate_version(version: object, source: str) -> str:
    """A version is a non-empty label without surrounding whitespace or control characters."""
    if not isinstance(version, str):
        shown = "missing" if version is None else f"a JSON {_json_kind(version)}"
        raise PolicyError(
            f"{source} has no usable {VERSION_FIELD}: it is {shown}, it must be a non-empty "
            f'string (e.g. "{VERSION_FIELD}": "2025-06-01.1"); nothing was written.'
        )
    problem = None
    if not version.strip():
        problem = "empty"
    elif version != version.strip():
        problem = "surrounded by whitespace"
    elif _CONTROL_RE.search(version):
        problem = "contains control characters"
    elif len(version) > MAX_VERSION_LENGTH:
        problem = f"longer than {MAX_VERSION_LENGTH} characters"
    if problem:
        raise PolicyError(
            f"{source}: {VERSION_FIELD} {version!r} is {problem}; it must be a non-empty label. "
            "Nothing was written."
        )
    return version


def policy_version_of(document: Mapping[str, Any], source: str = "the policy document") -> str:
    """The document's ``policyVersion``, validated."""
    return validate_version(document.get(VERSION_FIELD), source)


def validate_checksum(checksum: str, source: str) -> str:
    if not _CHECKSUM_RE.fullmatch(checksum):
        raise PolicyError(
            f"{source} must be 64 lowercase hex digits (the SHA-256 of the RFC 8785 canonical "
            f"document), got {checksum!r}; nothing was written."
        )
    return checksum


@dataclass(frozen=True)
class PinnedPolicy:
    """A policy version and its checksum: what is seeded, and what a service expects at boot."""

    version: str
    checksum: str
    source: str


def pinned_policy_of(
    document: Mapping[str, Any], source: str = "the policy document"
) -> PinnedPolicy:
    """Version and checksum of a parsed document (refusing what cannot be seeded)."""
    version = policy_version_of(document, source)
    return PinnedPolicy(version, canonical_checksum(document), source)


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    # Unset and empty are the same: CI systems expand missing secrets to empty strings.
    value = env.get(name)
    return value if value else None


def pinned_policy_from_env(env: Mapping[str, str] | None = None) -> PinnedPolicy:
    """Apply the ``--from-env`` contract (module docstring, ADR 0030) without a database."""
    env = os.environ if env is None else env
    raw_version = _env_value(env, ENV_VERSION)
    if raw_version is None:
        raise PolicyError(
            f"{ENV_VERSION} is not set: --from-env needs {ENV_VERSION} plus {ENV_DOCUMENT} (JSON "
            f"text), {ENV_FILE} (a path) or {ENV_CHECKSUM} (64 lowercase hex digits); "
            "nothing was written."
        )
    version = validate_version(raw_version, ENV_VERSION)
    document_text = _env_value(env, ENV_DOCUMENT)
    file_name = _env_value(env, ENV_FILE)
    pinned_checksum = _env_value(env, ENV_CHECKSUM)
    if pinned_checksum is not None:
        validate_checksum(pinned_checksum, ENV_CHECKSUM)
    if document_text is not None and file_name is not None:
        raise PolicyError(
            f"both {ENV_DOCUMENT} and {ENV_FILE} are set: give the document one way only; "
            "nothing was written."
        )
    if document_text is None and file_name is None:
        if pinned_checksum is None:
            raise PolicyError(
                f"{ENV_VERSION} is set but neither {ENV_DOCUMENT}, {ENV_FILE} nor {ENV_CHECKSUM} "
                "is: give the policy document or its checksum; nothing was written."
            )
        return PinnedPolicy(version, pinned_checksum, f"{ENV_VERSION} + {ENV_CHECKSUM}")
    if document_text is not None:
        source = ENV_DOCUMENT
        _check_document_size(document_text, ENV_DOCUMENT)
        document = parse_policy_text(document_text, ENV_DOCUMENT)
    else:
        assert file_name is not None
        source = f"{ENV_FILE} ({file_name})"
        document = load_policy_file(Path(file_name))
    pinned = pinned_policy_of(document, source)
    if pinned.version != version:
        raise PolicyError(
            f"{ENV_VERSION} is {version!r} but the document in {source} has {VERSION_FIELD} "
            f"{pinned.version!r}: they must agree; nothing was written."
        )
    if pinned_checksum is not None and pinned_checksum != pinned.checksum:
        raise PolicyError(
            f"the document in {source} has checksum {pinned.checksum}, but {ENV_CHECKSUM} pins "
            f"{pinned_checksum}: the document is not the pinned one; nothing was written."
        )
    source = f"{ENV_VERSION} + {source}" + (f" + {ENV_CHECKSUM}" if pinned_checksum else "")
    return PinnedPolicy(version, pinned.checksum, source)


# --------------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------------


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
            "ACTIVE and there can be only one. Seeding never retires or changes an ACTIVE row "
            "(rotation is roadmap); nothing was written."
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
            f"same checksum but is {status}, and seeding never changes an existing row "
            "(re-activation is roadmap). Nothing was written."
        )
    return SeedResult(pinned.version, pinned.checksum, created=False, source=pinned.source)


_SEED_HINTS: dict[type[psycopg.Error], Callable[[PinnedPolicy], str]] = {
    pg_errors.UndefinedTable: lambda p: (
        "public.policy_versions does not exist: migrate the database first "
        "('alembic upgrade head' with the same URL)"
    ),
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


# --------------------------------------------------------------------------------------------
# Boot check
# --------------------------------------------------------------------------------------------


@dataclass
class BootStatus:
    """What the boot check found. ``reasons`` empty means fit to boot."""

    head: str | None = None
    current: list[str] = field(default_factory=list)
    ledger_rows: int = 0
    active: list[tuple[str, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        version, checksum = self.active[0] if self.active else ("?", "?")
        return (
            f"boot-check OK: at head {self.head}, ledger matches the revision files "
            f"({self.ledger_rows} revisions), ACTIVE policy {version!r} (checksum {checksum})"
        )


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
    given, an ACTIVE policy other than the expected version and checksum.
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
        if not _CHECKSUM_RE.fullmatch(checksum):
            status.reasons.append(
                f"ACTIVE policy {version!r} has checksum {checksum!r}, which is not a lowercase "
                "hex SHA-256: the row was not written by seed-policy"
            )
    if expected is not None and len(rows) == 1:
        _check_expected(status, expected)


def _check_expected(status: BootStatus, expected: PinnedPolicy) -> None:
    version, checksum = status.active[0]
    if version != expected.version:
        status.reasons.append(
            f"the ACTIVE policy is {version!r}, but {expected.source} expects {expected.version!r}"
        )
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
