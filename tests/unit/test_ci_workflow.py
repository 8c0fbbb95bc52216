"""The CI workflow passes zizmor (issue 11 item 11, ADR 0077): actions pinned by commit SHA,
no persisted checkout credentials, minimal permissions. Offline: no GitHub API is needed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from symphony_schema import project_root

WORKFLOW = project_root() / ".github" / "workflows" / "ci.yml"


def _zizmor() -> str:
    beside = Path(sys.executable).parent / "zizmor"
    found = str(beside) if beside.is_file() else shutil.which("zizmor")
    assert found, "zizmor is in the dev extra: pip install -e '.[dev]'"
    return found


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_zizmor(), "--offline", "--no-progress", "--persona=pedantic", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_zizmor_reports_no_findings_on_the_ci_workflow() -> None:
    done = _run(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout + done.stderr


def test_every_action_is_pinned_to_a_full_sha_with_its_version_in_a_comment() -> None:
    uses = re.findall(r"uses:\s*(\S+)(.*)", WORKFLOW.read_text(encoding="utf-8"))
    assert uses
    for ref, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", rest), (ref, rest)


def test_zizmor_does_find_an_unpinned_action(tmp_path: Path) -> None:
    # The check above can fail: the same run on a tag-pinned checkout is a finding.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n",
        encoding="utf-8",
    )
    done = _run(bad)
    assert done.returncode != 0
    assert "unpinned" in done.stdout + done.stderr
