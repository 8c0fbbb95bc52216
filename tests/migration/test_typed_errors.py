"""Typed errors (issue 13 item 4, ADR 0111): callers catch what they mean; every refusal is a
SymphonyError (one line, exit 2 in the CLI) and an Alembic CommandError (FAILED: in alembic)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from alembic.util import CommandError

from symphony_schema.errors import (
    DeployLockBusy,
    InvalidIndexLeft,
    LedgerInvalid,
    MigrationRefused,
    RevisionEdited,
    RevisionMissing,
    SymphonyError,
)
from symphony_schema.migration import api, deploy_lock
from tests.migration.conftest import RevisionTree


def _in_process_upgrade(tree: RevisionTree, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    monkeypatch.setenv("SYMPHONY_PROJECT_ROOT", str(tree.root))
    monkeypatch.setenv("SYMPHONY_DATABASE_URL", tree.url)
    for name, value in extra.items():
        monkeypatch.setenv(f"SYMPHONY_{name.upper()}", value)
    api.upgrade(tree.url)


def test_every_refusal_is_a_symphony_error_and_an_alembic_command_error() -> None:
    for kind in (MigrationRefused, LedgerInvalid, RevisionEdited, DeployLockBusy):
        assert issubclass(kind, SymphonyError) and issubclass(kind, CommandError), kind


def test_an_edited_applied_revision_is_refused_as_revision_edited(
    tree: RevisionTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    rev = tree.add("one", "CREATE TABLE one (id int);")
    _in_process_upgrade(tree, monkeypatch)
    sql = tree.versions / f"{rev}.sql"
    sql.write_text(sql.read_text() + "\n-- edited\n")

    with pytest.raises(RevisionEdited) as refused:
        _in_process_upgrade(tree, monkeypatch)

    assert f"applied revision {rev} was edited" in str(refused.value)
    assert [problem.kind for problem in refused.value.problems] == ["edited"]  # type: ignore[attr-defined]


def test_a_deleted_applied_revision_is_refused_as_revision_missing(
    tree: RevisionTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    rev = tree.add("two", "CREATE TABLE two (id int);")
    _in_process_upgrade(tree, monkeypatch)
    (tree.versions / f"{rev}.py").unlink()
    (tree.versions / f"{rev}.sql").unlink()

    with pytest.raises(RevisionMissing) as refused:
        _in_process_upgrade(tree, monkeypatch)

    assert rev in str(refused.value)


def test_a_held_deploy_lock_with_no_wait_is_deploy_lock_busy(
    tree: RevisionTree, empty_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.add("one", "CREATE TABLE one (id int);")
    holder = psycopg.connect(empty_db.conninfo, autocommit=True)
    try:
        deploy_lock.ensure_ledger(holder)
        holder.autocommit = False
        holder.execute(deploy_lock.DEPLOY_LOCK_SQL)
        with pytest.raises(DeployLockBusy) as refused:
            _in_process_upgrade(tree, monkeypatch, deploy_lock_wait="0")
    finally:
        holder.close()
    assert "55P03" in str(refused.value)


def test_an_invalid_index_is_refused_as_invalid_index_left(
    tree: RevisionTree, empty_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.add("data", "CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1);")
    _in_process_upgrade(tree, monkeypatch)
    with (
        psycopg.connect(empty_db.conninfo, autocommit=True) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_dup_v ON dup (v)")

    with pytest.raises(InvalidIndexLeft) as refused:
        _in_process_upgrade(tree, monkeypatch)

    assert "index ix_dup_v on dup is INVALID" in str(refused.value)
