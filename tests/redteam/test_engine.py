"""Red team of "what runs is what was reviewed" (issue 18 item 1 and 4, ADRs 0055 and 0085): a
revision ``.py`` that passes ``lint:revision-py-runs-sql-only`` (INV-037) must not be able to
run anything but its SQL when the engine compiles it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from symphony_schema import project_root
from symphony_schema.invariants import lints
from symphony_schema.migration.checksum import read_revision
from symphony_schema.migration.loader import compile_revision

MARKER = "SYMPHONY_REDTEAM_HIDDEN_CODE_RAN"

HEADER = (
    '"""Red team revision."""\n\nfrom symphony_schema.migration.sql import run_revision_sql\n\n'
)
TAIL = (
    "down_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n"
    "def upgrade() -> None:\n    run_revision_sql(__file__)\n"
)
HIDDEN = f'__import__("os").environ.__setitem__("{MARKER}", "1")'


def write_revision(directory: Path, text: bytes) -> Path:
    path = directory / "0001_a.py"
    path.write_bytes(text)
    (directory / "0001_a.sql").write_text("SELECT 1;\n")
    return path


def hidden_code_runs(path: Path) -> bool:
    """Compile and execute the module the way the engine does (ADR 0055)."""
    os.environ.pop(MARKER, None)
    try:
        compile_revision(read_revision(path))
        return os.environ.get(MARKER) == "1"
    finally:
        os.environ.pop(MARKER, None)


def test_a_coding_cookie_cannot_hide_a_statement_from_the_lint(tmp_path: Path) -> None:
    """The lint parsed the raw bytes, honouring a ``coding: shift_jis`` declaration; the engine
    compiles the UTF-8 text. ``\\xc3\\x81\\\\`` is "Á\\" in UTF-8 but two characters in
    Shift JIS, the second swallowing the backslash: in the lint's view the docstring ends there
    and the rest of the line is a comment; in the engine's view the quote is escaped and the
    hidden statement after ``;`` runs."""
    text = (
        "# -*- coding: shift_jis -*-\n"
        + f'"Red team revision \u00c1\\"  # " ; {HIDDEN}\n\n'
        + HEADER.split("\n", 2)[2]
        + 'revision = "0001_a"\n'
        + TAIL
    ).encode("utf-8")
    path = write_revision(tmp_path, text)
    assert hidden_code_runs(path), "the attack no longer reproduces; rewrite this test"
    problems = lints.lint_revision_py_runs_sql_only(tmp_path, project_root())
    assert problems, "the lint passed a revision whose compiled code runs a hidden statement"
    assert any("coding" in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        HEADER + f'revision: {HIDDEN} = "0001_a"\n' + TAIL,
        HEADER + 'revision = "0001_a"\n' + TAIL.replace("-> None", f"-> {HIDDEN}"),
    ],
    ids=["variable-annotation", "return-annotation"],
)
def test_an_annotation_cannot_run_code(tmp_path: Path, text: str) -> None:
    """Module-level annotations and ``def``'s return annotation are evaluated when the module
    is executed; the lint checked the target and value of an annotated assignment and the
    arguments and decorators of ``upgrade()``, not the annotations."""
    path = write_revision(tmp_path, text.encode("utf-8"))
    assert hidden_code_runs(path), "the attack no longer reproduces; rewrite this test"
    problems = lints.lint_revision_py_runs_sql_only(tmp_path, project_root())
    assert problems, "the lint passed a revision whose annotation runs code"
    assert all(p.startswith("0001_a.py:") for p in problems), problems


def test_plain_annotations_of_the_alembic_template_still_pass(tmp_path: Path) -> None:
    """``revision: str = ...`` and ``str | None`` style annotations evaluate nothing but names."""
    text = (
        HEADER
        + 'revision: str = "0001_a"\n'
        + "down_revision: str | None = None\n"
        + "branch_labels: str | tuple[str, ...] | None = None\n"
        + "depends_on: str | None = None\n\n\n"
        + "def upgrade() -> None:\n    run_revision_sql(__file__)\n"
    )
    write_revision(tmp_path, text.encode("utf-8"))
    assert lints.lint_revision_py_runs_sql_only(tmp_path, project_root()) == []
