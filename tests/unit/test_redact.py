"""symphony_schema.redact: the one helper that keeps credentials out of outputs (ADR 0078)."""

from __future__ import annotations

import pytest

from symphony_schema.redact import (
    MASK,
    redact_argv,
    redact_conninfo,
    redact_data,
    redact_text,
    redact_url,
    url_secrets,
)

SECRETS = ("pw-1", "sp-2", "qp-3", "pf-4")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:pw-1@h:5432/db"  # pragma: allowlist secret
            "?sslmode=require&sslpassword=sp-2&password=qp-3",
            "postgresql://u:***@h:5432/db?sslmode=require&sslpassword=***&password=***",
        ),
        (
            "postgresql+psycopg://u:pw-1@/db"  # pragma: allowlist secret
            "?host=/tmp/s&port=5433&passfile=pf-4",
            "postgresql+psycopg://u:***@/db?host=/tmp/s&port=5433&passfile=***",
        ),
        (
            "postgres://u:pw-1@h1:1,h2:2/db",  # pragma: allowlist secret
            "postgres://u:***@h1:1,h2:2/db",
        ),
        ("postgresql://u@h/db?application_name=x", "postgresql://u@h/db?application_name=x"),
        ("postgresql://:pw-1@/db", "postgresql://:***@/db"),
        # an unencoded "/" in the password (SQLAlchemy accepts it) still hides all of it
        ("postgresql://u:pw-1/x@h/db", "postgresql://u:***@h/db"),
        # percent-encoded parameter names are judged decoded
        (
            "postgresql://h/db?pass%77ord=qp-3&ssl%70assword=sp-2",
            "postgresql://h/db?pass%77ord=***&ssl%70assword=***",
        ),
        (
            "postgresql://h/db?sslkey=/k&api_token=qp-3#f",
            "postgresql://h/db?sslkey=***&api_token=***#f",
        ),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        ("host=h password=pw-1 dbname=d", "host=h password=*** dbname=d"),
        (
            "host=h password = 'p w\\'-1' sslpassword=sp-2",  # pragma: allowlist secret
            "host=h password = *** sslpassword=***",
        ),
        ("dbname=d passfile=/home/u/.pgpass user=u", "dbname=d passfile=*** user=u"),
    ],
)
def test_redact_conninfo(conninfo: str, expected: str) -> None:
    assert redact_conninfo(conninfo) == expected
    assert redact_url(conninfo) == expected


def test_redact_argv_covers_every_spelling() -> None:
    argv = [
        "symphony-schema",
        "verify",
        "--url",
        "postgresql://u:pw-1@h/db?sslpassword=sp-2",  # pragma: allowlist secret
        "--url=postgresql://u:pw-1@h/db?password=qp-3",  # pragma: allowlist secret
        "-x",
        "url=postgresql://u:pw-1@h/db",  # pragma: allowlist secret
        "--password",
        "pf-4",
        "--sslpassword=sp-2",
        "host=h password=qp-3",
        "--evidence",
        "out",
    ]
    redacted = redact_argv(argv)
    joined = " ".join(redacted)
    assert not any(secret in joined for secret in SECRETS), joined
    assert redacted[:3] == ["symphony-schema", "verify", "--url"]
    assert redacted[3] == "postgresql://u:***@h/db?sslpassword=***"
    assert redacted[7:10] == ["--password", MASK, f"--sslpassword={MASK}"]
    assert redacted[-2:] == ["--evidence", "out"]


def test_redact_text_and_data() -> None:
    text = (
        "cannot connect to postgresql://u:pw-1@h/db"  # pragma: allowlist secret
        "?sslpassword=sp-2 (password=qp-3)"
    )
    assert (
        redact_text(text)
        # a value runs to the next blank: a ")" may be part of a password
        == "cannot connect to postgresql://u:***@h/db?sslpassword=*** (password=***"
    )
    data = {
        "argv": ["--url", "postgresql://u:pw-1@h/d"],  # pragma: allowlist secret
        "n": 3,
        "d": {"e": "password=pf-4"},
    }
    assert redact_data(data) == {
        "argv": ["--url", "postgresql://u:***@h/d"],
        "n": 3,
        "d": {"e": "password=***"},
    }


def test_nothing_else_changes() -> None:
    for text in ("plain text", "postgresql://u@h:5432/db", "dbname=d user=u host=/tmp", ""):
        assert redact_text(text) == text


def test_url_secrets_lists_what_redact_url_masks() -> None:
    found = url_secrets(
        "postgresql://u:se%zzcret@h/db?sslpassword=a%41bcd&x=1",  # pragma: allowlist secret
        "host=h password='p w q'",  # pragma: allowlist secret
        None,
    )
    assert set(found) == {"se%zzcret", "a%41bcd", "'p w q'", "p w q", "aAbcd"}
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)
    assert url_secrets("postgresql://u@h/db") == []


def test_known_secrets_are_masked_wherever_a_message_quotes_them() -> None:
    secrets = url_secrets("postgresql://u:se%zzcret@h/db")
    message = 'invalid percent-encoded token: "se%zzcret"'
    assert redact_text(message, secrets) == 'invalid percent-encoded token: "***"'
