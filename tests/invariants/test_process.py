"""The process gates (no database) on copies of the repository's invariants docs: the real docs
pass every gate, and each fixture under ``fixtures/process`` breaks exactly the rule it is named
after. The change rule runs on throw-away git repositories."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from symphony_schema import project_root
from symphony_schema.invariants import docs as generated_docs
from symphony_schema.invariants import exception_files, manifest, process
from symphony_schema.invariants.results import SkipCheck
from tests.invariants.conftest import FIXTURES

PROCESS_FIXTURES = FIXTURES / "process"
#: The fixture exceptions were created 2030-01-01 and expire 2030-02-01.
DURING = date(2030, 1, 15)
AFTER = date(2030, 3, 1)


def ctx(root: Path, *, today: date = DURING, base: str | None = None) -> process.ProcessContext:
    return process.ProcessContext(root=root, base=base, today=today)


def docs_of(root: Path) -> Path:
    return manifest.docs_dir(root)


def add_exception(root: Path, name: str) -> Path:
    target = exception_files.exceptions_dir(docs_of(root)) / name
    shutil.copy(PROCESS_FIXTURES / "exceptions" / name, target)
    return target


def test_the_repository_passes_every_process_gate_but_the_change_rule() -> None:
    context = ctx(project_root(), today=date.today())
    for name, gate in process.PROCESS_GATES.items():
        # These two depend on the branch; they are tested on throw-away repositories.
        if name not in ("change-rule", "invariant-history"):
            assert gate(context) == [], name


# -- process:manifest-schema (INV-030) ------------------------------------------------------------


def test_manifest_schema_rejects_an_invalid_manifest(repo_copy: Path) -> None:
    shutil.copy(
        PROCESS_FIXTURES / "manifest_invalid.yml", docs_of(repo_copy) / manifest.MANIFEST_NAME
    )
    problems = process.gate_manifest_schema(ctx(repo_copy))
    text = "\n".join(problems)
    assert "invariants/0/id: 'INV-1' does not match" in text
    assert "invariants/0/status: 'done' is not one of" in text
    assert "invariants/0/verification/0: 'gate:Public_Table_Privileges' is not valid" in text
    assert "invariants/1: 'assertion' is a required property" in text
    assert "invariants/1/severity: 'P4' is not one of" in text


def test_manifest_schema_rejects_a_check_claimed_twice(repo_copy: Path) -> None:
    target = docs_of(repo_copy) / manifest.MANIFEST_NAME
    shutil.copy(PROCESS_FIXTURES / "manifest_claimed_twice.yml", target)
    assert process.gate_manifest_schema(ctx(repo_copy)) == [
        f"{manifest.MANIFEST_NAME}: INV-002: check gate:public-table-privileges already verifies "
        "INV-001; a check reports exactly one invariant id, so split the check or merge the "
        "invariants"
    ]


def test_manifest_schema_accepts_the_repository_manifest(repo_copy: Path) -> None:
    assert process.gate_manifest_schema(ctx(repo_copy)) == []


def test_other_process_gates_fail_closed_on_an_invalid_manifest(repo_copy: Path) -> None:
    shutil.copy(
        PROCESS_FIXTURES / "manifest_invalid.yml", docs_of(repo_copy) / manifest.MANIFEST_NAME
    )
    with pytest.raises(RuntimeError, match="the manifest is invalid"):
        process.gate_promotion(ctx(repo_copy))


# -- process:docs-fresh (INV-031) and process:docs-agree (INV-032) --------------------------------


def test_docs_fresh_fails_on_a_stale_doc(repo_copy: Path) -> None:
    assert process.gate_docs_fresh(ctx(repo_copy)) == []
    shutil.copy(
        PROCESS_FIXTURES / "INVARIANTS_QUICK.stale.md", docs_of(repo_copy) / generated_docs.QUICK
    )
    (docs_of(repo_copy) / generated_docs.ROADMAP).unlink()
    assert process.gate_docs_fresh(ctx(repo_copy)) == [
        "docs/invariants/INVARIANTS_QUICK.md is stale (it differs from the manifest); run "
        "symphony-schema invariants docs and commit the result",
        "docs/invariants/INVARIANTS_ROADMAP.md is missing; run symphony-schema invariants docs",
    ]


def test_docs_regeneration_makes_stale_docs_fresh(repo_copy: Path) -> None:
    shutil.copy(
        PROCESS_FIXTURES / "INVARIANTS_QUICK.stale.md", docs_of(repo_copy) / generated_docs.QUICK
    )
    loaded = manifest.load(docs_of(repo_copy) / manifest.MANIFEST_NAME)
    assert generated_docs.write_all(loaded, docs_of(repo_copy)) == [
        docs_of(repo_copy) / generated_docs.QUICK
    ]
    assert process.gate_docs_fresh(ctx(repo_copy)) == []


def test_docs_agree_fails_on_an_unknown_id(repo_copy: Path) -> None:
    assert process.gate_docs_agree(ctx(repo_copy)) == []
    shutil.copy(PROCESS_FIXTURES / "NOTES.unknown-id.md", docs_of(repo_copy) / "NOTES.md")
    assert process.gate_docs_agree(ctx(repo_copy)) == [
        "NOTES.md names INV-999, which is not in the manifest"
    ]


def test_docs_agree_fails_on_a_misplaced_id(repo_copy: Path) -> None:
    implemented = docs_of(repo_copy) / generated_docs.IMPLEMENTED
    text = implemented.read_text().replace("## INV-014:", "## INV-026 (was INV-O14):")
    implemented.write_text(text)
    assert process.gate_docs_agree(ctx(repo_copy)) == [
        "INVARIANTS_IMPLEMENTED.md does not list INV-014",
        "INVARIANTS_IMPLEMENTED.md lists INV-026, which belongs in the other list",
    ]


# -- process:change-rule (INV-033) ----------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def git_repo(repo_copy: Path) -> tuple[Path, str]:
    """A git repository holding the invariants docs and one revision; returns (root, base)."""
    versions = repo_copy / "alembic" / "versions"
    versions.mkdir(parents=True)
    (versions / "0001_init.sql").write_text("CREATE TABLE public.t (id integer);\n")
    git(repo_copy, "init", "-q", "-b", "main")
    git(repo_copy, "add", ".")
    git(repo_copy, "commit", "-q", "-m", "base")
    return repo_copy, git(repo_copy, "rev-parse", "HEAD")


def test_change_rule_fails_on_a_structural_change_alone(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    (root / "alembic" / "versions" / "0002_more.sql").write_text("CREATE TABLE public.u ();\n")
    problems = process.gate_change_rule(ctx(root, base=base))
    assert len(problems) == 1
    assert "structural files changed since" in problems[0]
    assert "alembic/versions/0002_more.sql" in problems[0]
    assert "symphony-schema invariants exception new" in problems[0]


def test_change_rule_counts_committed_changes(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    (root / "alembic" / "versions" / "0001_init.sql").write_text("CREATE TABLE public.t2 ();\n")
    git(root, "commit", "-q", "-am", "edit a revision")
    assert process.gate_change_rule(ctx(root, base=base)) != []
    assert process.gate_change_rule(ctx(root, base="HEAD")) == []


def test_change_rule_passes_with_a_docs_change(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    (root / "alembic" / "versions" / "0002_more.sql").write_text("CREATE TABLE public.u ();\n")
    with (docs_of(root) / "INVARIANTS_PROCESS.md").open("a") as handle:
        handle.write("\nRevision 0002 adds public.u, which no invariant covers yet.\n")
    assert process.gate_change_rule(ctx(root, base=base)) == []


def test_change_rule_passes_with_a_new_exception(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    (root / "alembic" / "versions" / "0002_more.sql").write_text("CREATE TABLE public.u ();\n")
    add_exception(root, "2030-01-01-INV-014-valid.md")
    assert process.gate_change_rule(ctx(root, base=base)) == []
    # An exception that is not valid (here: expired) does not satisfy the rule.
    assert process.gate_change_rule(ctx(root, base=base, today=AFTER)) != []


def test_change_rule_ignores_non_structural_changes(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    (root / "README.md").write_text("docs only\n")
    assert process.gate_change_rule(ctx(root, base=base)) == []


def test_change_rule_is_skipped_with_a_notice_without_a_base(git_repo: tuple[Path, str]) -> None:
    root, _base = git_repo
    with pytest.raises(SkipCheck, match="no origin/main here and no --base given"):
        process.gate_change_rule(ctx(root))


def test_change_rule_defaults_to_the_merge_base_with_origin_main(
    git_repo: tuple[Path, str],
) -> None:
    root, base = git_repo
    git(root, "update-ref", "refs/remotes/origin/main", base)
    git(root, "checkout", "-q", "-b", "feature")
    (root / "alembic" / "versions" / "0002_more.sql").write_text("CREATE TABLE public.u ();\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "feature")
    assert process.resolve_base(ctx(root)) == base
    assert process.gate_change_rule(ctx(root)) != []


def test_change_rule_rejects_an_unknown_base(git_repo: tuple[Path, str]) -> None:
    root, _base = git_repo
    with pytest.raises(RuntimeError, match="--base no-such-ref is not a commit"):
        process.gate_change_rule(ctx(root, base="no-such-ref"))


# -- process:promotion (INV-034) ------------------------------------------------------------------


def _edit_manifest(root: Path, old: str, new: str) -> None:
    path = docs_of(root) / manifest.MANIFEST_NAME
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_promotion_fails_on_an_unresolved_test(repo_copy: Path) -> None:
    assert process.gate_promotion(ctx(repo_copy)) == []
    _edit_manifest(
        repo_copy,
        "test_gate.py::test_no_dispatching_rows_fails_on_a_dispatching_attempt",
        "test_gate.py::test_that_was_never_written",
    )
    assert process.gate_promotion(ctx(repo_copy)) == [
        "INV-014: tests/invariants/test_gate.py::test_that_was_never_written: no test function "
        "test_that_was_never_written in tests/invariants/test_gate.py"
    ]


def test_promotion_fails_on_an_unclaimed_check(repo_copy: Path) -> None:
    _edit_manifest(repo_copy, "      - gate:uuid-strategy\n", "      - gate:uuid-strategyy\n")
    assert process.gate_promotion(ctx(repo_copy)) == [
        "INV-018: gate:uuid-strategyy is not a check the code defines",
        "check gate:uuid-strategy is claimed by no implemented invariant: add it to the "
        "verification of the invariant it enforces in the manifest",
    ]


def test_promotion_allows_unresolved_references_on_the_roadmap(repo_copy: Path) -> None:
    # The first roadmap entry (INV-026) names a check nobody has written yet.
    _edit_manifest(
        repo_copy,
        "    verification: []\n",
        "    verification:\n      - gate:policy-rotation\n",
    )
    assert process.gate_promotion(ctx(repo_copy)) == []


def test_node_ids_resolve_through_classes_and_parameters(tmp_path: Path) -> None:
    suite = tmp_path / "tests" / "suite.py"
    suite.parent.mkdir()
    suite.write_text(
        "class TestGroup:\n    def test_inner(self):\n        pass\n\n\ndef test_top():\n    pass\n"
    )
    assert process.node_id_problem("tests/suite.py::test_top[case-1]", tmp_path) is None
    assert process.node_id_problem("tests/suite.py::TestGroup::test_inner", tmp_path) is None
    assert "no test class Missing" in str(
        process.node_id_problem("tests/suite.py::Missing::test_inner", tmp_path)
    )
    assert "does not exist" in str(process.node_id_problem("tests/other.py::test_top", tmp_path))


# -- process:exceptions (INV-035) -----------------------------------------------------------------


def test_exceptions_fail_when_incomplete_unknown_or_expired(repo_copy: Path) -> None:
    assert process.gate_exceptions(ctx(repo_copy)) == []
    add_exception(repo_copy, "2030-01-01-INV-014-valid.md")
    assert process.gate_exceptions(ctx(repo_copy)) == []
    for name in ("incomplete.md", "unknown-id.md", "too-long.md"):
        add_exception(repo_copy, name)
    assert process.gate_exceptions(ctx(repo_copy, today=AFTER)) == [
        "2030-01-01-INV-014-valid.md: expired on 2030-02-01; fix the violation, or renew the "
        "exception with a new reason (a new file, reviewed again)",
        "incomplete.md: field 'Owner' is missing or still the template placeholder",
        "incomplete.md: field 'Expires' is missing or still the template placeholder",
        "too-long.md: lasts 181 days; at most 90",
        "unknown-id.md: INV-999 is not in the manifest",
        "unknown-id.md: expired on 2030-02-01; fix the violation, or renew the exception with a "
        "new reason (a new file, reviewed again)",
    ]


def test_new_exception_is_written_from_the_template_and_passes(repo_copy: Path) -> None:
    docs = docs_of(repo_copy)
    ids = manifest.load(docs / manifest.MANIFEST_NAME).ids
    path = exception_files.new_exception(
        docs,
        invariant_id="INV-024",
        reason="Vendor SQL | pasted as is",
        expires=date(2030, 2, 1),
        owner="db team",
        known_ids=ids,
        today=DURING,
    )
    assert path.name == "2030-01-15-INV-024-vendor-sql-pasted-as-is.md"
    assert exception_files.fields_of(path.read_text()) == {
        "Invariant": "INV-024",
        "Owner": "db team",
        "Reason": "Vendor SQL | pasted as is",
        "Created": "2030-01-15",
        "Expires": "2030-02-01",
    }
    assert process.gate_exceptions(ctx(repo_copy)) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"invariant_id": "INV-999"}, "--id INV-999: no such invariant"),
        ({"reason": "  "}, "--reason must say why"),
        ({"owner": ""}, "--owner must name who"),
        ({"expires": date(2030, 1, 1)}, "--expires 2030-01-01 is in the past"),
        ({"expires": date(2030, 6, 1)}, "more than 90 days away"),
    ],
)
def test_new_exception_refuses_bad_arguments_and_writes_nothing(
    repo_copy: Path, changes: dict[str, object], message: str
) -> None:
    docs = docs_of(repo_copy)
    arguments: dict[str, object] = {
        "invariant_id": "INV-024",
        "reason": "why",
        "expires": date(2030, 2, 1),
        "owner": "me",
    }
    arguments.update(changes)
    before = sorted(exception_files.exceptions_dir(docs).iterdir())
    with pytest.raises(exception_files.SymphonyError, match=message):
        exception_files.new_exception(
            docs,
            known_ids={"INV-024"},
            today=DURING,
            **arguments,  # type: ignore[arg-type]
        )
    assert sorted(exception_files.exceptions_dir(docs).iterdir()) == before


# -- process:invariant-history (INV-039) and waivers against the base ----------------------------


def _exception_for(root: Path, invariant_id: str) -> Path:
    """A valid exception (2030-01-01 .. 2030-02-01) for ``invariant_id``."""
    text = (PROCESS_FIXTURES / "exceptions" / "2030-01-01-INV-014-valid.md").read_text()
    target = exception_files.exceptions_dir(docs_of(root)) / f"2030-01-01-{invariant_id}-x.md"
    target.write_text(text.replace("INV-014", invariant_id))
    return target


def _downgrade_inv_021(root: Path) -> None:
    _edit_manifest(
        root,
        "  - id: INV-021\n    title: No secrets in revisions\n    status: implemented\n"
        "    severity: P0\n",
        "  - id: INV-021\n    title: No secrets in revisions\n    status: implemented\n"
        "    severity: P1\n",
    )


def _adr(root: Path, name: str, text: str) -> None:
    decisions = root / "docs" / "decisions"
    decisions.mkdir(parents=True, exist_ok=True)
    (decisions / name).write_text(text)


def test_invariant_history_fails_on_a_downgrade_waived_in_the_same_change(
    git_repo: tuple[Path, str],
) -> None:
    root, base = git_repo
    _downgrade_inv_021(root)
    _exception_for(root, "INV-021")
    # The attack of issue 18.3: the manifest edit satisfies the change rule ...
    assert process.gate_change_rule(ctx(root, base=base)) == []
    # ... but the history gate sees the downgrade and the waiver of a P0 invariant.
    problems = process.gate_invariant_history(ctx(root, base=base))
    assert len(problems) == 2, problems
    assert "INV-021: severity lowered from P0 to P1" in problems[0]
    assert "ADR under docs/decisions/ that names INV-021" in problems[0]
    assert "2030-01-01-INV-021-x.md names INV-021, which is P0 at" in problems[1]


def test_invariant_history_accepts_a_downgrade_recorded_in_an_adr(
    git_repo: tuple[Path, str],
) -> None:
    root, base = git_repo
    _downgrade_inv_021(root)
    _adr(root, "0099-relax-secrets.md", "# 0099\n\nINV-021 becomes P1 because ...\n")
    assert process.gate_invariant_history(ctx(root, base=base)) == []
    # An ADR naming another invariant does not count.
    _adr(root, "0099-relax-secrets.md", "# 0099\n\nINV-020 becomes P2 because ...\n")
    assert len(process.gate_invariant_history(ctx(root, base=base))) == 1
    # The ADR does not let an exception waive what the base says is P0.
    _adr(root, "0099-relax-secrets.md", "# 0099\n\nINV-021 becomes P1 because ...\n")
    _exception_for(root, "INV-021")
    problems = process.gate_invariant_history(ctx(root, base=base))
    assert len(problems) == 1, problems
    assert f"names INV-021, which is P0 at base {base[:12]}" in problems[0]


def test_invariant_history_fails_on_removal_demotion_and_moved_checks(
    git_repo: tuple[Path, str],
) -> None:
    root, base = git_repo
    # INV-020 removed entirely, INV-022 back to the roadmap, INV-007's lint moved to INV-023.
    path = docs_of(root) / manifest.MANIFEST_NAME
    text = path.read_text()
    start = text.index("  - id: INV-020\n")
    end = text.index("  - id: INV-021\n")
    text = text[:start] + text[end:]
    path.write_text(text)
    _edit_manifest(
        root,
        "  - id: INV-022\n    title: No CONCURRENTLY in a transactional revision\n"
        "    status: implemented\n",
        "  - id: INV-022\n    title: No CONCURRENTLY in a transactional revision\n"
        "    status: roadmap\n",
    )
    _edit_manifest(root, "      - lint:definer-search-path\n", "")
    _edit_manifest(
        root,
        "      - lint:no-legacy-references\n",
        "      - lint:no-legacy-references\n      - lint:definer-search-path\n",
    )
    problems = process.gate_invariant_history(ctx(root, base=base))
    text = "\n".join(problems)
    assert "INV-007: no longer verified by lint:definer-search-path" in text
    assert "INV-020: removed from the manifest (it was P1, implemented" in text
    assert "INV-022: status changed from implemented to roadmap" in text
    assert len(problems) == 3, problems


def test_invariant_history_accepts_additions_and_upgrades(git_repo: tuple[Path, str]) -> None:
    root, base = git_repo
    _edit_manifest(
        root,
        "  - id: INV-014\n    title: No attempt is in state DISPATCHING\n    status: implemented\n"
        "    severity: P1\n",
        "  - id: INV-014\n    title: No attempt is in state DISPATCHING\n    status: implemented\n"
        "    severity: P0\n",
    )
    assert process.gate_invariant_history(ctx(root, base=base)) == []


def test_invariant_history_is_skipped_without_a_base(git_repo: tuple[Path, str]) -> None:
    root, _base = git_repo
    with pytest.raises(SkipCheck, match="no origin/main here and no --base given"):
        process.gate_invariant_history(ctx(root))


def test_exceptions_never_name_a_p0_invariant(repo_copy: Path) -> None:
    _exception_for(repo_copy, "INV-021")
    assert process.gate_exceptions(ctx(repo_copy)) == [
        "2030-01-01-INV-021-x.md names INV-021, which is P0: P0 invariants can never be waived "
        "(ADR 0021); fix the violation instead"
    ]


def test_a_downgrade_in_the_same_change_does_not_waive_a_p0_failure(
    git_repo: tuple[Path, str],
) -> None:
    from symphony_schema.invariants import runner
    from symphony_schema.invariants.results import CheckResult

    root, base = git_repo
    _downgrade_inv_021(root)
    _exception_for(root, "INV-021")
    failing = CheckResult("lint:no-secrets", "fail", ("0011_x.sql:1: password literal",))
    run = runner.Run(command="test", root=root, today=DURING, base=base)
    run.add(failing)
    assert run.results[-1].status == "fail"
    assert run.results[-1].invariant_id == "INV-021"
    assert "is P0 at base" in str(run.results[-1].note)
    # The same exception does waive a P1 invariant's failure (the mechanism still works).
    _exception_for(root, "INV-014")
    run = runner.Run(command="test", root=root, today=DURING, base=base)
    run.add(CheckResult("gate:no-dispatching-rows", "fail", ("1 row",)))
    assert run.results[-1].status == "waived"


def test_nothing_is_waived_when_the_base_manifest_cannot_be_read(
    git_repo: tuple[Path, str],
) -> None:
    from symphony_schema.invariants import runner
    from symphony_schema.invariants.results import CheckResult

    root, _base = git_repo
    manifest_path = docs_of(root) / manifest.MANIFEST_NAME
    good = manifest_path.read_text()
    manifest_path.write_text("invariants: [unclosed\n")
    git(root, "commit", "-q", "-am", "broken manifest")
    broken = git(root, "rev-parse", "HEAD")
    manifest_path.write_text(good)
    _exception_for(root, "INV-014")
    run = runner.Run(command="test", root=root, today=DURING, base=broken)
    run.add(CheckResult("gate:no-dispatching-rows", "fail", ("1 row",)))
    assert run.results[-1].status == "fail"
    assert "the base manifest cannot be read" in str(run.results[-1].note)
