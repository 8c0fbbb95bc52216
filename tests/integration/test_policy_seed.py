"""``seed-policy`` against a real migrated database: idempotence, refusals, locking, roles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from symphony_schema import policy
from symphony_schema.cli import main
from symphony_schema.policy import PinnedPolicy, PolicyError
from tests.helpers import run_cli

pytestmark = pytest.mark.integration

DOC: dict[str, Any] = {"policyVersion": "2025-06-01.1", "limits": {"batch": 50}, "rails": ["a"]}


def rows(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    return [
        (str(v), str(s), str(c))
        for v, s, c in conn.execute(
            "SELECT version, status::text, checksum FROM public.policy_versions ORDER BY version"
        ).fetchall()
    ]


def write(tmp_path: Path, name: str, content: str | dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def seed_cli(url: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["seed-policy", "--url", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_file_inserts_the_active_row(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, "p.json", DOC)
    code, out, err = seed_cli(migrated_db.url, "--file", str(path), capsys=capsys)
    assert (code, err) == (0, "")
    checksum = policy.canonical_checksum(DOC)
    assert f"seeded policy version '2025-06-01.1' as ACTIVE (checksum {checksum}" in out
    assert rows(db) == [("2025-06-01.1", "ACTIVE", checksum)]
    active = db.execute("SELECT version FROM public.policy_versions WHERE is_active").fetchall()
    assert active == [("2025-06-01.1",)]


def test_reseeding_the_same_document_is_a_no_op(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write(tmp_path, "p.json", DOC)
    assert seed_cli(migrated_db.url, "--file", str(path), capsys=capsys)[0] == 0
    before = db.execute("SELECT created_at, xmin::text FROM public.policy_versions").fetchall()
    # Same document, other key order and whitespace: the same checksum, so nothing to do.
    reformatted = write(
        tmp_path,
        "q.json",
        '{\n  "rails" : ["a"],\n  "limits": {"batch": 50},\n  "policyVersion": "2025-06-01.1"\n}\n',
    )
    code, out, _ = seed_cli(migrated_db.url, "--file", str(reformatted), capsys=capsys)
    assert code == 0
    assert "is already ACTIVE with the same checksum" in out and "nothing to do" in out
    after = db.execute("SELECT created_at, xmin::text FROM public.policy_versions").fetchall()
    assert after == before  # not even rewritten


def test_changed_document_with_the_same_version_is_refused(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        seed_cli(migrated_db.url, "--file", str(write(tmp_path, "a.json", DOC)), capsys=capsys)[0]
        == 0
    )
    before = rows(db)
    changed = dict(DOC, limits={"batch": 51})
    code, _, err = seed_cli(
        migrated_db.url, "--file", str(write(tmp_path, "b.json", changed)), capsys=capsys
    )
    assert code == 2
    assert "already exists (ACTIVE) with checksum" in err
    assert policy.canonical_checksum(changed) in err and before[0][2] in err
    assert "give the changed document a new policyVersion" in err
    assert rows(db) == before


def test_a_second_active_version_is_refused(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        seed_cli(migrated_db.url, "--file", str(write(tmp_path, "a.json", DOC)), capsys=capsys)[0]
        == 0
    )
    before = rows(db)
    second = dict(DOC, policyVersion="2025-07-01.1")
    code, _, err = seed_cli(
        migrated_db.url, "--file", str(write(tmp_path, "b.json", second)), capsys=capsys
    )
    assert code == 2
    assert "version '2025-06-01.1' (checksum" in err and "is already ACTIVE" in err
    assert "nothing was written" in err
    assert rows(db) == before


def test_an_existing_retired_version_is_not_reactivated(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checksum = policy.canonical_checksum(DOC)
    db.execute(
        "INSERT INTO public.policy_versions (version, status, checksum) VALUES (%s, 'ACTIVE', %s)",
        (DOC["policyVersion"], checksum),
    )
    # Rotated away and retired (0016), the only way a version becomes RETIRED.
    db.execute("SELECT public.rotate_policy_version('zz-next', %s, '1 millisecond')", ("f" * 64,))
    time.sleep(0.01)
    db.execute("SELECT public.retire_expired_policy_versions()")
    before = rows(db)
    code, _, err = seed_cli(
        migrated_db.url, "--file", str(write(tmp_path, "a.json", DOC)), capsys=capsys
    )
    assert code == 2
    assert "same checksum but is RETIRED" in err
    assert (DOC["policyVersion"], "RETIRED", checksum) in before
    assert rows(db) == before


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('{"limits": {}}', "no usable policyVersion: it is missing"),
        ('{"policyVersion": ""}', "policyVersion '' is empty"),
        ('{"policyVersion": 7}', "it is a JSON number"),
        ('{"policyVersion": "v1",', "is not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"policyVersion": "v1", "x": NaN}', "NaN is not JSON"),
        ('{"policyVersion": "v1", "x": 1e999}', "the number 1e999 at $.x does not round-trip"),
        ('{"policyVersion": "v1", "x": 123456789012345678901}', "does not round-trip exactly"),
        ('{"policyVersion": "v1", "policyVersion": "v2"}', "duplicate key"),
    ],
)
def test_malformed_files_are_refused_and_nothing_is_written(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    complaint: str,
) -> None:
    path = write(tmp_path, "bad.json", content)
    code, out, err = seed_cli(migrated_db.url, "--file", str(path), capsys=capsys)
    assert code == 2 and out == ""
    assert complaint in err and "nothing was written" in err.lower()
    assert rows(db) == []


def test_unreadable_file_is_refused(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = seed_cli(
        migrated_db.url, "--file", str(tmp_path / "missing.json"), capsys=capsys
    )
    assert code == 2 and "cannot read policy file" in err and "missing.json" in err
    assert rows(db) == []


def test_seed_policy_requires_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["seed-policy", "--url", "postgresql://nobody@db.invalid/x"])
    assert exited.value.code == 2
    assert "one of the arguments --file --from-env is required" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# --from-env
# --------------------------------------------------------------------------------------------


def test_from_env_with_document(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POLICY_VERSION", DOC["policyVersion"])
    monkeypatch.setenv("POLICY_DOCUMENT", json.dumps(DOC, indent=2))
    code, out, _ = seed_cli(migrated_db.url, "--from-env", capsys=capsys)
    assert code == 0 and "from POLICY_VERSION + POLICY_DOCUMENT" in out
    assert rows(db) == [(DOC["policyVersion"], "ACTIVE", policy.canonical_checksum(DOC))]


def test_from_env_with_checksum_only(
    migrated_db: Any, db: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    checksum = "ab" * 32
    result = policy.seed_policy_from_env(
        migrated_db.conninfo, {"POLICY_VERSION": "ci-1", "POLICY_CHECKSUM": checksum}
    )
    assert result.created and (result.version, result.checksum) == ("ci-1", checksum)
    again = policy.seed_policy_from_env(
        migrated_db.conninfo, {"POLICY_VERSION": "ci-1", "POLICY_CHECKSUM": checksum}
    )
    assert not again.created
    assert rows(db) == [("ci-1", "ACTIVE", checksum)]


def test_from_env_refusals_write_nothing(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("POLICY_VERSION", "POLICY_DOCUMENT", "POLICY_FILE", "POLICY_CHECKSUM"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = seed_cli(migrated_db.url, "--from-env", capsys=capsys)
    assert code == 2 and "POLICY_VERSION is not set" in err
    monkeypatch.setenv("POLICY_VERSION", "v1")
    monkeypatch.setenv("POLICY_CHECKSUM", "not-hex")
    code, _, err = seed_cli(migrated_db.url, "--from-env", capsys=capsys)
    assert code == 2 and "POLICY_CHECKSUM must be 64 lowercase hex digits" in err
    monkeypatch.setenv("POLICY_CHECKSUM", "0" * 64)
    monkeypatch.setenv("POLICY_DOCUMENT", json.dumps(DOC))
    code, _, err = seed_cli(migrated_db.url, "--from-env", capsys=capsys)
    assert code == 2 and "POLICY_VERSION is 'v1' but the document" in err
    assert rows(db) == []


# --------------------------------------------------------------------------------------------
# API, database states, roles, concurrency
# --------------------------------------------------------------------------------------------


def test_api_seed_functions(migrated_db: Any, db: psycopg.Connection[Any], tmp_path: Path) -> None:
    created = policy.seed_policy_document(migrated_db.conninfo, DOC)
    assert created.created and created.checksum == policy.canonical_checksum(DOC)
    again = policy.seed_policy_file(migrated_db.conninfo, write(tmp_path, "p.json", DOC))
    assert not again.created and again.version == DOC["policyVersion"]
    assert "nothing to do" in again.message


def test_unmigrated_database_is_refused_with_the_fix(empty_db: Any) -> None:
    with pytest.raises(PolicyError, match=r"does not exist: migrate the database first") as caught:
        policy.seed_policy_document(empty_db.conninfo, DOC)
    assert "SQLSTATE 42P01" in str(caught.value)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    conninfo = f"host={tmp_path} port=1 user=nobody dbname=none"
    with pytest.raises(PolicyError, match="cannot connect to the database to seed the policy"):
        policy.seed_policy_document(conninfo, DOC)


def test_control_plane_login_may_seed(
    migrated_db: Any, pg_server: Any, login: Any, db: psycopg.Connection[Any]
) -> None:
    control = login("symphony_control")
    result = policy.seed_policy_document(pg_server.conninfo(migrated_db.name, control.name), DOC)
    assert result.created
    assert rows(db)[0][:2] == (DOC["policyVersion"], "ACTIVE")


def test_read_only_login_is_refused_with_the_sqlstate(
    migrated_db: Any, pg_server: Any, login: Any, db: psycopg.Connection[Any]
) -> None:
    reader = login("symphony_readonly")
    with pytest.raises(PolicyError, match="SQLSTATE 42501") as caught:
        policy.seed_policy_document(pg_server.conninfo(migrated_db.name, reader.name), DOC)
    assert "member of symphony_control" in str(caught.value)
    assert rows(db) == []


def test_concurrent_seeders_of_different_versions_cannot_both_win(
    migrated_db: Any, db: psycopg.Connection[Any], connect: Any
) -> None:
    """Both seeders queue behind a held table lock, then run one after the other: exactly one
    inserts, the other sees its ACTIVE row and refuses."""
    blocker = connect()
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE public.policy_versions IN SHARE ROW EXCLUSIVE MODE")
    outcomes: dict[str, object] = {}

    def seed(version: str) -> None:
        pinned = PinnedPolicy(version, policy.canonical_checksum({"policyVersion": version}), "t")
        try:
            outcomes[version] = policy.seed_pinned_policy(migrated_db.conninfo, pinned)
        except PolicyError as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=seed, args=(v,)) for v in ("race-a", "race-b")]
    for thread in threads:
        thread.start()
    _wait_for_lock_waiters(db, 2)
    blocker.execute("COMMIT")
    for thread in threads:
        thread.join(timeout=30)
    winners = [v for v, o in outcomes.items() if isinstance(o, policy.SeedResult) and o.created]
    losers = [o for o in outcomes.values() if isinstance(o, PolicyError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "is already ACTIVE" in str(losers[0])
    assert [r[0] for r in rows(db)] == winners


def _wait_for_lock_waiters(conn: psycopg.Connection[Any], expected: int) -> None:
    """Poll pg_locks until ``expected`` sessions wait on policy_versions (bounded)."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_locks "
            "WHERE relation = 'public.policy_versions'::regclass AND NOT granted"
        ).fetchone()
        if row and row[0] >= expected:
            return
    raise AssertionError(f"{expected} seeders never queued on the table lock")


