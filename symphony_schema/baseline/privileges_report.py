"""``baseline/privileges.md``: the effective role x object matrix, read from the catalog.

One table per kind of object (schema, tables, functions), one row per object and one column per
grantee (PUBLIC first, then the Symphony roles by name), so a grant change is a one-row diff in a
pull request. Grants come from :func:`symphony_schema.privilege_catalog.read_actual_grants` (the
same reader the gate and the tests use); owners, default privileges, role attributes and memberships
from :mod:`symphony_schema.baseline.catalog`. The last matrix, effective privileges, comes from
:func:`symphony_schema.privilege_catalog.read_effective_privileges` (what each Symphony role can do
through every membership, as ``gate:effective-privileges`` reads it, ADR 0070).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from symphony_schema import privilege_catalog, privileges
from symphony_schema.baseline.catalog import (
    Conn,
    DbObject,
    DefaultAcl,
    Membership,
    RoleState,
    current_user,
    read_default_acls,
    read_group_memberships,
    read_objects,
    read_roles,
)
from symphony_schema.baseline.dump import MIGRATING_USER

NOTHING = "\u2013"  # an en dash, as in docs/contract/schema.md's matrix
OWNER = "owner"

#: Display order of privileges per kind of object (PostgreSQL's documentation order).
PRIVILEGE_ORDER: tuple[str, ...] = (
    *privileges.KIND_PRIVILEGES[privileges.ObjectKind.TABLE],
    "USAGE",
    "CREATE",
    "EXECUTE",
)


@dataclass(frozen=True)
class PrivilegeReport:
    """Everything ``privileges.md`` shows, read from one database."""

    head: str
    migrating_user: str
    roles: Sequence[RoleState]
    memberships: Sequence[Membership]
    objects: Sequence[DbObject]
    grants: privileges.GrantMatrix
    default_acls: Sequence[DefaultAcl]
    effective: privilege_catalog.EffectivePrivileges


def read_report(conn: Conn, head: str) -> PrivilegeReport:
    roles = read_roles(conn)
    return PrivilegeReport(
        head=head,
        migrating_user=current_user(conn)[0],
        roles=roles,
        memberships=read_group_memberships(conn, roles),
        objects=read_objects(conn),
        grants=privilege_catalog.read_actual_grants(conn),
        default_acls=read_default_acls(conn),
        effective=privilege_catalog.read_effective_privileges(conn),
    )


def _privilege_key(label: str) -> tuple[int, str]:
    word = label.split(" ", 1)[0]
    rank = PRIVILEGE_ORDER.index(word) if word in PRIVILEGE_ORDER else len(PRIVILEGE_ORDER)
    return rank, label


def format_privileges(labels: Iterable[str]) -> str:
    """``SELECT, INSERT`` in documentation order; grant options marked ``*``."""
    ordered = sorted(labels, key=_privilege_key)
    shown = [label.replace(" WITH GRANT OPTION", "*") for label in ordered]
    return ", ".join(shown) if shown else NOTHING


def _grantees(report: PrivilegeReport) -> list[str]:
    names = {role.name for role in report.roles}
    names |= {grantee for (grantee, _kind, _name), privs in report.grants.items() if privs}
    names |= {acl.grantee for acl in report.default_acls}
    names.discard(privileges.PUBLIC)
    names.discard(report.migrating_user)
    return [privileges.PUBLIC, *sorted(names)]


def _owner_label(owner: str, migrating_user: str) -> str:
    return MIGRATING_USER if owner == migrating_user else owner


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _object_rows(
    report: PrivilegeReport, kind: str, grantees: Sequence[str], with_security: bool
) -> list[list[str]]:
    rows: list[list[str]] = []
    for obj in (o for o in report.objects if o.kind == kind):
        owner = _owner_label(obj.owner, report.migrating_user)
        row = [f"`{obj.name}`", owner]
        if with_security:
            row.append("definer" if obj.security_definer else "invoker")
        for grantee in grantees:
            held = report.grants.get((grantee, privileges.ObjectKind(kind), obj.name), frozenset())
            cell = format_privileges(held)
            if grantee == obj.owner:
                cell = OWNER if not held else f"{OWNER}; {cell}"
            row.append(cell)
        rows.append(row)
    return rows


def _unlisted_grants(report: PrivilegeReport) -> list[str]:
    """Grants on objects the object listing does not show (defensive: should be none)."""
    listed = {(o.kind, o.name) for o in report.objects}
    lines = []
    for (grantee, kind, name), held in sorted(report.grants.items()):
        if held and (str(kind), name) not in listed:
            lines.append(f"- `{kind} {name}`: {grantee} {format_privileges(held)}")
    return lines


def _roles_section(report: PrivilegeReport) -> list[str]:
    header = [
        "role",
        "login",
        "superuser",
        "createdb",
        "createrole",
        "inherit",
        "replication",
        "bypassrls",
        "connection limit",
    ]
    yes_no = {True: "yes", False: "no"}
    rows = [
        [
            f"`{r.name}`",
            yes_no[r.login],
            yes_no[r.superuser],
            yes_no[r.createdb],
            yes_no[r.createrole],
            yes_no[r.inherit],
            yes_no[r.replication],
            yes_no[r.bypassrls],
            str(r.connection_limit),
        ]
        for r in report.roles
    ]
    return ["## Roles", "", *_table(header, rows)]


def _memberships_section(report: PrivilegeReport) -> list[str]:
    lines = ["## Memberships between Symphony group roles", ""]
    if not report.memberships:
        lines.append(
            "None. (Which login may act as which runtime role is environment setup, "
            "`symphony-schema grant-login`, and is not shown.)"
        )
        return lines
    rows = [
        [
            f"`{m.role}`",
            f"`{m.member}`",
            str(m.admin).lower(),
            str(m.inherit).lower(),
            str(m.set).lower(),
        ]
        for m in report.memberships
    ]
    return [*lines, *_table(["role", "member", "admin", "inherit", "set"], rows)]


def _default_acl_section(report: PrivilegeReport, grantees: Sequence[str]) -> list[str]:
    lines = ["## Default privileges", ""]
    groups: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    for acl in report.default_acls:
        key = (acl.role, acl.schema or "(all schemas)", acl.object_type)
        label = f"{acl.privilege} WITH GRANT OPTION" if acl.grantable else acl.privilege
        groups.setdefault(key, {}).setdefault(acl.grantee, set()).add(label)
    if not groups:
        return [*lines, "None."]
    rows = []
    for (role, schema, object_type), held in sorted(groups.items()):
        rows.append(
            [
                f"`{role}`",
                schema,
                object_type,
                *(format_privileges(held.get(grantee, ())) for grantee in grantees),
            ]
        )
    lines.append(
        "What objects created by the role start with (an empty cell: nothing, PUBLIC included)."
    )
    lines.append("")
    return [*lines, *_table(["for role", "in schema", "objects", *grantees], rows)]


def _effective_section(report: PrivilegeReport) -> list[str]:
    """Effective privileges of the Symphony roles: one row per object (and per column holding
    more than its table), one column per role. Logins are left out: which login holds which
    runtime role is environment setup and would make the file differ per machine."""
    roles = [role.name for role in privileges.ROLES]
    held = report.effective.held
    columns: dict[str, list[str]] = {}
    for subject, kind, name in held:
        if kind is privileges.ObjectKind.COLUMN and subject in roles:
            table = held.get((subject, privileges.ObjectKind.TABLE, name.rsplit(".", 1)[0]), {})
            if set(held[(subject, kind, name)]) - set(table):
                columns.setdefault(name.rsplit(".", 1)[0], []).append(name)
    rows: list[list[str]] = []
    for obj in report.objects:
        names = [(privileges.ObjectKind(obj.kind), obj.name)]
        names += [(privileges.ObjectKind.COLUMN, c) for c in sorted(set(columns.get(obj.name, [])))]
        for kind, name in names:
            row = [f"{kind} `{name}`"]
            for role in roles:
                if role == obj.owner:
                    row.append(OWNER)
                    continue
                have = set(held.get((role, kind, name), {}))
                if kind is privileges.ObjectKind.COLUMN:
                    have -= set(held.get((role, privileges.ObjectKind.TABLE, obj.name), {}))
                row.append(format_privileges(have))
            rows.append(row)
    lines = [
        "## Effective privileges",
        "",
        "What each Symphony role can do, as itself or as any role it can act as through a "
        "membership (INHERIT, SET ROLE or ADMIN; predefined roles such as `pg_write_all_data` "
        "included), read with `has_*_privilege` (`gate:effective-privileges`, ADR 0070). It "
        "equals the grants above unless a membership adds to them; a column appears only when "
        "it holds more than its table.",
        "",
    ]
    return [*lines, *_table(["object", *roles], rows)]


def render_privileges_md(report: PrivilegeReport) -> str:
    grantees = _grantees(report)
    intro = [
        "# Privilege matrix",
        "",
        "<!-- GENERATED FILE - DO NOT EDIT. Regenerate with `nox -s baseline`. -->",
        "",
        f"The effective privileges of a database migrated to `{report.head}`, read from the "
        "catalog by `symphony-schema baseline generate`. `nox -s drift` fails when this file is "
        "stale or when the catalog differs from the matrix declared in "
        "`symphony_schema/privileges.py`.",
        "",
        f"Legend: `{NOTHING}` nothing; `{OWNER}` the object's owner, who holds every privilege; "
        f"`*` WITH GRANT OPTION; `{MIGRATING_USER}` the role that ran the migrations (it owns "
        "the migration ledger tables).",
    ]
    sections = [
        intro,
        _roles_section(report),
        _memberships_section(report),
        [
            "## Schema",
            "",
            *_table(
                ["schema", "owner", *grantees], _object_rows(report, "schema", grantees, False)
            ),
        ],
        [
            "## Tables",
            "",
            *_table(["table", "owner", *grantees], _object_rows(report, "table", grantees, False)),
        ],
    ]
    if any(o.kind == "sequence" for o in report.objects):
        sections.append(
            [
                "## Sequences",
                "",
                *_table(
                    ["sequence", "owner", *grantees],
                    _object_rows(report, "sequence", grantees, False),
                ),
            ]
        )
    sections.append(
        [
            "## Functions",
            "",
            *_table(
                ["function", "owner", "security", *grantees],
                _object_rows(report, "function", grantees, True),
            ),
        ]
    )
    sections.append(_default_acl_section(report, grantees))
    sections.append(_effective_section(report))
    unlisted = _unlisted_grants(report)
    if unlisted:
        sections.append(["## Other grants", "", *unlisted])
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def grants_as_lines(matrix: Mapping[privileges.GrantKey, frozenset[str]]) -> list[str]:
    """One line per held privilege, ``<kind> <object>: <grantee> <PRIVILEGE>``, sorted by object
    then grantee: the form the privilege drift diff uses."""
    entries: list[tuple[str, str, str, tuple[int, str]]] = []
    for (grantee, kind, name), held in matrix.items():
        entries += [(str(kind), name, grantee, _privilege_key(label)) for label in held]
    return [f"{kind} {name}: {grantee} {key[1]}" for kind, name, grantee, key in sorted(entries)]
