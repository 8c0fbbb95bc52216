"""The version gate refuses the machine's Debian PostgreSQL 15 with a clear message.

PostgreSQL refuses to run as root, so as root the old server runs as the unprivileged system user
the embedded wheel already uses. Where no PostgreSQL 15 is installed the test fails loudly with
the install command instead of silently passing (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.migration.conftest import RevisionTree, make_tree

pytestmark = [pytest.mark.integration, pytest.mark.migration]

PG15_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("embedded_postgres")  # created by the embedded server fixture
    return {"user": entry.pw_uid, "group": entry.pw_gid}


@pytest.fixture
def postgres15(pg_server: object) -> Iterator[str]:
    if not (PG15_BIN / "postgres").is_file():
        pytest.fail(
            "Debian PostgreSQL 15 is not installed at /usr/lib/postgresql/15, so the version gate "
            "cannot be proven against a real old server. Install it: "
            "apt-get install -y postgresql-15 (.ci/run does this)."
        )
    # Not under pytest's tmp dir: that one is private to root, and the server runs as another user.
    base = Path(tempfile.mkdtemp(prefix="symphony-pg15-"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    data.mkdir()
    sock.mkdir()
    kwargs = _as_user()
    if kwargs:
        for path in (base, data, sock):
            shutil.chown(path, user=kwargs["user"], group=kwargs["group"])  # type: ignore[arg-type]
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C"}
    options = f"-c listen_addresses='' -k {sock} -p 5499"
    for args in (
        ["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        ["pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
    ):
        done = subprocess.run(
            [str(PG15_BIN / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=base,
            **kwargs,  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            pytest.fail(f"could not start PostgreSQL 15 ({args[0]}): {done.stderr}{log}")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}&port=5499"
    finally:
        subprocess.run(
            [str(PG15_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            cwd=base,
            **kwargs,  # type: ignore[arg-type]
        )
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_15_is_refused_before_anything_is_written(
    tmp_path: Path, postgres15: str
) -> None:
    tree: RevisionTree = make_tree(tmp_path / "project", postgres15)
    tree.add("one", "CREATE TABLE one (id int);")

    result = tree.alembic("upgrade", "head")

    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "Symphony requires PostgreSQL 18+ (server is 15." in message
    conninfo = postgres15.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT to_regclass('public.schema_migrations'), to_regclass('public.one'), "
            "to_regclass('public.alembic_version')"
        ).fetchone()
    assert row == (None, None, None), "nothing may be written on a refused server"


def test_offline_script_gate_stops_psql_on_postgresql_15(tmp_path: Path, postgres15: str) -> None:
    tree: RevisionTree = make_tree(tmp_path / "project", postgres15)
    tree.add("one", "CREATE TABLE one (id int);")
    script = tree.alembic("upgrade", "head", "--sql")
    assert script.returncode == 0, script.stderr
    from symphony_schema import embedded

    conninfo = postgres15.replace("postgresql+psycopg", "postgresql")
    applied = subprocess.run(
        [str(embedded.binary("psql")), "-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo],
        input=script.stdout,
        capture_output=True,
        text=True,
    )
    assert applied.returncode != 0
    assert "Symphony requires PostgreSQL 18+ (server is 15." in applied.stderr


def test_reset_on_postgresql_15_is_refused_before_anything_is_dropped(postgres15: str) -> None:
    """Issue 11 item 7: reset dropped public (and a user table in it), then failed the gate."""
    from symphony_schema import reset

    conninfo = postgres15.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.keep_me (x int)")
        conn.execute("INSERT INTO public.keep_me VALUES (1)")

    with pytest.raises(reset.ResetRefused) as caught:
        reset.reset_database(postgres15)

    message = str(caught.value)
    assert "Symphony requires PostgreSQL 18+ (server is 15." in message
    assert "Nothing was dropped" in message
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM public.keep_me), to_regclass('public.schema_migrations')"
        ).fetchone()
    assert row == (1, None), "nothing may be dropped or written on a refused server"
