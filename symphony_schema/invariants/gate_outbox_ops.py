"""Gate checks of issue 20 (operating the outbox), registered in :data:`gate.CHECKS`.

* ``gate:queue-and-ledger-writers`` (INV-054): no Symphony runtime role, and no login through
  one, may write the queue, the ledger, the allocator, the key table, the rails or the rail
  references except through the functions (an INSERT on the ledger would forge a DISPATCHED row,
  a DELETE on the queue would cancel a payment without a trace).
* ``gate:one-outcome-per-job`` (INV-055): the ledger keeps at most one DISPATCHED, FAILED or
  CANCELLED row per job and at most one REDRIVEN row per job, by valid unique indexes.
* ``gate:interventions-audited`` (INV-056): every CANCELLED and REDRIVEN row names who, why and
  the ticket (and a REDRIVEN row the job that replaced it).
* ``gate:payloads-append-only`` (INV-065): the payload table (revision 0024) has BEFORE UPDATE,
  DELETE (row) and TRUNCATE (statement) triggers calling its deny function, enabled ALWAYS.
* ``gate:rail-rules-wired`` (INV-057): enqueue and (since 0031) the batch enqueue call the rail
  and payload-number checks, both
  completions record DISPATCHED references through record_outbox_rail_references (0037: the
  rule's one set-based writer, which record_outbox_rail_reference calls), and a valid
  primary key keeps a reference unique per rail.

Roles and tables come from :mod:`symphony_schema.privileges`; the gate's session is read-only.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from symphony_schema import privileges

Conn = psycopg.Connection[Any]

#: Table -> privileges only the owner (through the functions) may use since revision 0019.
WRITES: Final[dict[str, tuple[str, ...]]] = {
    privileges.PENDING: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.ATTEMPTS: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.SEQUENCES: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.IDEMPOTENCY_KEYS: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.OUTBOX_RAILS: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.RAIL_REFERENCES: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
    privileges.PAYLOADS: ("INSERT", "UPDATE", "DELETE", "TRUNCATE"),
}

#: The ledger's outcome states (one per job) and the redrive state (one per job).
OUTCOME_STATES: Final[tuple[str, ...]] = ("DISPATCHED", "FAILED", "CANCELLED")
REDRIVE_STATES: Final[tuple[str, ...]] = ("REDRIVEN",)


def _rows(conn: Conn, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()


def check_queue_and_ledger_writers(conn: Conn) -> list[str]:
    """INV-054: no runtime role (nor test_user) can write the outbox tables directly, also not
    through a column grant or a role it inherits."""
    problems: list[str] = []
    roles = (*privileges.RUNTIME_ROLES, privileges.TEST_USER)
    for table, writes in WRITES.items():
        if not _rows(conn, "SELECT pg_catalog.to_regclass(%(t)s)", {"t": table})[0][0]:
            problems.append(f"{table} is missing")
            continue
        for role in roles:
            if not _rows(
                conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %(r)s", {"r": role}
            ):
                continue
            held = [
                privilege
                for privilege in writes
                if _rows(
                    conn,
                    "SELECT pg_catalog.has_table_privilege(%(r)s, %(t)s, %(p)s)",
                    {"r": role, "t": table, "p": privilege},
                )[0][0]
                or (
                    privilege in ("INSERT", "UPDATE")
                    and _rows(
                        conn,
                        "SELECT pg_catalog.has_any_column_privilege(%(r)s, %(t)s, %(p)s)",
                        {"r": role, "t": table, "p": privilege},
                    )[0][0]
                )
            ]
            if held:
                problems.append(
                    f"{role} can {'/'.join(held)} {table} directly: only the outbox functions "
                    f"write it (issue 20); REVOKE {', '.join(held)} ON {table} FROM {role} "
                    "(and from any role it inherits)"
                )
    return problems


_UNIQUE_INDEXES: Final = """
SELECT c.relname,
       i.indisvalid,
       (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord)
          FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k (attnum, ord)
          JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS keys,
       COALESCE(pg_catalog.pg_get_expr(i.indpred, i.indrelid), '') AS predicate
  FROM pg_catalog.pg_index AS i
  JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
 WHERE i.indrelid = pg_catalog.to_regclass(%(t)s)
   AND i.indisunique
"""


def _covers(predicate: str, states: tuple[str, ...]) -> bool:
    """Does this partial-index predicate select exactly these states (as PostgreSQL prints it:
    ``state = 'X'::...`` or ``state = ANY (ARRAY['X'::..., ...])``)?"""
    from symphony_schema.models import OUTBOX_ATTEMPT_STATES

    named = {state for state in OUTBOX_ATTEMPT_STATES if f"'{state}'::" in predicate}
    return named == set(states) and "state" in predicate and " <> " not in predicate


_PARTICIPANT_GUARD: Final = """
SELECT pg_catalog.bool_and(EXISTS (
           SELECT 1
             FROM pg_catalog.pg_trigger AS t
            WHERE t.tgrelid = r.relid
              AND t.tgname = 'trg_guard_attempt_participant'
              AND t.tgfoid = pg_catalog.to_regprocedure('public.guard_attempt_participant()')
              AND t.tgenabled = 'A'
              AND t.tgtype = 7
              AND t.tgqual IS NULL))
  FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(%(t)s)) AS r
