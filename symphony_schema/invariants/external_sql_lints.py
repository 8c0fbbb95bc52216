"""``lint:sqlfluff`` and ``lint:squawk``: the two external SQL linters, configured at the root.

Their configuration lives in ``.sqlfluff`` and ``.squawk.toml`` at the repository root, where
every ignored rule is listed with its justification. Both are passed explicitly, so the lints
give the same answer for the real revisions and for test fixtures anywhere on disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from symphony_schema.invariants.revisions import RevisionSql

SQLFLUFF_CONFIG = ".sqlfluff"
SQUAWK_CONFIG = ".squawk.toml"
TOOL_TIMEOUT_SECONDS = 300

#: sqlfluff's findings per file, by the sha256 of (configuration, file name, file content): one
#: process that lints the same revisions again (the test suite runs ``verify`` and
#: ``invariants`` many times; a long-lived tool) asks sqlfluff only about what changed. Kept in
#: memory only, so nothing outside this process can answer for sqlfluff.
_SQLFLUFF_SEEN: dict[str, list[str]] = {}


def _config(root: Path, name: str) -> Path | None:
    path = root / name
    return path if path.is_file() else None


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
    )


def _json_output(result: subprocess.CompletedProcess[str], tool: str) -> Any:
    try:
        return json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        output = (result.stderr or result.stdout).strip()[-1500:]
        raise RuntimeError(
            f"{tool} exited {result.returncode} without a report: {output}"
        ) from None


def lint_sqlfluff(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """``sqlfluff lint`` (postgres dialect, the repository's ``.sqlfluff``) reports nothing."""
    if not revisions:
        return []
    config = _config(root, SQLFLUFF_CONFIG)
    if config is None:
        return [f"{root / SQLFLUFF_CONFIG} is missing; restore it from version control"]
    configuration = config.read_bytes()

    def key(revision: RevisionSql) -> str:
        digest = hashlib.sha256(configuration)
        for part in (revision.name.encode(), revision.path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    keys = {revision.name: key(revision) for revision in revisions}
    unseen = [revision for revision in revisions if keys[revision.name] not in _SQLFLUFF_SEEN]
    if unseen:
        command = [
            sys.executable,
            "-m",
            "sqlfluff",
            "lint",
            "--dialect",
            "postgres",
            "--config",
            str(config),
            "--format",
            "json",
            "--nocolor",
            "--disable-progress-bar",
            *(str(revision.path) for revision in unseen),
        ]
        report = _json_output(_run(command), "sqlfluff")
        found: dict[str, list[str]] = {revision.name: [] for revision in unseen}
        for entry in report:
            name = Path(entry["filepath"]).name
            for violation in entry.get("violations", []):
                line = violation.get("start_line_no", violation.get("line_no", "?"))
                code = violation.get("code", "?")
                found.setdefault(name, []).append(
                    f"{name}:{line}: sqlfluff {code} {violation.get('description', '')} "
                    f"(fix it, or justify ignoring {code} in {SQLFLUFF_CONFIG})"
                )
        for revision in unseen:
            _SQLFLUFF_SEEN[keys[revision.name]] = found[revision.name]
    return [problem for revision in revisions for problem in _SQLFLUFF_SEEN[keys[revision.name]]]


def squawk_binary() -> Path | None:
    """The ``squawk`` binary of the ``squawk-cli`` package (this interpreter's scripts first)."""
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file():
        return beside
    found = shutil.which("squawk")
    return Path(found) if found else None


def _squawk(binary: Path, config: Path, paths: list[Path], transactional: bool) -> list[str]:
    mode = "--assume-in-transaction" if transactional else "--no-assume-in-transaction"
    command = [
        str(binary),
        "--config",
        str(config),
        "--reporter",
        "json",
        mode,
        *map(str, paths),
    ]
    report = _json_output(_run(command), "squawk")
    problems = []
    for violation in report:
        name = Path(violation.get("file", "?")).name
        rule = violation.get("rule_name", "?")
        line = violation.get("line")
        problems.append(
            # squawk's JSON report counts lines from 0
            f"{name}:{line + 1 if isinstance(line, int) else '?'}: squawk {rule}: "
            f"{violation.get('message', '')} "
            f"(fix it, or justify excluding {rule} in {SQUAWK_CONFIG})"
        )
    return problems


def lint_squawk(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """``squawk`` (the repository's ``.squawk.toml``) reports nothing. Transactional revisions are
    linted as running in a transaction, non-transactional ones as not."""
    if not revisions:
        return []
    config = _config(root, SQUAWK_CONFIG)
    if config is None:
        return [f"{root / SQUAWK_CONFIG} is missing; restore it from version control"]
    binary = squawk_binary()
    if binary is None:
        return ["the squawk binary is not installed; pip install -e '.[dev]' (package squawk-cli)"]
    problems = []
    for transactional in (True, False):
        paths = [r.path for r in revisions if r.transactional is transactional]
        if paths:
            problems += _squawk(binary, config, paths, transactional)
    return problems
