from __future__ import annotations

import pytest

from symphony_schema import SymphonyError
from symphony_schema.cli.revision import next_revision_id


def test_next_revision_id_is_sortable_and_slugged() -> None:
    assert next_revision_id(["0001_init", "0005_policy_versions"], "Add batched completion!") == (
        "0006_add_batched_completion"
    )
    assert next_revision_id([], "init") == "0001_init"


def test_next_revision_id_fits_alembic_version_column() -> None:
    rev = next_revision_id(["0009_x"], "Reject whitespace-only and oversized ids everywhere")
    assert rev == "0010_reject_whitespace_only_and"
    assert len(rev) <= 32


def test_message_without_letters_is_refused() -> None:
    with pytest.raises(SymphonyError, match="slug"):
        next_revision_id([], "!!!")
