"""``set-login-password`` and ``grant-login`` against the real cluster (roles are cluster-wide:
every login here is uniquely named and dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from symphony_schema import logins
from symphony_schema.cli import main
from tests.helpers import run_cli

pytestmark = pytest.mark.integration

# Generated per run (unique, so finding it in any output means a leak); quotes, a backslash and
# non-ASCII make sure nothing is built by string concatenation.
LEAK_PROBE = uuid.uuid4().hex + "'\"\\é"


@pytest.fixture
def make_role(db: psycopg.Connection[Any]) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(attributes: str = "LOGIN") -> str:
        name = f"t_pw_{uuid.uuid4().hex[:12]}"
        db.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name)))
        created.append(name)
        return name

    yield make
    for name in created:
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def stored_password(db: psycopg.Connection[Any], role: str) -> str | None:
    row = db.execute("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s", (role,))
    value = row.fetchone()
    assert value is not None
    return None if value[0] is None else str(value[0])


# --------------------------------------------------------------------------------------------
# set-login-password
# --------------------------------------------------------------------------------------------


def test_password_from_env_is_stored_as_scram_and_never_printed(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    role = make_role()
    monkeypatch.setenv("T_LOGIN_PASSWORD", LEAK_PROBE)
    code, out, err = cli(
        ["set-login-password", role, "--from-env", "T_LOGIN_PASSWORD", "--url", migrated_db.url],
        capsys,
    )
    assert (code, err) == (0, "")
    assert f"password of login {role!r} set" in out and "statement logging was off" in out
    verifier = stored_password(db, role)
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$4096:")
    assert LEAK_PROBE not in out + err and verifier not in out + err
    assert LEAK_PROBE not in verifier


def test_the_verifier_matches_the_password(
    migrated_db: Any, db: psycopg.Connection[Any], make_role: Callable[..., str]
) -> None:
    """The stored SCRAM verifier is for this password: recompute StoredKey with its salt."""
    import base64
    import hashlib
    import hmac

    role = make_role()
    logins.set_login_password(migrated_db.conninfo, role, LEAK_PROBE)
    verifier = stored_password(db, role)
    assert verifier is not None
    method_iter_salt, keys = verifier.split("$", 1)[1], verifier.split("$", 2)[2]
    iterations, salt = method_iter_salt.split("$")[0].split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac(
        "sha256", LEAK_PROBE.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert hashlib.sha256(client_key).digest() == stored_key


def test_console_script_sets_the_password(
    migrated_db: Any, db: psycopg.Connection[Any], make_role: Callable[..., str]
) -> None:
    role = make_role()
    done = run_cli(
        "set-login-password",
        role,
        "--from-env",
        "T_LOGIN_PASSWORD",
        "--url",
        migrated_db.url,
        env={"T_LOGIN_PASSWORD": LEAK_PROBE},
    )
    assert done.returncode == 0, done.stderr
    assert LEAK_PROBE not in done.stdout + done.stderr
    assert (stored_password(db, role) or "").startswith("SCRAM-SHA-256$")


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "environment variable T_LOGIN_PASSWORD is not set"),
        ({"T_LOGIN_PASSWORD": ""}, "environment variable T_LOGIN_PASSWORD is empty"),
    ],
)
def test_missing_or_empty_variable_is_refused(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    complaint: str,
) -> None:
    role = make_role()
    monkeypatch.delenv("T_LOGIN_PASSWORD", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = cli(
        ["set-login-password", role, "--from-env", "T_LOGIN_PASSWORD", "--url", migrated_db.url],
        capsys,
    )
    assert code == 2 and out == "" and complaint in err
    assert stored_password(db, role) is None


def test_a_password_given_as_the_variable_name_is_not_echoed(
    migrated_db: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = "hunter2-" + uuid.uuid4().hex
    code, out, err = cli(
        ["set-login-password", "test_user", "--from-env", typo, "--url", migrated_db.url], capsys
    )
    assert code == 2 and "takes the NAME of an environment variable" in err
    assert typo not in out + err


def test_there_is_no_command_line_password_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["set-login-password", "--help"])
    assert exited.value.code == 0
    assert "--password" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["set-login-password", "test_user"])
    assert exited.value.code == 2
    assert "the following arguments are required: --from-env" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "complaint"),
    [
        ("symphony_owner", "is a Symphony NOLOGIN role and must never get a password"),
        ("symphony_executor", "is a Symphony NOLOGIN role"),
        ("postgres", "refusing to set the password of superuser 'postgres'"),
        ("t_pw_does_not_exist", "role 't_pw_does_not_exist' does not exist"),
    ],
)
def test_unsuitable_roles_are_refused(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    complaint: str,
) -> None:
    monkeypatch.setenv("T_LOGIN_PASSWORD", LEAK_PROBE)
    before = db.execute(
        "SELECT rolname, rolpassword FROM pg_catalog.pg_authid ORDER BY rolname"
    ).fetchall()
    code, out, err = cli(
        ["set-login-password", target, "--from-env", "T_LOGIN_PASSWORD", "--url", migrated_db.url],
        capsys,
    )
    assert code == 2 and complaint in err and LEAK_PROBE not in out + err
    after = db.execute(
        "SELECT rolname, rolpassword FROM pg_catalog.pg_authid ORDER BY rolname"
    ).fetchall()
    assert {r for r in after if r[0] == target} == {r for r in before if r[0] == target}


def test_nologin_role_is_refused(
    migrated_db: Any, db: psycopg.Connection[Any], make_role: Callable[..., str]
) -> None:
    role = make_role("NOLOGIN")
    with pytest.raises(logins.LoginError, match="is NOLOGIN, so a password would be useless"):
        logins.set_login_password(migrated_db.conninfo, role, LEAK_PROBE)
    assert stored_password(db, role) is None


def test_non_superuser_without_createrole_gets_the_sqlstate(
    migrated_db: Any,
    pg_server: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    login: Any,
) -> None:
    role = make_role()
    someone = login()
    with pytest.raises(logins.LoginError, match="SQLSTATE 42501") as caught:
        logins.set_login_password(
            pg_server.conninfo(migrated_db.name, someone.name), role, LEAK_PROBE
        )
    assert LEAK_PROBE not in str(caught.value)
    assert stored_password(db, role) is None


# --------------------------------------------------------------------------------------------
# grant-login
# --------------------------------------------------------------------------------------------


def memberships(db: psycopg.Connection[Any], member: str) -> set[tuple[str, bool, bool, bool]]:
    return {
        (str(r), bool(i), bool(s), bool(a))
        for r, i, s, a in db.execute(
            "SELECT m.roleid::regrole::text, m.inherit_option, m.set_option, m.admin_option "
            "FROM pg_catalog.pg_auth_members AS m WHERE m.member = %s::regrole",
            (member,),
        ).fetchall()
    }


def test_grant_login_grants_runtime_roles_that_then_work(
    migrated_db: Any,
    pg_server: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    role = make_role()
    code, out, _ = cli(
        [
            "grant-login",
            role,
            "--roles",
            "symphony_executor,symphony_readonly",
            "--url",
            migrated_db.url,
        ],
        capsys,
    )
    assert code == 0 and f"granted symphony_executor, symphony_readonly to login {role!r}" in out
    assert memberships(db, role) == {
        ("symphony_executor", True, True, False),
        ("symphony_readonly", True, True, False),
    }
    # The login (not a superuser) now has the runtime roles' privileges, and only those.
    with psycopg.connect(pg_server.conninfo(migrated_db.name, role), autocommit=True) as conn:
        conn.execute("SELECT version FROM public.policy_versions WHERE is_active").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO public.policy_versions (version, status, checksum) "
                "VALUES ('x', 'RETIRED', repeat('0', 64))"
            )


def test_grant_login_is_idempotent(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    role = make_role()
    args = ["grant-login", role, "--roles", "symphony_readonly", "--url", migrated_db.url]
    assert cli(args, capsys)[0] == 0
    code, out, _ = cli(args, capsys)
    assert code == 0 and "already a member of symphony_readonly (nothing to do)" in out
    code, out, _ = cli(
        [*args[:3], "symphony_readonly", "--roles", "symphony_auditor", "--url", migrated_db.url],
        capsys,
    )
    assert code == 0
    assert "granted symphony_auditor" in out and "already held symphony_readonly" in out
    assert {m[0] for m in memberships(db, role)} == {"symphony_readonly", "symphony_auditor"}


def test_no_inherit_requires_set_role(
    migrated_db: Any,
    pg_server: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
) -> None:
    role = make_role()
    result = logins.grant_login(migrated_db.conninfo, role, ["symphony_readonly"], inherit=False)
    assert result.granted == ["symphony_readonly"]
    assert memberships(db, role) == {("symphony_readonly", False, True, False)}
    with psycopg.connect(pg_server.conninfo(migrated_db.name, role), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.policy_versions")
        conn.execute("SET ROLE symphony_readonly")
        conn.execute("SELECT count(*) FROM public.policy_versions")


@pytest.mark.parametrize(
    ("roles", "complaint"),
    [
        ("symphony_owner", "refusing to grant symphony_owner"),
        ("symphony_readonly,symphony_owner", "refusing to grant symphony_owner"),
        ("symphony_nope", "unknown runtime role(s) symphony_nope"),
        ("pg_read_all_data", "unknown runtime role(s) pg_read_all_data"),
        ("test_user", "unknown runtime role(s) test_user"),
        ("symphony_readonly,,symphony_auditor", "--roles has an empty entry"),
    ],
)
def test_grant_login_refuses_roles_outside_the_runtime_set(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    roles: str,
    complaint: str,
) -> None:
    role = make_role()
    code, out, err = cli(["grant-login", role, "--roles", roles, "--url", migrated_db.url], capsys)
    assert code == 2 and out == "" and complaint in err
    assert memberships(db, role) == set()


@pytest.mark.parametrize(
    ("target_kind", "complaint"),
    [
        ("missing", "does not exist: create it first"),
        ("nologin", "is NOLOGIN: grant-login is for LOGIN roles"),
        ("superuser", "is a superuser: it bypasses every privilege check"),
        ("symphony", "is a Symphony role, not a login"),
        ("test_user", "'test_user' is a Symphony role with its own row in the privilege matrix"),
    ],
)
def test_grant_login_refuses_unsuitable_targets(
    migrated_db: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
    target_kind: str,
    complaint: str,
) -> None:
    target = {
        "missing": lambda: f"t_pw_missing_{uuid.uuid4().hex[:8]}",
        "nologin": lambda: make_role("NOLOGIN"),
        "superuser": lambda: make_role("LOGIN SUPERUSER"),
        "symphony": lambda: "symphony_control",
        "test_user": lambda: "test_user",
    }[target_kind]()
    before = memberships(db, target) if target_kind != "missing" else set()
    code, _, err = cli(
        ["grant-login", target, "--roles", "symphony_readonly", "--url", migrated_db.url], capsys
    )
    assert code == 2 and complaint in err and "nothing was granted" in err
    if target_kind != "missing":
        assert memberships(db, target) == before


def test_grant_login_as_a_plain_login_reports_the_sqlstate(
    migrated_db: Any,
    pg_server: Any,
    db: psycopg.Connection[Any],
    make_role: Callable[..., str],
    login: Any,
) -> None:
    role = make_role()
    someone = login()
    with pytest.raises(logins.LoginError, match="SQLSTATE 42501"):
        logins.grant_login(
            pg_server.conninfo(migrated_db.name, someone.name), role, ["symphony_readonly"]
        )
    assert memberships(db, role) == set()
