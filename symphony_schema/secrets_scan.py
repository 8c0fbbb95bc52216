"""Secret scan of the repository (S4), built on Yelp's ``detect-secrets``.

Scans every file git tracks (or, outside a git checkout, every file under the root except
virtualenvs and caches). A line that must contain a secret-looking value for a good reason is
allowlisted inline with ``pragma: allowlist secret``, which a reviewer sees in the diff.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SKIPPED_PARTS = {".git", ".venv", ".nox", ".symphony", "__pycache__", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def tracked_files(root: Path) -> list[Path]:
    """Files git tracks under ``root``; every regular file when ``root`` is not a checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return sorted(
            path
            for path in root.rglob("*")
            if path.is_file() and not SKIPPED_PARTS.intersection(path.relative_to(root).parts)
        )
    names = [name for name in listed.decode().split("\0") if name]
    return sorted(root / name for name in names if (root / name).is_file())


def scan(root: Path) -> list[Finding]:
    """Every potential secret in the repository at ``root``."""
    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings

    files = [str(path) for path in tracked_files(root)]
    collection = SecretsCollection(root=str(root))
    with default_settings():
        collection.scan_files(*files)
    findings = []
    for filename, secret in collection:
        path = Path(filename)
        shown = path.relative_to(root) if path.is_absolute() else path
        findings.append(Finding(str(shown), int(secret.line_number), str(secret.type)))
    return sorted(set(findings))
