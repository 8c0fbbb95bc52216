"""The evidence bundle and CLI errors hold no credentials (issue 18 item 5, ADR 0078), and the
bundle says when the code that ran had untracked or modified files under alembic/ (issue 11
item 10)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from symphony_schema import project_root
from symphony_schema.cli import main
from symphony_schema.invariants import evidence
from tests.conftest import Database

pytestmark = pytest.mark.integration

USERINFO_PW = "Userinfo-Pw-31337"
SSL_PW = "Ssl-Pw-4242"
QUERY_PW = "Query-Pw-2718"


def _secret_url(url: str) -> str:
    parsed = make_url(url)
    query = dict(parsed.query) | {"sslpassword": SSL_PW, "password": QUERY_PW}
    # The embedded server trusts local connections, so the passwords are carried, not checked.
    return parsed.set(password=USERINFO_PW, query=query).render_as_string(hide_password=False)


def _assert_no_secret(text: str) -> None:
    for secret in (USERINFO_PW, SSL_PW, QUERY_PW):
        assert secret not in text, f"{secret} leaked: {text[:2000]}"


def test_verify_evidence_holds_no_password(
    empty_db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_seed_env: None,
) -> None:
    url = _secret_url(empty_db.url)
    argv = ["symphony-schema", "verify", "--url", url, "--evidence", str(tmp_path / "ev")]
    monkeypatch.setattr("sys.argv", argv)
    code = main(argv[1:])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    _assert_no_secret(out + err)
    bundle = tmp_path / "ev"
    for path in bundle.rglob("*"):
        if path.is_file():
            _assert_no_secret(path.read_text(encoding="utf-8"))
    run = json.loads((bundle / "run.json").read_text())
    assert run["argv"][3].startswith("postgresql+psycopg://postgres:***@/")
    assert "sslpassword=***" in run["argv"][3] and "password=***" in run["database"]["url"]
    assert evidence.verify_bundle(bundle) == []


def test_cli_errors_hold_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    # reset refuses a remote host and names the URL it refused: redacted.
    url = (
        f"postgresql://someone:{USERINFO_PW}@db.example.invalid:5432/payments"
        f"?sslpassword={SSL_PW}&password={QUERY_PW}"
    )
    code = main(["reset", "--url", url])
    err = capsys.readouterr().err
    assert code == 2 and "db.example.invalid" in err
    _assert_no_secret(err)


# --------------------------------------------------------------------------------------------
# Untracked / modified revisions (issue 11 item 10)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A throw-away clone of this repository at its HEAD commit."""
    target = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(project_root()), str(target)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def test_a_clean_clone_is_clean(clone: Path) -> None:
    facts = evidence.git_facts(clone)
    assert facts["dirty"] is False
    assert facts["alembic_untracked"] == [] and facts["alembic_modified"] == []


def test_an_untracked_revision_makes_the_code_not_clean(clone: Path) -> None:
    versions = clone / "alembic" / "versions"
    shutil.copy(versions / "0001_init.py", versions / "0099_sneaky.py")
    (versions / "0099_sneaky.sql").write_text("SELECT 1;\n")
    facts = evidence.git_facts(clone)
    assert facts["dirty"] is True
    assert facts["alembic_untracked"] == [
        "alembic/versions/0099_sneaky.py",
        "alembic/versions/0099_sneaky.sql",
    ]


def test_a_modified_revision_and_ignored_bytecode_are_reported(clone: Path) -> None:
    versions = clone / "alembic" / "versions"
    with (versions / "0002_outbox_functions.sql").open("a") as handle:
        handle.write("-- changed\n")
    cache = versions / "__pycache__"
    cache.mkdir()
    (cache / "0011_x.cpython-311.pyc").write_bytes(b"\x00")
    facts = evidence.git_facts(clone)
    assert facts["dirty"] is True
    assert facts["alembic_modified"] == ["alembic/versions/0002_outbox_functions.sql"]
    assert facts["alembic_ignored"] == ["alembic/versions/__pycache__/0011_x.cpython-311.pyc"]


# libpq quotes a malformed URL token verbatim ("invalid percent-encoded token: ..."): the
# commands that connect with a caller's URL mask its credentials in what they report.
MALFORMED = (
    "postgresql://someone:Se%zzcret-Pw@localhost/db"  # pragma: allowlist secret
    "?sslpassword=Ssl%zz-Pw"
)


def test_connection_errors_do_not_quote_the_password() -> None:
    from symphony_schema import logins, policy

    pinned = policy.PinnedPolicy("v1", "ab" * 32, "test")
    with pytest.raises(policy.PolicyError) as seeding:
        policy.seed_pinned_policy(MALFORMED, pinned)
    with pytest.raises(logins.LoginError) as password:
        logins.set_login_password(MALFORMED, "someone", "x")
    with pytest.raises(logins.LoginError) as granting:
        logins.grant_login(MALFORMED, "someone", ["symphony_readonly"])
    reasons = policy.boot_status(MALFORMED).reasons
    for text in (str(seeding.value), str(password.value), str(granting.value), *reasons):
        assert "percent-encoded" in text or "cannot read" in text, text
        assert "Se%zzcret-Pw" not in text and "Ssl%zz-Pw" not in text, text
