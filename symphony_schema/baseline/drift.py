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

from symphony_schema import SymphonyError, privilege_catalog, privilege_diff, privileges
from symphony_schema.baseline import catalog, citus
from symphony_schema.baseline.apply import apply_baseline
from symphony_schema.baseline.generate import (
    BASELINE_SQL,
    GeneratedBaseline,
    migrated_scratch,
    read_baseline,
    schema_dump,
)
from symphony_schema.baseline.models_to_database import build_from_models
from symphony_schema.baseline.privileges_report import grants_as_lines
from symphony_schema.baseline.render import roles_sql
from symphony_schema.baseline.scratch import scratch_database
from symphony_schema.database import to_conninfo
from symphony_schema.migration import ledger

#: Tables the models deliberately do not describe: Alembic's own bookkeeping.
TABLES_NOT_IN_MODELS: tuple[str, ...] = ("public.alembic_version",)


class DriftKind(Enum):
    """The four checks, numbered as in docs/contract/tooling.md §3."""

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

Snapshot = catalog.Snapshot


def catalog_snapshot(url: str) -> Snapshot:
    """Everything compared between two databases, by section, as text lines: every section of
    :func:`catalog.read_snapshot` (the reader ``baseline/catalog.txt`` and live drift use), then
    the normalised ``pg_dump``."""
    with catalog.connect(to_conninfo(url)) as conn:
        snapshot = catalog.read_snapshot(conn)
        snapshot["pg_dump"] = schema_dump(url, conn).splitlines()
        return snapshot


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


@dataclass(frozen=True)
class ClusterState:
    """What a baseline can change outside its database: the Symphony roles' memberships and
    their settings for every database (the attributes are :func:`restore_roles`' business)."""

    memberships: frozenset[catalog.Membership]
    settings: frozenset[catalog.RoleSetting]


def read_cluster_state(url: str, roles: Sequence[catalog.RoleState]) -> ClusterState:
    with catalog.connect(to_conninfo(url)) as conn:
        return ClusterState(
            frozenset(catalog.read_memberships(conn, roles)),
            frozenset(s for s in catalog.read_settings(conn, roles) if not s.this_database),
        )


def restore_cluster_state(
    url: str, roles: Sequence[catalog.RoleState], before: ClusterState
) -> None:
    """Undo the memberships and every-database role settings a baseline added, changed or
    removed (they are cluster-wide and outlive the scratch database)."""
    from psycopg import sql

    from symphony_schema.baseline.render import setting_clause

    now = read_cluster_state(url, roles)
    if now == before:
        return
    with psycopg.connect(to_conninfo(url), autocommit=True) as conn:
        for m in sorted(now.memberships - before.memberships, key=str):
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(m.role), sql.Identifier(m.member)
                )
            )
        for m in sorted(before.memberships - now.memberships, key=str):
            options = sql.SQL(
                f"ADMIN {str(m.admin).upper()}, INHERIT {str(m.inherit).upper()}, "
                f"SET {str(m.set).upper()}"
            )
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH {}").format(
                    sql.Identifier(m.role), sql.Identifier(m.member), options
                )
            )
        changed = {s.role for s in now.settings ^ before.settings if s.role is not None}
        for role in sorted(changed):
            conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(role)))
            for setting in sorted(before.settings, key=lambda s: s.setting):
                if setting.role == role:
                    conn.execute(
                        sql.SQL("ALTER ROLE {} ").format(sql.Identifier(role))
                        + sql.SQL(setting_clause(setting))
                    )


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
    cluster = read_cluster_state(migrated_url, migrated_roles)
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
            restore_cluster_state(migrated_url, migrated_roles, cluster)
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
        actual = privilege_catalog.read_actual_grants(conn)
        actual_roles = privilege_catalog.read_role_attributes(conn, [role.name for role in roles])
        beyond_matrix = privilege_diff.membership_and_effective_lines(conn)
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


