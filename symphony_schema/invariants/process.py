"""Process gates (``process:<name>``): repository rules checked without a database.

- ``manifest-schema``: the manifest matches its JSON schema and is consistent;
- ``docs-fresh``: the generated docs equal what the manifest renders to;
- ``docs-agree``: every invariant is in the right doc, and no doc names an unknown id;
- ``change-rule``: a diff touching structural files also touches the invariants docs or adds a
  valid exception;
- ``promotion``: every verification reference of an implemented invariant resolves, and every
  check is claimed by an implemented invariant;
- ``exceptions``: every exception is complete, names existing ids, has not expired and names
  no P0 invariant;
- ``invariant-history``: against the base commit, no invariant was removed, demoted to the roadmap,
  lowered in severity or stripped of a check unless an ADR in the same change names it, and no
  exception names an invariant that is P0 at the base (ADR 0085).
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from symphony_schema import SymphonyError
from symphony_schema.invariants import docs as generated_docs
from symphony_schema.invariants import exception_files, manifest
from symphony_schema.invariants.results import SkipCheck

#: Files whose change can change what an invariant means or how it is checked.
STRUCTURAL = (
    "alembic/versions/",
    "symphony_schema/models.py",
    "symphony_schema/privileges.py",
    "symphony_schema/privilege_catalog.py",
    "symphony_schema/privilege_diff.py",
    "symphony_schema/invariants/gate.py",
)
DEFAULT_BASE_REMOTE = "origin/main"


@dataclass(frozen=True)
class ProcessContext:
    """Where the process gates look, and against what."""

    root: Path
    base: str | None = None
    today: date = field(default_factory=date.today)

    @property
    def docs(self) -> Path:
        return manifest.docs_dir(self.root)

    @property
    def manifest_path(self) -> Path:
        return self.docs / manifest.MANIFEST_NAME


ProcessFn = Callable[[ProcessContext], list[str]]


def _load(ctx: ProcessContext) -> manifest.Manifest:
    try:
        return manifest.load(ctx.manifest_path)
    except SymphonyError as exc:
        raise RuntimeError(
            f"cannot check: the manifest is invalid (see process:manifest-schema): {exc}"
        ) from None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------------


def gate_manifest_schema(ctx: ProcessContext) -> list[str]:
    """The manifest is YAML matching :data:`manifest.MANIFEST_SCHEMA`, with unique ids."""
    try:
        document = manifest.read_document(ctx.manifest_path)
    except SymphonyError as exc:
        return [str(exc)]
    problems = manifest.schema_problems(document)
    if problems:
        return [f"{manifest.MANIFEST_NAME}: {p}" for p in problems]
    parsed = manifest.parse(document, ctx.manifest_path)
    return [f"{manifest.MANIFEST_NAME}: {p}" for p in manifest.semantic_problems(parsed.invariants)]


def gate_docs_fresh(ctx: ProcessContext) -> list[str]:
    """The generated docs are byte-identical to what the manifest renders to."""
    loaded = _load(ctx)
    problems = []
    for name, content in generated_docs.render_all(loaded).items():
        path = ctx.docs / name
        if not path.is_file():
            problems.append(
                f"{_relative(path, ctx.root)} is missing; run symphony-schema invariants docs"
            )
        elif path.read_text(encoding="utf-8") != content:
            problems.append(
                f"{_relative(path, ctx.root)} is stale (it differs from the manifest); run "
                "symphony-schema invariants docs and commit the result"
            )
    return problems


def _ids_in(path: Path) -> set[str]:
    return (
        set(manifest.INVARIANT_ID_RE.findall(path.read_text(encoding="utf-8")))
        if path.is_file()
        else set()
    )


def gate_docs_agree(ctx: ProcessContext) -> list[str]:
    """Implemented ids are in the implemented doc only, roadmap ids in the roadmap doc only, all
    ids in the quick reference, and no invariants doc names an id the manifest does not have."""
    loaded = _load(ctx)
    problems = []
    implemented = {inv.id for inv in loaded.with_status("implemented")}
    roadmap = {inv.id for inv in loaded.with_status("roadmap")}
    expectations: tuple[tuple[str, set[str], set[str]], ...] = (
        (generated_docs.IMPLEMENTED, implemented, roadmap),
        (generated_docs.ROADMAP, roadmap, implemented),
        (generated_docs.QUICK, implemented | roadmap, set()),
    )
    for name, wanted, unwanted in expectations:
        found = _ids_in(ctx.docs / name)
        problems += [f"{name} does not list {i}" for i in sorted(wanted - found)]
        problems += [
            f"{name} lists {i}, which belongs in the other list" for i in sorted(unwanted & found)
        ]
    for path in sorted(ctx.docs.glob("*.md")):
        unknown = _ids_in(path) - loaded.ids
        problems += [
            f"{path.name} names {i}, which is not in the manifest" for i in sorted(unknown)
        ]
    return problems


# ------------------------------------------------------------------------------------------------
# The change rule
# ------------------------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )


def resolve_base(ctx: ProcessContext, what: str = "change rule") -> str:
    """The commit to diff against: ``--base``, else the merge base with ``origin/main``.

    Raises :class:`SkipCheck` when there is nothing to compare with (no checkout, no remote);
    ``what`` names the check in that notice.
    """
    if _git(ctx.root, "rev-parse", "--is-inside-work-tree").returncode != 0:
        raise SkipCheck(f"{ctx.root} is not a git checkout: {what} not checked")
    if ctx.base:
        found = _git(ctx.root, "rev-parse", "--verify", "--quiet", f"{ctx.base}^{{commit}}")
        if found.returncode != 0:
            raise RuntimeError(
                f"--base {ctx.base} is not a commit in this repository; fetch it first"
            )
        return found.stdout.strip()
    if _git(ctx.root, "rev-parse", "--verify", "--quiet", DEFAULT_BASE_REMOTE).returncode != 0:
        raise SkipCheck(
            f"no {DEFAULT_BASE_REMOTE} here and no --base given: {what} not checked "
            "(pass --base REF to check a branch)"
        )
    merge_base = _git(ctx.root, "merge-base", "HEAD", DEFAULT_BASE_REMOTE)
    if merge_base.returncode != 0:
        raise SkipCheck(f"HEAD and {DEFAULT_BASE_REMOTE} share no history: {what} not checked")
    return merge_base.stdout.strip()


def changed_files(ctx: ProcessContext, base: str) -> dict[str, str]:
    """``path -> status letter`` of everything that differs from ``base``: commits, staged and
    unstaged edits, and untracked files (status ``A``)."""
    diff = _git(ctx.root, "diff", "--name-status", "--no-renames", base)
    if diff.returncode != 0:
        raise RuntimeError(f"git diff against {base} failed: {diff.stderr.strip()}")
    changes: dict[str, str] = {}
    for line in diff.stdout.splitlines():
        status, _, path = line.partition("\t")
        changes[path] = status[:1]
    untracked = _git(ctx.root, "ls-files", "--others", "--exclude-standard")
    for path in untracked.stdout.splitlines():
        changes.setdefault(path, "A")
    return changes


def is_structural(path: str) -> bool:
    return any(path == s or (s.endswith("/") and path.startswith(s)) for s in STRUCTURAL)


def gate_change_rule(ctx: ProcessContext) -> list[str]:
    """A diff that touches structural files also touches the manifest or the invariants docs,
    or adds a valid exception."""
    base = resolve_base(ctx)
    changes = changed_files(ctx, base)
    structural = sorted(path for path in changes if is_structural(path))
    if not structural:
        return []
    docs_prefix = _relative(ctx.docs, ctx.root) + "/"
    exceptions_prefix = docs_prefix + exception_files.EXCEPTIONS_DIR + "/"
    touched_docs = [
        p
        for p in changes
        if p.startswith(docs_prefix)
        and "/" not in p[len(docs_prefix) :]
        and (p.endswith(".md") or p.endswith(".yml"))
    ]
    if touched_docs:
        return []
    added_exceptions = [
        ctx.root / p
        for p, status in changes.items()
        if status == "A"
        and p.startswith(exceptions_prefix)
        and p.endswith(".md")
        and not p.endswith(exception_files.TEMPLATE_NAME)
    ]
    if added_exceptions:
        loaded = _load(ctx)
        fields = exception_files.template_fields(ctx.docs)
        for path in added_exceptions:
            record, _ = exception_files.check_exception(path, fields, loaded.ids, ctx.today)
            if record is not None:
                return []
    return [
        f"structural files changed since {base[:12]} ({', '.join(structural)}) without a change "
        f"to {docs_prefix}{manifest.MANIFEST_NAME} or the invariants docs: record what the change "
        "does to the invariants (new or changed entries, or a note in INVARIANTS_PROCESS.md), or "
        "add an exception: symphony-schema invariants exception new --id INV-NNN --reason ... "
        "--expires YYYY-MM-DD --owner ..."
    ]


# ------------------------------------------------------------------------------------------------
# Promotion
# ------------------------------------------------------------------------------------------------


def registered_checks() -> set[str]:
    """Every check reference the code defines: ``lint:*``, ``gate:*`` and ``process:*``."""
    from symphony_schema.invariants import gate, lints, role_passwords

    return (
        {f"lint:{name}" for name in (*lints.LINTS, *lints.TREE_LINTS)}
        | {f"gate:{name}" for name in gate.CHECKS}
        | {role_passwords.CHECK_REF}
        | {f"process:{name}" for name in PROCESS_GATES}
    )


_TEST_REF_RE = re.compile(r"^(?P<path>[^:]+\.py)::(?P<names>[^\[]+)(\[.*\])?$")


def node_id_problem(ref: str, root: Path) -> str | None:
    """Why a pytest node id does not resolve, or ``None`` when it names an existing test."""
    match = _TEST_REF_RE.match(ref)
    if not match:
        return f"{ref} is not a pytest node id (tests/<file>.py::<test>)"
    path = root / match.group("path")
    if not path.is_file():
        return f"{ref}: {match.group('path')} does not exist"
    names = match.group("names").split("::")
    scope: list[ast.stmt] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body
    for depth, name in enumerate(names):
        last = depth == len(names) - 1
        wanted = (ast.FunctionDef, ast.AsyncFunctionDef) if last else (ast.ClassDef,)
        node = next((n for n in scope if isinstance(n, wanted) and n.name == name), None)
        if node is None:
            kind = "test function" if last else "test class"
            return f"{ref}: no {kind} {name} in {match.group('path')}"
        scope = node.body
    return None


def gate_promotion(ctx: ProcessContext) -> list[str]:
    """Implemented invariants' references all resolve (a check the code defines, a test that
    exists); every check is claimed by an implemented invariant."""
    loaded = _load(ctx)
    checks = registered_checks()
    problems = []
    for inv in loaded.with_status("implemented"):
        if not inv.check_refs:
            problems.append(
                f"{inv.id} is implemented but names no check (gate:, lint: or process:)"
            )
        if not inv.test_refs:
            problems.append(f"{inv.id} is implemented but names no test proving its check can fail")
        for ref in inv.check_refs:
            if ref not in checks:
                problems.append(f"{inv.id}: {ref} is not a check the code defines")
        for ref in inv.test_refs:
            problem = node_id_problem(ref, ctx.root)
            if problem:
                problems.append(f"{inv.id}: {problem}")
    claimed = {ref for inv in loaded.with_status("implemented") for ref in inv.check_refs}
    for ref in sorted(checks - claimed):
        problems.append(
            f"check {ref} is claimed by no implemented invariant: add it to the verification of "
            "the invariant it enforces in the manifest"
        )
    return problems


def gate_exceptions(ctx: ProcessContext) -> list[str]:
    """Every exception file has all template fields, names existing ids, has not expired, and
    names no P0 invariant (P0 is never waived, so such a file only pretends)."""
    loaded = _load(ctx)
    _records, problems = exception_files.load_exceptions(ctx.docs, loaded.ids, ctx.today)
    p0 = {inv.id for inv in loaded.invariants if inv.severity == "P0"}
    for path, named in _exception_ids(ctx):
        problems += [
            f"{path.name} names {i}, which is P0: P0 invariants can never be waived (ADR 0021); "
            "fix the violation instead"
            for i in named
            if i in p0
        ]
    return problems


def _exception_ids(ctx: ProcessContext) -> list[tuple[Path, list[str]]]:
    """Every exception file (valid or not) with the invariant ids its Invariant field names."""
    out = []
    for path in exception_files.exception_files(ctx.docs):
        values = exception_files.fields_of(path.read_text(encoding="utf-8"))
        named = manifest.INVARIANT_ID_RE.findall(values.get(exception_files.INVARIANT_FIELD, ""))
        out.append((path, sorted(set(named))))
    return out


# ------------------------------------------------------------------------------------------------
# Invariant history: what the base commit promised cannot be weakened silently
# ------------------------------------------------------------------------------------------------

#: Where the reviewable records of a weakening live.
DECISIONS_DIR = "docs/decisions/"
_SEVERITY_RANK = {"P0": 0, "P1": 1, "P2": 2}


def manifest_at(ctx: ProcessContext, commit: str) -> manifest.Manifest | None:
    """The manifest as committed in ``commit``; ``None`` when that commit has none."""
    relative = _relative(ctx.manifest_path, ctx.root)
    shown = _git(ctx.root, "show", f"{commit}:./{relative}")
    if shown.returncode != 0:
        listed = _git(ctx.root, "ls-tree", "--name-only", commit, "--", relative)
        if listed.returncode == 0 and not listed.stdout.strip():
            return None
        raise RuntimeError(f"cannot read {relative} at {commit[:12]}: {shown.stderr.strip()}")
    try:
        document = yaml.safe_load(shown.stdout)
    except yaml.YAMLError as exc:
        raise RuntimeError(f"{relative} at {commit[:12]} is not valid YAML: {exc}") from None
    problems = manifest.schema_problems(document)
    if problems:
        raise RuntimeError(f"{relative} at {commit[:12]} is invalid: {problems[0]}")
    return manifest.parse(document, ctx.manifest_path)


def weakenings(old: manifest.Manifest, new: manifest.Manifest) -> dict[str, list[str]]:
    """``id -> what changed`` for every invariant of ``old`` that ``new`` weakens: removed,
    implemented -> roadmap, a lower severity, or a check that no longer verifies it."""
    found: dict[str, list[str]] = {}
    for before in old.invariants:
        after = new.get(before.id)
        what: list[str] = []
        if after is None:
            what.append(
                f"removed from the manifest (it was {before.severity}, {before.status} at base)"
            )
        else:
            if _SEVERITY_RANK[after.severity] > _SEVERITY_RANK[before.severity]:
                what.append(f"severity lowered from {before.severity} to {after.severity}")
            if before.status == "implemented" and after.status != "implemented":
                what.append(f"status changed from implemented to {after.status}")
            what += [
                f"no longer verified by {ref}"
                for ref in before.check_refs
                if ref not in after.check_refs
            ]
        if what:
            found[before.id] = what
    return found


def _ids_in_changed_adrs(ctx: ProcessContext, changes: dict[str, str]) -> set[str]:
    """Invariant ids named by ADRs added or changed in this change."""
    ids: set[str] = set()
    for path, status in changes.items():
        if status in ("A", "M") and path.startswith(DECISIONS_DIR) and path.endswith(".md"):
            ids |= _ids_in(ctx.root / path)
    return ids


def gate_invariant_history(ctx: ProcessContext) -> list[str]:
    """Compared with the base commit: every weakening of an invariant is recorded in an ADR that
    this change adds or edits and that names the invariant; no exception names an invariant that
    is P0 at the base, whatever the manifest of this change says."""
    base = resolve_base(ctx, "invariant history")
    old = manifest_at(ctx, base)
    if old is None:
        return []
    new = _load(ctx)
    recorded = _ids_in_changed_adrs(ctx, changed_files(ctx, base))
    problems = []
    for invariant_id, what in weakenings(old, new).items():
        if invariant_id in recorded:
            continue
        problems += [
            f"{invariant_id}: {change} since {base[:12]} without a reviewable record: add or edit "
            f"an ADR under {DECISIONS_DIR} that names {invariant_id} and says why"
            for change in what
        ]
    p0_at_base = {inv.id for inv in old.invariants if inv.severity == "P0"}
    for path, named in _exception_ids(ctx):
        problems += [
            f"{path.name} names {i}, which is P0 at base {base[:12]}; P0 invariants can never be "
            "waived (ADR 0021, 0085), not even after a downgrade in the same change"
            for i in named
            if i in p0_at_base
        ]
    return problems


def protected_checks(ctx: ProcessContext) -> set[str]:
    """Check references whose failures no exception may waive: the checks of invariants that
    are P0 at the base commit (empty when there is no base: no checkout, no ``origin/main``).

    Raises ``RuntimeError`` when a base exists but its manifest cannot be read; the caller then
    waives nothing (fail closed).
    """
    try:
        base = resolve_base(ctx, "waiver protection")
    except SkipCheck:
        return set()
    old = manifest_at(ctx, base)
    if old is None:
        return set()
    return {ref for inv in old.invariants if inv.severity == "P0" for ref in inv.check_refs}


PROCESS_GATES: dict[str, ProcessFn] = {
    "manifest-schema": gate_manifest_schema,
    "docs-fresh": gate_docs_fresh,
    "docs-agree": gate_docs_agree,
    "change-rule": gate_change_rule,
    "promotion": gate_promotion,
    "exceptions": gate_exceptions,
    "invariant-history": gate_invariant_history,
}
