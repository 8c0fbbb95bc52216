"""Issue 17 P5: ``alembic upgrade head`` start-up counts, so the engine imports lazily.

The PostgreSQL parser (``pglast``, ~0.15 s) is needed only by non-transactional revisions, and
the Core models only by ``alembic check`` / ``revision --autogenerate``.
"""

from __future__ import annotations

import subprocess
import sys

LAZY = ("pglast", "symphony_schema.models")


def test_importing_the_engine_leaves_the_parser_and_the_models_out() -> None:
    code = (
        "import sys; import symphony_schema.migration.engine; "
        f"print(','.join(m for m in {LAZY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"imported at start-up: {done.stdout.strip()}"


def test_the_parser_is_still_there_when_a_revision_needs_it() -> None:
    from symphony_schema.migration.sql import statement_pieces

    assert statement_pieces("SELECT 1; SELECT ';'") == ["SELECT 1; ", "SELECT ';'"]
