"""Policy documents without a database: parsing, validation, the RFC 8785 checksum and the
``--from-env`` contract (docs/contract/schema.md §7, ADRs 0030, 0075, 0076).

* A policy document is a JSON object whose ``policyVersion`` (a non-empty string) is the version.
  Its checksum is the lowercase hex SHA-256 of the RFC 8785 (JCS) canonical JSON of the whole
  document, so key order and whitespace never change it.
* The ``--from-env`` contract (ADR 0030): ``POLICY_VERSION`` plus exactly one of
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
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from symphony_schema import SymphonyError, project_root

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

CHECKSUM_RE = re.compile(r"[0-9a-f]{64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
VERSION_FIELD = "policyVersion"


class PolicyError(SymphonyError):
    """Seeding refused; nothing was written. The message names the problem and the fix."""


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
    if not CHECKSUM_RE.fullmatch(checksum):
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
