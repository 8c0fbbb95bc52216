"""Gate checks of the partitioned attempts ledger (issue 15, ADR 0131, 0133; INV-061 to INV-064).

* ``ledger-partitions-protected`` (INV-061): every partition of public.payment_outbox_attempts
  rejects UPDATE, DELETE (row triggers) and TRUNCATE (a statement trigger of its own: the
  parent's does not fire for a TRUNCATE naming the partition), all enabled ALWAYS.
* ``ledger-partitions-cover`` (INV-062): the partitions in schema symphony_ledger and the
  archived ranges recorded in public.archived_ledger_partitions cover every outbox_id from the
  lowest UUID to at least LEDGER_DAYS_AHEAD days ahead, without a gap (a range that is neither
  a partition nor a recorded archive lost rows) and without an archived range that is attached.
* ``ledger-default-partition-empty`` (INV-063): the default partition exists and holds no row.
* ``ledger-archived-keys-guarded`` (INV-064): the key table's trigger that refuses re-queueing a
  key whose job's partition is archived exists and is enabled ALWAYS.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

PARENT = "public.payment_outbox_attempts"
DEFAULT_PARTITION = "public.payment_outbox_attempts_default"
DENY_FUNCTION = "public.deny_outbox_attempts_mutation()"
#: The gate fails when fewer whole days ahead (after today, UTC) have a partition.
LEDGER_DAYS_AHEAD = 7

_BEFORE, _ROW = 2, 1
_EVENTS = (("UPDATE", 16, True), ("DELETE", 8, True), ("TRUNCATE", 32, False))
_BOUND_RE = re.compile(
    r"^FOR VALUES FROM \((MINVALUE|'[0-9a-f-]{36}')\) TO \((MAXVALUE|'[0-9a-f-]{36}')\)$"
)
_LOWEST = uuid.UUID(int=0)
_HIGHEST = uuid.UUID(int=(1 << 128) - 1)


def _partitions(conn: Conn) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        """
        SELECT i.inhrelid::pg_catalog.regclass::text, n.nspname::text,
               pg_catalog.pg_get_expr(c.relpartbound, c.oid)
          FROM pg_catalog.pg_inherits AS i
          JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE i.inhparent = pg_catalog.to_regclass(%s)
         ORDER BY 1
        """,
        (PARENT,),
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def check_partitions_protected(conn: Conn) -> list[str]:
    parts = _partitions(conn)
    if not parts:
        return [f"{PARENT} has no partitions (or is not partitioned)"]
    problems = []
    for name, _schema, _bound in parts:
        rows = conn.execute(
            """
            SELECT t.tgname::text, t.tgtype, t.tgenabled::text,
                   t.tgfoid = pg_catalog.to_regprocedure(%s)
              FROM pg_catalog.pg_trigger AS t
             WHERE t.tgrelid = %s::pg_catalog.regclass
            """,
            (DENY_FUNCTION, name),
        ).fetchall()
        for event, bit, row_level in _EVENTS:
            denying = [
                enabled
                for _n, tgtype, enabled, calls_deny in rows
                if calls_deny
                and tgtype & _BEFORE
                and tgtype & bit
                and bool(tgtype & _ROW) == row_level
            ]
            if not denying:
                problems.append(
                    f"partition {name} has no BEFORE {event} trigger calling {DENY_FUNCTION}: "
                    "run `symphony-schema attempts partitions ensure` (it protects every partition)"
                )
            elif "A" not in denying:
                problems.append(
                    f"partition {name}: the trigger rejecting {event} is not enabled ALWAYS; run "
                    "`symphony-schema attempts partitions ensure`"
                )
    return problems


def _bound(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    match = _BOUND_RE.match(text)
    if not match:
        return None
    low, high = match.groups()
    return (
        _LOWEST if low == "MINVALUE" else uuid.UUID(low.strip("'")),
        _HIGHEST if high == "MAXVALUE" else uuid.UUID(high.strip("'")),
    )


def check_partitions_cover(conn: Conn) -> list[str]:
    problems = []
    ranges: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    for name, schema, bound in _partitions(conn):
        if bound == "DEFAULT":
            continue
        parsed = _bound(bound)
        if parsed is None or schema != "symphony_ledger":
            problems.append(f"partition {name} ({bound}) is not a symphony_ledger day range")
            continue
        ranges.append((*parsed, f"partition {name}"))
    if pg_has_archive_table(conn):
        for name, low, high in conn.execute(
            "SELECT partition_name, range_from, range_to FROM public.archived_ledger_partitions"
            " WHERE state = 'ARCHIVED' ORDER BY range_from"
        ).fetchall():
            attached = [r for r in ranges if r[0] < high and low < r[1]]
            if attached:
                problems.append(
                    f"archived range of {name} overlaps {attached[0][2]}: an archived partition "
                    "was recreated without restore"
                )
            ranges.append((low, high, f"archive of {name}"))
    else:
        problems.append("public.archived_ledger_partitions is missing")
    horizon = conn.execute(
        "SELECT public.ledger_uuid_lower_bound("
        "((pg_catalog.now() AT TIME ZONE 'UTC')::date + %s + 1)::timestamp AT TIME ZONE 'UTC')",
        (LEDGER_DAYS_AHEAD,),
    ).fetchone()
    assert horizon is not None
    needed = horizon[0]
    ranges.sort()
    reached = _LOWEST
    for low, high, what in ranges:
        if low > reached:
            problems.append(
                f"outbox_id range {reached} to {low} is neither a partition nor a recorded "
                f"archive (before {what}): rows there were dropped without an archive, or "
                "partitions are missing"
            )
        reached = max(reached, high)
    if reached < needed:
        problems.append(
            f"ledger partitions end at {reached}, fewer than {LEDGER_DAYS_AHEAD} days ahead "
            f"(need {needed}): run `symphony-schema attempts partitions ensure`"
        )
    return problems


def pg_has_archive_table(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT pg_catalog.to_regclass('public.archived_ledger_partitions') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def check_default_partition_empty(conn: Conn) -> list[str]:
    row = conn.execute("SELECT pg_catalog.to_regclass(%s)", (DEFAULT_PARTITION,)).fetchone()
    if row is None or row[0] is None:
        return [f"{DEFAULT_PARTITION} is missing: an outbox_id outside every day would be refused"]
    count = conn.execute(
        "SELECT pg_catalog.count(*), pg_catalog.min(outbox_id::text) FROM "
        "public.payment_outbox_attempts_default"
    ).fetchone()
    assert count is not None
    if count[0]:
        return [
            f"{DEFAULT_PARTITION} holds {count[0]} row(s) (first outbox_id {count[1]}): see "
            "'Rows in the default ledger partition' in docs/operations/runbook.md"
        ]
    return []


def check_archived_keys_guarded(conn: Conn) -> list[str]:
    """A duplicate of an archived payment is refused: the key table's BEFORE UPDATE OF outbox_id
    trigger calling public.guard_idempotency_key_archived() exists and is enabled ALWAYS."""
    rows = conn.execute(
        """
        SELECT t.tgname::text, t.tgenabled::text
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgrelid = pg_catalog.to_regclass('public.payment_outbox_idempotency_keys')
           AND t.tgfoid = pg_catalog.to_regprocedure('public.guard_idempotency_key_archived()')
           AND t.tgtype & 2 = 2 AND t.tgtype & 16 = 16 AND t.tgtype & 1 = 1
        """
    ).fetchall()
    if not rows:
        return [
            "no BEFORE UPDATE row trigger on public.payment_outbox_idempotency_keys calls "
            "public.guard_idempotency_key_archived(): a duplicate of an archived payment would be "
            "queued again; restore it in a new revision"
        ]
    if not any(enabled == "A" for _name, enabled in rows):
        return [
            f"trigger {rows[0][0]} on public.payment_outbox_idempotency_keys is not enabled "
            "ALWAYS: a duplicate of an archived payment could be queued again"
        ]
    return []


CHECKS = {
    "ledger-partitions-protected": check_partitions_protected,
    "ledger-partitions-cover": check_partitions_cover,
    "ledger-default-partition-empty": check_default_partition_empty,
    "ledger-archived-keys-guarded": check_archived_keys_guarded,
}
