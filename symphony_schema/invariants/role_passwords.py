"""``gate:role-passwords``: the semantic secrets check (INV-038, ADR 0086).

Lexical scans cannot see a password that a revision builds at run time (``EXECUTE format('ALTER
ROLE %I PASSWORD %L', ...)``, ``'PASS' || 'WORD'``, ``decode(..., 'base64')``, SQL sent from the
``.py``). This check looks at the result instead: after the migration run,

* no Symphony group role (:data:`symphony_schema.privileges.ROLES` without a login) has a
  password, whatever set it;
* no role that the migration run *touched* has a password. A role is touched when its
  ``pg_authid`` row is new or has a new ``xmin`` (every ``CREATE ROLE`` / ``ALTER ROLE`` writes a
  new row version, even when it sets the same password again), found by comparing
  :func:`snapshot` before and after the migration.

Reading ``pg_authid`` needs a superuser; for anyone else the check is skipped with a notice
(never silently passed). Logins whose password an operator set outside migrations
(``set-login-password``) are not touched by the migrations and so are not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from symphony_schema import privileges
from symphony_schema.invariants.results import SkipCheck

CHECK_REF = "gate:role-passwords"

_SNAPSHOT = """
SELECT a.oid, a.rolname, a.xmin::text, a.rolpassword IS NOT NULL
  FROM pg_catalog.pg_authid AS a
"""


@dataclass(frozen=True)
class RoleRow:
    name: str
    xmin: str
    has_password: bool


Snapshot = Mapping[int, RoleRow]


def _read(conninfo: str) -> dict[int, RoleRow]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(_SNAPSHOT).fetchall()
    return {int(oid): RoleRow(str(name), str(xmin), bool(has)) for oid, name, xmin, has in rows}


def snapshot(conninfo: str) -> Snapshot | str:
    """The roles of the cluster (``oid -> row``), or why they cannot be read."""
    try:
        return _read(conninfo)
    except psycopg.errors.InsufficientPrivilege:
        return "pg_authid is readable by superusers only: role passwords not checked"
    except psycopg.Error as exc:
        return f"cannot read pg_authid ({exc.sqlstate or 'no SQLSTATE'}: {exc})".strip()


def touched(before: Snapshot, after: Snapshot) -> list[str]:
    """Names of roles created or altered between the two snapshots."""
    return sorted(
        row.name for oid, row in after.items() if oid not in before or before[oid].xmin != row.xmin
    )


def check(conninfo: str, before: Snapshot | str | None = None) -> list[str]:
    """Every role the check finds with a password (see the module docstring).

    ``before`` is the snapshot taken before the migration (``None``: no migration ran here, only
    the Symphony roles are checked; a string: the reason it could not be taken).
    """
    after = snapshot(conninfo)
    if isinstance(after, str):
        raise SkipCheck(after)
    from symphony_schema.invariants.gate_cluster import owner_credential_is_citus_only

    problems = []
    group_roles = {role.name for role in privileges.ROLES if not role.login}
    for row in sorted(after.values(), key=lambda r: r.name):
        if row.name in group_roles and row.has_password:
            if row.name == "symphony_owner" and owner_credential_is_citus_only(conninfo):
                continue  # ADR 0146: on a Citus cluster only pg_dist_authinfo holds it
            problems.append(
                f"role {row.name} has a password (pg_authid.rolpassword IS NOT NULL); Symphony "
                f"group roles never log in: ALTER ROLE {row.name} PASSWORD NULL, and find what "
                "set it"
            )
    if isinstance(before, str):
        problems.append(f"the roles the migration touched are unknown: {before}")
    elif before is not None:
        for name in touched(before, after):
            row = next(r for r in after.values() if r.name == name)
            if row.has_password and name not in group_roles:
                problems.append(
                    f"role {name} was created or altered by the migrations and has a password "
                    "(pg_authid.rolpassword IS NOT NULL); revisions never set passwords nor alter "
                    "a role that has one: find the revision, remove the statement (login "
                    "passwords are set with set-login-password) and rotate the password"
                )
    return problems
