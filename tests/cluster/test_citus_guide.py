"""docs/operations/citus.md, followed verbatim in a fresh clone, shows what really happens.

The same runner as the local-dev guide (``tests/integration/test_local_dev_guide.py``): every
``bash`` block runs in order in a clone of the working tree whose ``.venv`` is this virtualenv
(which has Citus), and each ``text`` block marked as output must match the last block's output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from symphony_schema import cluster, project_root
from tests.integration import test_local_dev_guide as runner

pytestmark = pytest.mark.citus

ROOT = project_root()
GUIDE = Path("docs") / "operations" / "citus.md"


def _environment() -> dict[str, str]:
    env = runner._environment()
    env.pop("SYMPHONY_CLUSTER_DIR", None)
    return env


@pytest.fixture
def clone() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scit-") as parent:
        target = Path(parent) / "symphony-schema"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
        for name in runner._git_lines("ls-files", "--modified", "--others", "--exclude-standard"):
            if (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)
        for name in runner._git_lines("ls-files", "--deleted"):
            (target / name).unlink(missing_ok=True)
        (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        try:
            yield target
        finally:
            cluster.stop(target / ".symphony" / "cluster", immediate=True)


def test_the_citus_guide_runs_and_prints_what_it_shows(clone: Path) -> None:
    blocks = runner.parse_guide((clone / GUIDE).read_text(encoding="utf-8"))
    assert sum(1 for b in blocks if b.kind == "bash" and not b.skip) >= 5
    env = _environment()
    last_output: str | None = None
    for block in blocks:
        if block.output:
            assert last_output is not None, f"{GUIDE}:{block.line}: output of which block?"
            runner.check_output(block, last_output, clone)
            continue
        if block.kind != "bash" or block.skip:
            continue
        script = "\n".join(runner.without_setup(line) for line in block.text.splitlines())
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
            f"{GUIDE}:{block.line}: exit status {done.returncode}:\n{script}\n{done.stdout}"
        )
        last_output = done.stdout
    # The guide ran its own cluster in the clone, never this checkout's.
    found = cluster.load(clone / ".symphony" / "cluster")
    assert found is not None and len(found.workers) == 2
