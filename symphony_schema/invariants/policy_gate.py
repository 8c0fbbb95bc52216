"""Gate checks of policy rotation (issue 14, revision 0016): INV-050 to INV-053.

Registered in :data:`symphony_schema.invariants.gate.CHECKS` like every other ``gate:<name>``;
kept in a module of their own because they are about one table and its triggers. Each check reads
the catalog and the table through the gate's read-only session and returns every problem found.
"""

from __future__ import annotations

from typing import Any

import psycopg

from symphony_schema import privileges

Conn = psycopg.Connection[Any]

TABLE = privileges.POLICY_VERSIONS
ONE_ACTIVE_TRIGGER = "trg_policy_versions_keep_one_active"
ONE_ACTIVE_FUNCTION = f"{privileges.KEEP_ONE_ACTIVE_POLICY_VERSION.signature}"
LIFECYCLE_FUNCTION = privileges.GUARD_POLICY_VERSION_LIFECYCLE.signature
IDENTITY_FUNCTION = privileges.GUARD_POLICY_VERSION_IDENTITY.signature
ACCEPTED_FUNCTION = privileges.POLICY_VERSION_ACCEPTED.signature

# pg_trigger.tgtype bits (PostgreSQL's include/catalog/pg_trigger.h).
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 4, 8, 16, 32
_ENABLED = {"A": "always", "O": "origin", "R": "replica", "D": "disabled"}

_TRIGGERS = """
SELECT t.tgname, t.tgtype, t.tgenabled, t.tgqual IS NOT NULL, t.tgattr::text <> '',
       t.tgconstraint <> 0, t.tgdeferrable, t.tginitdeferred
  FROM pg_catalog.pg_trigger AS t
 WHERE t.tgrelid = pg_catalog.to_regclass(%(t)s)
   AND t.tgfoid = pg_catalog.to_regprocedure(%(f)s)
   AND NOT t.tgisinternal
"""


