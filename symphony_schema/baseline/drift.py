"""``symphony-schema baseline drift``: the four ways migrations, baseline, models and privileges
can disagree, each reported with a unified diff.

1. **baseline** - the committed ``baseline/`` differs from what a freshly migrated scratch
   database generates (a revision changed without ``nox -s baseline``, or a hand edit);
2. **round trip** - a database built from the committed ``baseline.sql`` differs from one built
   by the migrations: normalised dumps plus catalog queries for roles, functions, triggers, ACLs
   and the ledger (what a dump cannot show, or a baseline that does not apply as it reads);
3. **models** - the Core models differ from the migrated database: tables, columns, types,
   nullability, server defaults, generated columns, constraints, indexes with their predicates,
   comments, enum types and their labels;
4. **privileges** - the matrix and roles declared in :mod:`symphony_schema.privileges` differ
   from the catalog.

Every input is a parameter (:class:`DriftInputs`) so tests can inject modified copies of the
baseline, the revisions, the models or the matrix without touching the real files.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import psycopg
import sqlalchemy as sa

from symphony_schema import SymphonyError, privileges
from symphony_schema.baseline import catalog
from symphony_schema.baseline.apply import apply_baseline
from symphony_schema.baseline.generate import (
    BASELINE_SQL,
    GeneratedBaseline,
    migrated_scratch,
    read_baseline,
    schema_dump,
)
from symphony_schema.baseline.models_db import build_from_models
from symphony_schema.baseline.privileges_report import grants_as_lines
from symphony_schema.baseline.render import roles_sql, sql_literal
from symphony_schema.baseline.scratch import scratch_database
from symphony_schema.database import to_conninfo

#: Tables the models deliberately do not describe: Alembic's own bookkeeping.
TABLES_NOT_IN_MODELS: tuple[str, ...] = ("public.alembic_version",)


class DriftKind(Enum):
    """The four checks, numbered as in tooling.md section 3."""

    BASELINE = (1, "baseline", "committed baseline/ vs a freshly migrated database")
    ROUND_TRIP = (
        2,
        "round trip",
        "database built from baseline.sql vs one built by the migrations",
    )
    MODELS = (3, "models", "Core models (symphony_schema.models) vs the migrated database")
    PRIVILEGES = (4, "privileges", "declared privilege matrix and roles vs the catalog")

    def __init__(self, number: int, slug: str, title: str) -> None:
        self.number = number
        self.slug = slug
        self.title = title

    @property
    def label(self) -> str:
        return f"{self.number}/4 {self.slug}"


FIX_HINTS: Mapping[DriftKind, str] = {
    DriftKind.BASELINE: "Run `nox -s baseline` and commit baseline/ together with the revision.",
    DriftKind.ROUND_TRIP: (
        "baseline.sql does not rebuild the migrated database. Never edit it by hand: run "
        "`nox -s baseline`. If it still fails after regenerating, the baseline generator misses "
        "something pg_dump leaves out: report it."
    ),
    DriftKind.MODELS: (
        "Make symphony_schema/models.py describe what the revisions create ('-' lines are the "
        "database, '+' lines the models). A schema change is a new revision first, then the model."
    ),
    DriftKind.PRIVILEGES: (
        "Make symphony_schema/privileges.py and the revisions agree ('-' lines are declared, '+' "
        "lines are in the catalog): add a revision that fixes the grants, or update the matrix."
    ),
}


@dataclass(frozen=True)
class DriftResult:
    kind: DriftKind
    diff: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.diff and not self.error


@dataclass(frozen=True)
class DriftReport:
    results: Sequence[DriftResult]
    head: str
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def failed(self) -> list[DriftResult]:
        return [result for result in self.results if not result.ok]


@dataclass(frozen=True)
class DriftInputs:
    """What the drift check compares; every field defaults to the real project."""

    baseline_dir: Path
    script_location: Path | None = None
    metadata: sa.MetaData | None = None
    expected_grants: privileges.GrantMatrix | None = None
    declared_roles: Sequence[privileges.RoleSpec] | None = None
    kinds: Sequence[DriftKind] = field(default_factory=lambda: tuple(DriftKind))

    def resolved_metadata(self) -> sa.MetaData:
        if self.metadata is not None:
            return self.metadata
        from symphony_schema.models import metadata

        return metadata

    def resolved_grants(self) -> privileges.GrantMatrix:
        return (
            self.expected_grants
            if self.expected_grants is not None
            else privileges.expected_grants()
        )

    def resolved_roles(self) -> Sequence[privileges.RoleSpec]:
        return self.declared_roles if self.declared_roles is not None else privileges.ROLES


def unified_diff(
    expected: Sequence[str], actual: Sequence[str], expected_label: str, actual_label: str
) -> str:
    """A unified diff of two line lists ('' when equal)."""
    lines = difflib.unified_diff(
        list(expected), list(actual), fromfile=expected_label, tofile=actual_label, lineterm=""
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# 1. committed baseline vs freshly generated
# --------------------------------------------------------------------------------------------


def check_baseline_files(generated: GeneratedBaseline, baseline_dir: Path) -> DriftResult:
    diffs = []
    for name, fresh in generated.files().items():
        path = baseline_dir / name
        committed = path.read_text(encoding="utf-8") if path.is_file() else ""
        if committed == fresh:
            continue
        label = f"baseline/{name}"
        diff = unified_diff(
            committed.splitlines(),
            fresh.splitlines(),
            f"{label} (committed{'' if path.is_file() else ', missing'})",
            f"{label} (generated from the migrations at {generated.head})",
        )
        diffs.append(diff or f"{label}: differs only in line endings or trailing newline")
    return DriftResult(DriftKind.BASELINE, diff="\n".join(diffs))


# --------------------------------------------------------------------------------------------
# 2. database from baseline.sql vs database from the migrations
# --------------------------------------------------------------------------------------------

Snapshot = dict[str, list[str]]


def catalog_snapshot(url: str) -> Snapshot:
    """Everything compared between two databases, by section, as text lines."""
    with catalog.connect(to_conninfo(url)) as conn:
        roles = catalog.read_roles(conn)
        memberships = catalog.read_group_memberships(conn, roles)
        return {
            "roles": [
                f"role {r.name}: {r.attributes_sql()}; comment {sql_literal(r.comment)}"
                for r in roles
            ],
            "memberships": [
                f"{m.role} -> {m.member}: admin={m.admin} inherit={m.inherit} set={m.set}"
                for m in memberships
            ],
            "functions": catalog.function_lines(conn),
            "triggers": catalog.trigger_lines(conn),
            "ACLs": catalog.acl_lines(conn),
            "ledger": [
                f"schema_migrations {row.version} | {row.description} | {row.checksum}"
                for row in catalog.read_ledger_rows(conn)
            ]
            + [f"alembic_version {head}" for head in catalog.read_alembic_version(conn)],
            "structure": catalog.structure_lines(conn),
            "pg_dump": schema_dump(url, conn).splitlines(),
        }


def diff_snapshots(migrated: Snapshot, other: Snapshot, other_label: str) -> str:
    diffs = []
    for section in migrated:
        diff = unified_diff(
            migrated[section],
            other.get(section, []),
            f"{section} (database built by the migrations)",
            f"{section} ({other_label})",
        )
        if diff:
            diffs.append(diff)
    return "\n".join(diffs)


def restore_roles(url: str, snapshot_roles: Sequence[catalog.RoleState]) -> None:
    """Put the cluster's Symphony roles back as the migrations left them (applying a hand-edited
    baseline may have altered these cluster-wide roles)."""
    if not snapshot_roles:
        return
    with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
        conn.execute(roles_sql(snapshot_roles, []).encode())


def check_round_trip(
    server_url: str,
    baseline_file: Path,
    migrated: Snapshot,
    migrated_roles: Sequence[catalog.RoleState],
    migrated_url: str,
) -> DriftResult:
    if not baseline_file.is_file():
        return DriftResult(
            DriftKind.ROUND_TRIP, error=f"{baseline_file} is missing: run `nox -s baseline`"
        )
    with scratch_database(server_url, "frombaseline") as scratch:
        try:
            try:
                apply_baseline(scratch.url, baseline_file, validate_ledger=False)
            except SymphonyError as exc:
                return DriftResult(DriftKind.ROUND_TRIP, error=str(exc))
            rebuilt = catalog_snapshot(scratch.url)
        finally:
            if _roles_changed(migrated_url, migrated_roles):
                restore_roles(migrated_url, migrated_roles)
    diff = diff_snapshots(migrated, rebuilt, f"database built from {baseline_file.name}")
    return DriftResult(DriftKind.ROUND_TRIP, diff=diff)


def _roles_changed(url: str, before: Sequence[catalog.RoleState]) -> bool:
    with catalog.connect(to_conninfo(url)) as conn:
        return list(before) != catalog.read_roles(conn)


# --------------------------------------------------------------------------------------------
# 3. models vs migrated database
# --------------------------------------------------------------------------------------------


def check_models(server_url: str, migrated_url: str, metadata: sa.MetaData) -> DriftResult:
    with catalog.connect(to_conninfo(migrated_url)) as conn:
        expected = catalog.structure_lines(conn, exclude_tables=TABLES_NOT_IN_MODELS)
    with scratch_database(server_url, "models") as scratch:
        try:
            build_from_models(scratch.url, metadata, functions_from_url=migrated_url)
        except SymphonyError as exc:
            return DriftResult(DriftKind.MODELS, error=str(exc))
        with catalog.connect(scratch.conninfo) as conn:
            actual = catalog.structure_lines(conn, exclude_tables=TABLES_NOT_IN_MODELS)
    diff = unified_diff(
        expected, actual, "migrated database (alembic/versions)", "Core models (create_all)"
    )
    return DriftResult(DriftKind.MODELS, diff=diff)


# --------------------------------------------------------------------------------------------
# 4. declared privileges vs catalog
# --------------------------------------------------------------------------------------------


def role_attribute_lines(attributes: Mapping[str, Mapping[str, bool]]) -> list[str]:
    return [
        f"role {name}: "
        + " ".join(f"{key}={str(value).lower()}" for key, value in sorted(attrs.items()))
        for name, attrs in sorted(attributes.items())
    ]


def check_privileges(
    migrated_url: str, expected: privileges.GrantMatrix, roles: Sequence[privileges.RoleSpec]
) -> DriftResult:
    with catalog.connect(to_conninfo(migrated_url)) as conn:
        actual = privileges.read_actual_grants(conn)
        actual_roles = privileges.read_role_attributes(conn, [role.name for role in roles])
        beyond_matrix = privileges.membership_and_effective_lines(conn)
    declared_roles = {role.name: dict(role.attributes()) for role in roles}
    diff = unified_diff(
        grants_as_lines(expected) + role_attribute_lines(declared_roles),
        grants_as_lines(actual) + role_attribute_lines(actual_roles) + beyond_matrix,
        "declared (symphony_schema.privileges)",
        "catalog (database migrated to head)",
    )
    return DriftResult(DriftKind.PRIVILEGES, diff=diff)


# --------------------------------------------------------------------------------------------
# All four
# --------------------------------------------------------------------------------------------


def run_drift(server_url: str, inputs: DriftInputs) -> DriftReport:
    """Run the selected checks against scratch databases on ``server_url``'s server."""
    results: list[DriftResult] = []
    started = time.monotonic()
    with migrated_scratch(server_url, "migrated", inputs.script_location) as migrated_db:
        generated = read_baseline(migrated_db.url)
        if DriftKind.BASELINE in inputs.kinds:
            results.append(check_baseline_files(generated, inputs.baseline_dir))
        if DriftKind.ROUND_TRIP in inputs.kinds:
            snapshot = catalog_snapshot(migrated_db.url)
            with catalog.connect(migrated_db.conninfo) as conn:
                roles = catalog.read_roles(conn)
            results.append(
                check_round_trip(
                    server_url,
                    inputs.baseline_dir / BASELINE_SQL,
                    snapshot,
                    roles,
                    migrated_db.url,
                )
            )
        if DriftKind.MODELS in inputs.kinds:
            results.append(check_models(server_url, migrated_db.url, inputs.resolved_metadata()))
        if DriftKind.PRIVILEGES in inputs.kinds:
            results.append(
                check_privileges(migrated_db.url, inputs.resolved_grants(), inputs.resolved_roles())
            )
    return DriftReport(results, generated.head, time.monotonic() - started)


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def render_text(report: DriftReport) -> str:
    lines = []
    for result in report.results:
        status = "ok" if result.ok else "FAILED"
        lines.append(f"drift {result.kind.label} ({result.kind.title}): {status}")
        if not result.ok:
            lines.append(f"  fix: {FIX_HINTS[result.kind]}")
            if result.error:
                lines.append("  " + result.error.replace("\n", "\n  "))
            if result.diff:
                lines.append(result.diff)
    lines.append(_verdict(report))
    return "\n".join(lines)


