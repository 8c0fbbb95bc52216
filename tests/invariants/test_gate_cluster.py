"""INV-058 and INV-060 (gate_cluster.py, issue 16) on plain PostgreSQL: not applicable, said
cleanly (the cluster suite runs them on a distributed database, tests/cluster)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from symphony_schema.invariants import gate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["distribution-as-declared", "ledger-shards-append-only"])
def test_the_cluster_checks_are_not_applicable_without_citus(
    db: psycopg.Connection[Any], name: str
) -> None:
    (result,) = gate.run_gate(db, [name])
    assert result.status == "skip", result
    assert result.note == "not applicable: the citus extension is not installed here"
    assert result.details == ()
