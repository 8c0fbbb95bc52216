"""``scripts/install-citus.sh`` where Citus is installed: idempotent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from symphony_schema import project_root

pytestmark = pytest.mark.citus

SCRIPT = project_root() / "scripts" / "install-citus.sh"


def test_installed_citus_is_not_rebuilt(tmp_path: Path) -> None:
    tarball = tmp_path / "citus-14.0.1.tar.gz"
    tarball.write_bytes(b"never unpacked when already installed")
    result = subprocess.run(
        [str(SCRIPT), str(tarball), sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project_root(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("citus 14.0.1 already installed in ")
