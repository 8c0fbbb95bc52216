"""Invariant exceptions: ``docs/invariants/exceptions/*.md``, written from the template.

An exception is a reviewed, owned, expiring permission to deviate. Its fields are the ones of
``EXCEPTION_TEMPLATE.md`` (a ``- **Field:** value`` list; the template's values are ``<...>``
placeholders), so adding a field to the template makes it mandatory everywhere.

A valid exception (every field filled, existing invariant ids, not expired, at most
:data:`MAX_DAYS` long):

* satisfies the change rule for the diff that adds it;
* turns failures of its invariants' checks into ``waived`` results - except for ``P0``
  invariants, which can never be waived (ADR 0021).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from symphony_schema import SymphonyError
from symphony_schema.invariants.manifest import INVARIANT_ID_RE

TEMPLATE_NAME = "EXCEPTION_TEMPLATE.md"
EXCEPTIONS_DIR = "exceptions"
#: Longest allowed life of an exception: long enough for a planned fix, short enough to be seen.
MAX_DAYS = 90
FIELD_RE = re.compile(r"^- \*\*(?P<field>[A-Za-z][A-Za-z ]*):\*\*[ \t]*(?P<value>.*)$", re.M)
PLACEHOLDER_RE = re.compile(r"^<[^>]*>$")

INVARIANT_FIELD = "Invariant"
OWNER_FIELD = "Owner"
REASON_FIELD = "Reason"
CREATED_FIELD = "Created"
EXPIRES_FIELD = "Expires"


@dataclass(frozen=True)
class ExceptionRecord:
    path: Path
    invariant_ids: tuple[str, ...]
    owner: str
    reason: str
    created: date
    expires: date


def exceptions_dir(docs: Path) -> Path:
    return docs / EXCEPTIONS_DIR


def fields_of(text: str) -> dict[str, str]:
    return {m.group("field").strip(): m.group("value").strip() for m in FIELD_RE.finditer(text)}


def template_fields(docs: Path) -> list[str]:
    """The field names of the template, in order."""
    template = exceptions_dir(docs) / TEMPLATE_NAME
    if not template.is_file():
        raise SymphonyError(f"{template} is missing; restore it from version control")
    names = list(fields_of(template.read_text(encoding="utf-8")))
    required = {INVARIANT_FIELD, OWNER_FIELD, REASON_FIELD, CREATED_FIELD, EXPIRES_FIELD}
    if not required <= set(names):
        raise SymphonyError(
            f"{template} must define the fields {', '.join(sorted(required))}; it has "
            f"{', '.join(names) or 'none'}"
        )
    return names


def exception_files(docs: Path) -> list[Path]:
    directory = exceptions_dir(docs)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.md") if p.name != TEMPLATE_NAME)


def _date(value: str, field: str, problems: list[str], where: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(f"{where}: {field} {value!r} is not a date (YYYY-MM-DD)")
        return None


def check_exception(
    path: Path, fields: Iterable[str], known_ids: set[str], today: date
) -> tuple[ExceptionRecord | None, list[str]]:
    """Validate one exception file; the record when it is valid, and every problem."""
    where = path.name
    values = fields_of(path.read_text(encoding="utf-8"))
    problems = []
    for field in fields:
        value = values.get(field, "")
        if not value or PLACEHOLDER_RE.match(value):
            problems.append(
                f"{where}: field {field!r} is missing or still the template placeholder"
            )
    if problems:
        return None, problems
    ids = tuple(INVARIANT_ID_RE.findall(values[INVARIANT_FIELD]))
    if not ids:
        problems.append(f"{where}: {INVARIANT_FIELD} names no invariant id (INV-NNN)")
    problems += [f"{where}: {i} is not in the manifest" for i in ids if i not in known_ids]
    created = _date(values[CREATED_FIELD], CREATED_FIELD, problems, where)
    expires = _date(values[EXPIRES_FIELD], EXPIRES_FIELD, problems, where)
    if created and expires:
        if expires < today:
            problems.append(
                f"{where}: expired on {expires}; fix the violation, or renew the exception with a "
                "new reason (a new file, reviewed again)"
            )
        if expires - created > timedelta(days=MAX_DAYS):
            problems.append(f"{where}: lasts {(expires - created).days} days; at most {MAX_DAYS}")
        if created > today:
            problems.append(f"{where}: {CREATED_FIELD} {created} is in the future")
    if problems or created is None or expires is None:
        return None, problems
    record = ExceptionRecord(path, ids, values[OWNER_FIELD], values[REASON_FIELD], created, expires)
    return record, []


def load_exceptions(
    docs: Path, known_ids: set[str], today: date
) -> tuple[list[ExceptionRecord], list[str]]:
    """Every valid exception, and every problem of the invalid ones."""
    fields = template_fields(docs)
    records, problems = [], []
    for path in exception_files(docs):
        record, found = check_exception(path, fields, known_ids, today)
        problems += found
        if record:
            records.append(record)
    return records, problems


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:6]
    return "-".join(words) or "exception"


def new_exception(
    docs: Path,
    *,
    invariant_id: str,
    reason: str,
    expires: date,
    owner: str,
    known_ids: set[str],
    today: date,
) -> Path:
    """Write a new exception from the template; nothing is written when an argument is invalid."""
    if invariant_id not in known_ids:
        raise SymphonyError(f"--id {invariant_id}: no such invariant in the manifest")
    if not reason.strip():
        raise SymphonyError("--reason must say why the rule cannot hold and what compensates")
    if not owner.strip():
        raise SymphonyError("--owner must name who answers for this exception")
    if expires < today:
        raise SymphonyError(f"--expires {expires} is in the past")
    if expires - today > timedelta(days=MAX_DAYS):
        raise SymphonyError(f"--expires {expires} is more than {MAX_DAYS} days away")
    template = exceptions_dir(docs) / TEMPLATE_NAME
    fields = template_fields(docs)
    values = {
        INVARIANT_FIELD: invariant_id,
        OWNER_FIELD: " ".join(owner.split()),
        REASON_FIELD: " ".join(reason.split()),
        CREATED_FIELD: today.isoformat(),
        EXPIRES_FIELD: expires.isoformat(),
    }
    missing = [field for field in fields if field not in values]
    if missing:
        raise SymphonyError(
            f"the template has fields this command cannot fill ({', '.join(missing)}); copy "
            f"{template} by hand and fill them in"
        )
    body = _body_from_template(template.read_text(encoding="utf-8"), values)
    path = exceptions_dir(docs) / f"{today.isoformat()}-{invariant_id}-{_slug(reason)}.md"
    if path.exists():
        raise SymphonyError(f"{path} already exists; choose another reason or edit that file")
    path.write_text(body, encoding="utf-8")
    return path


def _body_from_template(template: str, values: dict[str, str]) -> str:
    # The exception keeps the template's title and field list, not its instructions.
    title = f"# Invariant exception: {values[INVARIANT_FIELD]}\n\n"
    lines = [f"- **{field}:** {values[field]}" for field in fields_of(template)]
    return title + "\n".join(lines) + "\n"
