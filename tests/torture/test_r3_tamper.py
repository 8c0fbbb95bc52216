"""R3 at full strength: tampering with ANY applied revision of the real chain is refused.

The real ``alembic/versions`` are copied into a throw-away tree and migrated to head; then a new
pending revision is added. For every real revision file, ``.py`` and ``.sql``, each kind of edit
is made in turn and ``alembic upgrade head`` must refuse: exit status not 0, a message naming the
revision's file, both checksums and the fix, and nothing executed. "Nothing executed" is observed,
not assumed: the pending revision and every tampered ``.sql`` call ``nextval`` on a canary
sequence (sequence increments survive a rollback, so even DDL that ran and was rolled back would
show), and the catalog fingerprint, ledger and ``alembic_version`` are compared before/after.

The harness proves it can fail: once every file is restored, the same command applies the
pending revision and the canary counts exactly one call.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema.migration.checksum import revision_checksum
from tests.migration.conftest import RevisionTree, make_tree
from tests.torture import support

pytestmark = [pytest.mark.integration, pytest.mark.migration]

CANARY = "SELECT pg_catalog.nextval('public.t_tamper_canary');"

Edit = Callable[[str, random.Random], str]


def _append_statement(text: str, rng: random.Random) -> str:
    del rng
    return text + f"\n{CANARY}\nGRANT ALL ON SCHEMA public TO PUBLIC;\n"


def _change_one_character(text: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(text) if ch.isalnum()]
    return _replace_at(text, rng.choice(positions))


def _replace_at(text: str, at: int) -> str:
    replacement = "X" if text[at] != "X" else "Y"
    return text[:at] + replacement + text[at + 1 :]


def _delete_a_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    del lines[rng.choice(candidates)]
    return "".join(lines)


def _add_trailing_blank(text: str, rng: random.Random) -> str:
    """Even a trailing blank is an edit: only BOM and CRLF are normalised away."""
    lines = text.splitlines(keepends=True)
    at = rng.randrange(len(lines))
    lines[at] = lines[at].rstrip("\n") + " \n"
    return "".join(lines)


# Edits of the thin .py files keep the module importable (a module that no longer imports is
# tested on its own below): a new statement, a changed docstring character, a removed line.
def _py_append_statement(text: str, rng: random.Random) -> str:
    del rng
    return text + "\nTAMPERED = True\n"


def _py_change_docstring_character(text: str, rng: random.Random) -> str:
    end = text.index('"""', 3)
    positions = [i for i in range(3, end) if text[i].isalnum()]
    return _replace_at(text, rng.choice(positions))


def _py_delete_a_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if line.startswith(("depends_on", "branch_"))]
    candidates += [i for i, line in enumerate(lines) if not line.strip()]
    del lines[rng.choice(candidates)]
    return "".join(lines)


EDITS: dict[str, dict[str, Edit]] = {
    ".sql": {
        "append-statement": _append_statement,
        "change-one-character": _change_one_character,
        "delete-a-line": _delete_a_line,
        "trailing-blank": _add_trailing_blank,
    },
    ".py": {
        "append-statement": _py_append_statement,
        "change-one-character": _py_change_docstring_character,
        "delete-a-line": _py_delete_a_line,
        "trailing-blank": _add_trailing_blank,
    },
}
EDIT_KINDS = 4


