"""S4: the repository holds no secret, and the scanner really finds planted ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from symphony_schema import project_root
from symphony_schema.cli import main
from symphony_schema.secrets_scan import scan

# Built at run time so this file itself holds no secret-looking literal.
AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLE"
URL_WITH_PASSWORD = (
    "postgresql://app:" + "Sup3rS3cret" + "Pw@db.internal/x"
)  # pragma: allowlist secret


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    return tmp_path


def test_the_repository_itself_has_no_secrets() -> None:
    findings = scan(project_root())
    assert findings == [], "remove these or move them to the environment: " + ", ".join(
        map(str, findings)
    )


def test_planted_secrets_are_found_with_file_and_line(tmp_path: Path) -> None:
    repo = _repo(
        tmp_path,
        {"settings.py": f'KEY = "{AWS_KEY}"\nURL = "{URL_WITH_PASSWORD}"\n', "ok.txt": "nothing\n"},
    )
    found = {(f.path, f.line) for f in scan(repo)}
    assert ("settings.py", 1) in found
    assert ("settings.py", 2) in found
    assert not any(path == "ok.txt" for path, _ in found)


def test_cli_exits_1_on_findings_and_0_when_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirty = _repo(tmp_path / "dirty", {"a.py": f'KEY = "{AWS_KEY}"\n'})
    clean = _repo(tmp_path / "clean", {"a.py": "KEY = None\n"})
    assert main(["scan-secrets", "--root", str(dirty)]) == 1
    assert "a.py:1: AWS Access Key" in capsys.readouterr().out
    assert main(["scan-secrets", "--root", str(clean)]) == 0
