"""Lints on the revisions' SQL (``lint:<name>``), decided with the real PostgreSQL parser.

Every lint takes the loaded revisions of *any* versions directory (so tests run them on
fixtures) and the repository root (for the sqlfluff / squawk configuration), and returns every
problem it finds as ``<file>:<line>: <what is wrong and how to fix it>``.

A file the parser cannot read fails every parser-based lint (fail closed): a lint that cannot
look has not proven anything.
"""

from __future__ import annotations

import ast as pyast
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pglast
from pglast import ast, enums

from symphony_schema.invariants import external_sql_lints
from symphony_schema.invariants.revisions import RevisionSql, code_fragments, code_text
from symphony_schema.migration.checksum import normalise

LintFn = Callable[[Sequence[RevisionSql], Path], list[str]]

#: Schemas of the archived pre-Symphony outbox. Nothing may reference them: there is no legacy
#: to preserve (docs/contract/schema.md §0), so a reference is a copy-paste from an old system.
LEGACY_SCHEMAS = (
    "legacy",
    "archive",
    "archived",
    "symphony_legacy",
    "symphony_archive",
    "outbox_legacy",
    "payments_legacy",
)
_LEGACY_REF_RE = re.compile(
    r'(?<![\w$."])"?(' + "|".join(LEGACY_SCHEMAS) + r')"?\s*\.\s*"?[A-Za-z_]', re.IGNORECASE
)

