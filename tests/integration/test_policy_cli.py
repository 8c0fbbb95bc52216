"""``symphony-schema policy rotate|status|retire-expired`` and what ``boot-check`` says about GRACE
versions (issue 14): the same refusal and exit-code conventions as ``seed-policy``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from symphony_schema import policy
from symphony_schema.cli import main
from symphony_schema.policy import rotation
from symphony_schema.privileges import CONTROL, READONLY

if TYPE_CHECKING:
    from tests.integration.conftest import LoginFactory

pytestmark = pytest.mark.integration

V1 = {"policyVersion": "2025.9", "limits": {"batch": 50}}
V2 = {"policyVersion": "2025.10", "limits": {"batch": 60}}
V3 = {"policyVersion": "2025.11", "limits": {"batch": 70}}


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, document: dict[str, Any] | str, name: str = "p.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, status::text, checksum, grace_expires_at FROM public.policy_versions "
        "ORDER BY created_at"
    ).fetchall()


@pytest.fixture
def seeded(migrated_db: Any) -> Any:
    policy.seed_policy_document(migrated_db.conninfo, V1)
    return migrated_db


def test_rotate_status_and_retire(
    seeded: Any, db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = seeded.url
    code, out, err = cli(
        "policy",
        "rotate",
        "--url",
        url,
        "--file",
        write(tmp_path, V2),
        "--grace",
        "24h",
        capsys=capsys,
    )
    assert (code, err) == (0, "")
    assert out.startswith("rotated: policy version '2025.10' is ACTIVE")
    assert "'2025.9' is GRACE until" in out
    (v1, v2) = rows(db)
    assert (v1[1], v2[1]) == ("GRACE", "ACTIVE")
    assert v2[2] == policy.canonical_checksum(V2)

    # Replay: exit 0, nothing to do, nothing written.
    code, out, _ = cli(
        "policy",
        "rotate",
        "--url",
        url,
        "--file",
        write(tmp_path, V2),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert code == 0 and "already exists (ACTIVE) with the same checksum" in out
    assert rows(db) == [v1, v2]

    code, out, err = cli("policy", "status", "--url", url, capsys=capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "VERSION",
        "STATUS",
        "CHECKSUM",
        "ACCEPTED",
        "GRACE",
        "LEFT",
        "GRACE",
        "UNTIL",
    ]
    first, second = lines[1].split(), lines[2].split()
    assert first[:4] == ["2025.9", "GRACE", policy.canonical_checksum(V1)[:12], "yes"]
    assert first[4:6] == ["23h", "59m"]
    assert second == ["2025.10", "ACTIVE", policy.canonical_checksum(V2)[:12], "yes", "-", "-"]

    code, out, _ = cli("policy", "retire-expired", "--url", url, capsys=capsys)
    assert code == 0 and out.strip() == "no GRACE policy version has expired: nothing to retire"
    assert rows(db) == [v1, v2]

    # Replaying the older rotation step later (a retried pipeline) changes nothing either.
    code, out, _ = cli(
        "policy",
        "rotate",
        "--url",
        url,
        "--file",
        write(tmp_path, V1),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert code == 0 and "already exists (GRACE)" in out and "never re-activates" in out
    assert rows(db) == [v1, v2]


def test_expired_grace_is_shown_and_retired(
    seeded: Any, db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Controlled time: a one-second grace, then wait for the server clock to pass it.
    code, _, _ = cli(
        "policy",
        "rotate",
        "--url",
        seeded.url,
        "--file",
        write(tmp_path, V2),
        "--grace",
        "1s",
        capsys=capsys,
    )
    assert code == 0
    _wait_until_expired(db, "2025.9")
    code, out, _ = cli("policy", "status", "--url", seeded.url, capsys=capsys)
    assert out.splitlines()[1].split()[:5] == [
        "2025.9",
        "GRACE",
        policy.canonical_checksum(V1)[:12],
        "no",
        "expired",
    ]
    code, out, _ = cli("policy", "retire-expired", "--url", seeded.url, capsys=capsys)
    assert code == 0 and out.startswith("retired policy version '2025.9' (its grace ended ")
    assert [row[1] for row in rows(db)] == ["RETIRED", "ACTIVE"]
    code, out, _ = cli("policy", "status", "--url", seeded.url, capsys=capsys)
    assert out.splitlines()[1].split()[:5] == [
        "2025.9",
        "RETIRED",
        policy.canonical_checksum(V1)[:12],
        "no",
        "-",
    ]


def _wait_until_expired(db: psycopg.Connection[Any], version: str) -> None:
    for _ in range(300):
        row = db.execute(
            "SELECT grace_expires_at <= statement_timestamp() FROM public.policy_versions "
            "WHERE version = %s",
            (version,),
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"{version} never expired")


@pytest.mark.parametrize(
    ("grace", "complaint"),
    [
        ("0h", "is not positive"),
        ("0s", "is not positive"),
        ("-1h", "is not a duration"),
        ("24", "is not a duration"),
        ("1 day", "is not a duration"),
        ("abc", "is not a duration"),
        ("", "is not a duration"),
        ("367d", "longer than the 366 days"),
        ("99999999999w", "is not a duration"),
    ],
)
def test_bad_grace_is_refused_before_connecting(
    seeded: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    grace: str,
    complaint: str,
) -> None:
    before = rows(db)
    code, out, err = cli(
        "policy",
        "rotate",
        "--url",
        seeded.url,
        "--file",
        write(tmp_path, V2),
        f"--grace={grace}",
        capsys=capsys,
    )
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and complaint in err and "--grace" in err
    assert rows(db) == before


@pytest.mark.parametrize(
    ("document", "sqlstate", "complaint"),
    [
        ({"policyVersion": "2025.9", "limits": {}}, "P7101", "never changes"),
        ({"policyVersion": "2025.8"}, "P7102", "not newer"),
        ({"policyVersion": "2025.09"}, "P7102", "not newer"),
    ],
)
def test_database_refusals_exit_2_in_one_line(
    seeded: Any,
    db: psycopg.Connection[Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    document: dict[str, Any],
    sqlstate: str,
    complaint: str,
) -> None:
    before = rows(db)
    code, out, err = cli(
        "policy",
        "rotate",
        "--url",
        seeded.url,
        "--file",
        write(tmp_path, document),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert f"SQLSTATE {sqlstate}" in err and complaint in err and "Nothing was written" in err
    assert rows(db) == before


def test_rotate_without_an_active_version_points_to_seeding(
    migrated_db: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        "policy",
        "rotate",
        "--url",
        migrated_db.url,
        "--file",
        write(tmp_path, V2),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert code == 2 and "SQLSTATE P7103" in err and "seed-policy" in err


def test_document_problems_are_refused_like_seed_policy(
    seeded: Any, db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = rows(db)
    for bad, complaint in [
        ('{"limits": {}}', "no usable policyVersion"),
        ("[]", "must be a JSON object"),
        ('{"policyVersion": "v2", "x": 1e999}', "does not round-trip"),
    ]:
        code, out, err = cli(
            "policy",
            "rotate",
            "--url",
            seeded.url,
            "--file",
            write(tmp_path, bad),
            "--grace",
            "1h",
            capsys=capsys,
        )
        assert (code, out) == (2, "") and complaint in err, err
    code, _, err = cli(
        "policy",
        "rotate",
        "--url",
        seeded.url,
        "--file",
        str(tmp_path / "missing.json"),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert code == 2 and "cannot read policy file" in err
    assert rows(db) == before


def test_rotate_from_env(
    seeded: Any,
    db: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in (policy.ENV_FILE, policy.ENV_DOCUMENT, policy.ENV_CHECKSUM):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(policy.ENV_VERSION, "2025.10")
    monkeypatch.setenv(policy.ENV_DOCUMENT, json.dumps(V2))
    code, out, _ = cli(
        "policy", "rotate", "--url", seeded.url, "--from-env", "--grace", "2d", capsys=capsys
    )
    assert code == 0 and "'2025.10' is ACTIVE" in out
    assert [row[1] for row in rows(db)] == ["GRACE", "ACTIVE"]


def test_roles(
    seeded: Any,
    pg_server: Any,
    login: LoginFactory,
    tmp_path: Path,
    db: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = login(READONLY)
    url = pg_server.conninfo(seeded.name, user=reader.name)
    before = rows(db)
    reader_url = pg_server.sqlalchemy_url(seeded.name, user=reader.name).replace("+psycopg", "")
    code, _, err = cli(
        "policy",
        "rotate",
        "--url",
        reader_url,
        "--file",
        write(tmp_path, V2),
        "--grace",
        "1h",
        capsys=capsys,
    )
    assert code == 2 and "SQLSTATE 42501" in err and "symphony_control" in err
    assert rows(db) == before
    with pytest.raises(policy.PolicyError, match="42501"):
        rotation.retire_expired(url)

    control = login(CONTROL)
    control_url = pg_server.conninfo(seeded.name, user=control.name)
    result = rotation.rotate_policy(
        control_url, policy.pinned_policy_of(V2), rotation.parse_grace("1h")
    )
    assert result.created and result.demoted_version == "2025.9"
    assert [r.version for r in rotation.policy_status(control_url)] == ["2025.9", "2025.10"]


def test_console_script_in_a_subprocess(seeded: Any, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("symphony-schema")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_")}
    done = subprocess.run(
        [
            str(script),
            "policy",
            "rotate",
            "--file",
            write(tmp_path, V2),
            "--grace",
            "0h",
            "--url",
            seeded.url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


# -- boot-check and GRACE versions -------------------------------------------------------------


def test_boot_check_reports_grace_versions(
    seeded: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotation.rotate_policy(seeded.conninfo, policy.pinned_policy_of(V2), rotation.parse_grace("1d"))
    code, out, err = cli("boot-check", "--url", seeded.url, capsys=capsys)
    assert (code, err) == (0, "")
    assert "ACTIVE policy '2025.10'" in out
    assert "GRACE: '2025.9' accepted until " in out
    status = policy.boot_status(seeded.conninfo)
    assert [g.version for g in status.grace] == ["2025.9"] and status.grace[0].accepted


def test_boot_check_accepts_a_service_pinned_to_a_grace_version(
    seeded: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotation.rotate_policy(seeded.conninfo, policy.pinned_policy_of(V2), rotation.parse_grace("1h"))
    old = write(tmp_path, V1, "old.json")
    code, out, err = cli("boot-check", "--url", seeded.url, "--policy-file", old, capsys=capsys)
    assert (code, err) == (0, "")
    assert "expected policy '2025.9' is GRACE, accepted until" in out

    # The same version with another document is still refused.
    other = write(tmp_path, {"policyVersion": "2025.9", "limits": {}}, "other.json")
    code, _, err = cli("boot-check", "--url", seeded.url, "--policy-file", other, capsys=capsys)
    assert code == 1 and "GRACE policy '2025.9' has checksum" in err
    # A version that does not exist at all.
    code, _, err = cli(
        "boot-check", "--url", seeded.url, "--policy-file", write(tmp_path, V3), capsys=capsys
    )
    assert code == 1 and "the ACTIVE policy is '2025.10', but" in err


def test_boot_check_refuses_a_service_pinned_to_an_expired_version(
    seeded: Any, db: psycopg.Connection[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rotation.rotate_policy(seeded.conninfo, policy.pinned_policy_of(V2), rotation.parse_grace("1s"))
    old = write(tmp_path, V1, "old.json")
    _wait_until_expired(db, "2025.9")
    code, _, err = cli("boot-check", "--url", seeded.url, "--policy-file", old, capsys=capsys)
    assert code == 1
    assert "the expected policy '2025.9' is GRACE but its grace window ended at" in err
    code, out, _ = cli("boot-check", "--url", seeded.url, capsys=capsys)
    assert code == 0 and "GRACE: '2025.9' expired at" in out and "retire-expired" in out
    rotation.retire_expired(seeded.conninfo)
    code, _, err = cli("boot-check", "--url", seeded.url, "--policy-file", old, capsys=capsys)
    assert code == 1 and "the expected policy '2025.9' is RETIRED" in err
