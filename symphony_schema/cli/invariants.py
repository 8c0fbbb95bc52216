"""``symphony-schema verify`` and ``symphony-schema invariants`` (with its subcommands).

``verify``      lints -> migrate -> seed -> gate -> live drift against the selected database (CI,
                staging, prod).
``invariants``  the same on a scratch database, then the process gates (what ``nox -s invariants``
                runs). Subcommands: ``docs`` (regenerate the generated docs), ``lint``, ``gate``,
                ``process`` (one part alone) and ``exception new``.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from symphony_schema import SymphonyError, project_root
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database
from symphony_schema.invariants import docs as generated_docs
from symphony_schema.invariants import evidence, exception_files, manifest, process
from symphony_schema.invariants.results import CheckResult

if TYPE_CHECKING:
    from symphony_schema.invariants import runner as runner_module

# The runner (gate, lints, pglast, the models and the privilege matrix) is imported by the
# handlers that need it, not at start-up: every symphony-schema command imports this module.

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "waived": "WAIVE"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_verify(subparsers)
    _register_invariants(subparsers)


def _add_evidence_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="write the evidence bundle (one JSON record per check, run facts, SHA256SUMS) into "
        "DIR, which must be new or empty",
    )


def _register_verify(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="lint, migrate, seed and gate the selected database (the verification entry point)",
        description="The one verification entry point for CI, staging and production: lint the "
        "revisions' SQL, migrate the database to head (not when a lint fails), seed the boot "
        "policy (POLICY_VERSION from the environment, else the development policy; skipped with "
        "SKIP_POLICY_SEED=1), then run the SQL gate and live drift (the database's catalog "
        "against baseline/catalog.txt, as 'symphony-schema drift'). Every failure is reported "
        "with its invariant id; exit 1 when any invariant or the drift step fails.",
    )
    add_url_argument(verify)
    _add_evidence_argument(verify)
    verify.set_defaults(handler=_verify)


def _register_invariants(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inv = subparsers.add_parser(
        "invariants",
        help="lints, scratch migrate + seed, SQL gate, process gates (nox -s invariants)",
        description="Without a subcommand: create a scratch database on the server the URL rule "
        "selects, run verify on it (lints, migrate, seed, gate), drop it, then run the process "
        "gates (manifest schema, generated docs, change rule, promotion, exceptions). Every "
        "failure is reported with its invariant id; exit 1 when any invariant fails.",
    )
    add_url_argument(inv)
    _add_base_argument(inv)
    _add_evidence_argument(inv)
    inv.set_defaults(handler=_invariants)
    actions = inv.add_subparsers(dest="action", metavar="ACTION")

    docs = actions.add_parser("docs", help="regenerate the generated invariants docs")
    docs.add_argument("--check", action="store_true", help="only report stale docs (exit 1)")
    docs.set_defaults(handler=_docs)

    lint = actions.add_parser("lint", help="run only the SQL lints")
    lint.add_argument(
        "--dir", type=Path, metavar="DIR", help="versions directory (default alembic/versions)"
    )
    lint.set_defaults(handler=_lint)

    gate_cmd = actions.add_parser("gate", help="run only the SQL gate on the selected database")
    add_url_argument(gate_cmd)
    gate_cmd.set_defaults(handler=_gate)

    proc = actions.add_parser("process", help="run only the process gates (no database)")
    _add_base_argument(proc)
    proc.set_defaults(handler=_process)

    exc = actions.add_parser("exception", help="manage invariant exceptions")
    exc_actions = exc.add_subparsers(dest="exception_action", metavar="ACTION", required=True)
    new = exc_actions.add_parser(
        "new",
        help="record a new exception from the template",
        description=f"Write docs/invariants/exceptions/<today>-<id>-<slug>.md from the template. "
        f"It lasts at most {exception_files.MAX_DAYS} days; P0 invariants can never be waived.",
    )
    new.add_argument("--id", required=True, metavar="INV-NNN", help="the invariant excepted")
    new.add_argument("--reason", required=True, help="why, and what compensates")
    new.add_argument("--expires", required=True, metavar="YYYY-MM-DD", help="last valid day")
    new.add_argument("--owner", required=True, help="who answers for it")
    new.set_defaults(handler=_exception_new)


def _add_base_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        metavar="REF",
        help="git ref the change rule diffs against (default: the merge base with origin/main "
        "when it exists; otherwise the change rule is skipped with a notice)",
    )


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------


def print_result(result: CheckResult) -> None:
    invariant = result.invariant_id or "-"
    line = f"{_MARK[result.status]:<5} {invariant:<8} {result.ref:<40} {result.duration_ms:>6} ms"
    if result.note:
        line += f"  ({result.note})"
    print(line, flush=True)
    for detail in result.details:
        print(f"      - {detail}", flush=True)


def _finish(run: runner_module.Run, evidence_dir: Path | None) -> int:
    print(run.summary(), flush=True)
    if evidence_dir is not None:
        sums = evidence.write_bundle(evidence_dir, run.results, run.run_record())
        print(
            f"evidence bundle: {sums.parent} (verify with: cd {sums.parent} && sha256sum -c "
            f"{sums.name})",
            flush=True,
        )
    return 1 if run.failed else 0


def _check_evidence_dir(evidence_dir: Path | None) -> None:
    if evidence_dir is not None:
        evidence.prepare(evidence_dir)  # refuse a non-empty directory before doing any work


# ------------------------------------------------------------------------------------------------
# Handlers
# ------------------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    _check_evidence_dir(args.evidence)
    selected = select_database(args.url)
    from symphony_schema.invariants import runner

    run = runner.new_run("verify", print_result)
    runner.verify_sequence(run, selected.url)
    return _finish(run, args.evidence)


def _invariants(args: argparse.Namespace) -> int:
    _check_evidence_dir(args.evidence)
    selected = select_database(args.url)
    from symphony_schema.invariants import runner

    run = runner.new_run("invariants", print_result)
    runner.invariants_sequence(run, selected, base=args.base)
    return _finish(run, args.evidence)


def _docs(args: argparse.Namespace) -> int:
    docs_dir = manifest.docs_dir()
    loaded = manifest.load(docs_dir / manifest.MANIFEST_NAME)
    if args.check:
        problems = process.gate_docs_fresh(process.ProcessContext(project_root()))
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    changed = generated_docs.write_all(loaded, docs_dir)
    for path in changed:
        print(f"wrote {path.relative_to(project_root())}")
    if not changed:
        print("generated invariants docs are up to date")
    return 0


def _lint(args: argparse.Namespace) -> int:
    from symphony_schema.invariants import runner
    from symphony_schema.invariants.revisions import default_versions_dir

    run = runner.new_run("invariants lint", print_result)
    for result in runner.lint_results(args.dir or default_versions_dir(), run.root):
        run.add(result)
    return _finish(run, None)


def _gate(args: argparse.Namespace) -> int:
    selected = select_database(args.url)
    from symphony_schema.invariants import runner

    run = runner.new_run("invariants gate", print_result)
    for result in runner.gate_results(selected.conninfo):
        run.add(result)
    return _finish(run, None)


def _process(args: argparse.Namespace) -> int:
    from symphony_schema.invariants import runner

    run = runner.new_run("invariants process", print_result)
    ctx = process.ProcessContext(root=run.root, base=args.base)
    for result in runner.process_results(ctx):
        run.add(result)
    return _finish(run, None)


def _exception_new(args: argparse.Namespace) -> int:
    try:
        expires = date.fromisoformat(args.expires)
    except ValueError:
        raise SymphonyError(f"--expires {args.expires!r} is not a date (YYYY-MM-DD)") from None
    docs_dir = manifest.docs_dir()
    loaded = manifest.load(docs_dir / manifest.MANIFEST_NAME)
    path = exception_files.new_exception(
        docs_dir,
        invariant_id=args.id,
        reason=args.reason,
        expires=expires,
        owner=args.owner,
        known_ids=loaded.ids,
        today=date.today(),
    )
    print(f"wrote {path.relative_to(project_root())}; commit it with the change it covers")
    return 0
