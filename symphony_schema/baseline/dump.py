"""``pg_dump --schema-only`` with the PostgreSQL 18 client, normalised to be byte-identical.

What varies between runs or machines and is removed (ADR 0010):

* the version banners (``-- Dumped from database version ...``) and the dump's own header and
  footer comments;
* the ``\\restrict`` / ``\\unrestrict`` psql meta-commands: newer ``pg_dump`` writes a random key
  unless given one; a fixed key is passed and the lines are dropped anyway, because the baseline
  is applied through psycopg (which does not speak psql meta-commands);
* the migrating user: the engine creates the ledger tables as whoever migrates, so
  ``ALTER ... OWNER TO <migrating user>`` is dropped (whoever applies the baseline owns them, as
  whoever migrates does) and ``Owner: <migrating user>`` in the object headers becomes
  ``Owner: (migrating user)``.
"""

from __future__ import annotations

import bisect
import os
import re
import subprocess
import sys

from sqlalchemy.engine import make_url

from symphony_schema import SymphonyError, embedded

#: Passed to ``pg_dump --restrict-key`` so even the raw dump is reproducible.
RESTRICT_KEY = "symphonybaseline"
MIGRATING_USER = "(migrating user)"

PG_DUMP_OPTIONS = (
    "--schema-only",
    "--no-tablespaces",
    "--no-subscriptions",
    "--no-security-labels",
    # The ledger's partitions: operational state, checked by the gate (ADR 0130).
    "--exclude-schema=symphony_ledger",
    f"--restrict-key={RESTRICT_KEY}",
)

_FOOTER = "--\n-- PostgreSQL database dump complete\n--\n"


def pg_dump_schema(url: str) -> str:
    """Raw ``pg_dump --schema-only`` of the database at ``url`` (a SQLAlchemy URL).

    The password, if any, goes through ``PGPASSWORD`` rather than the command line.
    """
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    conninfo = parsed.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False
    )
    command = [str(embedded.binary("pg_dump")), *PG_DUMP_OPTIONS, f"--dbname={conninfo}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SymphonyError(
            f"pg_dump failed (exit {result.returncode}) on database {parsed.database}:\n"
            f"{result.stderr.strip()}"
        )
    return result.stdout


def normalise_dump(raw: str, migrating_user: str, quoted_user: str | None = None) -> str:
    """Remove everything run- or machine-specific from a ``pg_dump`` text (see module doc).

    ``migrating_user`` is the role's name (as the ``-- Name: ...; Owner:`` headers print it) and
    ``quoted_user`` the same name as statements print it (``quote_ident``; default: the same). Only
    the preamble, the footer and whole statement lines ``pg_dump`` writes at the top level are
    touched; function bodies are never rewritten.
    """
    body = _strip_preamble_and_footer(raw)
    quoted = quoted_user if quoted_user is not None else migrating_user
    owner_stmt = re.compile(r"ALTER [A-Z ]+ .+ OWNER TO " + re.escape(quoted) + ";")
    owner_header = re.compile(r"(-- Name: .*; Owner: )" + re.escape(migrating_user))
    quoted_spans = _quoted_spans(body)
    kept: list[str] = []
    skip_blank = False
    offset = 0
    for line in body.split("\n"):
        start, offset = offset, offset + len(line) + 1
        if skip_blank and line == "":
            skip_blank = False
            continue
        skip_blank = False
        if not _inside(start, quoted_spans):
            if owner_stmt.fullmatch(line):
                # Drop the statement and the blank line after it, leaving pg_dump's usual two
                # blank lines between objects.
                skip_blank = True
                continue
            line = owner_header.sub(lambda m: m.group(1) + MIGRATING_USER, line)
        kept.append(line)
    return "\n".join(kept).strip("\n") + "\n"


#: Scanner tokens that can span lines: string constants (dollar-quoted function bodies are
#: SCONST) and C-style comments. A line starting inside one is never touched.
_MULTILINE_TOKENS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST", "C_COMMENT"})


def _quoted_spans(body: str) -> list[tuple[int, int]]:
    """(start, end inclusive) of every multi-line-capable token, found by PostgreSQL's own
    scanner (via pglast), in order."""
    from pglast.parser import scan

    return [(tok.start, tok.end) for tok in scan(body) if tok.name in _MULTILINE_TOKENS]


def _inside(offset: int, spans: list[tuple[int, int]]) -> bool:
    index = bisect.bisect_right(spans, (offset, sys.maxsize)) - 1
    return index >= 0 and spans[index][0] < offset <= spans[index][1]


def _strip_preamble_and_footer(raw: str) -> str:
    """Drop the banner, version and ``\\restrict`` lines before the first ``SET`` and the
    "dump complete" footer with its ``\\unrestrict`` line."""
    start = raw.find("\nSET ")
    if start < 0:
        raise SymphonyError("unexpected pg_dump output: no SET preamble; is it pg_dump 18?")
    preamble = raw[:start]
    for line in preamble.splitlines():
        if line and not (line.startswith("--") or line.startswith("\\restrict ")):
            raise SymphonyError(f"unexpected line in the pg_dump preamble: {line!r}")
    body = raw[start + 1 :]
    end = body.rfind(_FOOTER)
    if end >= 0:
        tail = body[end + len(_FOOTER) :]
        if any(line and not line.startswith("\\unrestrict ") for line in tail.splitlines()):
            raise SymphonyError("unexpected pg_dump output after the 'dump complete' footer")
        body = body[:end]
    return body
