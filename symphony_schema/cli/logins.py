"""``symphony-schema set-login-password`` and ``symphony-schema grant-login``."""

from __future__ import annotations

import argparse
import os

from symphony_schema import logins, privileges
from symphony_schema.cli import add_url_argument
from symphony_schema.database import select_database


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    password = subparsers.add_parser(
        "set-login-password",
        help="set a login's password from an environment variable (never from the command line)",
        description=(
            "Set the password of an ordinary LOGIN role (e.g. test_user) outside migrations. The "
            "password is read only from the environment variable named by --from-env; there is "
            "deliberately no option to pass it on the command line. libpq computes the "
            "SCRAM-SHA-256 verifier client-side, so the password is never sent to the server "
            "and never printed. Every statement-logging path (log_statement, duration and "
            "sampling logs, log_min_error_statement, debug_print_*, pg_stat_statements) is "
            "switched off for the change. Refused before anything is sent: a missing or empty "
            "variable, a role that does not exist, a NOLOGIN role, a Symphony runtime/owner "
            "role, a superuser, a login this user may not change (needs superuser or "
            "CREATEROLE with ADMIN OPTION on it), a logging setting this user may not switch "
            "off (GRANT SET ON PARAMETER ... fixes it)."
        ),
    )
    password.add_argument("login", metavar="LOGIN", help="the LOGIN role whose password to set")
    password.add_argument(
        "--from-env",
        required=True,
        metavar="VAR",
        help="NAME of the environment variable holding the password (upper-case, e.g. "
        "TEST_DB_PASSWORD)",
    )
    add_url_argument(password)
    password.set_defaults(handler=_set_password)

    grant = subparsers.add_parser(
        "grant-login",
        help="grant runtime-role membership to a login",
        description=(
            "Grant membership in Symphony runtime roles to an existing, ordinary LOGIN role "
            "(migrations grant no memberships). Allowed roles: "
            f"{', '.join(privileges.RUNTIME_ROLES)}. {privileges.OWNER} is never granted. "
            "Memberships are WITH ADMIN FALSE, SET TRUE and INHERIT TRUE (or INHERIT FALSE "
            "with --no-inherit: the login then has the privileges only after SET ROLE). "
            "Existing memberships are reported and left unchanged. Refused: unknown roles, a "
            "login that does not exist, a NOLOGIN or Symphony role, a superuser."
        ),
    )
    grant.add_argument("login", metavar="LOGIN", help="the existing LOGIN role to grant to")
    grant.add_argument(
        "--roles",
        required=True,
        action="append",
        metavar="ROLE[,ROLE...]",
        help="runtime roles to grant (comma-separated; may be repeated)",
    )
    grant.add_argument(
        "--no-inherit",
        action="store_true",
        help="grant WITH INHERIT FALSE: privileges apply only after SET ROLE",
    )
    add_url_argument(grant)
    grant.set_defaults(handler=_grant)


def _set_password(args: argparse.Namespace) -> int:
    password = logins.read_password_from_env(args.from_env, os.environ)
    selected = select_database(args.url)
    print(logins.set_login_password(selected.conninfo, args.login, password))
    return 0


def _grant(args: argparse.Namespace) -> int:
    roles = logins.parse_roles(args.roles)
    selected = select_database(args.url)
    result = logins.grant_login(selected.conninfo, args.login, roles, inherit=not args.no_inherit)
    print(result.message)
    return 0
