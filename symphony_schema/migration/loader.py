"""Revision modules compiled from the exact source text the checksum covers (ADR 0055).

Alembic imports revision files through ``importlib``'s ``SourceFileLoader``, which prefers a
``__pycache__/*.pyc`` beside the file: a ``.pyc`` compiled with
``invalidation_mode=UNCHECKED_HASH`` from *other* source runs instead of the ``.py``, while the
ledger records the ``.py``'s checksum. The engine therefore replaces the revision map of the
``ScriptDirectory`` it is given with one whose modules are compiled here, with ``compile()``,
from the normalised text :func:`~symphony_schema.migration.checksum.read_revision` hashed. No
bytecode is read or written for revisions, and the ``.sql`` text that was hashed is the text the
SQL runner sends.
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap

from symphony_schema.migration import sql as sql_runner
from symphony_schema.migration.checksum import RevisionSource, RevisionSourceError, read_revision

# Alembic's own rule for which files in versions/ are revisions (alembic.script.base).
_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")


def compile_revision(source: RevisionSource) -> types.ModuleType:
    """A module executed from ``source.py_text`` (never from bytecode)."""
    path = source.py_path
    module = types.ModuleType(re.sub(r"\W", "_", path.name))
    module.__file__ = str(path)
    try:
        code = compile(source.py_text, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise RevisionSourceError(path, f"line {exc.lineno}: {exc.msg}") from None
    exec(code, module.__dict__)
    module.__symphony_source__ = source  # type: ignore[attr-defined]
    return module


def _recording(upgrade: Callable[..., Any]) -> Callable[..., Any]:
    """``upgrade`` with a fresh digest of the SQL it sends (checked by the engine)."""

    @functools.wraps(upgrade)
    def run(*args: Any, **kwargs: Any) -> Any:
        sql_runner.start_recording()
        return upgrade(*args, **kwargs)

    return run


def _source_revisions(scripts: ScriptDirectory) -> Iterator[Script]:
    if scripts.sourceless:
        raise RevisionSourceError(
            Path(scripts.dir),
            "has sourceless = true in alembic.ini: the Symphony engine runs revisions from "
            "their checksummed source only; remove the setting",
        )
    seen: set[Path] = set()
    for versions in scripts._version_locations:
        if not versions.exists():
            continue
        for file_path in Script._list_py_dir(scripts, versions):
            real_path = Path(file_path).resolve()
            if real_path in seen or not _REVISION_FILE.match(real_path.name):
                continue
            seen.add(real_path)
            source = read_revision(real_path)
            module = compile_revision(source)
            if not hasattr(module, "revision"):
                raise RevisionSourceError(real_path, "does not declare revision = '...'")
            upgrade = getattr(module, "upgrade", None)
            if callable(upgrade):
                module.upgrade = _recording(upgrade)  # type: ignore[attr-defined]
            sql_runner.register_hashed_sql(real_path, source.sql_text)
            yield Script(module, module.revision, real_path)


def use_source_only(scripts: ScriptDirectory) -> ScriptDirectory:
    """Make ``scripts`` load its revisions through :func:`compile_revision` from now on."""
    scripts.revision_map = RevisionMap(functools.partial(_source_revisions, scripts))
    return scripts


def source_of(script: Script) -> RevisionSource | None:
    """The source a revision was compiled from, when it was loaded by this module."""
    source = getattr(script.module, "__symphony_source__", None)
    return source if isinstance(source, RevisionSource) else None
