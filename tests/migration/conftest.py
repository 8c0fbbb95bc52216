"""Throw-away Alembic projects for engine tests that tamper with revisions.

Each tree has the project's real ``alembic.ini`` and ``env.py`` (so the real engine runs) and its
own ``versions/`` directory. ``alembic`` runs as a subprocess, exactly as a developer runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from symphony_schema import project_root

ALEMBIC = str(Path(sys.executable).with_name("alembic"))

REVISION_PY = '''\
"""{doc}"""

from symphony_schema.migration.sql import run_revision_sql

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_revision_sql(__file__{extra})
'''


@dataclass
class RevisionTree:
    """An Alembic project in a temporary directory, run against one database URL."""

    root: Path
    url: str
    revisions: list[str] = field(default_factory=list)

    @property
    def versions(self) -> Path:
        return self.root / "alembic" / "versions"

    def add(
        self, slug: str, sql: str, *, doc: str | None = None, transactional: bool = True
    ) -> str:
        number = len(self.revisions) + 1
        rev = f"{number:04d}_{slug}"
        down = self.revisions[-1] if self.revisions else None
        extra = "" if transactional else ", transactional=False"
        (self.versions / f"{rev}.py").write_text(
            REVISION_PY.format(doc=doc or f"Test revision {slug}.", rev=rev, down=down, extra=extra)
        )
        (self.versions / f"{rev}.sql").write_text(textwrap.dedent(sql))
        self.revisions.append(rev)
        return rev

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["SYMPHONY_DATABASE_URL"] = self.url
        env["SYMPHONY_PROJECT_ROOT"] = str(self.root)
        env["SYMPHONY_QUIET"] = "0"
        env.update(extra or {})
        return env

    def alembic(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ALEMBIC, *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [ALEMBIC, *args],
            cwd=self.root,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_tree(root: Path, url: str) -> RevisionTree:
    project = project_root()
    (root / "alembic" / "versions").mkdir(parents=True)
    shutil.copy(project / "alembic.ini", root / "alembic.ini")
    shutil.copy(project / "alembic" / "env.py", root / "alembic" / "env.py")
    shutil.copy(project / "alembic" / "script.py.mako", root / "alembic" / "script.py.mako")
    return RevisionTree(root, url)


@pytest.fixture
def tree(tmp_path: Path, empty_db: object) -> RevisionTree:
    """A throw-away revision tree pointed at a fresh empty database."""
    return make_tree(tmp_path / "project", empty_db.url)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    """Scratch databases go next to the embedded server's maintenance database."""
    return str(pg_server.sqlalchemy_url("postgres"))


@pytest.fixture(scope="module")
def fresh_baseline(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """baseline/ generated once from the real revisions, in a temp directory (per module)."""
    from symphony_schema.baseline.generate import generate

    out = tmp_path_factory.mktemp("baseline")
    generate(server_url, out)
    return out
