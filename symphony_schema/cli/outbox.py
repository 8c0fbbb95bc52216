"""``symphony-schema outbox status|metrics|show|cancel|redrive`` (issue 20)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from symphony_schema.cli import add_url_argument

_ROLES_READ = "symphony_readonly, symphony_auditor or symphony_control"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outbox = subparsers.add_parser(
        "outbox",
        help="operate the outbox: status, Prometheus metrics, a job's history, cancel, redrive",
        description=(
            "Operate the outbox through the database's own functions, as the connecting login. "
            f"status, metrics and show read (a login in {_ROLES_READ}); cancel and redrive are "
            "audited interventions (a login in symphony_control): each writes a ledger row with "
            "the login (session_user), the reason and the ticket."
        ),
    )
    actions = outbox.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        help="a table of queue depth, due, leased, expired, in-doubt, oldest due age and "
        "recent retries/failures/cancellations per rail and participant, then the total",
        description=(
            "Print public.outbox_metrics() as a table: one line per rail and participant, then "
            "TOTAL. in_doubt counts queued jobs with a ZOMBIE_REQUEUE attempt (a lost lease whose "
            "dispatch may have happened); x/y columns are the last 5 and 60 minutes."
        ),
    )
    add_url_argument(status)
    status.set_defaults(handler=_status)

    metrics = actions.add_parser(
        "metrics",
        help="print public.outbox_metrics() in the Prometheus text exposition format",
        description=(
            "Print public.outbox_metrics() for a scraper (e.g. a node_exporter textfile or a "
            "cron job writing to a Pushgateway). Gauges, labelled rail and participant: "
            "symphony_outbox_queue_depth, symphony_outbox_due_now, symphony_outbox_leased, "
            "symphony_outbox_expired_leases, symphony_outbox_in_doubt, "
            "symphony_outbox_oldest_due_age_seconds, and symphony_outbox_recent_attempts "
            "(also labelled outcome = retry, lost_lease, failure or cancellation and window = "
            "5m or 60m). Totals are sum() / max() in PromQL."
        ),
    )
    metrics.add_argument(
        "--format",
        choices=("prometheus",),
        default="prometheus",
        help="output format (default and only: prometheus)",
    )
    add_url_argument(metrics)
    metrics.set_defaults(handler=_metrics)

    show = actions.add_parser(
        "show",
        help="print one job's queue state, lineage and full attempt history",
        description=(
            "Print one job: its identity, its payload (from payment_outbox_payloads, or the "
            "ledger's copy for a job finished before revision 0024), whether it is queued (and "
            "its lease) or how it ended, the job it was redriven from, and every ledger row "
            "oldest first with worker, rail reference, error, and for interventions who, why and "
            "the ticket. Exit 1 when no job has this id, 2 when OUTBOX_ID is not a UUID or the "
            "database is not migrated."
        ),
    )
    show.add_argument("outbox_id", metavar="OUTBOX_ID", help="the job's outbox_id (a UUID)")
    add_url_argument(show)
    show.set_defaults(handler=_show)

    for name, function, what in (
        (
            "cancel",
            "public.cancel_outbox_job",
            "take a queued job out of the queue with a CANCELLED outcome (refused while a worker "
            "holds a live lease: P7011)",
        ),
        (
            "redrive",
            "public.redrive_outbox_job",
            "queue a FAILED or CANCELLED job again as a new job linked to the old one; replays "
            "of its idempotency key then answer with the new job",
        ),
    ):
        action = actions.add_parser(
            name,
            help=what.split(" (")[0].split(";")[0],
            description=(
                f"Call {function}(OUTBOX_ID, --reason, --ticket) as the connecting login (a member "
                f"of symphony_control): {what}. The ledger row names the login, the reason and "
                "the ticket. A blank reason or ticket is refused before connecting (exit 2, "
                "SQLSTATE 22023); a refusal of the database (P7005, P7010-P7012) exits 1 with "
                "its SQLSTATE."
            ),
        )
        action.add_argument("outbox_id", metavar="OUTBOX_ID", help="the job's outbox_id (a UUID)")
        action.add_argument("--reason", required=True, help="why (recorded in the ledger)")
        action.add_argument(
            "--ticket", required=True, help="the change or incident ticket (recorded)"
        )
        add_url_argument(action)
        action.set_defaults(handler=_cancel if name == "cancel" else _redrive)


def _connect(url: str | None) -> Any:
    import psycopg

    from symphony_schema.database import select_database

    return psycopg.connect(select_database(url).conninfo, autocommit=True)


def _read(url: str | None, reader: Callable[[Any], Any]) -> Any:
    """Run ``reader(conn)``; an unmigrated database is the "migrate first" line (exit 2)."""
    import psycopg

    from symphony_schema import outbox_ops

    with _connect(url) as conn:
        try:
            return reader(conn)
        except psycopg.Error as exc:
            missing = outbox_ops.schema_missing(exc)
            if missing is None:
                raise
            raise missing from None


def _status(args: argparse.Namespace) -> int:
    from symphony_schema import outbox_ops

    rows = _read(args.url, outbox_ops.read_metrics)
    print(outbox_ops.render_status(rows))
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from symphony_schema import outbox_ops

    rows = _read(args.url, outbox_ops.read_metrics)
    print(outbox_ops.render_prometheus(rows), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    import sys

    from symphony_schema import outbox_ops

    outbox_id = outbox_ops.parse_outbox_id(args.outbox_id)
    history = _read(args.url, lambda conn: outbox_ops.job_history(conn, outbox_id))
    if not history.found:
        print(f"symphony-schema: no job with outbox id {outbox_id}", file=sys.stderr)
        return 1
    print(outbox_ops.render_history(history))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from symphony_schema import outbox_ops

    outbox_id = outbox_ops.parse_outbox_id(args.outbox_id)
    outbox_ops.check_reason_and_ticket(args.reason, args.ticket)
    with _connect(args.url) as conn:
        _id, attempt_no, state = outbox_ops.cancel_job(conn, outbox_id, args.reason, args.ticket)
    print(f"outbox {outbox_id}: {state} (attempt {attempt_no}), ticket {args.ticket}")
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from symphony_schema import outbox_ops

    outbox_id = outbox_ops.parse_outbox_id(args.outbox_id)
    outbox_ops.check_reason_and_ticket(args.reason, args.ticket)
    with _connect(args.url) as conn:
        new_id, sequence_id, _created, state = outbox_ops.redrive_job(
            conn, outbox_id, args.reason, args.ticket
        )
    print(
        f"outbox {outbox_id}: redriven as outbox {new_id} (sequence {sequence_id}, {state}), "
        f"ticket {args.ticket}"
    )
    return 0