"""


def check_one_outcome_per_job(conn: Conn) -> list[str]:
    """INV-055: valid unique indexes keep one outcome (DISPATCHED, FAILED, CANCELLED) and one
    REDRIVEN row per job: on (outbox_id), or on (outbox_id, participant_id) while the participant
    guard (an unconditional BEFORE INSERT row trigger, enabled ALWAYS) holds (ADR 0134)."""
    table = privileges.ATTEMPTS
    if not _rows(conn, "SELECT pg_catalog.to_regclass(%(t)s)", {"t": table})[0][0]:
        return [f"{table} is missing"]
    indexes = _rows(conn, _UNIQUE_INDEXES, {"t": table})
    problems: list[str] = []
    # Keys may carry participant_id (the Citus distribution column, ADR 0134) only while the
    # participant guard keeps every row of a job on one participant; any other extra column
    # makes the index weaker than one row per job.
    guarded = bool(_rows(conn, _PARTICIPANT_GUARD, {"t": table})[0][0])
    job_keys = (["outbox_id"], ["outbox_id", "participant_id"]) if guarded else (["outbox_id"],)
    for states, what in (
        (OUTCOME_STATES, "one outcome (DISPATCHED, FAILED or CANCELLED) per job"),
        (REDRIVE_STATES, "one REDRIVEN row per job"),
    ):
        matching = [
            (name, valid)
            for name, valid, keys, predicate in indexes
            if list(keys or ()) in job_keys and _covers(str(predicate), states)
        ]
        if not matching:
            if not guarded and any(
                list(keys or ()) == ["outbox_id", "participant_id"]
                and _covers(str(predicate), states)
                for _, _, keys, predicate in indexes
            ):
                problems.append(
                    f"the unique index on {table} (outbox_id, participant_id) keeps {what} "
                    "only while trg_guard_attempt_participant (enabled ALWAYS) refuses a row "
                    "naming another participant of the job: it is missing, conditional or not "
                    f"enabled ALWAYS on {table} or one of its partitions. ALTER TABLE {table} "
                    "ENABLE ALWAYS TRIGGER trg_guard_attempt_participant"
                )
                continue
            problems.append(
                f"no unique index on {table} (outbox_id) WHERE state IN "
                f"({', '.join(states)}): nothing keeps {what}; a second outcome is a double "
                "payment. Restore it in a new revision (CREATE UNIQUE INDEX CONCURRENTLY)"
            )
        elif not any(valid for _, valid in matching):
            problems.append(
                f"unique index {matching[0][0]} ({what}) is INVALID: REINDEX INDEX CONCURRENTLY "
                f"public.{matching[0][0]}"
            )
    return problems


_UNAUDITED: Final = """
SELECT a.outbox_id, a.attempt_no, a.state::text
  FROM public.payment_outbox_attempts AS a
 WHERE a.state = 'CANCELLED'::public.outbox_attempt_state
   AND (a.acted_by IS NULL
        OR pg_catalog.btrim(COALESCE(a.reason, '')) = ''
        OR pg_catalog.btrim(COALESCE(a.ticket, '')) = '')
UNION ALL
SELECT a.outbox_id, a.attempt_no, a.state::text
  FROM public.payment_outbox_attempts AS a
 WHERE a.state = 'REDRIVEN'::public.outbox_attempt_state
   AND (a.acted_by IS NULL
        OR pg_catalog.btrim(COALESCE(a.reason, '')) = ''
        OR pg_catalog.btrim(COALESCE(a.ticket, '')) = ''
        OR a.related_outbox_id IS NULL)
 ORDER BY 1, 2
 LIMIT 6
