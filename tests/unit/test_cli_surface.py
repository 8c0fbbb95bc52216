"""The CLI as a newcomer meets it (issue 12 items 6, 7, 9, 11): no database needed."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from symphony_schema import SymphonyError, project_root
from symphony_schema.cli import EXAMPLES, build_parser, iter_commands, main
from symphony_schema.cli.db import split_user
from symphony_schema.database import libpq_url, to_conninfo
from tests.helpers import run_cli

ROOT = project_root()
BIN = Path(sys.executable).parent


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SYMPHONY_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return monkeypatch


# -- item 9: --version, help texts, --url before or after the command ----------------------------


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert (
        capsys.readouterr().out.strip() == f"symphony-schema {metadata.version('symphony-schema')}"
    )


def test_every_command_has_a_description_and_an_example() -> None:
    commands = list(iter_commands(build_parser()))
    assert {"db url", "db start", "ledger", "baseline drift", "reset"} <= {
        c for c, _, _ in commands
    }
    missing = []
    for name, parser, _help in commands:
        text = parser.format_help()
        examples = text.partition("examples:\n")[2]
        if not parser.description or "symphony-schema " not in examples:
            missing.append(name)
    assert missing == [], f"add a description and an EXAMPLES entry for: {missing}"
    assert set(EXAMPLES) <= {name for name, _, _ in commands}, "EXAMPLES names unknown commands"


@pytest.mark.parametrize(
    "argv",
    [
        ["db", "url", "--url", "postgresql://u@db.example/x"],
        ["--url", "postgresql://u@db.example/x", "db", "url"],
        [
            "--url",
            "postgresql://u@db.example/x",
            "db",
            "url",
            "--url",
            "postgresql://u@db.example/x",
        ],
    ],
    ids=["after", "before", "both-equal"],
)
def test_url_is_accepted_before_or_after_the_command(
    argv: list[str], clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == "postgresql://u@db.example/x\n"


def test_conflicting_or_pointless_url_is_a_usage_error(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--url", "postgresql://a@h/x", "db", "url", "--url", "postgresql://b@h/x"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["--url", "postgresql://a@h/x", "new-revision", "x"])
    assert exited.value.code == 2
    assert "--url does not apply to 'new-revision'" in capsys.readouterr().err


# -- item 7: db url prints what psql accepts, passwords masked ------------------------------------


def test_db_url_prints_a_libpq_url_with_the_password_masked(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr" + "et"  # pragma: allowlist secret
    url = f"postgresql://app:{secret}@db.example:5433/pay?sslmode=require"
    assert main(["db", "url", "--url", url]) == 0
    out, err = capsys.readouterr()
    assert out == "postgresql://app:***@db.example:5433/pay?sslmode=require\n"
    assert secret not in out + err
    assert "--url" in err  # says where the URL came from
    clean_env.setenv("SYMPHONY_DATABASE_URL", url)
    assert main(["db", "url", "--show-password"]) == 0
    out, err = capsys.readouterr()
    assert out == url + "\n"
    assert conninfo_to_dict(out.strip())["password"] == secret  # libpq parses it
    assert "SYMPHONY_DATABASE_URL" in err
    assert main(["db", "url", "--sqlalchemy"]) == 0
    assert capsys.readouterr().out == (
        "postgresql+psycopg://app:***@db.example:5433/pay?sslmode=require\n"
    )


def test_libpq_url_keeps_socket_directories_with_spaces() -> None:
    url = "postgresql+psycopg://u@/db?host=/tmp/my projects/pg&port=5432"
    assert conninfo_to_dict(to_conninfo(url))["host"] == "/tmp/my projects/pg"
    assert conninfo_to_dict(libpq_url(url))["port"] == "5432"


# -- item 5: psql's -U goes into the URL (a -d conninfo would override it) ------------------------


@pytest.mark.parametrize(
    ("args", "user", "rest"),
    [
        (["-U", "bob", "-Atc", "SELECT 1"], "bob", ["-Atc", "SELECT 1"]),
        (["-Ubob", "-c", "x"], "bob", ["-c", "x"]),
        (["--username", "bob"], "bob", []),
        (["--username=bob", "-c", "x"], "bob", ["-c", "x"]),
        (["-U", "a", "-U", "b"], "b", []),  # the last one wins, as in psql
        (["-c", "SELECT 1"], None, ["-c", "SELECT 1"]),
    ],
)
def test_split_user_takes_psql_user_options_out(
    args: list[str], user: str | None, rest: list[str]
) -> None:
    assert split_user(args) == (user, rest)


def test_dangling_user_option_is_refused() -> None:
    with pytest.raises(SymphonyError, match="needs a role name"):
        split_user(["-c", "SELECT 1", "-U"])


@pytest.mark.parametrize("argv", [["-U", "", "--"], ["--", "-U", ""], ["--", "--username="]])
def test_empty_user_is_refused_not_ignored(argv: list[str]) -> None:
    # An empty role name must not silently connect as the URL's (super)user. A subprocess: on a
    # regression db psql would exec psql in place of the test process.
    result = run_cli(
        "db", "psql", "--url", "postgresql://u@192.0.2.1/x", *argv, unset=["SYMPHONY_DATABASE_URL"]
    )
    assert result.returncode == 2
    assert "role name given with -U/--user is empty" in result.stderr


def test_missing_config_file_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", "/nonexistent/alembic.ini", "db", "url"]) == 2
    err = capsys.readouterr().err
    assert err == "symphony-schema: error: -c/--config: no such file: /nonexistent/alembic.ini\n"


# -- item 6: bad URLs are one line naming their source, exit 2, for every command ---------------

BAD_URLS = {
    "garbage": ("garbage", "not a database URL"),
    "mysql": ("mysql://u@db.example/x", "not a PostgreSQL URL"),
    "port-text": ("postgresql://u@db.example:abc/x", "invalid port"),
    "port-range": ("postgresql://u@db.example:99999/x", "invalid port"),
    "libpq-option": ("postgresql://u@db.example/x?nosuchoption=1", "nosuchoption"),
}

COMMANDS = {
    "db url": ["db", "url"],
    "db psql": ["db", "psql", "--", "-c", "SELECT 1"],
    "ledger": ["ledger"],
    "boot-check": ["boot-check"],
    "seed-policy": ["seed-policy", "--file", str(ROOT / "policy" / "dev-policy.json")],
    "reset": ["reset", "--yes"],
    "grant-login": ["grant-login", "nobody", "--roles", "symphony_executor"],
    "set-login-password": ["set-login-password", "nobody", "--from-env", "H8_TEST_PASSWORD"],
    "verify": ["verify"],
    "baseline apply": ["baseline", "apply"],
    "baseline drift": ["baseline", "drift"],
    "baseline generate": ["baseline", "generate", "--output-dir", "{tmp}"],
    "invariants gate": ["invariants", "gate"],
}
SOURCES = ("--url", "--url first", "SYMPHONY_DATABASE_URL", "DATABASE_URL")


#: Every command with every source (a garbage URL), and every kind of bad URL with every source
#: (two commands): 92 cases, in-process (a traceback would be an exception escaping main()).
BAD_URL_CASES = sorted(
    {(command, "garbage", source) for command in COMMANDS for source in SOURCES}
    | {
        (command, bad, source)
        for command in ("db url", "ledger")
        for bad in BAD_URLS
        for source in SOURCES
    }
)


@pytest.mark.parametrize(("command", "bad", "source"), BAD_URL_CASES)
def test_bad_url_is_one_line_naming_its_source_exit_2(
    command: str,
    bad: str,
    source: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url, problem = BAD_URLS[bad]
    clean_env.setenv("H8_TEST_PASSWORD", "x")
    argv = [arg.replace("{tmp}", str(tmp_path / "out")) for arg in COMMANDS[command]]
    if source == "--url":
        # after the command (db psql: before its "--", which hands the rest to psql)
        argv = (
            [*argv[:2], "--url", url, *argv[2:]] if command == "db psql" else [*argv, "--url", url]
        )
    elif source == "--url first":
        argv = ["--url", url, *argv]
    else:
        clean_env.setenv(source, url)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    named = "--url" if source.startswith("--url") else source
    assert named in err and problem in err, err
    assert not (tmp_path / "out").exists()


ALEMBIC_CASES = [
    *[(["-x", f"url={url}", "upgrade", "head"], {}, problem) for url, problem in BAD_URLS.values()],
    (["upgrade", "head"], {"SYMPHONY_DATABASE_URL": "garbage"}, "SYMPHONY_DATABASE_URL"),
    (["upgrade", "head"], {"DATABASE_URL": "mysql://u@h/x"}, "DATABASE_URL"),
    (["current"], {"DATABASE_URL": "postgresql://u@h:0/x"}, "invalid port"),
]


@pytest.mark.parametrize(("argv", "env", "expected"), ALEMBIC_CASES)
def test_alembic_with_a_bad_url_fails_in_one_line(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    result = run_cli(
        *argv,
        program="alembic",
        cwd=ROOT,
        env=env,
        unset=["SYMPHONY_DATABASE_URL", "DATABASE_URL"],
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    # Like every symphony-schema command: one line naming the source, exit status 2.
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stdout + result.stderr
    assert lines[0].startswith("alembic: error: "), lines
    assert result.returncode == 2


# -- item 9: `alembic upgrade head --sql | head` exits quietly -----------------------------------


def test_offline_script_into_a_closed_pipe_exits_quietly() -> None:
    process = subprocess.Popen(
        [str(BIN / "alembic"), "upgrade", "head", "--sql"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `| head -1` does after its line
    stderr = process.stderr.read().decode()
    process.stderr.close()
    code = process.wait(timeout=120)
    assert first.startswith(b"-- Symphony schema")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code == 141


# -- item 11: the CLI acts on the project in the current directory --------------------------------


def _copy_project(target: Path) -> Path:
    import shutil

    target.mkdir()
    shutil.copy2(ROOT / "alembic.ini", target / "alembic.ini")
    shutil.copytree(
        ROOT / "alembic", target / "alembic", ignore=shutil.ignore_patterns("__pycache__")
    )
    return target


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, unset=["SYMPHONY_PROJECT_ROOT"])


def _strays(slug: str) -> list[Path]:
    return sorted((ROOT / "alembic" / "versions").glob(f"*_{slug}.*"))


@pytest.mark.parametrize("how", ["cwd", "subdirectory", "-c"])
def test_new_revision_writes_into_the_project_it_is_run_in(tmp_path: Path, how: str) -> None:
    copy = _copy_project(tmp_path / "copy")
    slug = f"h8_copy_{how.strip('-')}"
    try:
        if how == "cwd":
            result = _run_cli(["new-revision", slug], cwd=copy)
        elif how == "subdirectory":
            result = _run_cli(["new-revision", slug], cwd=copy / "alembic" / "versions")
        else:
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            result = _run_cli(["-c", str(copy / "alembic.ini"), "new-revision", slug], elsewhere)
        assert result.returncode == 0, result.stderr
        written = sorted(p.name for p in (copy / "alembic" / "versions").glob(f"*_{slug}.*"))
        assert [Path(name).suffix for name in written] == [".py", ".sql"]
        assert _strays(slug) == []
    finally:
        for stray in _strays(slug):  # before the fix the files landed in this checkout
            stray.unlink()
