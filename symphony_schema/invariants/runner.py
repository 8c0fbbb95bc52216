"""The two sequences: ``verify`` (one given database) and ``invariants`` (a scratch database plus
the process gates). Both report every failure with its invariant id and never stop at the first.

``verify``: lints -> migrate -> seed (unless ``SKIP_POLICY_SEED=1``) -> gate. It does not migrate
a database when the lints fail: SQL that breaks the rules is not applied to a real database.
``invariants``: the same on a scratch database created (and dropped) on the server the URL rule
selects - here a lint failure does not stop the sequence, so one run shows everything - then the
process gates.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError, project_root
from symphony_schema.database import SelectedDatabase, to_conninfo
from symphony_schema.invariants import (
    evidence,
    exception_files,
    gate,
    lints,
    manifest,
    process,
    role_passwords,
)
from symphony_schema.invariants.results import CheckResult, skipped, timed
from symphony_schema.invariants.revisions import default_versions_dir, load_revisions
from symphony_schema.redact import redact_argv, redact_url

Reporter = Callable[[CheckResult], None]
SKIP_SEED_VAR = "SKIP_POLICY_SEED"


@dataclass
class Run:
    """Results of one run, annotated with invariant ids as they arrive."""

    command: str
    root: Path
    reporter: Reporter | None = None
    today: date = field(default_factory=date.today)
    results: list[CheckResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _clock: float = field(default_factory=time.perf_counter, init=False)
    #: The git ref the waivers are checked against (P0 there is never waived); ``None``: the
    #: merge base with ``origin/main`` when there is one.
    base: str | None = None
    _manifest: manifest.Manifest | None = field(default=None, init=False)
    _waivers: dict[str, exception_files.ExceptionRecord] = field(default_factory=dict, init=False)
    _protected: set[str] | str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        docs = manifest.docs_dir(self.root)
        try:
            self._manifest = manifest.load(docs / manifest.MANIFEST_NAME)
            records, _problems = exception_files.load_exceptions(
                docs, self._manifest.ids, self.today
            )
        except SymphonyError:
            return  # process:manifest-schema / process:exceptions report it
        for record in records:
            for invariant_id in record.invariant_ids:
                self._waivers.setdefault(invariant_id, record)

    def add(self, result: CheckResult) -> None:
        result = self._annotate(result)
        self.results.append(result)
        if self.reporter:
            self.reporter(result)

    def _annotate(self, result: CheckResult) -> CheckResult:
        inv = self._manifest.invariant_for_check(result.ref) if self._manifest else None
        if inv is None:
            return result
        result = result.with_invariant(inv.id)
        waiver = self._waivers.get(inv.id)
        if result.failed and waiver is not None:
            if inv.severity == "P0":
                note = f"{waiver.path.name} cannot waive it: {inv.id} is P0"
                return replace(result, note=note)
            protected = self._protected_checks()
            if isinstance(protected, str):
                return replace(result, note=f"{waiver.path.name} cannot waive it: {protected}")
            if result.ref in protected:
                note = (
                    f"{waiver.path.name} cannot waive it: {result.ref} verifies an invariant that "
                    "is P0 at base; a downgrade in the same change does not count"
                )
                return replace(result, note=note)
            note = f"waived by {waiver.path.name} (owner {waiver.owner}) until {waiver.expires}"
            return replace(result, status="waived", note=note)
        return result

    def _protected_checks(self) -> set[str] | str:
        """Checks of invariants that are P0 at the base commit, or why nothing may be waived."""
        if self._protected is None:
            ctx = process.ProcessContext(root=self.root, base=self.base, today=self.today)
            try:
                self._protected = process.protected_checks(ctx)
            except RuntimeError as exc:
                self._protected = f"the base manifest cannot be read ({exc})"
        return self._protected

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed]

    @property
    def elapsed_seconds(self) -> float:
        return time.perf_counter() - self._clock

    def summary(self) -> str:
        counts = {
            s: sum(r.status == s for r in self.results) for s in ("pass", "fail", "waived", "skip")
        }
        failed_ids = sorted({r.invariant_id or r.ref for r in self.failed})
        text = (
            f"{self.command}: {len(self.results)} checks, {counts['pass']} passed, "
            f"{counts['fail']} failed, {counts['waived']} waived, {counts['skip']} skipped "
            f"in {self.elapsed_seconds:.1f} s"
        )
        return text + (
            f" - FAILED: {', '.join(failed_ids)}" if failed_ids else " - all invariants hold"
        )

    def run_record(self) -> dict[str, Any]:
        """``run.json`` of the evidence bundle."""
        manifest_path = manifest.docs_dir(self.root) / manifest.MANIFEST_NAME
        return {
            "command": self.command,
            "argv": redact_argv(sys.argv),
            "started_at": self.started_at.isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            "outcome": "fail" if self.failed else "pass",
            "summary": self.summary(),
            "failed_invariants": sorted({r.invariant_id or r.ref for r in self.failed}),
            "environment": {
                SKIP_SEED_VAR: os.environ.get(SKIP_SEED_VAR),
                "POLICY_VERSION": os.environ.get("POLICY_VERSION"),
            },
            "code": {
                **evidence.git_facts(self.root),
                "head_revision": _head_revision(),
                "manifest_sha256": evidence.sha256_of(manifest_path)
                if manifest_path.is_file()
                else None,
            },
            **self.facts,
        }


def _head_revision() -> str | None:
    from symphony_schema.migration import api

    try:
        return api.head_revision()
    except Exception:  # reported by the gate; the record just says unknown
        return None


# ------------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------------


def lint_results(versions_dir: Path, root: Path) -> list[CheckResult]:
    """Every lint on the revisions of ``versions_dir``: the file lints first (they need no
    parsing), then the SQL lints."""
    results = [
        timed(f"lint:{name}", partial(fn, versions_dir, root))
        for name, fn in lints.TREE_LINTS.items()
    ]
    try:
        revisions = load_revisions(versions_dir)
    except (SymphonyError, OSError, SyntaxError) as exc:
        return results + [timed(f"lint:{name}", partial(_raise, exc)) for name in lints.LINTS]
    return results + [
        timed(f"lint:{name}", partial(fn, revisions, root)) for name, fn in lints.LINTS.items()
    ]


def _raise(exc: BaseException) -> list[str]:
    raise exc


def migrate_step(url: str, script_location: Path | None = None) -> CheckResult:
    from symphony_schema.migration import api

    def migrate() -> list[str]:
        api.upgrade(url, script_location=script_location)
        return []

    return timed("step:migrate", migrate)


def seed_step(conninfo: str) -> CheckResult:
    """Seed the boot policy: from the environment when ``POLICY_VERSION`` is set (CI), else the
    development policy file."""
    if os.environ.get(SKIP_SEED_VAR) == "1":
        return skipped("step:seed", f"{SKIP_SEED_VAR}=1")
    outcome: list[str] = []

    def seed() -> list[str]:
        from symphony_schema import policy

        if os.environ.get(policy.ENV_VERSION):
            outcome.append(f"from the environment: {policy.seed_policy_from_env(conninfo)}")
        else:
            done = policy.seed_policy_file(conninfo, policy.DEFAULT_POLICY_FILE)
            outcome.append(f"from {policy.DEFAULT_POLICY_FILE}: {done}")
        return []

    result = timed("step:seed", seed)
    return replace(result, note=outcome[0]) if outcome else result


def drift_step(conninfo: str) -> CheckResult:
    """Live drift (ADR 0080): the migrated database against ``baseline/catalog.txt``."""
    from symphony_schema.baseline.drift import verify_drift_problems

    return timed("step:drift", partial(verify_drift_problems, conninfo))


def gate_results(
    conninfo: str, roles_before: role_passwords.Snapshot | str | None = None
) -> list[CheckResult]:
    """The SQL gate, then ``gate:role-passwords`` (which also judges the roles the migration
    touched when ``roles_before`` is the snapshot taken before it)."""
    roles = timed(role_passwords.CHECK_REF, partial(role_passwords.check, conninfo, roles_before))
    try:
        conn = gate.connect(conninfo)
    except psycopg.Error as exc:
        return [timed(f"gate:{name}", partial(_raise, exc)) for name in gate.CHECKS] + [roles]
    with conn:
        return [*gate.run_gate(conn), roles]


def process_results(ctx: process.ProcessContext) -> list[CheckResult]:
    return [
        timed(f"process:{name}", partial(fn, ctx)) for name, fn in process.PROCESS_GATES.items()
    ]


def _not_run(names: list[str], reason: str) -> list[CheckResult]:
    return [skipped(name, reason) for name in names]


# ------------------------------------------------------------------------------------------------
# Sequences
# ------------------------------------------------------------------------------------------------


def verify_sequence(
    run: Run,
    url: str,
    *,
    versions_dir: Path | None = None,
    stop_on_lint_failure: bool = True,
    script_location: Path | None = None,
) -> None:
    """lints -> migrate -> seed -> gate -> live drift on ``url``; then the database facts for the
    evidence.

    ``script_location`` (an Alembic directory) migrates from another revision tree, for tests;
    pass its ``versions`` directory as ``versions_dir`` so the lints look at the same files.
    """
    conninfo = to_conninfo(url)
    for result in lint_results(versions_dir or default_versions_dir(), run.root):
        run.add(result)
    later = [
        "step:migrate",
        "step:seed",
        *(f"gate:{name}" for name in gate.CHECKS),
        role_passwords.CHECK_REF,
        "step:drift",
    ]
    if stop_on_lint_failure and run.failed:
        for result in _not_run(
            later,
            "not run: the lints failed (verify never migrates a "
            "database with SQL that breaks the rules)",
        ):
            run.add(result)
        return
    roles_before = role_passwords.snapshot(conninfo)
    migrated = migrate_step(url, script_location)
    run.add(migrated)
    if migrated.failed:
        roles_at = later.index(role_passwords.CHECK_REF)
        for result in _not_run(later[1:roles_at], "not run: the migration failed"):
            run.add(result)
        # What committed before the failure (a non-transactional revision) is still judged.
        run.add(
            timed(role_passwords.CHECK_REF, partial(role_passwords.check, conninfo, roles_before))
        )
        for result in _not_run(later[roles_at + 1 :], "not run: the migration failed"):
            run.add(result)
    else:
        run.add(seed_step(conninfo))
        for result in gate_results(conninfo, roles_before):
            run.add(result)
        run.add(drift_step(conninfo))
    try:
        run.facts["database"] = {
            "url": redact_url(url),
            **evidence.database_facts(conninfo),
        }
    except psycopg.Error as exc:
        run.facts["database"] = {"error": str(exc)}


@contextmanager
def scratch_database(selected: SelectedDatabase) -> Iterator[str]:
    """A new empty database on the selected server (URL of it), dropped afterwards."""
    name = f"symphony_invariants_{uuid.uuid4().hex[:12]}"
    admin = selected.conninfo
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SymphonyError(
            f"cannot create the scratch database {name} on the selected server ({exc}); the "
            "URL's user needs CREATEDB, or point --url / SYMPHONY_DATABASE_URL at a server "
            "where it has it"
        ) from exc
    try:
        yield make_url(selected.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def invariants_sequence(run: Run, selected: SelectedDatabase, *, base: str | None = None) -> None:
    """The full ``nox -s invariants`` run: verify on a scratch database, then the process gates."""
    run.base = base
    with scratch_database(selected) as url:
        verify_sequence(run, url, stop_on_lint_failure=False)
    ctx = process.ProcessContext(root=run.root, base=base, today=run.today)
    for result in process_results(ctx):
        run.add(result)


def new_run(command: str, reporter: Reporter | None = None, root: Path | None = None) -> Run:
    return Run(command=command, root=root or project_root(), reporter=reporter)
