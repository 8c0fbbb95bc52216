"""Environment setup for logins: passwords and runtime-role memberships (outside migrations).

Migrations create roles but never set passwords or grant memberships
(docs/contract/schema.md §5): which login may act as which runtime role, and with which password,
belongs to the environment.

* :func:`set_login_password` takes the password from an environment variable only. The SCRAM-
  SHA-256 verifier is computed client-side by libpq (``PQencryptPasswordConn``, as ``psql
  \\password`` does), so the password itself never reaches the server, its logs or
  ``pg_stat_statements``. Every precondition is checked before the statement that carries the
  verifier, and every statement-logging path is switched off for it, or the command refuses
  before sending it (ADR 0031, ADR 0079).
* :func:`grant_login` grants the runtime roles (never ``symphony_owner``) to an existing,
  ordinary LOGIN role.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from symphony_schema import SymphonyError, privileges
from symphony_schema.redact import redact_text, url_secrets

__all__ = [
    "GrantResult",
    "LoginError",
    "grant_login",
    "parse_roles",
    "read_password_from_env",
    "set_login_password",
]

#: Environment variable names accepted by ``--from-env``: conventional upper-case names only, so
#: that a password typed where the variable name belongs is refused without being echoed.
_ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")


@dataclass(frozen=True)
class _QuietSetting:
    """A server setting that can write the statement carrying the verifier somewhere."""

    name: str
    quiet: str  # the value that keeps the statement out
    risky: Callable[[str], bool]  # whether the current value may write it
    session: bool = False  # must be set before the transaction starts (decided at BEGIN)


def _not(value: str) -> Callable[[str], bool]:
    return lambda current: current.strip().lower() != value


#: Every path by which PostgreSQL writes a statement's text to its log (or statistics), with the
#: value that closes it (ADR 0079). The ``log_*`` settings and pg_stat_statements' are
#: superuser-only (``GRANT SET ON PARAMETER`` lets a migrator change them); ``debug_print_*``
#: anyone may set. ``log_transaction_sample_rate`` decides at BEGIN whether a transaction is
#: sampled, so it is switched off for the session before the transaction, then reset.
_QUIET_SETTINGS = (
    _QuietSetting("log_transaction_sample_rate", "0", lambda v: float(v) != 0, session=True),
    _QuietSetting("log_statement", "none", _not("none")),
    _QuietSetting("log_min_duration_statement", "-1", _not("-1")),
    _QuietSetting("log_min_duration_sample", "-1", _not("-1")),
    _QuietSetting("log_min_error_statement", "panic", _not("panic")),
    _QuietSetting("debug_print_parse", "off", _not("off")),
    _QuietSetting("debug_print_rewritten", "off", _not("off")),
    _QuietSetting("debug_print_plan", "off", _not("off")),
    _QuietSetting("pg_stat_statements.track_utility", "off", _not("off")),
)

#: ``ALTER ROLE ... PASSWORD`` by a CREATEROLE role needs ADMIN OPTION on the target, the rule
#: since PostgreSQL 16; Symphony supports 18+ (the migration engine's version gate).
MIN_SERVER_VERSION_NUM = 180000


class LoginError(SymphonyError):
    """A login setup command refused; nothing was changed."""


def _symphony_nologin_roles() -> set[str]:
    return {role.name for role in privileges.ROLES if not role.login}


def _symphony_roles() -> set[str]:
    return {role.name for role in privileges.ROLES}


# --------------------------------------------------------------------------------------------
# Passwords
# --------------------------------------------------------------------------------------------


def read_password_from_env(var: str, env: Mapping[str, str]) -> str:
    """The password in environment variable ``var``; refuses a missing or empty one."""
    if not _ENV_NAME_RE.fullmatch(var):
        # Never echo `var`: it may be a password typed in the wrong place.
        raise LoginError(
            "--from-env takes the NAME of an environment variable (upper-case letters, digits "
            "and underscores, e.g. TEST_DB_PASSWORD), never the password itself; nothing was "
            "changed. If you typed a password there, consider it exposed (shell history) and "
            "choose a new one."
        )
    password = env.get(var)
    if password is None:
        raise LoginError(
            f"environment variable {var} is not set: export the password in {var} and run the "
            "command again; nothing was changed."
        )
    if password == "":
        raise LoginError(f"environment variable {var} is empty: refusing an empty password.")
    if "\x00" in password:
        raise LoginError(
            f"the password in {var} contains a NUL character, which PostgreSQL cannot store."
        )
    return password


def set_login_password(conninfo: str, login: str, password: str) -> str:
    """Set ``login``'s password (SCRAM-SHA-256, computed client-side). Returns a message that
    never contains the password or its verifier.

    Everything that can refuse runs before the statement carrying the verifier (ADR 0079): the
    server version, the target role, this login's right to change it (superuser, the login
    itself, or CREATEROLE with ADMIN OPTION on it), and every statement-logging path, which is
    switched off for that one transaction or, where this login may not, refused by name.
    """
    if not password:
        raise LoginError("refusing an empty password; nothing was changed.")
    try:
        with psycopg.connect(conninfo, connect_timeout=30, autocommit=True) as conn:
            _require_server_version(conn)
            _require_password_target(conn, login)
            _require_may_alter(conn, login)
            session_settings = _quiet_logging(conn, session=True)
            try:
                with conn.transaction():
                    _quiet_logging(conn, session=False)
                    verifier = conn.pgconn.encrypt_password(
                        password.encode("utf-8"), login.encode("utf-8"), b"scram-sha-256"
                    )
                    conn.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(login), sql.Literal(verifier.decode("ascii"))
                        )
                    )
            finally:
                for name in session_settings:
                    if not conn.closed and not conn.broken:
                        conn.execute("SELECT pg_catalog.set_config(%s, NULL, false)", (name,))
    except psycopg.Error as exc:
        raise _db_error(exc, f"setting the password of {login!r}", conninfo) from None
    return (
        f"password of login {login!r} set (SCRAM-SHA-256 verifier computed client-side; the "
        "password itself was not sent; statement logging was off for the change)"
    )


def _require_server_version(conn: psycopg.Connection[Any]) -> None:
    number = conn.info.server_version
    if number < MIN_SERVER_VERSION_NUM:
        raise LoginError(
            f"the server is PostgreSQL {number // 10000}; Symphony requires PostgreSQL "
            f"{MIN_SERVER_VERSION_NUM // 10000}+ (its role-administration rules decide who may "
            "change a password); nothing was changed."
        )


def _require_may_alter(conn: psycopg.Connection[Any], login: str) -> None:
    """Superuser, the login itself, or CREATEROLE with ADMIN OPTION on a non-replication
    login: the rules PostgreSQL applies to ``ALTER ROLE ... PASSWORD``, checked before the
    statement, so it never fails (a failing statement is logged by log_min_error_statement)."""
    row = conn.execute(
        "SELECT r.rolsuper, r.rolcreaterole, current_user = %(login)s, "
        "pg_catalog.pg_has_role(current_user, t.oid, 'USAGE WITH ADMIN OPTION'), "
        "t.rolreplication, current_user "
        "FROM pg_catalog.pg_roles AS r, pg_catalog.pg_roles AS t "
        "WHERE r.rolname = current_user AND t.rolname = %(login)s",
        {"login": login},
    ).fetchone()
    if row is None:  # the target vanished since the previous check
        raise LoginError(f"role {login!r} does not exist; nothing was changed.")
    is_super, create_role, is_self, admin, replication, me = row
    if is_super or is_self:
        return
    if not create_role or not admin or replication:
        missing = (
            "CREATEROLE"
            if not create_role
            else "ADMIN OPTION on it"
            if not admin
            else "a non-REPLICATION target"
        )
        raise LoginError(
            f"login {me!r} may not change the password of {login!r}: that needs a superuser, "
            f"the login itself, or CREATEROLE with ADMIN OPTION on it (PostgreSQL 16+ rules); "
            f"{me!r} lacks {missing}, so ALTER ROLE would fail with SQLSTATE 42501 "
            f"(insufficient_privilege). Grant it with 'GRANT {login} TO {me} WITH ADMIN TRUE' "
            "as a superuser, or run as one; nothing was sent, nothing was changed."
        )


def _require_password_target(conn: psycopg.Connection[Any], login: str) -> None:
    row = _role_row(conn, login)
    if row is None:
        raise LoginError(
            f"role {login!r} does not exist: create the login first (CREATE ROLE ... LOGIN) or "
            "check the name; nothing was changed."
        )
    can_login, is_super = row
    if login in _symphony_nologin_roles():
        raise LoginError(
            f"{login!r} is a Symphony NOLOGIN role and must never get a password: services log "
            "in as their own login and get the role with 'symphony-schema grant-login'."
        )
    if is_super:
        raise LoginError(
            f"refusing to set the password of superuser {login!r}: this command is for "
            "application and test logins only; nothing was changed."
        )
    if not can_login:
        raise LoginError(
            f"role {login!r} is NOLOGIN, so a password would be useless: pass a LOGIN role; "
            "nothing was changed."
        )


def _quiet_logging(conn: psycopg.Connection[Any], *, session: bool) -> list[str]:
    """Switch off every setting that would write the next statement to a log: for the session
    (``session=True``, settings decided at BEGIN) or for the current transaction. Refuses,
    naming the settings, when this login may not switch one off. Returns the names set."""
    changed: list[str] = []
    blocked: list[str] = []
    for setting in _QUIET_SETTINGS:
        if setting.session != session:
            continue
        row = conn.execute(
            "SELECT setting FROM pg_catalog.pg_settings WHERE name = %s", (setting.name,)
        ).fetchone()
        if row is None or not setting.risky(str(row[0])):
            continue  # not loaded (pg_stat_statements) or already quiet
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_catalog.set_config(%s, %s, %s)",
                    (setting.name, setting.quiet, not session),
                )
        except psycopg.errors.InsufficientPrivilege:
            blocked.append(f"{setting.name} = {row[0]}")
            continue
        changed.append(setting.name)
    if blocked:
        me = conn.execute("SELECT current_user").fetchone()
        who = me[0] if me else "this login"
        names = ", ".join(entry.split(" = ")[0] for entry in blocked)
        raise LoginError(
            f"refusing to send the password change: with {'; '.join(blocked)} the server would "
            "write the statement, which carries the SCRAM verifier (a credential for this "
            f"server), to its log or statistics, and {who!r} may not switch that off. Run as a "
            f"superuser, or let it: GRANT SET ON PARAMETER {names} TO {who}; nothing was sent, "
            "nothing was changed."
        )
    return changed


# --------------------------------------------------------------------------------------------
# Role memberships
# --------------------------------------------------------------------------------------------


@dataclass
class GrantResult:
    login: str
    granted: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = []
        if self.granted:
            parts.append(f"granted {', '.join(self.granted)} to login {self.login!r}")
        if self.already:
            parts.append(
                f"{'already a member of' if not self.granted else 'already held'} "
                f"{', '.join(self.already)}" + (" (nothing to do)" if not self.granted else "")
            )
        return "; ".join(parts)


def parse_roles(raw: Iterable[str]) -> list[str]:
    """Role names from ``--roles a,b --roles c``; refuses the owner and unknown roles."""
    roles: list[str] = []
    for chunk in raw:
        for name in chunk.split(","):
            name = name.strip()
            if not name:
                raise LoginError(
                    "--roles has an empty entry: give a comma-separated list such as "
                    "symphony_executor,symphony_readonly"
                )
            if name not in roles:
                roles.append(name)
    if not roles:
        raise LoginError("--roles is empty: name at least one runtime role")
    allowed = ", ".join(privileges.RUNTIME_ROLES)
    if privileges.OWNER in roles:
        raise LoginError(
            f"refusing to grant {privileges.OWNER}: it owns every Symphony object (and its "
            "SECURITY DEFINER functions run as it), so a login holding it bypasses the whole "
            f"privilege matrix. Grant runtime roles only: {allowed}. Nothing was granted."
        )
    unknown = [name for name in roles if name not in privileges.RUNTIME_ROLES]
    if unknown:
        raise LoginError(
            f"unknown runtime role(s) {', '.join(unknown)}: grant-login grants only {allowed}. "
            "Nothing was granted."
        )
    return roles


def grant_login(
    conninfo: str, login: str, roles: Iterable[str], *, inherit: bool = True
) -> GrantResult:
    """Grant runtime-role membership to an existing ordinary LOGIN role, in one transaction.

    Memberships are granted ``WITH ADMIN FALSE, SET TRUE`` and ``INHERIT`` as asked; a
    membership that already exists is reported and left as it is.
    """
    wanted = parse_roles(roles)
    result = GrantResult(login)
    try:
        with psycopg.connect(conninfo, connect_timeout=30, autocommit=True) as conn:
            _require_grant_target(conn, login)
            _require_roles_exist(conn, wanted)
            with conn.transaction():
                for role in wanted:
                    _grant_one(conn, login, role, inherit, result)
    except psycopg.Error as exc:
        raise _db_error(exc, f"granting {', '.join(wanted)} to {login!r}", conninfo) from None
    return result


def _require_grant_target(conn: psycopg.Connection[Any], login: str) -> None:
    row = _role_row(conn, login)
    if row is None:
        raise LoginError(
            f"login {login!r} does not exist: create it first (CREATE ROLE {login} LOGIN ...) "
            "or check the name; nothing was granted."
        )
    can_login, is_super = row
    if login == privileges.TEST_USER:
        raise LoginError(
            f"{login!r} is a Symphony role with its own row in the privilege matrix: a membership "
            "would give it privileges the matrix does not declare (ADR 0070, gate "
            "role-memberships). Grant to a service or person login instead; nothing was granted."
        )
    if login in _symphony_roles():
        raise LoginError(
            f"{login!r} is a Symphony role, not a login: role-in-role grants would change the "
            "privilege matrix. Grant to a service or person login instead; nothing was granted."
        )
    if is_super:
        raise LoginError(
            f"{login!r} is a superuser: it bypasses every privilege check, so runtime roles "
            "would mean nothing. Use an ordinary login; nothing was granted."
        )
    if not can_login:
        raise LoginError(
            f"role {login!r} is NOLOGIN: grant-login is for LOGIN roles; nothing was granted."
        )


def _require_roles_exist(conn: psycopg.Connection[Any], roles: list[str]) -> None:
    rows = conn.execute(
        "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (roles,)
    ).fetchall()
    missing = sorted(set(roles) - {row[0] for row in rows})
    if missing:
        raise LoginError(
            f"role(s) {', '.join(missing)} do not exist on this server: migrate first "
            "('alembic upgrade head' creates the Symphony roles); nothing was granted."
        )


def _grant_one(
    conn: psycopg.Connection[Any], login: str, role: str, inherit: bool, result: GrantResult
) -> None:
    existing = conn.execute(
        "SELECT m.inherit_option FROM pg_catalog.pg_auth_members AS m "
        "JOIN pg_catalog.pg_roles AS r ON r.oid = m.roleid "
        "JOIN pg_catalog.pg_roles AS u ON u.oid = m.member "
        "WHERE r.rolname = %s AND u.rolname = %s",
        (role, login),
    ).fetchall()
    if existing:
        result.already.append(role)
        return
    # INHERIT comes first: Citus 14 re-deparses the GRANT for its workers and writes a ","
    # instead of "WITH" before the first option it emits when an option it leaves out (ADMIN
    # FALSE, SET TRUE: the defaults) came before it, a syntax error on every worker (ADR 0128).
    conn.execute(
        sql.SQL("GRANT {} TO {} WITH INHERIT {}, ADMIN FALSE, SET TRUE").format(
            sql.Identifier(role), sql.Identifier(login), sql.SQL("TRUE" if inherit else "FALSE")
        )
    )
    result.granted.append(role)


# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------


def _role_row(conn: psycopg.Connection[Any], name: str) -> tuple[bool, bool] | None:
    row = conn.execute(
        "SELECT rolcanlogin, rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s", (name,)
    ).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


def _db_error(exc: psycopg.Error, doing: str, conninfo: str) -> LoginError:
    # Only the first line of the server message: never the statement (it may hold a verifier);
    # libpq may quote a malformed URL token, so the URL's credentials are masked too.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = redact_text(first, url_secrets(conninfo))
    if exc.sqlstate is None:
        return LoginError(f"cannot connect to the database while {doing}: {first}")
    hint = ""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        hint = (
            " Run it as a superuser or as a role with CREATEROLE and ADMIN OPTION on the "
            "roles concerned (PostgreSQL 16+ rules)."
        )
    return LoginError(
        f"{doing} failed: SQLSTATE {exc.sqlstate}: {first}.{hint} "
        "The transaction was rolled back; nothing was changed."
    )
