"""Red team of credential redaction (issue 18 item 5, ADR 0078): passwords that libpq and
SQLAlchemy both read from a URL's userinfo must be masked in every output, whatever characters
they contain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg.conninfo
import pytest
from sqlalchemy.engine import make_url

from symphony_schema.cli import main
from symphony_schema.redact import redact_argv, redact_text, redact_url, url_secrets

# Both parsers read these passwords from the userinfo: libpq ends it at the first "@" before a
# "/", SQLAlchemy at the last "@"; neither stops at "?" (and SQLAlchemy not at "/" either).
URLS = [
    ("postgresql://alice:Sec?ret-31337@127.0.0.1:1/db", "Sec?ret-31337"),
    ("postgresql://alice:Sec?ret-31337@127.0.0.1:1/db?sslmode=disable", "Sec?ret-31337"),
    ("postgresql://alice:Se%41c?ret-31337@127.0.0.1:1/db", "SeAc?ret-31337"),
    ("postgresql+psycopg://alice:a/b?c-31337@127.0.0.1:1/db", "a/b?c-31337"),
]


@pytest.mark.parametrize(("url", "password"), URLS)
def test_a_question_mark_in_the_password_does_not_leak(url: str, password: str) -> None:
    assert make_url(url).password == password, "SQLAlchemy reads this password"
    if "+" not in url.split("://")[0]:
        assert psycopg.conninfo.conninfo_to_dict(url)["password"] == password, "and libpq too"
    raw = url.split("://", 1)[1].split(":", 1)[1].rsplit("@127.0.0.1", 1)[0]
    outputs = [
        redact_url(url),
        *redact_argv(["verify", "--url", url]),
        *redact_argv([f"--url={url}"]),
        redact_text(f"cannot connect to {url}: refused"),
    ]
    for output in outputs:
        assert password not in output and raw not in output, output
    assert "127.0.0.1:1/db" in redact_url(url), "the server and database are still named"
    assert password in url_secrets(url) or raw in url_secrets(url)


def test_the_evidence_bundle_holds_no_password_with_a_question_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, password = URLS[0]
    bundle = tmp_path / "evidence"
    argv = ["verify", "--url", url, "--evidence", str(bundle)]
    monkeypatch.setattr(sys, "argv", ["symphony-schema", *argv])
    assert main(argv) != 0
    stored = "\n".join(p.read_text() for p in bundle.rglob("*") if p.is_file())
    assert "--url" in json.loads((bundle / "run.json").read_text())["argv"]
    assert "127.0.0.1:1/db" in stored
    assert password not in stored