def _verdict(report: DriftReport) -> str:
    if report.ok:
        return (
            f"drift: all {len(report.results)} checks passed at {report.head} "
            f"({report.elapsed_s:.1f} s)"
        )
    names = ", ".join(f"{r.kind.number} {r.kind.slug}" for r in report.failed)
    return (
        f"drift: FAILED - {len(report.failed)} of {len(report.results)} checks at {report.head} "
        f"({names}; {report.elapsed_s:.1f} s)"
    )


def render_markdown(report: DriftReport) -> str:
    """GitHub job summary: a table of the checks, then each failure's diff in a diff fence."""
    icon = "✅" if report.ok else "❌"
    lines = [
        f"## {icon} Schema drift at `{report.head}`",
        "",
        "| # | check | compares | result |",
        "|---|---|---|---|",
    ]
    for result in report.results:
        kind, status = result.kind, "ok" if result.ok else "**FAILED**"
        lines.append(f"| {kind.number} | {kind.slug} | {kind.title} | {status} |")
    for result in report.failed:
        lines += ["", f"### {result.kind.label}: {result.kind.title}", "", FIX_HINTS[result.kind]]
        if result.error:
            lines += ["", "```text", result.error, "```"]
        if result.diff:
            fence = "````" if "```" in result.diff else "```"
            lines += ["", f"{fence}diff", result.diff, fence]
    lines += ["", _verdict(report), ""]
    return "\n".join(lines)
