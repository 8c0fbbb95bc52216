"""Gate check of issue 17's hot path (revision 0032, ADR 0158), registered in :data:`gate.CHECKS`.

* ``gate:fifo-heads-promoted`` (INV-069): a job leaving the queue hands the head to its
  participant's next job. Both completions promote it themselves under a FOR NO KEY UPDATE lock of
  the participant's allocator row (the serialisation with enqueue of ADR 0116),
  ``trg_promote_outbox_head`` (AFTER DELETE, row level, enabled ALWAYS) promotes after every other
  delete of a head, and no participant's lowest queued job is left without the head flag (such a
  participant would never be dispatched again).

The gate's session is read-only; the data check probes each participant's first queued job by
the (participant_id, sequence_id) key, one index probe per participant.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from symphony_schema import privileges

Conn = psycopg.Connection[Any]

PROMOTE_TRIGGER: Final = "trg_promote_outbox_head"
PROMOTE_FUNCTION: Final = "public.promote_outbox_head()"

#: Completions and the fragments each body must hold (read from pg_proc, as migrated).
COMPLETION_PROMOTES: Final[dict[str, tuple[str, ...]]] = {
    "public.complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state, text, text,"
    " text, text, integer, integer)": ("FOR NO KEY UPDATE", "SET is_head = true"),
    "public.complete_outbox_attempts_batch(text, uuid[], uuid[], text[], text[], text[], text[],"
    " text[], integer[], integer[])": ("FOR NO KEY UPDATE", "SET is_head = true"),
}

# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h), as gate.check_append_only_triggers.
_ROW, _BEFORE, _DELETE = 1, 2, 8

#: Participants whose first queued job (lowest sequence_id) is not a head: stuck for ever.
_STUCK: Final = """
SELECT s.participant_id, h.outbox_id, h.sequence_id
  FROM public.participant_outbox_sequences AS s
 CROSS JOIN LATERAL (
       SELECT q.outbox_id, q.sequence_id, q.is_head
         FROM public.payment_outbox_pending AS q
        WHERE q.participant_id = s.participant_id
        ORDER BY q.sequence_id
        LIMIT 1
 ) AS h
 WHERE NOT h.is_head
 ORDER BY s.participant_id
 LIMIT 10
"""


def check_fifo_heads_promoted(conn: Conn) -> list[str]:
    """INV-069: the promotion is wired (completions and trigger) and no participant is stuck."""
    problems: list[str] = []
    for signature, fragments in COMPLETION_PROMOTES.items():
        found = conn.execute(
            "SELECT p.prosrc FROM pg_catalog.pg_proc AS p"
            " WHERE p.oid = pg_catalog.to_regprocedure(%(s)s)",
            {"s": signature},
        ).fetchall()
        if not found:
            problems.append(f"{signature.split('(', 1)[0]} is missing")
            continue
        missing = [f for f in fragments if f not in str(found[0][0])]
        if missing:
            problems.append(
                f"{signature.split('(', 1)[0]} no longer promotes the participant's next job "
                f"under a lock of its allocator row (missing: {', '.join(missing)}): its "
                "deletes skip trg_promote_outbox_head, so the participant would be stuck; "
                "restore the promotion in a new revision (ADRs 0116, 0158)"
            )
    trigger = conn.execute(
        "SELECT t.tgtype, t.tgenabled,"
        " t.tgfoid IS NOT DISTINCT FROM pg_catalog.to_regprocedure(%(f)s)"
        " FROM pg_catalog.pg_trigger AS t"
        " WHERE t.tgrelid = pg_catalog.to_regclass(%(t)s) AND t.tgname = %(n)s",
        {"t": privileges.PENDING, "n": PROMOTE_TRIGGER, "f": PROMOTE_FUNCTION},
    ).fetchall()
    if not trigger:
        problems.append(
            f"{PROMOTE_TRIGGER} is missing on {privileges.PENDING}: a cancel, a repair at the "
            "retry ceiling or a hand-made DELETE of a head would leave its participant stuck; "
            "restore it in a new revision (ADR 0158)"
        )
    else:
        tgtype, enabled, calls_promote = trigger[0]
        shape_ok = int(tgtype) & _ROW and int(tgtype) & _DELETE and not int(tgtype) & _BEFORE
        if not shape_ok or not calls_promote:
            problems.append(
                f"{PROMOTE_TRIGGER} on {privileges.PENDING} is not a row-level AFTER DELETE "
                f"trigger calling {PROMOTE_FUNCTION}; restore it in a new revision (ADR 0158)"
            )
        if enabled != "A":
            problems.append(
                f"{PROMOTE_TRIGGER} on {privileges.PENDING} is not enabled ALWAYS (tgenabled "
                f"{enabled!r}); ALTER TABLE {privileges.PENDING} ENABLE ALWAYS TRIGGER "
                f"{PROMOTE_TRIGGER}"
            )
    for participant, outbox_id, sequence_id in conn.execute(_STUCK).fetchall():
        problems.append(
            f"participant {participant!r} is stuck: its first queued job {outbox_id} (sequence "
            f"{sequence_id}) is not its head, so no claim will ever take it; repair it with "
            f"UPDATE {privileges.PENDING} SET is_head = true WHERE outbox_id = '{outbox_id}' as "
            "a superuser (trg_place_outbox_head recomputes the flag) and find the delete that "
            "skipped the promotion"
        )
    return problems


CHECKS: Final = {"fifo-heads-promoted": check_fifo_heads_promoted}