def _prepare(
    root: Path, scratch: support.Scratch
) -> tuple[RevisionTree, list[support.RealRevision]]:
    tree = make_tree(root, scratch.url)
    copied = support.copy_real_revisions(tree.versions)
    tree.revisions = [rev.revision for rev in copied]
    migrated = tree.alembic("upgrade", "head")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with psycopg.connect(scratch.conninfo, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE public.t_tamper_canary")
    tree.add("pending", f"{CANARY}\nCREATE TABLE public.t_pending (id int);\n")
    return tree, copied


def _observe(conninfo: str) -> tuple[Any, ...]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        canary = conn.execute("SELECT last_value, is_called FROM public.t_tamper_canary").fetchone()
        ledger = conn.execute(
            "SELECT version, checksum, applied_at FROM public.schema_migrations ORDER BY 1"
        ).fetchall()
        state = support.migration_state(conn)
        fingerprint = support.catalog_fingerprint(conn, include_engine_tables=True)
    return canary, ledger, state.alembic_version, fingerprint


def _assert_refused(
    tree: RevisionTree,
    revision: support.RealRevision,
    recorded: str,
    before: tuple[Any, ...],
    conninfo: str,
    context: str,
) -> None:
    result = tree.alembic("upgrade", "head")
    message = result.stdout + result.stderr
    assert result.returncode != 0, f"tampering was not refused ({context}):\n{message}"
    assert "refusing to migrate; nothing was applied" in message, context
    assert f"applied revision {revision.revision} was edited" in message, context
    assert f"alembic/versions/{revision.py.name}" in message, f"file not named ({context})"
    assert recorded in message, f"recorded checksum missing ({context})"
    assert revision_checksum(revision.py) in message, f"actual checksum missing ({context})"
    assert "immutable" in message and "add a new revision" in message, context
    assert "applied 0" not in message, context
    after = _observe(conninfo)
    assert after[0] == before[0], f"a revision ran before the refusal ({context})"
    assert after[1:3] == before[1:3], f"ledger or alembic_version changed ({context})"
    assert support.fingerprint_diff(before[3], after[3]) == [], f"schema changed ({context})"


def _sampled(count: int, every: int) -> list[int]:
    """Indexes of the revisions a run tampers with: every `every`-th one and always the newest."""
    return sorted({*range(0, count, every), count - 1})


def _tamper_every_file(
    pg_server: Any, tmp_path: Path, edits_per_file: int, name: str, every: int = 1
) -> int:
    seed = support.run_seed(name)
    rng = random.Random(seed)
    refusals = 0
    with support.scratch_database(pg_server, "t_torture_r3") as scratch:
        tree, copied = _prepare(tmp_path / "tree", scratch)
        before = _observe(scratch.conninfo)
        recorded = {row[0]: row[1] for row in before[1]}
        sampled = set(_sampled(len(copied), every))
        for number, revision in enumerate(copied):
            if number not in sampled:
                continue
            for path in (revision.py, revision.sql):
                original = path.read_bytes()
                edits = EDITS[path.suffix]
                names = list(edits)
                chosen = (
                    names
                    if edits_per_file >= len(names)
                    else [names[(number * 2 + (path == revision.sql)) % len(names)]]
                )
                for edit in chosen:
                    context = f"seed {seed}, {path.name}, {edit}"
                    path.write_text(edits[edit](original.decode("utf-8"), rng), encoding="utf-8")
                    try:
                        assert revision_checksum(revision.py) != recorded[revision.revision]
                        _assert_refused(
                            tree,
                            revision,
                            recorded[revision.revision],
                            before,
                            scratch.conninfo,
                            context,
                        )
                        refusals += 1
                    finally:
                        path.write_bytes(original)

        # Every file restored byte for byte: the same command now applies the pending revision,
        # and the canary sees exactly that one revision run.
        applied = tree.alembic("upgrade", "head")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"applied {tree.revisions[-1]}" in applied.stdout
        canary, *_ = _observe(scratch.conninfo)
        assert canary == (1, True), "the canary must count the pending revision's one run"
    return refusals


def test_any_edit_of_any_real_revision_file_is_refused_before_any_ddl(
    pg_server: Any, tmp_path: Path
) -> None:
    # Every third revision and the newest, one edit kind per file (rotating over the kinds), so
    # the default run does not grow with every revision; the slow variant below edits every
    # file of every revision in every way.
    files = 2 * len(_sampled(len(support.real_revisions()), 3))
    assert _tamper_every_file(pg_server, tmp_path, 1, "r3-small", every=3) == files


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_kind_of_edit_of_every_real_revision_file_is_refused(
    pg_server: Any, tmp_path: Path
) -> None:
    files = 2 * len(support.real_revisions())
    assert _tamper_every_file(pg_server, tmp_path, EDIT_KINDS, "r3-full") == files * EDIT_KINDS


def test_crlf_and_bom_copies_of_the_real_revisions_are_not_edits(
    pg_server: Any, tmp_path: Path
) -> None:
    """The other direction: what the checksum normalises away (a Windows checkout: BOM and
    CRLF) must not be refused, or developers would learn to ignore the refusal."""
    with support.scratch_database(pg_server, "t_torture_r3") as scratch:
        tree, copied = _prepare(tmp_path / "tree", scratch)
        for revision in copied:
            for path in (revision.py, revision.sql):
                path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
        result = tree.alembic("upgrade", "head")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"applied {tree.revisions[-1]}" in result.stdout


@pytest.mark.parametrize(
    "damage",
    ["\nSELECT 1;\n", "\nraise RuntimeError('tampered')\n"],
    ids=["syntax-error", "raises-on-import"],
)
def test_an_applied_revision_module_that_no_longer_imports_is_named(
    pg_server: Any, tmp_path: Path, damage: str
) -> None:
    """A botched edit can leave an applied revision's .py unimportable. The run must still be
    refused before any DDL, and the message must name the broken file - not claim that every
    applied revision file was deleted."""
    with support.scratch_database(pg_server, "t_torture_r3") as scratch:
        tree, copied = _prepare(tmp_path / "tree", scratch)
        before = _observe(scratch.conninfo)
        broken = copied[len(copied) // 2]
        broken.py.write_text(broken.py.read_text() + damage)

        result = tree.alembic("upgrade", "head")

        message = result.stdout + result.stderr
        assert result.returncode != 0
        after = _observe(scratch.conninfo)
        assert after[0] == before[0] and after[1:3] == before[1:3]
        assert support.fingerprint_diff(before[3], after[3]) == []
        assert f"alembic/versions/{broken.py.name}" in message, (
            f"the message does not name the broken file {broken.py.name}:\n{message}"
        )
        others = [rev.revision for rev in copied if rev is not broken]
        assert not any(
            f"applied revision {rev} has no revision file" in message for rev in others
        ), f"intact revision files are reported as deleted:\n{message}"