def test_console_script_seeds_in_a_subprocess(
    migrated_db: Any, db: psycopg.Connection[Any]
) -> None:
    seed = ("seed-policy", "--file", str(policy.DEFAULT_POLICY_FILE), "--url", migrated_db.url)
    done = run_cli(*seed, unset=["POLICY_"])
    assert done.returncode == 0, done.stderr
    document = policy.load_policy_file(policy.DEFAULT_POLICY_FILE)
    assert rows(db) == [(document["policyVersion"], "ACTIVE", policy.canonical_checksum(document))]
    again = run_cli(*seed, unset=["POLICY_"])
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_dry_run_validates_and_prints_without_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "p.json", DOC)
    # db.invalid never resolves: a connection attempt would fail the command.
    url = "postgresql://nobody@db.invalid/x"
    code, out, _ = seed_cli(url, "--file", str(path), "--dry-run", capsys=capsys)
    assert code == 0
    assert f"checksum {policy.canonical_checksum(DOC)}" in out and "not seeded" in out
    bad = write(tmp_path, "bad.json", '{"x": 1}')
    code, _, err = seed_cli(url, "--file", str(bad), "--dry-run", capsys=capsys)
    assert code == 2 and "no usable policyVersion" in err


# --------------------------------------------------------------------------------------------
# Hostile inputs (issue 11 item 10, issue 18 item 7): one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------


