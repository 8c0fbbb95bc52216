"""The partitioned attempts ledger (issue 15): hostile tests of the append-only guarantee on every
partition, of detach/drop by non-owners, of archive/restore (SIGKILL at each step, a changed
byte), of a duplicate of an archived payment, and of the gate's partition checks (INV-061 to
INV-064). Everything runs against the real migrated database; logins are non-superusers."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema import attempts
from symphony_schema.cli import main
from tests.conftest import Database
from tests.invariants.conftest import failed_ids, failure, gate_on

pytestmark = pytest.mark.integration

PARENT = "public.payment_outbox_attempts"
OLD_OUTBOX = "01700000-0000-7000-8000-000000000001"  # a UUIDv7 of 2020-02-01: the history partition


def _today_partition(db: psycopg.Connection[Any]) -> str:
    row = db.execute(
        "SELECT 'symphony_ledger.attempts_p' || "
        "to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD')"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _dispatched_job(outbox: Any) -> Any:
    outbox.enqueue("instr-1")
    (row,) = outbox.claim(1, "w1")
    outbox.complete(row.outbox_id, row.lease_token, "w1", "DISPATCHED")
    return row.outbox_id


def _old_attempt(
    db: psycopg.Connection[Any], outbox_id: str = OLD_OUTBOX, key: str = "old-key"
) -> None:
    """A terminal attempt of a job enqueued in 2020 (recorded by hand, as the control plane
    may): it lands in symphony_ledger.attempts_history and its key in the key table."""
    db.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, worker_id)"
        " VALUES (%s, 'old-instr', 'participant-1', 1, %s, 'rtgs', '{\"amount\": 1}', 1,"
        " 'DISPATCHED', 'w-old')",
        (outbox_id, key),
    )


# --------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------


def _revision_before_partitioning() -> str:
    """The revision the partitioning one follows (its number changes when branches merge)."""
    from symphony_schema.migration import api

    scripts = api.script_directory()
    (script,) = [
        s for s in scripts.walk_revisions() if s.revision.endswith("_partition_attempts_ledger")
    ]
    down = script.down_revision
    assert isinstance(down, str)
    return down


def test_the_conversion_keeps_every_row_including_todays_jobs(empty_db: Database) -> None:
    """A ledger with a job of 2020 and a job enqueued today (retried, still queued): the history
    row lands in attempts_history, today's in today's partition, none in the default partition.
    Copied before today's partition existed, today's rows went to the default partition and the
    revision failed (55000 from ensure_ledger_partitions)."""
    from symphony_schema.migration import api

    api.upgrade(empty_db.url, _revision_before_partitioning())
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        _old_attempt(conn)
        conn.execute(
            "SELECT * FROM public.enqueue_payment_outbox('new-instr', 'participant-2', 'new-key',"
            " 'rtgs', '{\"amount\": 2}')"
        )
        (lease,) = conn.execute(
            "SELECT outbox_id, lease_token FROM public.claim_outbox_batch(1, 'w1', 30)"
        ).fetchall()
        conn.execute(
            "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w1', 'RETRYABLE')", lease
        )
        before = conn.execute(
            "SELECT * FROM public.payment_outbox_attempts ORDER BY attempt_id"
        ).fetchall()
        assert len(before) == 2
    api.upgrade(empty_db.url)
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        after = conn.execute(
            "SELECT * FROM public.payment_outbox_attempts ORDER BY attempt_id"
        ).fetchall()
        assert after == before
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM public.payment_outbox_attempts"
            " ORDER BY attempt_id"
        ).fetchall()
        assert where == [("symphony_ledger.attempts_history",), (_today_partition(conn),)]
        assert conn.execute(
            "SELECT count(*) FROM public.payment_outbox_attempts_default"
        ).fetchone() == (0,)


def test_the_conversion_refuses_a_ledger_with_a_hand_made_index(empty_db: Database) -> None:
    """The old table is dropped: an index nobody declared would vanish with it. The revision
    names it and converts nothing."""
    from symphony_schema.migration import api
    from symphony_schema.migration.ledger import read_alembic_heads

    before = _revision_before_partitioning()
    api.upgrade(empty_db.url, before)
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE INDEX ix_by_hand ON public.payment_outbox_attempts (worker_id)")
    with pytest.raises(Exception, match="ix_by_hand"):
        api.upgrade(empty_db.url)
    with psycopg.connect(empty_db.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'public.payment_outbox_attempts'::regclass"
        ).fetchone()
        assert row == ("r",)
        assert read_alembic_heads(conn) == [before]


# --------------------------------------------------------------------------------------------
# Keys with participant_id (ADR 0134)
# --------------------------------------------------------------------------------------------


def test_every_unique_key_holds_outbox_id_then_participant_id(
    db: psycopg.Connection[Any],
) -> None:
    rows = db.execute(
        "SELECT c.relname, array_agg(a.attname::text ORDER BY k.n)"
        "  FROM pg_index AS x JOIN pg_class AS c ON c.oid = x.indexrelid"
        "  CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
        "  JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
        " WHERE x.indrelid = %s::regclass AND x.indisunique"
        " GROUP BY c.relname ORDER BY 1",
        (PARENT,),
    ).fetchall()
    assert rows == [
        ("pk_payment_outbox_attempts", ["outbox_id", "participant_id", "attempt_id"]),
        ("uq_payment_outbox_attempts_one_outcome", ["outbox_id", "participant_id"]),
        ("uq_payment_outbox_attempts_one_redrive", ["outbox_id", "participant_id"]),
        (
            "uq_payment_outbox_attempts_outbox_attempt_no",
            ["outbox_id", "participant_id", "attempt_no"],
        ),
    ]


@pytest.mark.parametrize(
    ("attempt_no", "state"), [(1, "RETRYABLE"), (2, "FAILED"), (2, "REDRIVEN")]
)
def test_a_row_naming_another_participant_for_a_job_is_refused(
    db: psycopg.Connection[Any], outbox: Any, attempt_no: int, state: str
) -> None:
    """With participant_id in the keys, a second outcome (or the same attempt number) naming
    another participant would pass every unique index: a double payment. The participant guard
    refuses it for every writer, the superuser and the owner included."""
    outbox_id = _dispatched_job(outbox)
    insert = (
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state, acted_by, reason,"
        " ticket, related_outbox_id) VALUES (%s, 'instr-1', 'participant-other', 1, 'k', 'rtgs',"
        " '{}', %s, %s, 'x', 'x', 'x', gen_random_uuid())"
    )
    for role in (None, "symphony_owner"):
        db.execute("RESET ROLE" if role is None else f"SET ROLE {role}")
        with outbox.raises("23505", match="belongs to participant 'participant-1'"):
            db.execute(insert, (outbox_id, attempt_no, state))
    db.execute("RESET ROLE")
    row = db.execute(
        "SELECT count(*) FROM public.payment_outbox_attempts WHERE outbox_id = %s", (outbox_id,)
    ).fetchone()
    assert row == (1,)


# --------------------------------------------------------------------------------------------
# Enqueue's look-up across partitions
# --------------------------------------------------------------------------------------------


def _ledger_partitions_probed_by_enqueue(db: psycopg.Connection[Any], key: str) -> set[str]:
    """The ledger partitions enqueue's statements touch, from auto_explain's nested plans."""
    db.execute("LOAD 'auto_explain'")
    db.execute("SET auto_explain.log_min_duration = 0")
    db.execute("SET auto_explain.log_nested_statements = on")
    db.execute("SET auto_explain.log_analyze = on")
    db.execute("SET auto_explain.log_format = 'json'")
    db.execute("SET auto_explain.log_level = 'NOTICE'")
    db.execute("SET client_min_messages = 'notice'")
    notices: list[str] = []
    db.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    try:
        db.execute(
            "SELECT * FROM public.enqueue_payment_outbox(%s, 'participant-1', %s, 'rtgs', '{}')",
            (key, key),
        )
    finally:
        db.execute("RESET ALL")
    probed = set()
    for notice in notices:
        probed.update(
            name for name in re.findall(r'"Relation Name": "(attempts_[a-z0-9_]+)"', notice)
        )
    return probed


def test_enqueue_of_a_new_key_probes_no_ledger_partition_and_a_known_key_one(
    db: psycopg.Connection[Any], outbox: Any
) -> None:
    partitions = [p.name for p in attempts.list_partitions(db)]
    assert len(partitions) >= 16
    assert _ledger_partitions_probed_by_enqueue(db, "fresh-key") == set()
    outbox_id = _dispatched_job(outbox)
    row = db.execute(
        "SELECT idempotency_key FROM public.payment_outbox_attempts WHERE outbox_id = %s",
        (outbox_id,),
    ).fetchone()
    assert row is not None
    probed = _ledger_partitions_probed_by_enqueue(db, row[0])
    assert len(probed) <= 1, probed


def test_the_ledger_is_partitioned_by_outbox_id_with_days_ahead(
    db: psycopg.Connection[Any],
) -> None:
    row = db.execute(
        "SELECT pg_get_partkeydef('public.payment_outbox_attempts'::regclass)"
    ).fetchone()
    assert row == ("RANGE (outbox_id)",)
    names = [p.name for p in attempts.list_partitions(db)]
    assert "attempts_history" in names
    days = [n for n in names if n.startswith("attempts_p")]
    assert len(days) == 15, days  # today and 14 days ahead
    outbox_id = _dispatched_job_via(db)
    where = db.execute(
        "SELECT tableoid::regclass::text FROM public.payment_outbox_attempts WHERE outbox_id = %s",
        (outbox_id,),
    ).fetchone()
    assert where == (_today_partition(db),)


def _dispatched_job_via(db: psycopg.Connection[Any]) -> Any:
    row = db.execute(
        "SELECT outbox_id FROM public.enqueue_payment_outbox('i-x', 'p', 'k-x', 'rtgs', '{}')"
    ).fetchone()
    assert row is not None
    (claimed,) = db.execute("SELECT * FROM public.claim_outbox_batch(1, 'w', 30)").fetchall()
    db.execute(
        "SELECT * FROM public.complete_outbox_attempt(%s, %s, 'w', 'DISPATCHED', 'ref-x')",
        (claimed[0], claimed[8]),
    )
    return row[0]


# --------------------------------------------------------------------------------------------
# Append-only on every partition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement", ["UPDATE {} SET worker_id = 'x'", "DELETE FROM {}", "TRUNCATE {}"]
)
@pytest.mark.parametrize("which", ["today", "history", "default"])
def test_a_partition_named_directly_is_append_only_even_in_replica_mode(
    db: psycopg.Connection[Any], outbox: Any, statement: str, which: str
) -> None:
    _dispatched_job(outbox)
    _old_attempt(db)
    db.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state)"
        " VALUES ('ffffffff-ffff-7fff-bfff-ffffffffffff', 'd', 'p', 1, 'd', 'rtgs', '{}', 1,"
        " 'FAILED')"
    )
    table = {
        "today": _today_partition(db),
        "history": "symphony_ledger.attempts_history",
        "default": "public.payment_outbox_attempts_default",
    }[which]
    db.execute("SET session_replication_role = replica")
    with outbox.raises("P0001", match="append-only"):
        db.execute(statement.format(table))
    db.execute("SET ROLE symphony_owner")
    with outbox.raises("P0001", match="append-only"):
        db.execute(statement.format(table))


def test_a_partition_created_by_hand_is_protected_by_ensure_and_reported_until_then(
    db: psycopg.Connection[Any], migrated_db: Database, outbox: Any
) -> None:
    db.execute(
        "CREATE TABLE symphony_ledger.attempts_p20991231"
        " PARTITION OF public.payment_outbox_attempts"
        " FOR VALUES FROM (public.ledger_uuid_lower_bound('2099-12-31 00:00Z'))"
        " TO (public.ledger_uuid_lower_bound('2100-01-01 00:00Z'))"
    )
    _old_attempt(db, "03bb2a30-aa00-7000-8000-000000000001", "key-2099")  # 2099-12-31 12:00Z
    row = db.execute("SELECT count(*) FROM symphony_ledger.attempts_p20991231").fetchone()
    assert row == (1,)
    # Row triggers are cloned (ENABLE ALWAYS included); the TRUNCATE trigger is not.
    db.execute("SET session_replication_role = replica")
    with outbox.raises("P0001"):
        db.execute("DELETE FROM symphony_ledger.attempts_p20991231")
    result = failure(gate_on(migrated_db.conninfo), "INV-061")
    assert "attempts_p20991231 has no BEFORE TRUNCATE trigger" in result.details[0]
    db.execute("RESET session_replication_role")
    # Created by a superuser, it is not the owner's: ensure says so instead of skipping it.
    with outbox.raises("42501", match="owned by .*, not symphony_owner"):
        attempts.ensure_partitions(db, 14)
    db.execute("ALTER TABLE symphony_ledger.attempts_p20991231 OWNER TO symphony_owner")
    fixed = attempts.ensure_partitions(db, 14)
    assert ("symphony_ledger.attempts_p20991231", "protected") in fixed
    with outbox.raises("P0001"):
        db.execute("TRUNCATE symphony_ledger.attempts_p20991231")
    assert "INV-061" not in failed_ids(gate_on(migrated_db.conninfo))


@pytest.mark.parametrize(
    "role", ["symphony_control", "symphony_executor", "symphony_readonly", "symphony_auditor"]
)
def test_nobody_but_the_owner_can_detach_drop_or_truncate_a_partition(
    db: psycopg.Connection[Any], login: Any, outbox: Any, role: str
) -> None:
    part = _today_partition(db)
    conn = login(role).conn
    with outbox.raises("42501"):
        conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {part}")
    with outbox.raises("42501"):
        conn.execute(f"DROP TABLE {part}")
    with outbox.raises("42501"):
        conn.execute(f"TRUNCATE {part}")
    with outbox.raises("42501"):
        conn.execute(f"SELECT * FROM {part}")
    with outbox.raises("42501"):
        conn.execute("SELECT * FROM public.ensure_ledger_partitions(14)")
    with outbox.raises("42501"):
        conn.execute(
            "SELECT public.archive_ledger_partition('attempts_history', 0, %s, 'f', '{}')",
            ("0" * 64,),
        )


def test_ensure_is_idempotent_and_refuses_bad_arguments(
    db: psycopg.Connection[Any], outbox: Any
) -> None:
    assert attempts.ensure_partitions(db, 14) == []
    with outbox.raises("22023"):
        db.execute("SELECT * FROM public.ensure_ledger_partitions(0)")
    created = attempts.ensure_partitions(db, 20)
    assert len(created) == 6 and all(action == "created" for _, action in created)


# --------------------------------------------------------------------------------------------
# Archive and restore
# --------------------------------------------------------------------------------------------


def _cli(
    migrated_db: Database, *args: str, kill_at: str | None = None, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """`symphony-schema --url URL attempts ARGS`: in this process (the test suite's runtime), or
    in its own process when it must die there (kill_at) or show what a real process prints."""
    argv = ["--url", migrated_db.url, "attempts", *args]
    if kill_at is None and not process:
        assert attempts.KILL_AT_VARIABLE not in os.environ
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    env = dict(os.environ)
    env.pop(attempts.KILL_AT_VARIABLE, None)
    if kill_at:
        env[attempts.KILL_AT_VARIABLE] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "symphony_schema", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _history_rows(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT * FROM public.payment_outbox_attempts WHERE outbox_id < %s ORDER BY attempt_id",
        (str(uuid.UUID("01900000-0000-0000-0000-000000000000")),),
    ).fetchall()


def _history_exists(db: psycopg.Connection[Any]) -> bool:
    row = db.execute("SELECT to_regclass('symphony_ledger.attempts_history')").fetchone()
    return row is not None and row[0] is not None


def _record(db: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT state, row_count, sha256, file_name FROM public.archived_ledger_partitions"
        " WHERE partition_name = 'attempts_history'"
    ).fetchone()


def test_archive_then_restore_round_trips_the_rows(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path, outbox: Any
) -> None:
    _old_attempt(db)
    _old_attempt(db, "01700000-0000-7000-8000-000000000002", "old-key-2")
    before = _history_rows(db)
    done = _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "archived symphony_ledger.attempts_history: 2 rows" in done.stdout
    assert not _history_exists(db)
    assert _history_rows(db) == []
    record = _record(db)
    assert record is not None and record[:2] == ("ARCHIVED", 2)
    archive_file = tmp_path / "attempts_history.copy.gz"
    assert attempts.file_digest(archive_file) == (record[2], 2)
    assert "INV-062" not in failed_ids(gate_on(migrated_db.conninfo))
    # Today's partitions are not old enough, and a second run finds nothing to do.
    again = _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path))
    assert again.returncode == 0 and "archived 0 partition(s)" in again.stdout
    restored = _cli(migrated_db, "restore", str(archive_file))
    assert restored.returncode == 0, restored.stderr
    assert _history_rows(db) == before
    record = _record(db)
    assert record is not None and record[0] == "RESTORED"
    with outbox.raises("P0001"):
        db.execute("TRUNCATE symphony_ledger.attempts_history")
    assert failed_ids(gate_on(migrated_db.conninfo)) == set()


def test_a_partition_with_a_queued_job_is_not_archived(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path, outbox: Any
) -> None:
    _old_attempt(db)
    db.execute("SET ROLE symphony_owner")  # the functions' own rights skip the insert guard
    db.execute(
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload)"
        " VALUES ('01700000-0000-7000-8000-0000000000aa', 'q', 'p', 1, 'q', 'rtgs', '{}')"
    )
    db.execute("RESET ROLE")
    done = _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path))
    assert done.returncode == 0 and "archived 0 partition(s)" in done.stdout
    assert _history_exists(db)
    with outbox.raises("55000"):
        db.execute(
            "SELECT public.archive_ledger_partition('attempts_history', 1, %s, 'f', '{}')",
            ("0" * 64,),
        )


@pytest.mark.parametrize("kill_at", attempts.KILL_POINTS)
def test_sigkill_at_each_archive_step_leaves_the_partition_or_a_verified_archive(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path, kill_at: str
) -> None:
    _old_attempt(db)
    before = _history_rows(db)
    killed = _cli(
        migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path), kill_at=kill_at
    )
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    record = _record(db)
    if _history_exists(db):
        assert record is None
        assert _history_rows(db) == before
    else:
        assert record is not None and record[:2] == ("ARCHIVED", 1)
        assert attempts.file_digest(tmp_path / record[3]) == (record[2], 1)
    # A rerun finishes the job; the archive restores to the same rows.
    rerun = _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    assert not _history_exists(db)
    restored = _cli(migrated_db, "restore", str(tmp_path / "attempts_history.copy.gz"))
    assert restored.returncode == 0, restored.stderr
    assert _history_rows(db) == before


def test_a_restored_file_with_one_byte_changed_restores_nothing(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path
) -> None:
    _old_attempt(db)
    assert _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path)).returncode == 0
    archive_file = tmp_path / "attempts_history.copy.gz"
    # Change one byte of the data (recompressed, so the file is still valid gzip) ...
    data = bytearray(gzip.decompress(archive_file.read_bytes()))
    data[data.index(b"w-old")] = ord("W")
    tampered = tmp_path / "tampered" / "attempts_history.copy.gz"
    tampered.parent.mkdir()
    tampered.write_bytes(gzip.compress(bytes(data)))
    # ... and one raw byte of the compressed file.
    raw = bytearray(archive_file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    flipped = tmp_path / "flipped" / "attempts_history.copy.gz"
    flipped.parent.mkdir()
    flipped.write_bytes(bytes(raw))
    for path in (tampered, flipped):
        done = _cli(migrated_db, "restore", str(path))
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "nothing was restored" in done.stderr or "not a readable gzip" in done.stderr
        assert not _history_exists(db)
        record = _record(db)
        assert record is not None and record[0] == "ARCHIVED"


def test_archive_and_restore_refuse_bad_input_with_exit_2(
    migrated_db: Database, tmp_path: Path
) -> None:
    for process, args, message in (
        (True, ("archive", "--older-than", "90", "--to", str(tmp_path)), "--older-than"),
        (False, ("archive", "--older-than", "90d", "--to", str(tmp_path / "missing")), "--to"),
        (False, ("restore", str(tmp_path / "missing.copy.gz")), "no such archive file"),
        (False, ("partitions", "ensure", "--days-ahead", "0"), "--days-ahead"),
    ):
        done = _cli(migrated_db, *args, process=process)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr


def test_archive_needs_the_owners_rights(migrated_db: Database, login: Any, tmp_path: Path) -> None:
    conn = login("symphony_control").conn
    with pytest.raises(attempts.SymphonyError, match="needs a superuser or a member"):
        list(attempts.archive(conn, 0, tmp_path))


# --------------------------------------------------------------------------------------------
# Idempotency across archives
# --------------------------------------------------------------------------------------------


def test_a_duplicate_of_a_payment_whose_partition_is_archived_is_never_queued_again(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path, outbox: Any, login: Any
) -> None:
    _old_attempt(db)
    ingest = login("symphony_ingest").conn
    enqueue = (
        "SELECT * FROM public.enqueue_payment_outbox('old-instr', 'participant-1', 'old-key',"
        " 'rtgs', '{\"amount\": 1}')"
    )
    before = ingest.execute(enqueue).fetchone()
    assert before is not None and before[3] == "DISPATCHED"
    assert _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path)).returncode == 0
    with outbox.raises("P7020", match="JOB_ARCHIVED"):
        ingest.execute(enqueue)
    row = db.execute("SELECT count(*) FROM public.payment_outbox_pending").fetchone()
    assert row == (0,)


# --------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------


def test_gate_reports_a_partition_dropped_without_an_archive(
    db: psycopg.Connection[Any], migrated_db: Database
) -> None:
    _old_attempt(db)
    db.execute("DROP TABLE symphony_ledger.attempts_history")
    result = failure(gate_on(migrated_db.conninfo), "INV-062")
    assert "is neither a partition nor a recorded archive" in result.details[0]


def test_gate_reports_too_few_partitions_ahead(
    db: psycopg.Connection[Any], migrated_db: Database
) -> None:
    names = [p.name for p in attempts.list_partitions(db) if p.name.startswith("attempts_p")]
    for name in names[-10:]:
        db.execute(f"DROP TABLE symphony_ledger.{name}")
    result = failure(gate_on(migrated_db.conninfo), "INV-062")
    assert "fewer than 7 days ahead" in result.details[-1]


def test_gate_reports_rows_in_the_default_partition(
    db: psycopg.Connection[Any], migrated_db: Database
) -> None:
    db.execute(
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload, attempt_no, state)"
        " VALUES (gen_random_uuid(), 'd', 'p', 1, 'd', 'rtgs', '{}', 1, 'FAILED'),"
        " ('ffffffff-ffff-4fff-bfff-ffffffffffff', 'e', 'p', 1, 'e', 'rtgs', '{}', 1, 'FAILED')"
    )
    row = db.execute("SELECT count(*) FROM public.payment_outbox_attempts_default").fetchone()
    assert row is not None and row[0] >= 1
    result = failure(gate_on(migrated_db.conninfo), "INV-063")
    assert "payment_outbox_attempts_default holds" in result.details[0]


def test_gate_reports_an_archived_range_recreated_without_restore(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path
) -> None:
    _old_attempt(db)
    assert _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path)).returncode == 0
    db.execute(
        "CREATE TABLE symphony_ledger.attempts_history PARTITION OF public.payment_outbox_attempts"
        " FOR VALUES FROM (MINVALUE) TO (public.ledger_uuid_lower_bound("
        "(now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'))"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-062")
    assert "was recreated without restore" in result.details[0]


def test_gate_reports_the_archived_key_guard_disabled(
    db: psycopg.Connection[Any], migrated_db: Database
) -> None:
    db.execute(
        "ALTER TABLE public.payment_outbox_idempotency_keys"
        " DISABLE TRIGGER trg_guard_idempotency_key_archived"
    )
    result = failure(gate_on(migrated_db.conninfo), "INV-064")
    assert "is not enabled ALWAYS" in result.details[0]


def test_reset_drops_the_ledger_partitions_and_migrates_again(
    db: psycopg.Connection[Any], migrated_db: Database
) -> None:
    """`symphony-schema reset` dropped public but left schema symphony_ledger behind, so the
    migration's CREATE SCHEMA failed (DuplicateSchema) on every second reset."""
    from symphony_schema import reset

    _old_attempt(db)
    reset.reset_database(migrated_db.url)
    names = [p.name for p in attempts.list_partitions(db)]
    assert "attempts_history" in names and len(names) == 16
    assert _history_rows(db) == []


def test_a_hand_repair_cannot_requeue_or_record_an_archived_job(
    db: psycopg.Connection[Any], migrated_db: Database, tmp_path: Path, outbox: Any, login: Any
) -> None:
    """Since 0019 the control plane cannot write the queue or the ledger at all (42501); a
    superuser repairing by hand still can. Before the archive, a queue row for a terminal job is
    refused (P7005, the ledger shows the terminal attempt). After it, the ledger row is gone:
    without the guard the job would be queued and dispatched a second time, and a second
    terminal row would land in the default partition."""
    _old_attempt(db)
    control = login("symphony_control").conn
    requeue = (
        "INSERT INTO public.payment_outbox_pending (outbox_id, instruction_id, participant_id,"
        " sequence_id, idempotency_key, rail_type, payload)"
        " VALUES (%s, 'old-instr', 'participant-1', 1, 'old-key-x', 'rtgs', '{}')"
    )
    record = (
        "INSERT INTO public.payment_outbox_attempts (outbox_id, instruction_id,"
        " participant_id, sequence_id, idempotency_key, rail_type, payload, attempt_no,"
        " state) VALUES (%s, 'old-instr', 'participant-1', 1, 'old-key', 'rtgs', '{}', 2,"
        " 'DISPATCHED')"
    )
    with outbox.raises("42501"):
        control.execute(requeue, (OLD_OUTBOX,))
    with outbox.raises("P7005"):
        db.execute(requeue, (OLD_OUTBOX,))
    assert _cli(migrated_db, "archive", "--older-than", "0d", "--to", str(tmp_path)).returncode == 0
    with outbox.raises("42501"):
        control.execute(record, (OLD_OUTBOX,))
    with outbox.raises("P7020", match="JOB_ARCHIVED"):
        db.execute(requeue, (OLD_OUTBOX,))
    with outbox.raises("P7020", match="JOB_ARCHIVED"):
        db.execute(record, (OLD_OUTBOX,))
    row = db.execute("SELECT count(*) FROM public.payment_outbox_attempts_default").fetchone()
    assert row == (0,)


@pytest.mark.parametrize(
    "sabotage",
    [
        "ALTER TABLE public.payment_outbox_attempts DISABLE TRIGGER trg_guard_attempt_participant",
        "ALTER TABLE symphony_ledger.attempts_history"
        " ENABLE REPLICA TRIGGER trg_guard_attempt_participant",
        "DROP TRIGGER trg_guard_attempt_participant ON public.payment_outbox_attempts",
        "DROP TRIGGER trg_guard_attempt_participant ON public.payment_outbox_attempts;"
        " CREATE TRIGGER trg_guard_attempt_participant BEFORE INSERT"
        " ON public.payment_outbox_attempts FOR EACH ROW WHEN (current_user <> 'symphony_owner')"
        " EXECUTE FUNCTION public.guard_attempt_participant();"
        " ALTER TABLE public.payment_outbox_attempts"
        " ENABLE ALWAYS TRIGGER trg_guard_attempt_participant",
    ],
)
def test_gate_reports_keys_with_participant_id_without_the_participant_guard(
    db: psycopg.Connection[Any], migrated_db: Database, sabotage: str
) -> None:
    """Without the guard, (outbox_id, participant_id) lets a second outcome naming another
    participant through: INV-055's one-outcome rule no longer holds per job."""
    db.execute(sabotage)
    result = failure(gate_on(migrated_db.conninfo), "INV-055")
    assert "trg_guard_attempt_participant" in " ".join(result.details)