# --------------------------------------------------------------------------------------------
# Live drift: a live database vs baseline/catalog.txt (ADR 0080)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveDriftReport:
    """A live database compared with ``baseline/catalog.txt``.

    ``position`` is empty when the database is at the baseline's head; otherwise it says why no
    comparison was made ("behind head", "unknown head", "not migrated"). ``diffs`` holds one
    unified diff per differing section; ``notes`` what could not be compared and why.
    """

    head: str
    sections: tuple[str, ...]
    position: str = ""
    diffs: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.position and not self.diffs

    def reasons(self) -> list[str]:
        """One line per problem (for ``boot-check``)."""
        if self.position:
            return [self.position]
        reasons = []
        for section, diff in self.diffs.items():
            changed = [
                line
                for line in diff.splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            ]
            shown = "; ".join(changed[:4]) + (
                f"; ... {len(changed) - 4} more" if len(changed) > 4 else ""
            )
            reasons.append(
                f"live drift in {section} (database vs baseline/catalog.txt at {self.head}; "
                f"'-' expected, '+' found): {shown}. Run 'symphony-schema drift' for the diff."
            )
        return reasons


def baseline_dir_for(script_location: Path | None) -> Path:
    """``baseline/`` of the project whose revisions are at ``script_location`` (default: this
    project's)."""
    if script_location is None:
        from symphony_schema.baseline.generate import default_baseline_dir

        return default_baseline_dir()
    return Path(script_location).parent / "baseline"


def read_catalog_file(baseline_dir: Path) -> tuple[str, dict[str, list[str]]]:
    from symphony_schema.baseline.generate import CATALOG_TXT
    from symphony_schema.baseline.render import parse_catalog_txt

    path = baseline_dir / CATALOG_TXT
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SymphonyError(
            f"cannot read {path} ({exc.__class__.__name__}: {exc}): run `nox -s baseline` "
            "(symphony-schema baseline generate) and commit baseline/"
        ) from exc
    return parse_catalog_txt(text, str(path))


def live_drift(
    conninfo: str,
    *,
    baseline_dir: Path | None = None,
    script_location: Path | None = None,
    sections: Sequence[str] | None = None,
) -> LiveDriftReport:
    """Compare the live database at ``conninfo`` with ``baseline/catalog.txt``.

    Raises SymphonyError (a usage error) when the baseline is missing or stale (its head is not
    the revision files' head), or when the database cannot be connected to or read.
    """
    from symphony_schema.migration import api

    started = time.monotonic()
    directory = baseline_dir if baseline_dir is not None else baseline_dir_for(script_location)
    head, expected = read_catalog_file(directory)
    try:
        tree_head = api.head_revision(script_location)
    except Exception as exc:  # alembic raises several unrelated types for a broken tree
        raise SymphonyError(f"cannot read the revision files: {exc}") from exc
    if head != tree_head:
        raise SymphonyError(
            f"{directory}/catalog.txt describes {head} but the revision files' head is "
            f"{tree_head}: run `nox -s baseline` and commit baseline/ first"
        )
    wanted = tuple(sections if sections is not None else catalog.SECTIONS)
    missing = [name for name in wanted if name not in expected]
    if missing:
        raise SymphonyError(
            f"{directory}/catalog.txt has no section(s) {', '.join(missing)}: regenerate it "
            "with `nox -s baseline`"
        )
    try:
        conn = catalog.connect(conninfo)
    except psycopg.Error as exc:
        message = " ".join(line.strip() for line in str(exc).strip().splitlines())
        raise SymphonyError(f"cannot connect to the database: {message}") from exc
    notes: list[str] = []
    with conn:
        try:
            position, alembic_readable = _live_position(conn, head, expected["ledger"])
            if position:
                return LiveDriftReport(head, wanted, position=position)
            actual = catalog.read_snapshot(conn, wanted)
            # On a Citus node the citus extension's own objects are the platform's (ADR 0127).
            actual, dropped = citus.drop_owned_lines(actual, citus.owned(conn))
            distributed = citus.is_distributed(conn)
            if dropped:
                notes.append(
                    f"{dropped} catalog line(s) of objects owned by the citus extension ignored"
                )
        except psycopg.Error as exc:
            raise SymphonyError(
                f"cannot read the catalog as {_user(conninfo)}: SQLSTATE {exc.sqlstate}: "
                f"{(str(exc).strip().splitlines() or [''])[0]}. Run live drift as the migrating "
                "user or a login in symphony_auditor (it needs SELECT on "
                "public.schema_migrations)"
            ) from exc
    compared = {name: list(expected[name]) for name in wanted}
    if distributed:
        # The distribution revision widened keys and let the owner log in (ADR 0149).
        compared, widened = citus.distributed_expectation(compared)
        notes.append(
            f"distributed database: {widened} expected line(s) read as the distribution "
            "revision leaves them (ADR 0149)"
        )
    if not alembic_readable and "ledger" in compared:
        compared["ledger"] = [
            line for line in compared["ledger"] if not line.startswith("alembic_version ")
        ]
        notes.append(
            "public.alembic_version is not readable by this role (only the migrating user's): "
            "the head was taken from public.schema_migrations"
        )
    diffs = {}
    for name in wanted:
        diff = unified_diff(
            compared[name],
            actual[name],
            f"{name} (baseline/catalog.txt at {head})",
            f"{name} (live database)",
        )
        if diff:
            diffs[name] = diff
    return LiveDriftReport(
        head, wanted, diffs=diffs, notes=tuple(notes), elapsed_s=time.monotonic() - started
    )


