"""The declared privilege matrix (:mod:`symphony_schema.privileges`) against the live catalog
(:mod:`symphony_schema.privilege_catalog`): one line per difference, with the fix."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from symphony_schema.privilege_catalog import (
    EffectivePrivileges,
    RoleMembership,
    read_effective_privileges,
    read_memberships,
    read_migrating_user,
    read_predefined_reach,
)
from symphony_schema.privileges import (
    GRANT_OPTION,
    KIND_PRIVILEGES,
    PUBLIC,
    ROLES,
    RUNTIME_ROLES,
    GrantMatrix,
    ObjectKind,
    expected_grants,
)


def diff_grants(expected: GrantMatrix, actual: GrantMatrix) -> list[str]:
    """Human-readable differences, one line per privilege, sorted; empty when the matrices agree.

    ``missing: <grantee> <PRIV> on <kind> <object>`` - declared but not granted;
    ``extra: <grantee> <PRIV> on <kind> <object>`` - granted but not declared.
    A key absent from either side counts as "no privileges".
    """
    lines: list[str] = []
    for key in sorted(set(expected) | set(actual)):
        grantee, kind, name = key
        want = expected.get(key, frozenset())
        have = actual.get(key, frozenset())
        for privilege in sorted(want - have):
            lines.append(f"missing: {grantee} {privilege} on {kind} {name}")
        for privilege in sorted(have - want):
            lines.append(f"extra: {grantee} {privilege} on {kind} {name}")
    return lines


def diff_role_attributes(actual: Mapping[str, Mapping[str, bool]]) -> list[str]:
    """Differences between the declared roles and :func:`read_role_attributes` output."""
    lines: list[str] = []
    for role in ROLES:
        have = actual.get(role.name)
        if have is None:
            lines.append(f"missing role: {role.name}")
            continue
        for column, want in role.attributes().items():
            if have.get(column) != want:
                lines.append(f"role {role.name}: {column} is {have.get(column)}, expected {want}")
    return lines


def predefined_role_problems(
    conn: psycopg.Connection[Any], migrating_user: str | None
) -> list[str]:
    """A role that holds a runtime role may reach no predefined role (red team, ADR 0100):
    ``pg_execute_server_program`` and the ``*_server_files`` roles act as the server's OS user,
    ``pg_signal_backend`` terminates the deploy lock's session and the workers, ``pg_maintain``
    and the ``*_all_data`` roles lock and write every table. One line each, with the fix."""
    return [
        f"{member} holds a Symphony runtime role and reaches the predefined role {predefined}: "
        "a login that acts for Symphony may hold no predefined role (use a separate login for "
        f"operations); REVOKE {predefined} FROM {_ident(member)} (or from the group that "
        "passes it on)"
        for member, predefined in read_predefined_reach(conn, migrating_user)
    ]


def _ident(name: str) -> str:
    """``name`` as an SQL identifier in a suggested fix (quoted unless plainly lower-case)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def diff_memberships(
    memberships: Iterable[RoleMembership], migrating_user: str | None
) -> list[str]:
    """Memberships the contract does not allow (ADR 0070), one line each with the fix:

    * a Symphony role (``test_user`` included) is a member of no role at all - not of another
      Symphony role, not of a predefined role such as ``pg_write_all_data``;
    * nobody is a member of ``symphony_owner`` or ``test_user``, except the migrating user (a
      non-superuser migrator needs ``symphony_owner``; PostgreSQL 16+ grants a CREATEROLE creator
      ADMIN on the roles it creates);
    * other roles (service logins) may hold the runtime roles, never WITH ADMIN OPTION.

    Superusers are not reported as members of runtime roles: they bypass every check anyway.
    """
    symphony = {role.name for role in ROLES}
    lines: set[str] = set()
    for m in memberships:
        role, member = _ident(m.role), _ident(m.member)
        revoke = f"REVOKE {role} FROM {member}"
        if m.member in symphony:
            lines.add(
                f"{m.member} is a member of {m.role}: a Symphony role may be a member of no role "
                f"(it would gain {m.role}'s privileges beyond the matrix); {revoke}"
            )
        elif m.member == migrating_user:
            continue
        elif m.role not in RUNTIME_ROLES:
            lines.add(
                f"{m.member} is a member of {m.role}: only the migrating user "
                f"({migrating_user or 'unknown: no ledger'}) may be; {revoke}"
            )
        elif m.admin and not m.member_is_superuser:
            lines.add(
                f"{m.member} holds {m.role} WITH ADMIN OPTION: it could grant {m.role} to any "
                f"role, Symphony roles included; REVOKE ADMIN OPTION FOR {role} FROM {member}"
            )
    return sorted(lines)


