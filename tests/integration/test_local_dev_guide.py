"""docs/operations/local-dev.md, followed verbatim in a fresh clone, shows what really happens.

Every ``bash`` block of the guide runs, in order, in a clone of the working tree (uncommitted
changes included) with its own embedded server under the clone's ``.symphony/``, reusing this
virtualenv (the clone's ``.venv`` is a link to it, so the blocks' ``python3 -m venv`` and
``pip install`` parts are left out). Directives on the line before a block:

``<!-- doc-test: skip (why) -->``   do not run this block;
``<!-- doc-test: exit N -->``       the block must exit with status N (default 0);
``<!-- doc-test: output -->``       this ``text`` block is output of the last block run: each of its
                                    lines must match a line of that output, in order (``…`` matches
                                    anything; times, the clone's path and the PostgreSQL minor
                                    version are normalised).

The revision ids and counts the guide shows are checked against the clone's revision tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from symphony_schema import project_root

pytestmark = pytest.mark.integration

ROOT = project_root()
GUIDE = Path("docs") / "operations" / "local-dev.md"
SHOWN_ROOT = "/path/to/symphony-schema"
DIRECTIVE = re.compile(r"^<!-- doc-test: (skip|exit|output)\b ?(.*?) ?-->$")


@dataclass
class Block:
    kind: str  # "bash" or "text"
    text: str
    line: int
    skip: bool = False
    exit_status: int = 0
    output: bool = False


def parse_guide(text: str) -> list[Block]:
    blocks: list[Block] = []
    directives: list[tuple[str, str]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = DIRECTIVE.match(line.strip())
        if match:
            directives.append((match.group(1), match.group(2)))
        elif line.startswith("```") and len(line) > 3:
            kind = line[3:].strip()
            end = lines.index("```", index + 1)
            block = Block(kind, "\n".join(lines[index + 1 : end]), index + 1)
            for name, value in directives:
                if name == "skip":
                    block.skip = True
                elif name == "exit":
                    block.exit_status = int(value)
                else:
                    block.output = True
            directives = []
            blocks.append(block)
            index = end
        elif line.strip():
            assert not directives, f"{GUIDE}:{index + 1}: a doc-test directive not before a block"
        index += 1
    return blocks


def without_setup(command: str) -> str:
    """Drop ``python3 -m venv .venv`` and ``.venv/bin/pip install ...`` from ``a && b`` chains."""
    kept = [
        part
        for part in command.split(" && ")
        if not part.startswith(("python3 -m venv", ".venv/bin/pip install"))
    ]
    return " && ".join(kept)


def normalise(line: str, clone: Path) -> str:
    line = line.replace(str(clone), SHOWN_ROOT)
    line = re.sub(r"\b\d+ ms\b", "N ms", line)
    line = re.sub(r"PostgreSQL 18\.\d+", "PostgreSQL 18.x", line)
    return " ".join(line.split())


def matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual) is not None


def check_output(shown: Block, output: str, clone: Path) -> None:
    actual = [normalise(line, clone) for line in output.splitlines()]
    position = 0
    for expected_line in shown.text.splitlines():
        expected = normalise(expected_line, clone)
        while position < len(actual) and not matches(expected, actual[position]):
            position += 1
        assert position < len(actual), (
            f"{GUIDE}:{shown.line}: the guide shows\n  {expected_line}\nbut the command printed "
            "(in this order):\n" + output
        )
        position += 1


@pytest.fixture
def clone() -> Iterator[Path]:
    """A clone of the working tree (uncommitted changes copied over) in a short path (the
    server's Unix socket lives in it) whose .venv is this virtualenv."""
    with tempfile.TemporaryDirectory(prefix="sdoc-") as parent:
        target = Path(parent) / "symphony-schema"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
        changed = _git_lines("ls-files", "--modified", "--others", "--exclude-standard")
        for name in changed:
            if (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)
        for name in _git_lines("ls-files", "--deleted"):
            (target / name).unlink(missing_ok=True)
        (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        try:
            yield target
        finally:
            subprocess.run(
                [str(target / ".venv" / "bin" / "symphony-schema"), "db", "stop"],
                cwd=target,
                env=_environment(),
                capture_output=True,
                timeout=120,
            )


def _git_lines(*args: str) -> list[str]:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return [line for line in done.stdout.splitlines() if line]


def _environment() -> dict[str, str]:
    drop = {
        "SYMPHONY_DATABASE_URL",
        "DATABASE_URL",
        "SYMPHONY_PROJECT_ROOT",
        "SYMPHONY_PGDATA",
        "SYMPHONY_QUIET",  # set by the test suite's conftest; a newcomer does not have it
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as on a terminal
    return env


def test_guide_shows_the_revision_tree() -> None:
    scripts = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    revisions = [script.revision for script in scripts.walk_revisions()]
    head = scripts.get_current_head()
    guide = (ROOT / GUIDE).read_text(encoding="utf-8")
    assert f"migrated to {head}: {len(revisions)} revision(s)" in guide
    assert f"already at {head}: nothing to do" in guide
    assert (
        f"at head {head}, ledger matches the revision files ({len(revisions)} revisions)" in guide
    )
    for revision in revisions:
        assert f"applied {revision} " in guide, f"the guide's first migration misses {revision}"


def test_every_block_of_the_guide_runs_and_prints_what_it_shows(clone: Path) -> None:
    blocks = parse_guide((clone / GUIDE).read_text(encoding="utf-8"))
    assert sum(1 for b in blocks if b.kind == "bash" and not b.skip) >= 6
    env = _environment()
    last_output: str | None = None
    for block in blocks:
        if block.output:
            assert block.kind == "text", f"{GUIDE}:{block.line}: output blocks are ```text"
            assert last_output is not None, f"{GUIDE}:{block.line}: output of which block?"
            check_output(block, last_output, clone)
            continue
        if block.kind != "bash" or block.skip:
            continue
        script = "\n".join(without_setup(line) for line in block.text.splitlines())
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        assert "Traceback" not in done.stdout, f"{GUIDE}:{block.line}:\n{done.stdout}"
        assert done.returncode == block.exit_status, (
            f"{GUIDE}:{block.line}: exit status {done.returncode}, expected "
            f"{block.exit_status}:\n{script}\n{done.stdout}"
        )
        last_output = done.stdout
    # The guide ran against the clone's own server, never this checkout's.
    assert (clone / ".symphony" / "pgdata" / "PG_VERSION").is_file()