def _user(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return str(conninfo_to_dict(conninfo).get("user") or "the connecting user")
    except psycopg.Error:
        return "the connecting user"


def _live_position(
    conn: catalog.Conn, head: str, expected_ledger: Sequence[str]
) -> tuple[str, bool]:
    """('', readable) when the live database is at ``head``; else why not. ``readable`` says
    whether ``public.alembic_version`` could be read."""
    readable = ledger.alembic_version_readable(conn)
    expected_versions = [
        line.split(" ", 2)[1] for line in expected_ledger if line.startswith("schema_migrations ")
    ]
    live_versions = [row.version for row in ledger.read_ledger(conn)]
    live_heads = ledger.read_alembic_heads(conn) if readable else live_versions[-1:]
    if not live_versions and not live_heads:
        return (
            f"not migrated: the database has no migration ledger; the baseline's head is {head}",
            readable,
        )
    at = ", ".join(live_heads) or "no revision"
    if live_heads == [head] and live_versions == expected_versions:
        return "", readable
    if live_versions == expected_versions[: len(live_versions)] and set(live_heads) <= set(
        expected_versions
    ):
        return (
            f"behind head: the database is at {at}, the baseline's head is {head} "
            f"({len(expected_versions) - len(live_versions)} revision(s) not applied). Run "
            "'alembic upgrade head' first; live drift compares only a database at head",
            readable,
        )
    unknown = [v for v in live_versions if v not in expected_versions]
    return (
        f"unknown head: the database is at {at}, which the baseline (head {head}) does not "
        f"lead to{' (unknown revisions: ' + ', '.join(unknown) + ')' if unknown else ''}: it "
        "was migrated from other revision files; not compared",
        readable,
    )


def render_live(report: LiveDriftReport) -> str:
    lines: list[str] = []
    for note in report.notes:
        lines.append(f"note: {note}")
    if report.position:
        lines.append(f"drift: {report.position}")
        return "\n".join(lines)
    for section in report.sections:
        diff = report.diffs.get(section)
        lines.append(f"drift {section}: {'FAILED' if diff else 'ok'}")
        if diff:
            lines.append(diff)
    if report.ok:
        lines.append(
            f"drift: the live database matches baseline/catalog.txt at {report.head} "
            f"({len(report.sections)} sections, {report.elapsed_s:.2f} s)"
        )
    else:
        lines.append(
            f"drift: FAILED - the live database differs from baseline/catalog.txt at "
            f"{report.head} in {', '.join(report.diffs)} ({report.elapsed_s:.2f} s). '-' lines "
            "are what the baseline says, '+' lines what the database has. Find out who changed "
            "it; fix it with a new revision, never by hand."
        )
    return "\n".join(lines)


def boot_drift_reasons(conninfo: str, script_location: Path | None = None) -> list[str]:
    """The ``boot-check`` hook: live drift on the security-relevant sections
    (:data:`catalog.SECURITY_SECTIONS`); one reason per differing section, fail closed."""
    try:
        report = live_drift(
            conninfo, script_location=script_location, sections=catalog.SECURITY_SECTIONS
        )
    except SymphonyError as exc:
        return [f"live drift could not run: {exc}"]
    return report.reasons()


def verify_drift_problems(conninfo: str) -> list[str]:
    """The ``verify`` hook: the full live drift; its diffs as problems."""
    report = live_drift(conninfo)
    if report.ok:
        return []
    return [report.position] if report.position else list(report.diffs.values())
