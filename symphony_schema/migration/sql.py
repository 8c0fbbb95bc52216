"""The one helper through which revisions execute raw SQL.

SQL reaches the server exactly as written: no ``text()`` construct, so ``:name`` is not a bind
parameter, and no DBAPI parameters, so ``%`` is not a placeholder. (SQLAlchemy's
``exec_driver_sql`` is not enough: it passes an empty parameter tuple, and psycopg then parses
``%``.) Online, the string goes to the psycopg cursor of the migration connection with
``params=None``, which psycopg sends as-is, several statements at once, inside the revision's
transaction; offline (``alembic upgrade head --sql``) it is written to the output verbatim.

What runs is what was hashed (ADR 0055): the engine registers the normalised ``.sql`` text it
checksummed (:func:`register_hashed_sql`), :func:`run_revision_sql` sends that text, and
:func:`execute_sql` keeps a SHA-256 of every text it sends during a revision. The engine refuses
to write the ledger row unless that digest equals the digest of the hashed ``.sql`` text.

A non-transactional revision (``transactional=False``) is split into its statements by the
PostgreSQL parser (``pglast``) and sent one statement at a time in autocommit mode, so that
each ``CREATE INDEX CONCURRENTLY`` is a statement of its own (ADR 0056). The pieces are cut at
statement starts, so together they are exactly the hashed text. Only statements that can be run
again after an interruption are allowed in such a revision; on a rerun, an index that a
``CREATE INDEX CONCURRENTLY`` statement builds and that is already there and valid is not built
again, and a ``DROP INDEX CONCURRENTLY`` of an index already gone is not sent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import op

if TYPE_CHECKING:
    from pglast import ast as pg_ast

# pglast (the PostgreSQL parser, ~0.15 s to import) is imported where a non-transactional
# revision needs it, not when ``alembic upgrade`` starts (issue 17 P5: start-up counts).

_HASHED_SQL: dict[Path, str] = {}

#: Sent before every revision text: the only setting that changes how the server's lexer reads
#: a string literal, at the value every other reader of the repository assumes.
_PIN_LEXER_SQL = "SELECT pg_catalog.set_config('standard_conforming_strings', 'on', false)"


class RevisionSqlError(ValueError):
    """Revision SQL the engine will not send; the message names the revision and statement."""


class _Recorder:
    """A SHA-256 of the SQL sent for one revision that also knows whether anything was sent."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.sent_anything = False

    def update(self, text: str) -> None:
        self._hash.update(text.encode("utf-8"))
        self.sent_anything = True

    def digest(self) -> str | None:
        return f"sha256:{self._hash.hexdigest()}" if self.sent_anything else None


_recorder: _Recorder | None = None
#: The non-transactional revision being run, if any (for the engine's failure message).
running_non_transactional: str | None = None


def companion_sql_path(revision_file: str | Path) -> Path:
    """The ``.sql`` file that belongs to a revision: same directory, same stem."""
    return Path(revision_file).with_suffix(".sql")


def register_hashed_sql(revision_file: str | Path, sql: str | None) -> None:
    """Remember the normalised ``.sql`` text the engine checksummed for this revision file."""
    key = Path(revision_file).resolve()
    if sql is None:
        _HASHED_SQL.pop(key, None)
    else:
        _HASHED_SQL[key] = sql


def start_recording() -> None:
    """Start a fresh digest of the SQL sent for one revision."""
    global _recorder, running_non_transactional
    _recorder = _Recorder()
    running_non_transactional = None


def sent_digest() -> str | None:
    """``sha256:<hex>`` of every text sent since :func:`start_recording` (``None`` when nothing
    was sent); recording stops."""
    global _recorder
    recorder, _recorder = _recorder, None
    return recorder.digest() if recorder is not None else None


def execute_sql(sql: str) -> None:
    """Execute raw SQL in the current migration transaction (or print it in offline mode)."""
    if _recorder is not None:
        _recorder.update(sql)
    context = op.get_context()
    if context.as_sql:
        output = sql.rstrip()
        if not output.endswith(";"):
            output += ";"
        context.impl.static_output(output)
        return
    dbapi_connection = op.get_bind().connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        # The server must split and read the text the way the lints (pglast), the reviewers and
        # statement_pieces() do: with standard_conforming_strings off (PGOPTIONS, a role or
        # database setting) "'a\\''; DROP ...; --'" is one literal to them and a DROP to the
        # server (red team, ADR 0100).
        cursor.execute(_PIN_LEXER_SQL)
        cursor.execute(sql)
    finally:
        cursor.close()


