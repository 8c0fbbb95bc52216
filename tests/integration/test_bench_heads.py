"""Section ``heads`` (ADR 0169) at a tiny size on the test server, so it cannot rot: the three
layouts are created, filled, run through pgbench (claims, completions, next heads), measured and
checked (every job done once, FIFO per participant, one head each), and the checks catch a
broken queue. PGMQ is left out here: its SQL comes with the ``pgmq`` package, which ``nox -s
bench`` installs and the test environment does not; its script is covered by the unit tests."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from benchmarks import db as bench_db
from benchmarks import heads, report
from tests.conftest import Database

pytestmark = pytest.mark.integration

_TINY = heads.Plan(
    participants=(3,),
    checkpoints=(20, 50),
    workers=(2,),
    seconds=1,
    repeats=1,
    explain_samples=1,
)


def test_the_section_runs_at_a_tiny_size_and_keeps_fifo(empty_db: Database) -> None:
    logged: list[str] = []
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        section = heads.run_section(
            conn, empty_db.conninfo, _TINY, bench_db.payload(256), logged.append, heads.OURS
        )
        # The scratch schemas are dropped afterwards.
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('cur', 'slim', 'heads')"
        ).fetchone()
        assert left == (0,)
    entry = section["by_participants"]["3"]
    measured = entry["repeats"][0]
    assert set(measured) == set(heads.OURS)
    for variant, m in measured.items():
        assert [p["jobs"] for p in m["no_vacuum"]] == [20, 30], variant
        assert list(m["no_vacuum"][0]["statement_ms"]) == heads.sql_labels(variant)
        assert m["jobs_per_s"]["2"] > 0 and not m["ran_dry"], variant
        assert m["no_vacuum"][1]["wal_bytes_per_job"] > 0
        assert m["no_vacuum"][1]["wal_records_per_job"] > 0
        assert all(b > 0 for b in m["buffers_per_claim"].values())
    assert set(entry["summary"]["ratios"]) == {"heads/cur", "slim/cur"}
    assert logged and logged[0].startswith("heads p=3 rep 1:")
    assert "### 3 participants" in "\n".join(report.heads_lines(section))


def _prepared(conn: psycopg.Connection[Any], variant: str) -> None:
    heads.install(conn)
    heads.prepare(conn, variant, 12, 3, bench_db.payload(256))


@pytest.mark.parametrize(
    ("variant", "breakage", "broken"),
    [
        (
            "cur",
            "UPDATE cur.pending SET is_head = true WHERE sequence_id = 2",
            "one head per participant",
        ),
        ("heads", "DELETE FROM heads.claimable WHERE participant_id = 'p-1'", "one head"),
        ("slim", "DELETE FROM slim.pending WHERE sequence_id = 4", "jobs done + jobs left"),
        (
            "heads",
            "INSERT INTO heads.lease SELECT outbox_id, participant_id, uuidv7(), 'w', now(),"
            " now() FROM heads.queue LIMIT 1",
            "no lease left",
        ),
    ],
)
def test_the_consistency_check_catches_a_broken_queue(
    empty_db: Database, variant: str, breakage: str, broken: str
) -> None:
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        _prepared(conn, variant)
        assert heads.consistency_problems(conn, variant, 12) == []
        conn.execute(breakage.encode())
        problems = heads.consistency_problems(conn, variant, 12)
        assert any(broken in p for p in problems), problems


def test_the_fifo_check_catches_a_job_completed_before_its_predecessor(
    empty_db: Database,
) -> None:
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        _prepared(conn, "cur")
        for sequence, at in ((2, "now()"), (1, "now() + interval '1 second'")):
            conn.execute(
                "INSERT INTO cur.attempts (outbox_id, instruction_id, participant_id, sequence_id,"
                " idempotency_key, rail_type, attempt_no, state, completed_at, rail_reference)"
                " SELECT outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,"
                f" rail_type, 1, 'DISPATCHED', {at}, outbox_id::text FROM cur.pending"
                " WHERE participant_id = 'p-1' AND sequence_id = %s",
                (sequence,),
            )
            conn.execute(
                "INSERT INTO cur.rail_references (rail_code, rail_reference, outbox_id,"
                " attempt_no) SELECT 'RTGS', outbox_id::text, outbox_id, 1 FROM cur.pending"
                " WHERE participant_id = 'p-1' AND sequence_id = %s",
                (sequence,),
            )
            conn.execute(
                "DELETE FROM cur.pending WHERE participant_id = 'p-1' AND sequence_id = %s",
                (sequence,),
            )
        conn.execute(
            "UPDATE cur.pending SET is_head = true WHERE participant_id = 'p-1' AND sequence_id = 3"
        )
        problems = heads.consistency_problems(conn, "cur", 12)
        assert problems == [
            "cur: each participant's jobs completed in sequence order does not hold"
        ]