def _rows(conn: Conn, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def _table_missing(conn: Conn) -> list[str]:
    if _rows(conn, "SELECT pg_catalog.to_regclass(%(t)s)", {"t": TABLE})[0][0] is None:
        return [f"{TABLE} is missing; migrate the database to head"]
    return []


def _guarding_triggers(
    conn: Conn, function: str, events: list[tuple[str, int, bool]], *, timing: int = _BEFORE
) -> list[str]:
    """Problems unless, for each (event, bit, row_level), a trigger on the table calls
    ``function`` at ``timing`` for that event, unconditionally (no WHEN clause, no column list),
    enabled ALWAYS."""
    triggers = _rows(conn, _TRIGGERS, {"t": TABLE, "f": function})
    problems = []
    for event, bit, row_level in events:
        firing = [
            (name, enabled, qual, columns)
            for name, tgtype, enabled, qual, columns, *_ in triggers
            if tgtype & bit and bool(tgtype & _ROW) == row_level and tgtype & _BEFORE == timing
        ]
        when = "BEFORE" if timing == _BEFORE else "AFTER"
        if not firing:
            problems.append(
                f"no {when} {event} trigger on {TABLE} calls {function}: {event} is not checked; "
                "restore it in a new revision"
            )
            continue
        if not any(
            enabled == "A" and not qual and not columns for _, enabled, qual, columns in firing
        ):
            name, enabled, qual, columns = firing[0]
            why = (
                "has a WHEN clause"
                if qual
                else "fires only for listed columns"
                if columns
                else f"is {_ENABLED.get(str(enabled), enabled)}, not enabled ALWAYS"
            )
            problems.append(
                f"trigger {name} ({event} on {TABLE}) {why}; recreate it unconditional and "
                f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {name} (in a new revision)"
            )
    return problems


def check_policy_one_active(conn: Conn) -> list[str]:
    """INV-050: the deferred constraint trigger that refuses to commit without an ACTIVE version
    is in place (enabled ALWAYS), and the table holds exactly one ACTIVE version, the one created
    last, once it holds any."""
    problems = _table_missing(conn)
    if problems:
        return problems
    triggers = _rows(conn, _TRIGGERS, {"t": TABLE, "f": ONE_ACTIVE_FUNCTION})
    good = [
        name
        for name, tgtype, enabled, _qual, _cols, constraint, deferrable, deferred in triggers
        if tgtype & _UPDATE
        and tgtype & _ROW
        and not tgtype & _BEFORE
        and enabled == "A"
        and constraint
        and deferrable
        and deferred
    ]
    if not good:
        found = ", ".join(f"{row[0]} (enabled={row[2]})" for row in triggers) or "none"
        problems.append(
            f"no deferred constraint trigger AFTER UPDATE on {TABLE} calling "
            f"{ONE_ACTIVE_FUNCTION}, enabled ALWAYS (found: {found}): a transaction could demote "
            f"the ACTIVE version without adding one; restore {ONE_ACTIVE_TRIGGER} in a new revision"
        )
    counts = _rows(
        conn,
        f"""
        SELECT count(*), count(*) FILTER (WHERE status = 'ACTIVE'),
               (SELECT pv.version FROM {TABLE} AS pv ORDER BY pv.created_at DESC, pv.version DESC
                 LIMIT 1),
               (SELECT pv.version FROM {TABLE} AS pv WHERE pv.status = 'ACTIVE' LIMIT 1)
          FROM {TABLE}
        """,
    )[0]
    total, active, newest, active_version = counts
    if total and active != 1:
        problems.append(
            f"{TABLE} holds {total} versions and {active} ACTIVE ones; exactly one must be ACTIVE "
            "(rotate with symphony-schema policy rotate; the table was written around the guards)"
        )
    elif total and newest != active_version:
        problems.append(
            f"the ACTIVE policy version {active_version!r} is not the one created last "
            f"({newest!r}): the rotation chain is broken"
        )
    return problems


def check_policy_grace_expiry(conn: Conn) -> list[str]:
    """INV-051: no GRACE version past its expiry is left unretired, and
    ``policy_version_accepted`` answers the rule (ACTIVE, or GRACE before its expiry) for every
    version in the table."""
    problems = _table_missing(conn)
    if problems:
        return problems
    expired = _rows(
        conn,
        f"SELECT version, grace_expires_at FROM {TABLE} "
        "WHERE status = 'GRACE' AND grace_expires_at <= statement_timestamp() ORDER BY 2, 1",
    )
    problems += [
        f"GRACE policy version {version!r} expired at {expires} and is still GRACE: run "
        "'symphony-schema policy retire-expired' (a scheduler should)"
        for version, expires in expired
    ]
    may_ask = _rows(
        conn,
        "SELECT f IS NOT NULL AND pg_catalog.has_function_privilege(f, 'EXECUTE') "
        "FROM pg_catalog.to_regprocedure(%(f)s) AS f",
        {"f": ACCEPTED_FUNCTION},
    )[0][0]
    if not may_ask:
        return problems  # missing: gate:required-objects says so; not ours to run: nothing to ask
    wrong = _rows(
        conn,
        f"""
        SELECT version, status::text, public.policy_version_accepted(version)
          FROM {TABLE}
         WHERE public.policy_version_accepted(version) IS DISTINCT FROM (
                   status = 'ACTIVE'
                   OR (status = 'GRACE' AND grace_expires_at > statement_timestamp()))
         ORDER BY 1
        """,
    )
    problems += [
        f"{ACCEPTED_FUNCTION} answers {answer} for {status} version {version!r}; it must accept "
        "exactly the ACTIVE version and GRACE versions before their expiry (restore it in a new "
        "revision)"
        for version, status, answer in wrong
    ]
    return problems


def check_policy_immutability_triggers(conn: Conn) -> list[str]:
    """INV-052: the lifecycle guard fires BEFORE INSERT, UPDATE, DELETE (row) and TRUNCATE
    (statement) on the policy table, unconditionally and enabled ALWAYS."""
    return _table_missing(conn) or _guarding_triggers(
        conn,
        LIFECYCLE_FUNCTION,
        [
            ("INSERT", _INSERT, True),
            ("UPDATE", _UPDATE, True),
            ("DELETE", _DELETE, True),
            ("TRUNCATE", _TRUNCATE, False),
        ],
    )


def check_policy_checksum_immutable(conn: Conn) -> list[str]:
    """INV-053: the identity guard fires BEFORE every UPDATE (row) of the policy table,
    unconditionally and enabled ALWAYS, and every stored checksum is a lowercase hex SHA-256."""
    problems = _table_missing(conn)
    if problems:
        return problems
    problems = _guarding_triggers(conn, IDENTITY_FUNCTION, [("UPDATE", _UPDATE, True)])
    malformed = _rows(
        conn, f"SELECT version, checksum FROM {TABLE} WHERE checksum !~ '^[0-9a-f]{{64}}$'"
    )
    problems += [
        f"policy version {version!r} has checksum {checksum!r}, not a lowercase hex SHA-256"
        for version, checksum in malformed
    ]
    return problems


CHECKS = {
    "policy-one-active": check_policy_one_active,
    "policy-grace-expiry": check_policy_grace_expiry,
    "policy-immutability-triggers": check_policy_immutability_triggers,
    "policy-checksum-immutable": check_policy_checksum_immutable,
}