def _read_sql(revision_file: str | Path) -> str:
    """The hashed ``.sql`` text the engine registered, else the file normalised the same way."""
    registered = _HASHED_SQL.get(Path(revision_file).resolve())
    if registered is not None:
        return registered
    path = companion_sql_path(revision_file)
    if not path.is_file():
        raise RevisionSqlError(
            f"revision {Path(revision_file).stem}: its SQL file {path} is missing "
            f"({Path(revision_file).name} runs it); add the .sql file or remove the revision"
        )
    text = path.read_text(encoding="utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def statement_pieces(sql: str) -> list[str]:
    """``sql`` cut at the start of each statement (the PostgreSQL parser finds them, so
    semicolons in strings, comments and dollar quotes do not count). Each piece holds one
    statement with the comments around it; the pieces joined are exactly ``sql``."""
    import pglast

    try:
        slices = list(pglast.split(sql, only_slices=True))
    except pglast.parser.ParseError:
        slices = list(pglast.split(sql, with_parser=False, only_slices=True))
    starts = [0] + [s.start for s in slices[1:]]
    ends = [*starts[1:], len(sql)]
    return [sql[a:b] for a, b in zip(starts, ends, strict=True)] if slices else []


def _quoted(*parts: str | None) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts if part)


def _plain(*parts: str | None) -> str:
    return ".".join(part for part in parts if part)


def _rerunnable() -> tuple[type[pg_ast.Node], ...]:
    """Statement kinds a non-transactional revision may hold: each can be sent again after an
    interruption (CREATE/DROP INDEX CONCURRENTLY are checked against the catalog first)."""
    from pglast import ast as pg_ast

    return (
        pg_ast.IndexStmt,
        pg_ast.DropStmt,
        pg_ast.ReindexStmt,
        pg_ast.CommentStmt,
        pg_ast.VacuumStmt,
    )


def _statement(piece: str) -> pg_ast.Node:
    import pglast

    (raw,) = pglast.parse_sql(piece)
    assert raw.stmt is not None
    return raw.stmt


def _refuse_unsafe(revision: str, pieces: list[str]) -> list[pg_ast.Node]:
    import pglast
    from pglast import ast as pg_ast
    from pglast import enums as pg_enums

    nodes: list[pg_ast.Node] = []
    for piece in pieces:
        statement = " ".join(piece.split())
        try:
            node = _statement(piece)
        except pglast.parser.ParseError as exc:
            raise RevisionSqlError(
                f"revision {revision}: cannot parse {statement!r}: {exc}"
            ) from None
        safe = isinstance(node, _rerunnable())
        if isinstance(node, pg_ast.IndexStmt) and not node.idxname:
            raise RevisionSqlError(
                f"revision {revision} is non-transactional and {statement!r} builds an index "
                "without a name: name it, so that a rerun after an interruption finds it"
            )
        index = pg_enums.ObjectType.OBJECT_INDEX
        if isinstance(node, pg_ast.DropStmt) and node.removeType != index:
            safe = False
        if not safe:
            raise RevisionSqlError(
                f"revision {revision} is non-transactional, but {statement!r} cannot be re-run "
                "safely after an interruption; move it to a transactional revision "
                "(only CREATE/DROP INDEX CONCURRENTLY, REINDEX, COMMENT, VACUUM and ANALYZE "
                "belong in a non-transactional one)"
            )
        nodes.append(node)
    return nodes


def _already_in_effect(cursor: Any, node: pg_ast.Node) -> bool:
    """After an interruption: is what this statement does already there (so it is not sent)?"""
    from pglast import ast as pg_ast

    if isinstance(node, pg_ast.IndexStmt) and node.concurrent and node.relation is not None:
        table = _quoted(node.relation.schemaname, node.relation.relname)
        row = cursor.execute(
            "SELECT i.indisvalid FROM pg_catalog.pg_index i "
            "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%s) AND c.relname = %s "
            "AND c.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class "
            "WHERE oid = to_regclass(%s))",
            (table, node.idxname, table),
        ).fetchone()
        return bool(row and row[0])
    if isinstance(node, pg_ast.DropStmt) and not node.missing_ok:
        gone = True
        for names in node.objects or ():
            name = _quoted(*(part.sval for part in names))
            found = cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            gone = gone and not (found and found[0])
        return gone
    return False


def run_revision_sql(revision_file: str | Path, *, transactional: bool = True) -> None:
    """Execute the revision's companion ``.sql`` file (``0001_init.py`` -> ``0001_init.sql``).

    ``transactional=False`` is the explicit opt-out for statements that cannot run in a
    transaction (``CREATE INDEX CONCURRENTLY``): the statements then run one by one in autocommit
    mode, a rerun after an interruption skips what is already done, and the engine refuses to
    continue if an INVALID index is left behind.
    """
    sql = _read_sql(revision_file)
    if transactional:
        execute_sql(sql)
        return
    global running_non_transactional
    revision = Path(revision_file).stem
    pieces = statement_pieces(sql)
    if not pieces:  # comments and blank lines only: nothing to send, the text is accounted for
        if _recorder is not None:
            _recorder.update(sql)
        return
    nodes = _refuse_unsafe(revision, pieces)
    context = op.get_context()
    running_non_transactional = revision
    with context.autocommit_block():
        for piece, node in zip(pieces, nodes, strict=True):
            if not context.as_sql:
                dbapi_connection = op.get_bind().connection.dbapi_connection
                assert dbapi_connection is not None
                cursor = dbapi_connection.cursor()
                try:
                    in_effect = _already_in_effect(cursor, node)
                finally:
                    cursor.close()
                if in_effect:
                    # Counted as sent: its effect is in the catalog (ADR 0056).
                    if _recorder is not None:
                        _recorder.update(piece)
                    continue
            execute_sql(piece)