def _seed_subprocess(
    url: str, env_extra: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("symphony-schema")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_")} | env_extra
    # A child with a memory cap and a timeout: the old code read /dev/zero until the machine
    # ran out of memory and waited forever on a FIFO without a writer.
    return subprocess.run(
        [sys.executable, "-c", _CAPPED, str(script), "seed-policy", *args, "--url", url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


_CAPPED = (
    "import resource, runpy, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.mark.parametrize("how", ["--file", "--from-env"])
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "over-limit"])
def test_hostile_policy_files_are_refused_in_one_line(
    migrated_db: Any, db: psycopg.Connection[Any], tmp_path: Path, how: str, kind: str
) -> None:
    if kind == "dev-zero":
        path, complaint = Path("/dev/zero"), "is not a regular file (a character device)"
    elif kind == "fifo":
        path, complaint = tmp_path / "p.fifo", "is not a regular file (a FIFO)"
        os.mkfifo(path)
    else:
        path, complaint = tmp_path / "big.json", "has more than the 1048576 bytes"
        path.write_text('{"policyVersion": "v1", "x": "' + "a" * policy.MAX_POLICY_BYTES + '"}')
    if how == "--file":
        done = _seed_subprocess(migrated_db.url, {}, "--file", str(path))
    else:
        env = {"POLICY_VERSION": "v1", "POLICY_FILE": str(path)}
        done = _seed_subprocess(migrated_db.url, env, "--from-env")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert complaint in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert rows(db) == []


@pytest.mark.parametrize(
    "number",
    ["9007199254740993", "9007199254740993.0", "9.007199254740993e15", "1000000000000000.01"],
)
def test_numbers_that_do_not_round_trip_are_refused_by_the_cli(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    number: str,
) -> None:
    path = write(tmp_path, "n.json", '{"policyVersion": "v1", "limits": {"cap": ' + number + "}}")
    code, out, err = seed_cli(migrated_db.url, "--file", str(path), capsys=capsys)
    assert code == 2 and out == ""
    assert f"the number {number} at $.limits.cap does not round-trip exactly" in err
    assert rows(db) == []
