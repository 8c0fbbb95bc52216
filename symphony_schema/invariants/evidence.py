"""The evidence bundle (``--evidence DIR``): what was checked, on which database, with which code.

Layout of ``DIR`` (which must be new or empty, so no stale file can pass for evidence)::

    run.json                     run facts: command, argv and URL (credentials redacted), times,
                                 outcome, database (server version, head revision, ledger rows
                                 with checksums), git commit and cleanliness (untracked, modified
                                 and ignored files under alembic/), manifest
    checks/NNN-<check>.json      one record per check: invariant id, status, details, start/end
    SHA256SUMS                   SHA-256 of every other file (``sha256sum -c SHA256SUMS``)
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from symphony_schema import SymphonyError
from symphony_schema.invariants.results import CheckResult
from symphony_schema.migration import ledger
from symphony_schema.redact import redact_data

SUMS_NAME = "SHA256SUMS"
RUN_NAME = "run.json"
CHECKS_DIR = "checks"
#: The revision tree, relative to the repository root (untracked files there are reported).
ALEMBIC_DIR = "alembic"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(directory: Path) -> Path:
    """Create the bundle directory; refuse one that already holds files."""
    directory = directory.resolve()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SymphonyError(
            f"--evidence {directory} is not an empty directory; give a new or empty one so the "
            "bundle holds this run only"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def database_facts(conninfo: str) -> dict[str, Any]:
    """Server version, head revision and ledger rows of the verified database."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        version = conn.execute(
            "SELECT pg_catalog.version(), current_setting('server_version')"
        ).fetchone()
        database = conn.execute("SELECT current_database(), current_user").fetchone()
        facts: dict[str, Any] = {
            "server_version": version[1] if version else None,
            "server_version_full": version[0] if version else None,
            "database": database[0] if database else None,
            "connected_as": database[1] if database else None,
            "alembic_version": [],
            "ledger": [],
        }
        facts["alembic_version"] = ledger.read_alembic_heads(conn)
        facts["ledger"] = [
            {
                "version": row.version,
                "description": row.description,
                "checksum": row.checksum,
                "applied_at": row.applied_at.isoformat(),
                "applied_by": row.applied_by,
                "execution_ms": row.execution_ms,
            }
            for row in ledger.read_ledger_records(conn)
        ]
    return facts


def git_facts(root: Path) -> dict[str, Any]:
    """Commit and cleanliness of the checkout the code ran from.

    ``dirty`` is true when a tracked file is modified anywhere, or when ``alembic/`` holds files
    git does not track: an untracked revision is applied by the engine like a committed one, so
    the commit alone would not say what ran. ``alembic_untracked``, ``alembic_modified`` and
    ``alembic_ignored`` (ignored files such as bytecode, which a revision loader could pick up)
    list them by path.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    alembic = git(
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignored=traditional",
        "--",
        ALEMBIC_DIR,
    )
    untracked: list[str] = []
    modified: list[str] = []
    ignored: list[str] = []
    entries = iter((alembic or "").split("\0"))
    for entry in entries:
        code, path = entry[:2], entry[3:]
        if code[:1] in ("R", "C"):
            next(entries, None)  # -z puts a rename's or copy's source path in its own entry
        if not path:
            continue
        if code == "??":
            untracked.append(path)
        elif code == "!!":
            ignored.append(path)
        elif path.startswith(f"{ALEMBIC_DIR}/") and code.strip():
            modified.append(path)
    commit, branch = git("rev-parse", "HEAD"), git("rev-parse", "--abbrev-ref", "HEAD")
    return {
        "commit": commit.strip() if commit else None,
        "branch": branch.strip() if branch else None,
        "dirty": bool(status.strip() or untracked) if status is not None else None,
        "alembic_untracked": sorted(untracked) if alembic is not None else None,
        "alembic_modified": sorted(modified) if alembic is not None else None,
        "alembic_ignored": sorted(ignored) if alembic is not None else None,
    }


def _file_name(index: int, ref: str) -> str:
    return f"{index:03d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', ref)}.json"


def _dump(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def write_bundle(directory: Path, results: Sequence[CheckResult], run: dict[str, Any]) -> Path:
    """Write the bundle into ``directory`` (see :func:`prepare`); returns the sums file.

    Every string of every record goes through :func:`symphony_schema.redact.redact_data`: argv,
    URLs and error texts keep no password, ``sslpassword``, ``passfile`` or other credential.
    """
    directory = prepare(directory)
    checks = directory / CHECKS_DIR
    checks.mkdir()
    for index, result in enumerate(results, start=1):
        _dump(checks / _file_name(index, result.ref), redact_data(result.as_record()))
    _dump(directory / RUN_NAME, redact_data(run))
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != SUMS_NAME)
    sums = directory / SUMS_NAME
    sums.write_text(
        "".join(f"{sha256_of(p)}  {p.relative_to(directory).as_posix()}\n" for p in files),
        encoding="utf-8",
    )
    return sums


def verify_bundle(directory: Path) -> list[str]:
    """Problems with a bundle's checksums (empty when every file matches ``SHA256SUMS``)."""
    sums = directory / SUMS_NAME
    if not sums.is_file():
        return [f"{sums} is missing"]
    problems = []
    listed = set()
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is listed but missing")
        elif sha256_of(path) != digest:
            problems.append(f"{name} does not match its SHA-256")
    for path in directory.rglob("*"):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != SUMS_NAME and name not in listed:
            problems.append(f"{name} is not listed in {SUMS_NAME}")
    return problems
