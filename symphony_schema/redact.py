"""Credentials out of everything the tool prints or stores: URLs, conninfo strings, argv (ADR 0078).

One helper for every output (evidence bundle, error messages, announcements). What is hidden:

* the password of a URL's userinfo (between ``user:`` and ``@host``);
* the value of every URL query parameter and every libpq ``key=value`` conninfo parameter whose
  name carries a credential: ``password``, ``sslpassword``, ``passfile``, ``sslkey`` and any
  name containing ``pass``, ``pwd``, ``secret``, ``token``, ``credential`` or ``key``
  (percent-encoded names are decoded before they are judged);
* in argv, the same inside any element (``--url=…``, ``-x url=…``, a bare URL or conninfo), and
  the element after an option whose own name carries a credential (``--password X``).

Hidden values become :data:`MASK`; everything else is kept byte for byte, so a redacted URL still
says which server, port, database and user were meant.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

__all__ = [
    "MASK",
    "is_secret_name",
    "redact_argv",
    "redact_conninfo",
    "redact_data",
    "redact_text",
    "redact_url",
    "url_secrets",
]

MASK = "***"

_SECRET_NAME_RE = re.compile(r"pass|pwd|secret|token|credential|key", re.IGNORECASE)
#: A URL anywhere in a text: scheme, ``://``, then up to whitespace or a quote.
_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*")
#: One libpq conninfo ``keyword = value`` pair (value single-quoted with backslash escapes, or a
#: run of non-blanks).
_PAIR_RE = re.compile(
    r"(?P<key>\b[A-Za-z_][A-Za-z0-9_.]*)(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|[^\s'\"]*)"
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter, variable or option name carries a credential."""
    return bool(_SECRET_NAME_RE.search(unquote(name)))


def redact_url(url: str) -> str:
    """``url`` with its userinfo password and credential query parameters masked.

    Accepts libpq URIs (``postgresql://``, ``postgres://``), SQLAlchemy URLs
    (``postgresql+psycopg://``) and, when there is no ``://``, libpq ``key=value`` conninfo
    strings (see :func:`redact_conninfo`).
    """
    if "://" not in url:
        return redact_conninfo(url)
    scheme, _, rest = url.partition("://")
    rest = _mask_parsed_password(url, rest)
    # The userinfo ends at the last "@" before the query: SQLAlchemy accepts a password with an
    # unencoded "/" (postgresql://u:p/w@host), so the first "/" cannot be trusted to end it.
    before_query = rest.split("?", 1)[0]
    at = before_query.rfind("@")
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        rest = f"{user}{':' + MASK if colon else ''}{rest[at:]}"
    start = rest.find("@") + 1 if at >= 0 else 0
    cut = min(
        (i for i in (rest.find(c, start) for c in "/?#") if i >= 0),
        default=len(rest),
    )
    netloc, tail = rest[:cut], rest[cut:]
    path, question, query = tail.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        query = "&".join(_redact_query_item(item) for item in query.split("&"))
        tail = f"{path}?{query}{hash_}{fragment}"
    return f"{scheme}://{netloc}{tail}"


def _parsed_passwords(url: str) -> set[str]:
    """The userinfo password as libpq and as SQLAlchemy read it (either may stop at other
    characters than a text search would: neither ends the userinfo at ``?``)."""
    found: set[str] = set()
    # A URL a parser cannot read carries no password for that parser.
    with contextlib.suppress(Exception):
        found.add(str(make_url(url).password or ""))
    libpq_url = re.sub(r"^[A-Za-z][A-Za-z0-9.-]*\+[A-Za-z0-9.+-]*://", "postgresql://", url)
    with contextlib.suppress(Exception):
        found.add(str(conninfo_to_dict(libpq_url).get("password") or ""))
    found.discard("")
    return found


def _mask_parsed_password(url: str, rest: str) -> str:
    """``rest`` (the URL after ``://``) with the text between the userinfo's first ``:`` and an
    ``@`` masked when a parser reads that text as the password (red team, ADR 0100)."""
    passwords = _parsed_passwords(url)
    colon = rest.find(":")
    if not passwords or colon < 0:
        return rest
    for at in sorted((i for i, c in enumerate(rest) if c == "@" and i > colon), reverse=True):
        candidate = rest[colon + 1 : at]
        if candidate in passwords or unquote(candidate) in passwords:
            return f"{rest[: colon + 1]}{MASK}{rest[at:]}"
    return rest


def _redact_query_item(item: str) -> str:
    name, eq, _value = item.partition("=")
    return f"{name}={MASK}" if eq and is_secret_name(name) else item


def redact_conninfo(conninfo: str) -> str:
    """A libpq ``key=value`` conninfo string with credential-bearing values masked."""

    def mask(match: re.Match[str]) -> str:
        if not is_secret_name(match["key"]):
            return match[0]
        return f"{match['key']}{match['eq']}{MASK}"

    return _PAIR_RE.sub(mask, conninfo)


#: Known secrets shorter than this are not searched for in free text (they would mask ordinary
#: words); such a password is no protection anyway.
_MIN_KNOWN_SECRET = 4


def url_secrets(*urls: str | None) -> list[str]:
    """The credential values in ``urls`` (URLs or conninfo strings), as written and decoded:
    what :func:`redact_url` masks. Give them to :func:`redact_text` to mask them wherever a
    message quotes them (libpq quotes a malformed token verbatim: ``invalid percent-encoded
    token: "se%zzcret"``)."""
    found: set[str] = set()
    for url in urls:
        if not url:
            continue
        redacted = redact_url(url)
        # Walk both strings: every MASK in the redacted text stands for a run of the original.
        pattern = "(.*?)".join(re.escape(part) for part in redacted.split(MASK))
        match = re.fullmatch(pattern, url, re.DOTALL)
        if match is None:
            continue
        for value in match.groups():
            raw = value.strip("'")
            for candidate in (value, raw, unquote(raw)):
                if len(candidate) >= _MIN_KNOWN_SECRET:
                    found.add(candidate)
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (a message, a log line) with every URL and conninfo credential in it masked,
    and every occurrence of the known ``secrets`` (see :func:`url_secrets`)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_KNOWN_SECRET:
            text = text.replace(secret, MASK)
    parts: list[str] = []
    last = 0
    for match in _URL_RE.finditer(text):
        parts.append(redact_conninfo(text[last : match.start()]))
        parts.append(redact_url(match[0]))
        last = match.end()
    parts.append(redact_conninfo(text[last:]))
    return "".join(parts)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """argv with every credential masked (see the module docstring)."""
    result: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            result.append(MASK)
            hide_next = False
            continue
        if arg.startswith("-") and "=" not in arg and is_secret_name(arg.lstrip("-")):
            result.append(arg)
            hide_next = True
            continue
        if arg.startswith("-") and "=" in arg:
            option, _, value = arg.partition("=")
            if is_secret_name(option.lstrip("-")):
                result.append(f"{option}={MASK}")
            else:
                result.append(f"{option}={redact_text(value)}")
            continue
        result.append(redact_text(arg))
    return result


def redact_data(value: Any) -> Any:
    """Every string inside a JSON-like structure through :func:`redact_text` (the evidence
    bundle's last line of defence)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value