"""


def check_interventions_audited(conn: Conn) -> list[str]:
    """INV-056: every CANCELLED and REDRIVEN ledger row names the acting role, a reason and a
    ticket; a REDRIVEN row also the job that replaced it. (Both states are read through their
    partial indexes, not by walking the ledger.)"""
    rows = _rows(conn, _UNAUDITED)
    problems = [
        f"ledger row {state} of outbox {outbox_id} (attempt {attempt_no}) lacks who, why or the "
        "ticket (or the new job): it was not written by cancel_outbox_job/redrive_outbox_job; "
        "find who wrote it (pg_stat_statements, logs) and record the facts in an incident"
        for outbox_id, attempt_no, state in rows[:5]
    ]
    if len(rows) > 5:
        problems.append("... and more")
    return problems


#: Function (regprocedure) -> the internal functions its body must call (INV-057).
RAIL_RULE_CALLS: Final[dict[str, tuple[str, ...]]] = {
    "public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz, smallint)": (
        "public.outbox_rail_code(",
        "public.check_outbox_payload_numbers(",
    ),
    # Revision 0031: the set-based batch applies the same two rules itself (ADR 0136).
    "public.enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[], timestamptz[],"
    " smallint[])": (
        "public.outbox_rail_code(",
        "public.check_outbox_payload_numbers(",
    ),
    # Revision 0037 (ADR 0165): the completions call the rule's set-based writer directly; the
    # single-row entry calls it too, and the writer holds the rule.
    "public.complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state, text, text,"
    " text, text, integer, integer)": ("public.record_outbox_rail_references(",),
    "public.complete_outbox_attempts_batch(text, uuid[], uuid[], text[], text[], text[], text[],"
    " text[], integer[], integer[])": ("public.record_outbox_rail_references(",),
    "public.record_outbox_rail_reference(uuid, integer, text, text)": (
        "public.record_outbox_rail_references(",
    ),
    "public.record_outbox_rail_references(uuid[], integer[], text[], text[], integer[])": (
        "'P7013'",
    ),
}

_REFERENCE_KEY: Final = """
SELECT c.conname, i.indisvalid,
       (SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k (attnum, ord)
          JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
  FROM pg_catalog.pg_constraint AS c
  JOIN pg_catalog.pg_index AS i ON i.indexrelid = c.conindid
 WHERE c.conrelid = pg_catalog.to_regclass(%(t)s)
   AND c.contype = 'p'
"""


def check_rail_rules_wired(conn: Conn) -> list[str]:
    """INV-057: the function bodies call the rail rules (read from pg_proc, as migrated) and the
    references table's primary key is (rail_code, rail_reference) and valid."""
    problems: list[str] = []
    for signature, calls in RAIL_RULE_CALLS.items():
        found = _rows(
            conn,
            "SELECT p.prosrc FROM pg_catalog.pg_proc AS p"
            " WHERE p.oid = pg_catalog.to_regprocedure(%(s)s)",
            {"s": signature},
        )
        if not found:
            problems.append(f"{signature} is missing")
            continue
        body = str(found[0][0])
        for call in calls:
            if call not in body:
                name = signature.split("(", 1)[0]
                problems.append(
                    f"{name} no longer calls {call.rstrip('(')}: enqueue must refuse unknown "
                    "rails and inexact numbers, and a DISPATCHED completion must record its rail "
                    "reference (unique per rail, P7013); restore the call in a new revision "
                    "(ADRs 0122, 0123, 0141)"
                )
    keys = _rows(conn, _REFERENCE_KEY, {"t": privileges.RAIL_REFERENCES})
    if not keys or list(keys[0][2] or ()) != ["rail_code", "rail_reference"]:
        problems.append(
            f"{privileges.RAIL_REFERENCES} has no primary key (rail_code, rail_reference): "
            "nothing keeps a rail reference unique per rail; restore it in a new revision"
        )
    elif not keys[0][1]:
        problems.append(
            f"primary key {keys[0][0]} of {privileges.RAIL_REFERENCES} is INVALID: REINDEX it"
        )
    return problems


# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h), as gate.check_append_only_triggers.
_ROW, _BEFORE, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 8, 16, 32
_DENIED_EVENTS: Final = (
    ("UPDATE", _UPDATE, True),
    ("DELETE", _DELETE, True),
    ("TRUNCATE", _TRUNCATE, False),
)
PAYLOADS_DENY_FUNCTION: Final = "public.deny_outbox_payloads_mutation()"


def check_payloads_append_only(conn: Conn) -> list[str]:
    """INV-065: UPDATE, DELETE and TRUNCATE on the payload table are rejected by BEFORE triggers
    calling its deny function, enabled ALWAYS (session_replication_role = replica skips any other
    setting)."""
    table = privileges.PAYLOADS
    if not _rows(conn, "SELECT pg_catalog.to_regclass(%(t)s)", {"t": table})[0][0]:
        return [f"{table} is missing"]
    rows = _rows(
        conn,
        "SELECT t.tgname, t.tgtype, t.tgenabled,"
        "       t.tgfoid = pg_catalog.to_regprocedure(%(f)s)"
        "  FROM pg_catalog.pg_trigger AS t"
        " WHERE t.tgrelid = %(t)s::pg_catalog.regclass AND NOT t.tgisinternal",
        {"t": table, "f": PAYLOADS_DENY_FUNCTION},
    )
    problems: list[str] = []
    for event, bit, row_level in _DENIED_EVENTS:
        denying = [
            (name, enabled)
            for name, tgtype, enabled, calls_deny in rows
            if calls_deny and tgtype & _BEFORE and tgtype & bit and bool(tgtype & _ROW) == row_level
        ]
        if not denying:
            problems.append(
                f"no BEFORE {event} trigger on {table} calls {PAYLOADS_DENY_FUNCTION}: a job's "
                f"payload can be changed or lost; restore the trigger in a new revision"
            )
        elif not any(str(enabled) == "A" for _, enabled in denying):
            name = denying[0][0]
            problems.append(
                f"trigger {name} (rejects {event}) on {table} is not enabled ALWAYS; ALTER TABLE "
                f"{table} ENABLE ALWAYS TRIGGER {name}"
            )
    return problems
