"""The revisions' SQL as the lints see it: one :class:`RevisionSql` per ``.sql`` file.

A revision is *non-transactional* only when its ``.py`` says so explicitly, by calling
``run_revision_sql(__file__, transactional=False)`` (decided by parsing the ``.py`` with ``ast``,
not by a text search). Everything else runs inside the engine's transaction.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pglast
from pglast import parser

from symphony_schema import SymphonyError, project_root


@dataclass(frozen=True)
class RevisionSql:
    """One revision's SQL file."""

    path: Path
    sql: str
    transactional: bool

    @property
    def name(self) -> str:
        return self.path.name

    def line_of(self, offset: int) -> int:
        """1-based line of a character offset into :attr:`sql`."""
        return self.sql.count("\n", 0, max(offset, 0)) + 1

    def where(self, offset: int) -> str:
        return f"{self.name}:{self.line_of(offset)}"


def default_versions_dir() -> Path:
    return project_root() / "alembic" / "versions"


def is_transactional(revision_py: Path) -> bool:
    """``False`` only when the revision calls ``run_revision_sql(..., transactional=False)``."""
    if not revision_py.is_file():
        return True
    tree = ast.parse(revision_py.read_text(encoding="utf-8-sig"), filename=str(revision_py))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "run_revision_sql":
            continue
        for keyword in node.keywords:
            value = keyword.value
            explicit_false = isinstance(value, ast.Constant) and value.value is False
            if keyword.arg == "transactional" and explicit_false:
                return False
    return True


def load_revisions(directory: Path | None = None) -> list[RevisionSql]:
    """Every ``*.sql`` file of a versions directory, in file-name (= revision) order."""
    directory = directory or default_versions_dir()
    if not directory.is_dir():
        raise SymphonyError(f"{directory} is not a directory of revisions")
    revisions = []
    for path in sorted(directory.glob("*.sql")):
        sql = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        revisions.append(RevisionSql(path, sql, is_transactional(path.with_suffix(".py"))))
    return revisions


def parse(revision: RevisionSql) -> list[pglast.ast.RawStmt]:
    """The top-level statements, parsed by the real PostgreSQL parser (``pglast``)."""
    return list(pglast.parse_sql(revision.sql))


def code_text(sql: str) -> str:
    """``sql`` with every comment blanked out (same length, newlines kept), also inside
    dollar-quoted bodies, so offsets still point into the original text."""
    chars = list(sql)
    _blank_comments(sql, 0, chars)
    return "".join(chars)


def _blank_comments(sql: str, base: int, chars: list[str]) -> None:
    encoded = sql.encode("utf-8")
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return
    for token in tokens:
        start = base + len(encoded[: token.start].decode("utf-8", errors="replace"))
        text = encoded[token.start : token.end + 1].decode("utf-8", errors="replace")
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            for index in range(start, start + len(text)):
                if chars[index] != "\n":
                    chars[index] = " "
        elif token.name == "SCONST" and text.startswith("$"):
            tag_end = text.index("$", 1) + 1
            _blank_comments(text[tag_end : len(text) - tag_end], start + tag_end, chars)


def code_fragments(sql: str) -> list[tuple[int, str]]:
    """The text of ``sql`` without comments, with ``(offset, text)`` per piece.

    Dollar-quoted bodies (functions, ``DO`` blocks) are scanned again, so comments inside them
    are dropped too; ordinary string literals are kept as they are (dynamic SQL lives there).
    """
    fragments: list[tuple[int, str]] = []
    _collect_fragments(sql, 0, fragments)
    return fragments


def _collect_fragments(sql: str, base: int, out: list[tuple[int, str]]) -> None:
    encoded = sql.encode("utf-8")
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        out.append((base, sql))
        return
    for token in tokens:
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        text = encoded[token.start : token.end + 1].decode("utf-8", errors="replace")
        offset = base + len(encoded[: token.start].decode("utf-8", errors="replace"))
        if token.name == "SCONST" and text.startswith("$"):
            tag_end = text.index("$", 1) + 1
            inner = text[tag_end : len(text) - tag_end]
            _collect_fragments(inner, offset + tag_end, out)
        else:
            out.append((offset, text))