#: Statements PostgreSQL refuses inside a transaction block (besides transaction control).
_NON_TRANSACTIONAL = {
    ast.CreatedbStmt: "CREATE DATABASE",
    ast.DropdbStmt: "DROP DATABASE",
    ast.AlterSystemStmt: "ALTER SYSTEM",
    ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
    ast.DropTableSpaceStmt: "DROP TABLESPACE",
}
_DYNAMIC_CONCURRENTLY_RE = re.compile(
    r"\b(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX|DETACH\s+PARTITION)\b[^;]*\bCONCURRENTLY\b",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class _SecretPattern:
    kind: str
    regex: re.Pattern[str]


_SECRET_PATTERNS = (
    _SecretPattern("password literal", re.compile(r"\bPASSWORD\s+(E?'{1,2}|\$\w*\$)(?!')", re.I)),
    _SecretPattern(
        "password from a format() placeholder", re.compile(r"\bPASSWORD\s+%[sIL]", re.I)
    ),
    _SecretPattern("SCRAM verifier", re.compile(r"SCRAM-SHA-256\$\d+:")),
    _SecretPattern("md5 password hash", re.compile(r"\bmd5[0-9a-f]{32}\b")),
    _SecretPattern("private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    _SecretPattern("AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    _SecretPattern(
        "GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})")
    ),
    _SecretPattern("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    _SecretPattern(
        "JSON web token",
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    _SecretPattern(
        "credentials in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:[^\s@/'\"]+@", re.I)
    ),
    _SecretPattern(
        "secret assigned a literal",
        re.compile(
            # password_encryption names a hashing method, not a secret
            r"\b(?!password_encryption\b)\w*"
            r"(api[_-]?key|secret|token|passw(or)?d|pwd|access[_-]?key|private[_-]?key)\w*"
            r"\s*(=|:=|=>|:|\bTO\b)\s*E?'[^'\s]{6,}'",
            re.I,
        ),
    ),
)


#: Extra patterns for revision ``.py`` files, where strings are double-quoted too.
_PY_SECRET_PATTERNS = (
    _SecretPattern(
        "secret assigned a literal",
        re.compile(
            r"\b(?!password_encryption\b)\w*"
            r"(api[_-]?key|secret|token|passw(or)?d|pwd|access[_-]?key|private[_-]?key)\w*"
            r"\s*(=|:=|:)\s*[rbuRBU]?\"[^\"\s]{6,}\"",
            re.I,
        ),
    ),
    _SecretPattern("password literal", re.compile(r"\bPASSWORD\s+(E?'|\\?\"|%[sL])", re.I)),
)


# ------------------------------------------------------------------------------------------------
# Parsing helpers
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    revision: RevisionSql
    node: ast.Node
    offset: int  # character offset of the statement's first token
    text: str

    @property
    def where(self) -> str:
        return self.revision.where(self.offset)


def _statements(revision: RevisionSql) -> list[_Statement]:
    encoded = revision.sql.encode("utf-8")
    out = []
    for raw in pglast.parse_sql(revision.sql):
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(encoded)
        offset = len(encoded[:start].decode("utf-8", errors="replace"))
        out.append(
            _Statement(
                revision,
                raw.stmt or ast.RawStmt(),
                offset,
                encoded[start:end].decode("utf-8", errors="replace"),
            )
        )
    return out


def _line_of_byte(revision: RevisionSql, byte_offset: int) -> int:
    return revision.sql.encode("utf-8")[:byte_offset].count(b"\n") + 1


def _parsed(
    revisions: Sequence[RevisionSql], problems: list[str]
) -> Iterator[tuple[RevisionSql, list[_Statement]]]:
    """Each revision with its statements; unparsable files become problems."""
    for revision in revisions:
        try:
            statements = _statements(revision)
        except pglast.parser.ParseError as exc:
            location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
            line = _line_of_byte(revision, location) if location is not None else "?"
            problems.append(
                f"{revision.name}:{line}: PostgreSQL cannot parse this file ({exc}); the lint "
                "cannot decide, fix the syntax"
            )
            continue
        yield revision, statements


def walk(node: Any) -> Iterator[ast.Node]:
    """Every AST node under ``node`` (itself included), depth first."""
    if isinstance(node, ast.Node):
        yield node
        for klass in type(node).__mro__:
            for name in getattr(klass, "__slots__", ()):
                yield from walk(getattr(node, name, None))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from walk(item)


def _plpgsql_nodes(statement: _Statement) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(node type, node)`` of every PL/pgSQL statement of a ``DO`` block."""
    try:
        parsed = pglast.parse_plpgsql(statement.text)
    except pglast.parser.ParseError:
        return
    yield from _json_walk(parsed)


def _json_walk(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.startswith("PLpgSQL_") and isinstance(inner, dict):
                yield key, inner
            yield from _json_walk(inner)
    elif isinstance(value, list):
        for item in value:
            yield from _json_walk(item)


# ------------------------------------------------------------------------------------------------
# lint:no-transaction-control
# ------------------------------------------------------------------------------------------------


def lint_no_transaction_control(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """No top-level ``BEGIN``/``COMMIT``/``ROLLBACK``/``SAVEPOINT``/... and no ``COMMIT`` or
    ``ROLLBACK`` inside a ``DO`` block: the engine owns the transaction of each revision."""
    problems: list[str] = []
    for _revision, statements in _parsed(revisions, problems):
        for statement in statements:
            if isinstance(statement.node, ast.TransactionStmt):
                verb = statement.text.split(None, 1)[0].upper() if statement.text else "?"
                problems.append(
                    f"{statement.where}: top-level transaction control ({verb}); the migration "
                    "engine commits each revision with its ledger row, remove it"
                )
            elif isinstance(statement.node, ast.DoStmt):
                for kind, node in _plpgsql_nodes(statement):
                    if kind in ("PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"):
                        line = (
                            statement.revision.line_of(statement.offset)
                            + int(node.get("lineno", 1))
                            - 1
                        )
                        verb = kind.rsplit("_", 1)[1].upper()
                        problems.append(
                            f"{statement.revision.name}:{line}: {verb} inside a DO block ends the "
                            "engine's transaction; remove it"
                        )
    return problems


# ------------------------------------------------------------------------------------------------
# lint:definer-search-path
# ------------------------------------------------------------------------------------------------


@dataclass
class _FunctionState:
    where: str
    definer: bool = False
    search_path: tuple[str, ...] | None = None  # None: not pinned
    how: str = "no SET search_path"


def _type_key(type_name: ast.TypeName) -> str:
    names = [str(part.sval) for part in type_name.names or () if isinstance(part, ast.String)]
    if len(names) == 2 and names[0] in ("pg_catalog", "public"):
        names = names[1:]
    return ".".join(names) + "[]" * len(type_name.arrayBounds or ())


def _function_name(parts: Sequence[Any]) -> str:
    names = [str(part.sval) for part in parts if isinstance(part, ast.String)]
    return ".".join(names if len(names) > 1 else ["public", *names])


_IDENTITY_MODES = {
    enums.FunctionParameterMode.FUNC_PARAM_IN,
    enums.FunctionParameterMode.FUNC_PARAM_INOUT,
    enums.FunctionParameterMode.FUNC_PARAM_VARIADIC,
    enums.FunctionParameterMode.FUNC_PARAM_DEFAULT,
}


def _create_key(node: ast.CreateFunctionStmt) -> str:
    types = [
        _type_key(param.argType)
        for param in node.parameters or ()
        if param.mode in _IDENTITY_MODES and param.argType is not None
    ]
    return f"{_function_name(node.funcname or ())}({','.join(types)})"


def _apply_set(state: _FunctionState, setting: ast.VariableSetStmt) -> None:
    kind = setting.kind
    if kind == enums.VariableSetKind.VAR_RESET_ALL:
        state.search_path, state.how = None, "RESET ALL"
        return
    if setting.name != "search_path":
        return
    if kind == enums.VariableSetKind.VAR_SET_VALUE:
        values = []
        for arg in setting.args or ():
            val = getattr(arg, "val", None)
            values.append(str(getattr(val, "sval", "")).strip().strip('"'))
        state.search_path, state.how = tuple(values), "SET search_path = " + ", ".join(values)
    elif kind == enums.VariableSetKind.VAR_SET_CURRENT:
        state.search_path, state.how = None, "SET search_path FROM CURRENT (the deployer's path)"
    else:
        state.search_path, state.how = None, "RESET/DEFAULT search_path"


def _apply_options(state: _FunctionState, options: Sequence[Any] | None) -> None:
    for option in options or ():
        if not isinstance(option, ast.DefElem):
            continue
        if option.defname == "security" and isinstance(option.arg, ast.Boolean):
            state.definer = bool(option.arg.boolval)
        elif option.defname == "set" and isinstance(option.arg, ast.VariableSetStmt):
            _apply_set(state, option.arg)


def _alter_targets(node: ast.AlterFunctionStmt, functions: dict[str, _FunctionState]) -> list[str]:
    func = node.func
    if func is None:
        return []
    name = _function_name(func.objname or ())
    if func.args_unspecified:
        return [key for key in functions if key.split("(", 1)[0] == name]
    types = [_type_key(arg) for arg in func.objargs or ()]
    return [f"{name}({','.join(types)})"]


def lint_definer_search_path(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """Every ``SECURITY DEFINER`` function, as the revisions leave it (``CREATE [OR REPLACE]``
    then any ``ALTER FUNCTION``), pins ``search_path`` with ``pg_temp`` listed last."""
    problems: list[str] = []
    functions: dict[str, _FunctionState] = {}
    for _revision, statements in _parsed(revisions, problems):
        for statement in statements:
            node = statement.node
            if isinstance(node, ast.CreateFunctionStmt):
                state = _FunctionState(statement.where)
                _apply_options(state, node.options)
                functions[_create_key(node)] = state
            elif isinstance(node, ast.AlterFunctionStmt):
                for key in _alter_targets(node, functions):
                    state = functions.setdefault(key, _FunctionState(statement.where))
                    state.where = statement.where
                    _apply_options(state, node.actions)
    for key, state in functions.items():
        if not state.definer:
            continue
        if state.search_path is None:
            problems.append(
                f"{state.where}: SECURITY DEFINER function {key} does not pin search_path "
                f"({state.how}); add SET search_path = pg_catalog, public, pg_temp"
            )
        elif not state.search_path or state.search_path[-1] != "pg_temp":
            problems.append(
                f"{state.where}: SECURITY DEFINER function {key} has {state.how}: pg_temp must be "
                "listed last, or PostgreSQL searches it first and a caller can shadow a table "
                "with a temporary one"
            )
    return problems


# ------------------------------------------------------------------------------------------------
# lint:no-secrets
# ------------------------------------------------------------------------------------------------


def lint_no_secrets(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """No passwords, password hashes, keys or tokens in revisions (comments included). Login
    passwords are set outside migrations (``symphony-schema set-login-password``)."""
    problems: list[str] = []
    for revision in revisions:
        found: set[tuple[int, str]] = set()
        for pattern in _SECRET_PATTERNS:
            for match in pattern.regex.finditer(revision.sql):
                found.add((revision.line_of(match.start()), pattern.kind))
        try:
            statements = _statements(revision)
        except pglast.parser.ParseError:
            statements = []  # the text patterns above still ran; other lints report the syntax
        for statement in statements:
            if isinstance(statement.node, ast.CreateRoleStmt | ast.AlterRoleStmt):
                for option in statement.node.options or ():
                    if option.defname == "password" and option.arg is not None:
                        found.add((revision.line_of(statement.offset), "password literal"))
        problems += _secret_problems(revision.name, found)
    for directory in sorted({revision.path.parent for revision in revisions}):
        for path in sorted(directory.glob("*.py")):
            text = path.read_text(encoding="utf-8-sig", errors="replace")
            found = set()
            for pattern in (*_SECRET_PATTERNS, *_PY_SECRET_PATTERNS):
                for match in pattern.regex.finditer(text):
                    found.add((text.count("\n", 0, match.start()) + 1, pattern.kind))
            problems += _secret_problems(path.name, found)
    return problems


def _secret_problems(name: str, found: set[tuple[int, str]]) -> list[str]:
    return [
        f"{name}:{line}: {kind} (value not shown); secrets never belong in migrations: remove "
        "it, rotate it, and set it from the environment at deploy time"
        for line, kind in sorted(found)
    ]


# ------------------------------------------------------------------------------------------------
# lint:no-concurrently-in-transaction
# ------------------------------------------------------------------------------------------------


def _concurrent_statement(node: ast.Node) -> str | None:
    for inner in walk(node):
        if isinstance(inner, ast.IndexStmt) and inner.concurrent:
            return "CREATE INDEX CONCURRENTLY"
        if isinstance(inner, ast.DropStmt) and inner.concurrent:
            return "DROP INDEX CONCURRENTLY"
        if isinstance(inner, ast.ReindexStmt) and any(
            getattr(param, "defname", None) == "concurrently" for param in inner.params or ()
        ):
            return "REINDEX CONCURRENTLY"
        if isinstance(inner, ast.PartitionCmd) and inner.concurrent:
            return "DETACH PARTITION CONCURRENTLY"
        if isinstance(inner, ast.VacuumStmt) and inner.is_vacuumcmd:
            return "VACUUM"
        for klass, label in _NON_TRANSACTIONAL.items():
            if isinstance(inner, klass):
                return label
    return None


def lint_no_concurrently_in_transaction(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """A transactional revision contains nothing PostgreSQL refuses in a transaction block
    (``CREATE INDEX CONCURRENTLY`` and friends), not even as dynamic SQL."""
    problems: list[str] = []
    fix = (
        "move it to its own revision whose .py calls run_revision_sql(__file__, "
        "transactional=False)"
    )
    for revision, statements in _parsed([r for r in revisions if r.transactional], problems):
        for statement in statements:
            label = _concurrent_statement(statement.node)
            if label:
                problems.append(f"{statement.where}: {label} in a transactional revision; {fix}")
        for offset, text in code_fragments(revision.sql):
            if text.startswith("'") and _DYNAMIC_CONCURRENTLY_RE.search(text):
                problems.append(
                    f"{revision.where(offset)}: CONCURRENTLY in dynamic SQL of a transactional "
                    f"revision; {fix}"
                )
    return problems


# ------------------------------------------------------------------------------------------------
# lint:no-legacy-references
# ------------------------------------------------------------------------------------------------


def lint_no_legacy_references(revisions: Sequence[RevisionSql], root: Path) -> list[str]:
    """No reference to the archived legacy schemas (:data:`LEGACY_SCHEMAS`) in code or dynamic
    SQL (comments may mention them), and no ``DROP ... IF EXISTS``: a forward-only chain knows
    exactly what exists, so ``IF EXISTS`` only serves to clean up legacy that is not there."""
    problems: list[str] = []
    legacy = set(LEGACY_SCHEMAS)
    for revision, statements in _parsed(revisions, problems):
        for match in _LEGACY_REF_RE.finditer(code_text(revision.sql)):
            problems.append(
                f"{revision.where(match.start())}: reference to archived legacy schema "
                f"{match.group(1)!r}; Symphony lives in schema public only"
            )
        for statement in statements:
            for node in walk(statement.node):
                schema = None
                if isinstance(node, ast.CreateSchemaStmt):
                    schema = node.schemaname
                elif isinstance(node, ast.VariableSetStmt) and node.name == "search_path":
                    values = {str(getattr(a.val, "sval", "")) for a in node.args or ()}
                    schema = next(iter(sorted(values & legacy)), None)
                if schema and schema.lower() in legacy:
                    problems.append(
                        f"{statement.where}: uses archived legacy schema {schema!r}; Symphony "
                        "lives in schema public only"
                    )
            if isinstance(statement.node, ast.DropStmt) and statement.node.missing_ok:
                problems.append(
                    f"{statement.where}: DROP ... IF EXISTS; there is no legacy to preserve and a "
                    "forward-only chain knows what exists: drop without IF EXISTS, or not at all"
                )
    return problems


# ------------------------------------------------------------------------------------------------
# lint:alembic-files (tree lint)
# ------------------------------------------------------------------------------------------------

#: Files allowed directly under ``alembic/`` besides ``versions/`` (ADR 0085).
SUPPORT_FILES = ("env.py", "script.py.mako", "README", "README.md", "README.rst")
#: ``flags`` of a pyc compiled with ``invalidation_mode=UNCHECKED_HASH`` (PEP 552): Python never
#: writes one by itself, and it runs whatever the source says.
_PYC_UNCHECKED_HASH = 0b01


def _git_listed(top: Path) -> list[str] | None:
    """Paths under ``top`` (relative to it) that git tracks or would add (untracked, not
    ignored); ``None`` when ``top`` is not inside a git work tree."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=top,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=top,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if listed.returncode != 0:
        raise RuntimeError(f"git ls-files in {top} failed: {listed.stderr.decode().strip()}")
    return sorted({name for name in listed.stdout.decode("utf-8").split("\0") if name})


def _python_written_cache(top: Path, relative: str) -> bool:
    """``relative`` is a ``__pycache__/<module>.<tag>.pyc`` of a ``.py`` beside that directory,
    of a kind Python writes itself (timestamp or checked hash, never unchecked hash)."""
    path = top / relative
    parts = Path(relative).parts
    if len(parts) < 2 or parts[-2] != "__pycache__" or not relative.endswith(".pyc"):
        return False
    source = path.parent.parent / (path.name.split(".", 1)[0] + ".py")
    if not source.is_file() or path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as handle:
        header = handle.read(8)
    if len(header) < 8:
        return False
    flags = int.from_bytes(header[4:8], "little")
    return flags & 0b11 != _PYC_UNCHECKED_HASH


def _allowed_alembic_file(relative: str, in_alembic: bool) -> bool:
    """A ``.py``/``.sql`` directly in ``versions/``, or a known support file of ``alembic/``."""
    parts = Path(relative).parts
    if in_alembic and len(parts) == 1:
        return parts[0] in SUPPORT_FILES
    revision_parts = parts[1:] if in_alembic else parts
    if in_alembic and parts[0] != "versions":
        return False
    return len(revision_parts) == 1 and Path(revision_parts[0]).suffix in (".py", ".sql")


def lint_alembic_files(versions_dir: Path, root: Path) -> list[str]:
    """Under ``alembic/`` (the parent of ``versions_dir``) there is nothing but revision pairs
    (``X.py`` with ``X.sql``, regular files directly in ``versions/``) and the known support files
    (:data:`SUPPORT_FILES`). It applies to an Alembic tree only: a directory of SQL that is not
    called ``versions`` (``invariants lint --dir`` on loose SQL files) has nothing to check.

    In a git checkout the files that count are those git tracks or would add: a committed
    ``__pycache__`` fails, a local one Python wrote (ignored by ``.gitignore``) does not. Outside
    a checkout every file counts, except bytecode caches of a kind Python writes itself.
    """
    in_alembic = versions_dir.name == "versions"
    if not in_alembic:
        return []
    top = versions_dir.parent
    label = top.name
    if not top.is_dir():
        return [f"{top} is not a directory"]
    listed = _git_listed(top)
    if listed is None:
        how = "outside a git checkout"
        names = sorted(
            str(path.relative_to(top))
            for path in top.rglob("*")
            if path.is_file() or path.is_symlink()
        )
        names = [n for n in names if not _python_written_cache(top, n)]
    else:
        how = "tracked by git or not ignored"
        names = listed
    problems = []
    allowed = []
    for name in names:
        shown = f"{label}/{name}"
        if not _allowed_alembic_file(name, in_alembic):
            what = (
                "compiled bytecode, which Python may run instead of the reviewed source"
                if name.endswith((".pyc", ".pyo")) or "__pycache__" in Path(name).parts
                else "not a revision .py/.sql pair in versions/ or a known support file "
                f"({', '.join(SUPPORT_FILES)})"
            )
            problems.append(f"{shown}: {what} ({how}); remove it (git rm --cached if committed)")
        elif (top / name).is_symlink():
            problems.append(
                f"{shown}: a symbolic link; revisions and support files must be regular files"
            )
        else:
            allowed.append(name)
    revision_files = {n for n in allowed if n not in SUPPORT_FILES or not in_alembic}
    stems: dict[str, set[str]] = {str(Path(n).with_suffix("")): set() for n in revision_files}
    for name in revision_files:
        stems[str(Path(name).with_suffix(""))].add(Path(name).suffix)
    for stem, suffixes in sorted(stems.items()):
        for have, want in ((".py", ".sql"), (".sql", ".py")):
            if suffixes == {have}:
                problems.append(
                    f"{label}/{stem}{have}: revision without its {want} (a revision is a "
                    f"{Path(stem).name}.py + .sql pair); add the {want} or remove the {have}"
                )
    return problems


# ------------------------------------------------------------------------------------------------
# lint:revision-py-runs-sql-only (tree lint)
# ------------------------------------------------------------------------------------------------

_RUNNER_IMPORT = ("symphony_schema.migration.sql", "run_revision_sql")
_REVISION_VARIABLES = ("revision", "down_revision", "branch_labels", "depends_on")


def _is_literal(node: Any) -> bool:
    try:
        value = pyast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    items = value if isinstance(value, tuple | list) else (value,)
    return all(item is None or isinstance(item, str) for item in items)


def _runner_call_problem(statement: pyast.stmt) -> str | None:
    """Why ``statement`` is not ``run_revision_sql(__file__[, transactional=False])``."""
    expected = "run_revision_sql(__file__) or run_revision_sql(__file__, transactional=False)"
    call = statement.value if isinstance(statement, pyast.Expr) else None
    if not isinstance(call, pyast.Call):
        return f"upgrade() may only call {expected}"
    if not (isinstance(call.func, pyast.Name) and call.func.id == "run_revision_sql"):
        return f"upgrade() calls {pyast.unparse(call.func)}; it may only call {expected}"
    first_ok = (
        len(call.args) == 1
        and isinstance(call.args[0], pyast.Name)
        and call.args[0].id == "__file__"
    )
    keywords_ok = all(
        k.arg == "transactional"
        and isinstance(k.value, pyast.Constant)
        and isinstance(k.value.value, bool)
        for k in call.keywords
    )
    if not (first_ok and keywords_ok and len(call.keywords) <= 1):
        return f"{pyast.unparse(call)} is not {expected}"
    return None


def _docstring(statement: pyast.stmt) -> bool:
    return (
        isinstance(statement, pyast.Expr)
        and isinstance(statement.value, pyast.Constant)
        and isinstance(statement.value.value, str)
    )


#: PEP 263's source encoding declaration (first or second line).
_CODING_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")

#: Annotation nodes that evaluate nothing but names (``str | None``, ``tuple[str, ...]``): an
#: annotation is executed with the module, so a call there would run code (red team, ADR 0100).
_ANNOTATION_NODES = (
    pyast.Name,
    pyast.Constant,
    pyast.Subscript,
    pyast.Tuple,
    pyast.BinOp,
    pyast.BitOr,
    pyast.Load,
)


def _annotation_problem(annotation: pyast.expr | None) -> str | None:
    if annotation is None:
        return None
    if all(isinstance(node, _ANNOTATION_NODES) for node in pyast.walk(annotation)):
        return None
    return (
        f"the annotation {pyast.unparse(annotation)} is evaluated when the module runs; "
        "annotations may only name types (str, None, str | None, tuple[str, ...])"
    )


def _engine_text(path: Path) -> tuple[str | None, list[str]]:
    """The text the engine compiles (UTF-8, BOM stripped, LF line ends: ADR 0055), and the
    problems that make the file's own reading differ from it: a source encoding declaration
    other than UTF-8 makes Python's parser (and the reviewer's editor) decode the bytes
    differently from the engine, which can hide a statement from this lint."""
    where = path.name
    raw = path.read_bytes()
    try:
        text = normalise(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [f"{where}:{line}: not valid UTF-8; revision files are UTF-8 text"]
    problems = []
    for number, line_text in enumerate(text.split("\n")[:2], start=1):
        match = _CODING_COOKIE.match(line_text)
        if match and match.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            problems.append(
                f"{where}:{number}: declares the source encoding {match.group(1)}; revisions "
                "are UTF-8 and the engine compiles them as UTF-8 whatever a coding line says"
            )
    return text, problems


def revision_py_problems(path: Path) -> list[str]:
    """Everything in a revision ``.py`` besides a docstring, the runner import, the four
    revision variables (literals) and ``def upgrade() -> None: run_revision_sql(__file__)``.
    The module is parsed from the text the engine compiles, not from the raw bytes."""
    where = path.name
    text, problems = _engine_text(path)
    if text is None:
        return problems
    try:
        tree = pyast.parse(text, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        return [*problems, f"{where}:{getattr(exc, 'lineno', '?')}: not valid Python ({exc})"]
    upgrades = 0
    for index, statement in enumerate(tree.body):
        line = f"{where}:{statement.lineno}"
        if index == 0 and _docstring(statement):
            continue
        if isinstance(statement, pyast.ImportFrom):
            names = [(a.name, a.asname) for a in statement.names]
            if statement.module == "__future__" and statement.level == 0:
                continue
            if (
                statement.level == 0
                and statement.module == _RUNNER_IMPORT[0]
                and names == [(_RUNNER_IMPORT[1], None)]
            ):
                continue
            problems.append(
                f"{line}: imports {statement.module or '.'}; a revision imports only "
                "run_revision_sql from symphony_schema.migration.sql"
            )
        elif isinstance(statement, pyast.Import):
            problems.append(
                f"{line}: imports {', '.join(a.name for a in statement.names)}; a revision "
                "imports only run_revision_sql from symphony_schema.migration.sql"
            )
        elif isinstance(statement, pyast.Assign | pyast.AnnAssign):
            targets = (
                statement.targets if isinstance(statement, pyast.Assign) else [statement.target]
            )
            names_ok = all(
                isinstance(t, pyast.Name) and t.id in _REVISION_VARIABLES for t in targets
            )
            if not names_ok or statement.value is None or not _is_literal(statement.value):
                problems.append(
                    f"{line}: only the literals {', '.join(_REVISION_VARIABLES)} may be "
                    "assigned in a revision"
                )
            if isinstance(statement, pyast.AnnAssign):
                problem = _annotation_problem(statement.annotation)
                if problem:
                    problems.append(f"{line}: {problem}")
        elif isinstance(statement, pyast.FunctionDef) and statement.name == "upgrade":
            upgrades += 1
            args = statement.args
            if statement.decorator_list or any(
                (args.posonlyargs, args.args, args.kwonlyargs, args.vararg, args.kwarg)
            ):
                problems.append(f"{line}: upgrade() takes no arguments and has no decorators")
            problem = _annotation_problem(statement.returns)
            if problem:
                problems.append(f"{line}: {problem}")
            body = statement.body[1:] if _docstring(statement.body[0]) else statement.body
            if len(body) != 1:
                problems.append(
                    f"{line}: upgrade() must consist of exactly one run_revision_sql(__file__) call"
                )
            for inner in body:
                problem = _runner_call_problem(inner)
                if problem:
                    problems.append(f"{where}:{inner.lineno}: {problem}")
        else:
            kind = type(statement).__name__
            name = getattr(statement, "name", None)
            problems.append(
                f"{line}: {kind}{' ' + name if name else ''} is not allowed; a revision .py only "
                "hands its .sql to run_revision_sql (the SQL is what is reviewed and checksummed)"
            )
    if upgrades != 1:
        problems.append(f"{where}:1: defines upgrade() {upgrades} times; exactly once")
    return problems


def lint_revision_py_runs_sql_only(versions_dir: Path, root: Path) -> list[str]:
    """Every revision ``.py`` does nothing but call the SQL runner (decided with ``ast``): no
    ``op.execute``, no other imports, no other code (:func:`revision_py_problems`)."""
    problems: list[str] = []
    for path in sorted(versions_dir.glob("*.py")):
        problems += revision_py_problems(path)
    return problems


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------

LINTS: dict[str, LintFn] = {
    "no-transaction-control": lint_no_transaction_control,
    "definer-search-path": lint_definer_search_path,
    "no-secrets": lint_no_secrets,
    "no-concurrently-in-transaction": lint_no_concurrently_in_transaction,
    "no-legacy-references": lint_no_legacy_references,
    "sqlfluff": external_sql_lints.lint_sqlfluff,
    "squawk": external_sql_lints.lint_squawk,
}

#: Lints on the files of the versions directory (and ``alembic/`` around it) rather than on the
#: parsed SQL: ``fn(versions_dir, root)``.
TreeLintFn = Callable[[Path, Path], list[str]]
TREE_LINTS: dict[str, TreeLintFn] = {
    "alembic-files": lint_alembic_files,
    "revision-py-runs-sql-only": lint_revision_py_runs_sql_only,
}
