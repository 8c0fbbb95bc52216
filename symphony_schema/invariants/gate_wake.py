"""Gate check of the wake-up notification (issue 17 P6, revisions 0026 and 0033, ADRs 0151, 0159).

* ``gate:work-notification-wired`` (INV-070): ``trg_notify_outbox_work`` is a row-level AFTER
  INSERT trigger on the queue, enabled ALWAYS, that fires only for a claimable head (its WHEN
  clause) and calls ``notify_outbox_work()``, whose body notifies ``symphony_outbox_work`` with
  the hint that names one worker (``pg_current_xact_id``). Without it idle executors learn of
  new work only at their fallback poll (seconds, not milliseconds); without the hint every
  listener claims on every notification (the herd ADR 0159 removed).

The gate's session is read-only; the check reads the catalogs only.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from symphony_schema import privileges

Conn = psycopg.Connection[Any]

NOTIFY_TRIGGER: Final = "trg_notify_outbox_work"
NOTIFY_FUNCTION: Final = "public.notify_outbox_work()"
#: What the function's body must hold (read from pg_proc, as migrated): the channel, and the
#: per-transaction hint of revision 0033.
NOTIFY_FRAGMENTS: Final = ("'symphony_outbox_work'", "pg_current_xact_id()")
#: What the trigger's WHEN clause must test (pg_get_triggerdef): a claimable head only.
WHEN_FRAGMENTS: Final = ("new.is_head", "new.lease_token IS NULL", "new.next_attempt_at <= now()")

# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h), as gate.check_append_only_triggers.
_ROW, _BEFORE, _INSERT = 1, 2, 4


def check_work_notification_wired(conn: Conn) -> list[str]:
    """INV-070: the work notification is wired (trigger, WHEN clause, body with the hint)."""
    problems: list[str] = []
    found = conn.execute(
        "SELECT p.prosrc FROM pg_catalog.pg_proc AS p"
        " WHERE p.oid = pg_catalog.to_regprocedure(%(f)s)",
        {"f": NOTIFY_FUNCTION},
    ).fetchall()
    if not found:
        problems.append(f"{NOTIFY_FUNCTION} is missing; restore it in a new revision (ADR 0159)")
    else:
        missing = [f for f in NOTIFY_FRAGMENTS if f not in str(found[0][0])]
        if missing:
            problems.append(
                f"{NOTIFY_FUNCTION} no longer notifies symphony_outbox_work with the hint that "
                f"names one worker (missing: {', '.join(missing)}): idle workers would wait "
                "for their poll, or all claim on every notification; restore it in a new "
                "revision (ADRs 0151, 0159)"
            )
    trigger = conn.execute(
        "SELECT t.tgtype, t.tgenabled, pg_catalog.pg_get_triggerdef(t.oid),"
        " t.tgfoid IS NOT DISTINCT FROM pg_catalog.to_regprocedure(%(f)s)"
        " FROM pg_catalog.pg_trigger AS t"
        " WHERE t.tgrelid = pg_catalog.to_regclass(%(t)s) AND t.tgname = %(n)s",
        {"t": privileges.PENDING, "n": NOTIFY_TRIGGER, "f": NOTIFY_FUNCTION},
    ).fetchall()
    if not trigger:
        problems.append(
            f"{NOTIFY_TRIGGER} is missing on {privileges.PENDING}: no enqueue wakes an idle "
            "executor, which then finds new work only at its fallback poll; restore it in a "
            "new revision (ADR 0151)"
        )
        return problems
    tgtype, enabled, definition, calls_notify = trigger[0]
    shape_ok = int(tgtype) & _ROW and int(tgtype) & _INSERT and not int(tgtype) & _BEFORE
    if not shape_ok or not calls_notify:
        problems.append(
            f"{NOTIFY_TRIGGER} on {privileges.PENDING} is not a row-level AFTER INSERT trigger "
            f"calling {NOTIFY_FUNCTION}; restore it in a new revision (ADR 0151)"
        )
    missing = [f for f in WHEN_FRAGMENTS if f not in str(definition)]
    if missing:
        problems.append(
            f"{NOTIFY_TRIGGER} on {privileges.PENDING} no longer fires for claimable heads "
            f"only (its WHEN clause lacks: {', '.join(missing)}); restore it in a new revision "
            "(ADR 0151)"
        )
    if enabled != "A":
        problems.append(
            f"{NOTIFY_TRIGGER} on {privileges.PENDING} is not enabled ALWAYS (tgenabled "
            f"{enabled!r}): idle executors wait for their poll; ALTER TABLE {privileges.PENDING} "
            f"ENABLE ALWAYS TRIGGER {NOTIFY_TRIGGER}"
        )
    return problems


CHECKS: Final = {"work-notification-wired": check_work_notification_wired}
