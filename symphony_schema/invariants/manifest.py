"""``docs/invariants/INVARIANTS_MANIFEST.yml``: the list of invariants, the one source of truth.

Each entry: ``id`` (``INV-NNN``), ``title``, ``status`` (``implemented`` | ``roadmap``),
``severity`` (``P0``..``P2``), ``area``, ``assertion`` and ``verification`` — references that must
resolve: a check (``gate:<name>``, ``lint:<name>``, ``process:<name>``) or a pytest node id
(``tests/<path>.py::<test>``). The JSON schema below is the format; :func:`semantic_problems`
adds what a schema cannot say (unique ids, one invariant per check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from symphony_schema import SymphonyError, project_root

MANIFEST_NAME = "INVARIANTS_MANIFEST.yml"
ID_PATTERN = r"^INV-[0-9]{3}$"
CHECK_REF_PATTERN = r"^(gate|lint|process):[a-z0-9]+(-[a-z0-9]+)*$"
TEST_REF_PATTERN = (
    r"^tests/[A-Za-z0-9_/.-]+\.py::[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)?(\[[^\]]*\])?$"
)
AREAS = ("schema", "privileges", "security", "integrity", "migrations", "policy", "process")
INVARIANT_ID_RE = re.compile(r"\bINV-[0-9]{3}\b")

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Symphony invariants manifest",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "invariants"],
    "properties": {
        "version": {"const": 1},
        "invariants": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "id",
                    "title",
                    "status",
                    "severity",
                    "area",
                    "assertion",
                    "verification",
                ],
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "title": {"type": "string", "minLength": 5, "maxLength": 100},
                    "status": {"enum": ["implemented", "roadmap"]},
                    "severity": {"enum": ["P0", "P1", "P2"]},
                    "area": {"enum": list(AREAS)},
                    "assertion": {"type": "string", "minLength": 20},
                    "verification": {
                        "type": "array",
                        "uniqueItems": True,
                        "items": {
                            "type": "string",
                            "anyOf": [
                                {"pattern": CHECK_REF_PATTERN},
                                {"pattern": TEST_REF_PATTERN},
                            ],
                        },
                    },
                },
                # Implemented: at least one check and one test proving the check can fail.
                "if": {"properties": {"status": {"const": "implemented"}}},
                "then": {"properties": {"verification": {"minItems": 2}}},
            },
        },
    },
}


@dataclass(frozen=True)
class Invariant:
    id: str
    title: str
    status: str
    severity: str
    area: str
    assertion: str
    verification: tuple[str, ...]

    @property
    def check_refs(self) -> tuple[str, ...]:
        return tuple(ref for ref in self.verification if is_check_ref(ref))

    @property
    def test_refs(self) -> tuple[str, ...]:
        return tuple(ref for ref in self.verification if not is_check_ref(ref))


@dataclass(frozen=True)
class Manifest:
    path: Path
    invariants: tuple[Invariant, ...]

    @property
    def ids(self) -> set[str]:
        return {inv.id for inv in self.invariants}

    def get(self, invariant_id: str) -> Invariant | None:
        return next((inv for inv in self.invariants if inv.id == invariant_id), None)

    def invariant_for_check(self, ref: str) -> Invariant | None:
        """The invariant whose verification lists this check reference."""
        return next((inv for inv in self.invariants if ref in inv.check_refs), None)

    def with_status(self, status: str) -> list[Invariant]:
        return [inv for inv in self.invariants if inv.status == status]


def is_check_ref(ref: str) -> bool:
    return re.match(CHECK_REF_PATTERN, ref) is not None


def docs_dir(root: Path | None = None) -> Path:
    """``<project root>/docs/invariants``."""
    return (root or project_root()) / "docs" / "invariants"


def read_document(path: Path) -> Any:
    """The parsed YAML of the manifest; a clear error when it is missing or not YAML."""
    if not path.is_file():
        raise SymphonyError(
            f"the invariants manifest {path} does not exist; restore it from version control"
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SymphonyError(f"{path} is not valid YAML: {exc}") from exc


def schema_problems(document: Any) -> list[str]:
    """Every JSON-schema violation of the manifest document, with its location."""
    import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extra

    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    return problems


def semantic_problems(invariants: Iterable[Invariant]) -> list[str]:
    """What the schema cannot express: unique ids and titles, one invariant per check."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    seen_titles: set[str] = set()
    owner_of: dict[str, str] = {}
    for inv in invariants:
        if inv.id in seen_ids:
            problems.append(f"{inv.id}: duplicate id; give the new invariant the next free number")
        seen_ids.add(inv.id)
        if inv.title.lower() in seen_titles:
            problems.append(f"{inv.id}: duplicate title {inv.title!r}")
        seen_titles.add(inv.title.lower())
        for ref in inv.check_refs:
            if ref in owner_of:
                problems.append(
                    f"{inv.id}: check {ref} already verifies {owner_of[ref]}; a check reports "
                    "exactly one invariant id, so split the check or merge the invariants"
                )
            owner_of.setdefault(ref, inv.id)
    return problems


def parse(document: Any, path: Path) -> Manifest:
    """A :class:`Manifest` from a document that passed :func:`schema_problems`."""
    return Manifest(
        path,
        tuple(
            Invariant(
                id=item["id"],
                title=item["title"],
                status=item["status"],
                severity=item["severity"],
                area=item["area"],
                assertion=" ".join(str(item["assertion"]).split()),
                verification=tuple(item["verification"]),
            )
            for item in document["invariants"]
        ),
    )


def load(path: Path | None = None) -> Manifest:
    """Load and validate the manifest; :class:`SymphonyError` listing every problem otherwise."""
    path = path or docs_dir() / MANIFEST_NAME
    document = read_document(path)
    problems = schema_problems(document)
    if problems:
        raise SymphonyError(
            f"{path} does not match the manifest schema:\n  " + "\n  ".join(problems)
        )
    manifest = parse(document, path)
    problems = semantic_problems(manifest.invariants)
    if problems:
        raise SymphonyError(f"{path} is inconsistent:\n  " + "\n  ".join(problems))
    return manifest