def _all_privileges(kind: ObjectKind) -> frozenset[str]:
    names = KIND_PRIVILEGES[kind]
    return frozenset(names) | frozenset(name + GRANT_OPTION for name in names)


def allowed_effective(
    subject: str, kind: ObjectKind, name: str, owner: str, reaches: frozenset[str]
) -> frozenset[str]:
    """What ``subject`` may effectively hold on an object: its declared grants and PUBLIC's,
    everything on what it owns; for a role that is not a Symphony role (a service login), the
    union of that over the Symphony roles it holds. A column may hold what the matrix gives
    its table."""
    symphony = {role.name for role in ROLES}
    acting = {subject} if subject in symphony else (set(reaches) & symphony)
    declared = expected_grants()
    keys = [(kind, name)]
    if kind is ObjectKind.COLUMN:
        keys.append((ObjectKind.TABLE, name.rsplit(".", 1)[0]))
    allowed: set[str] = set()
    for role in acting:
        for key_kind, key_name in keys:
            allowed |= declared.get((role, key_kind, key_name), frozenset())
            allowed |= declared.get((PUBLIC, key_kind, key_name), frozenset())
        if role == owner:
            allowed |= _all_privileges(kind)
    return frozenset(allowed)


def diff_effective_privileges(effective: EffectivePrivileges) -> list[str]:
    """One line per (role, object) where a role can effectively do more than the matrix allows,
    naming the privileges and the roles they come through. A column is reported only for
    privileges its table-level row does not already show."""
    lines: list[str] = []
    for key in sorted(effective.held):
        subject, kind, name = key
        owner = effective.owners[(kind, name)]
        reaches = effective.reaches.get(subject, frozenset({subject}))
        have = effective.held[key]
        extra = set(have) - allowed_effective(subject, kind, name, owner, reaches)
        if kind is ObjectKind.COLUMN:
            table = effective.held.get((subject, ObjectKind.TABLE, name.rsplit(".", 1)[0]), {})
            extra -= set(table)
        if not extra:
            continue
        ordered = sorted(extra, key=lambda p: (KIND_PRIVILEGES[kind].index(p.split(" ")[0]), p))
        sources = sorted({role for p in extra for role in have[p]})
        via = f"through {', '.join(sources)}" if sources else "by its own grant"
        fix = (
            "revoke the membership that leads there"
            if sources
            else "revoke the grant (in a new revision)"
        )
        lines.append(
            f"{subject} can effectively {', '.join(ordered)} on {kind} {name} ({via}), beyond "
            f"the matrix; {fix}"
        )
    return lines


def membership_and_effective_lines(conn: psycopg.Connection[Any]) -> list[str]:
    """:func:`diff_memberships` and :func:`diff_effective_privileges` of a live database as
    ``membership: ...`` / ``effective: ...`` lines; empty when both hold (the drift check adds
    them to the catalog's side of its diff, where the declaration has none)."""
    memberships = diff_memberships(read_memberships(conn), read_migrating_user(conn))
    effective = diff_effective_privileges(read_effective_privileges(conn))
    return [f"membership: {line}" for line in memberships] + [
        f"effective: {line}" for line in effective
    ]
