"""Operating the outbox (issue 20): metrics, a job's history, audited interventions.

Everything here goes through the database's own functions and tables, as the connecting login:
``public.outbox_metrics()`` (symphony_readonly, symphony_auditor, symphony_control),
``public.cancel_outbox_job()`` and ``public.redrive_outbox_job()`` (symphony_control), and plain
reads of the queue and the ledger for a job's history (the three roles above). The CLI
(``symphony-schema outbox ...``) renders the results; the rules live in the database.

Prometheus names (text exposition format 0.0.4, every family a gauge, one series per rail and
participant; totals are ``sum()`` / ``max()`` in PromQL) are :data:`PROMETHEUS_GAUGES` and
:data:`RECENT_ATTEMPTS`; docs/operations/runbook.md ("Monitoring the outbox") lists them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
import psycopg.rows

from symphony_schema import SymphonyError
from symphony_schema.errors import migrate_first

__all__ = [
    "METRIC_COLUMNS",
    "PROMETHEUS_GAUGES",
    "RECENT_ATTEMPTS",
    "JobHistory",
    "MetricsRow",
    "cancel_job",
    "job_history",
    "parse_outbox_id",
    "read_metrics",
    "redrive_job",
    "render_history",
    "render_prometheus",
    "render_status",
]

#: The columns of ``public.outbox_metrics()`` after rail, participant and is_total, in order.
METRIC_COLUMNS: Final[tuple[str, ...]] = (
    "queue_depth",
    "due_now",
    "leased",
    "expired_leases",
    "in_doubt",
    "oldest_due_age_seconds",
    "retries_5m",
    "retries_60m",
    "lost_leases_5m",
    "lost_leases_60m",
    "failures_5m",
    "failures_60m",
    "cancellations_5m",
    "cancellations_60m",
)

#: Prometheus gauge -> (metrics column, help text). Labels: rail, participant.
PROMETHEUS_GAUGES: Final[dict[str, tuple[str, str]]] = {
    "symphony_outbox_queue_depth": ("queue_depth", "Jobs in the queue (not yet terminal)."),
    "symphony_outbox_due_now": (
        "due_now",
        "Queued jobs a claim could take now (due, and unleased or with an expired lease).",
    ),
    "symphony_outbox_leased": ("leased", "Queued jobs under a live lease."),
    "symphony_outbox_expired_leases": (
        "expired_leases",
        "Queued jobs whose lease expired (lost leases not yet recorded).",
    ),
    "symphony_outbox_in_doubt": (
        "in_doubt",
        "Queued jobs with a ZOMBIE_REQUEUE attempt: a lost lease whose dispatch may have happened.",
    ),
    "symphony_outbox_oldest_due_age_seconds": (
        "oldest_due_age_seconds",
        "Seconds since the oldest due job became due (0 when none is due).",
    ),
}

#: Prometheus gauge of recent attempts by outcome and window: outcome -> column prefix.
RECENT_ATTEMPTS: Final = "symphony_outbox_recent_attempts"
_OUTCOMES: Final[dict[str, str]] = {
    "retry": "retries",
    "lost_lease": "lost_leases",
    "failure": "failures",
    "cancellation": "cancellations",
}
_WINDOWS: Final[tuple[str, ...]] = ("5m", "60m")

_METRICS_QUERY: Final = (
    "SELECT rail_type, participant_id, is_total, "
    + ", ".join(METRIC_COLUMNS)
    + " FROM public.outbox_metrics()"
)


@dataclass(frozen=True, slots=True)
class MetricsRow:
    """One row of ``public.outbox_metrics()``: a (rail, participant) or the total."""

    rail: str | None
    participant: str | None
    is_total: bool
    values: dict[str, float]


def read_metrics(conn: psycopg.Connection[Any]) -> list[MetricsRow]:
    """Every row of ``public.outbox_metrics()`` (the total row last)."""
    rows = conn.execute(_METRICS_QUERY).fetchall()
    return [
        MetricsRow(
            rail=row[0],
            participant=row[1],
            is_total=bool(row[2]),
            values={
                name: float(value) for name, value in zip(METRIC_COLUMNS, row[3:], strict=True)
            },
        )
        for row in rows
    ]


def _label(value: str) -> str:
    """A label value in the text exposition format: backslash, double quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def render_prometheus(rows: Iterable[MetricsRow]) -> str:
    """The Prometheus text exposition format of the per-rail-and-participant rows."""
    detail = [row for row in rows if not row.is_total]
    lines: list[str] = []
    for name, (column, help_text) in PROMETHEUS_GAUGES.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for row in detail:
            labels = (
                f'rail="{_label(row.rail or "")}",participant="{_label(row.participant or "")}"'
            )
            lines.append(f"{name}{{{labels}}} {_number(row.values[column])}")
    lines += [
        f"# HELP {RECENT_ATTEMPTS} Attempts recorded in the last window, by outcome (retry: "
        "RETRYABLE, lost_lease: ZOMBIE_REQUEUE, failure: FAILED, cancellation: CANCELLED).",
        f"# TYPE {RECENT_ATTEMPTS} gauge",
    ]
    for row in detail:
        for outcome, prefix in _OUTCOMES.items():
            for window in _WINDOWS:
                labels = (
                    f'rail="{_label(row.rail or "")}",participant="{_label(row.participant or "")}"'
                    f',outcome="{outcome}",window="{window}"'
                )
                value = row.values[f"{prefix}_{window}"]
                lines.append(f"{RECENT_ATTEMPTS}{{{labels}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    out = []
    for line in (header, *rows):
        out.append(
            "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        )
    return "\n".join(text.rstrip() for text in out)


_STATUS_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("depth", "queue_depth"),
    ("due", "due_now"),
    ("leased", "leased"),
    ("expired", "expired_leases"),
    ("in_doubt", "in_doubt"),
    ("oldest_due_s", "oldest_due_age_seconds"),
    ("retries_5m/60m", "retries"),
    ("lost_5m/60m", "lost_leases"),
    ("failed_5m/60m", "failures"),
    ("cancelled_5m/60m", "cancellations"),
)


def render_status(rows: Sequence[MetricsRow]) -> str:
    """``outbox status``: one line per rail and participant, then TOTAL."""
    header = ["rail", "participant", *(title for title, _ in _STATUS_COLUMNS)]
    body: list[list[str]] = []
    for row in rows:
        cells = ["TOTAL", ""] if row.is_total else [row.rail or "", row.participant or ""]
        for title, column in _STATUS_COLUMNS:
            if "/" in title:
                five, sixty = row.values[f"{column}_5m"], row.values[f"{column}_60m"]
                cells.append(f"{_number(five)}/{_number(sixty)}")
            elif column == "oldest_due_age_seconds":
                cells.append(f"{row.values[column]:.1f}")
            else:
                cells.append(_number(row.values[column]))
        body.append(cells)
    return _table(header, body)


def parse_outbox_id(text: str) -> uuid.UUID:
    """OUTBOX_ID as a UUID, or a one-line error naming the argument."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise SymphonyError(f"OUTBOX_ID must be a UUID, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class JobHistory:
    """A job's queue row (None once it left the queue), its ledger rows, and its lineage."""

    outbox_id: uuid.UUID
    queued: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    redriven_from: uuid.UUID | None
    #: The job's payload as jsonb text: its payment_outbox_payloads row (revision 0024), else
    #: a ledger row written before 0024 that kept a copy; None when neither has it.
    payload: str | None = None

    @property
    def found(self) -> bool:
        return self.queued is not None or bool(self.attempts)


def job_history(conn: psycopg.Connection[Any], outbox_id: uuid.UUID) -> JobHistory:
    """Read one job's queue row, every ledger row (oldest first) and the job it replaced."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        queued = cur.execute(
            "SELECT instruction_id, participant_id, sequence_id, idempotency_key, rail_type,"
            " attempt_count, next_attempt_at, created_at, claimed_by, lease_expires_at"
            " FROM public.payment_outbox_pending WHERE outbox_id = %s",
            (outbox_id,),
        ).fetchone()
        attempts = cur.execute(
            "SELECT attempt_no, state::text AS state, created_at, completed_at, worker_id,"
            " rail_reference, rail_code, error_code, error_message, latency_ms, acted_by, reason,"
            " ticket, related_outbox_id, instruction_id, participant_id, sequence_id,"
            " idempotency_key, rail_type"
            " FROM public.payment_outbox_attempts WHERE outbox_id = %s ORDER BY attempt_no",
            (outbox_id,),
        ).fetchall()
        origin = cur.execute(
            "SELECT outbox_id FROM public.payment_outbox_attempts"
            " WHERE related_outbox_id = %s AND state = 'REDRIVEN'",
            (outbox_id,),
        ).fetchone()
        identity = queued or (attempts[0] if attempts else None)
        stored = None
        if identity is not None:
            # By the payload table's primary key; a job finished before revision 0024 has no row
            # there, only ledger rows with a copy.
            stored = cur.execute(
                "SELECT payload::text AS payload FROM public.payment_outbox_payloads"
                " WHERE participant_id = %s AND outbox_id = %s"
                " UNION ALL"
                " (SELECT payload::text FROM public.payment_outbox_attempts"
                "   WHERE outbox_id = %s AND payload IS NOT NULL ORDER BY attempt_no LIMIT 1)"
                " LIMIT 1",
                (identity["participant_id"], outbox_id, outbox_id),
            ).fetchone()
    return JobHistory(
        outbox_id=outbox_id,
        queued=queued,
        attempts=list(attempts),
        redriven_from=origin["outbox_id"] if origin else None,
        payload=stored["payload"] if stored else None,
    )


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="milliseconds")


def render_history(history: JobHistory) -> str:
    """``outbox show``: identity, queue state, lineage, then one block per attempt."""
    identity = history.queued or history.attempts[0]
    lines = [
        f"outbox {history.outbox_id}",
        f"  instruction {identity['instruction_id']}  key {identity['idempotency_key']}",
        f"  participant {identity['participant_id']}  sequence {identity['sequence_id']}  "
        f"rail {identity['rail_type']}",
    ]
    if history.redriven_from is not None:
        lines.append(f"  redriven from outbox {history.redriven_from}")
    if history.payload is not None:
        lines.append(f"  payload: {history.payload}")
    queued = history.queued
    if queued is not None:
        lease = (
            f"leased by {queued['claimed_by']} until {_when(queued['lease_expires_at'])}"
            if queued["claimed_by"]
            else "not leased"
        )
        lines.append(
            f"  QUEUED: {queued['attempt_count']} attempt(s) so far, next attempt at "
            f"{_when(queued['next_attempt_at'])}, {lease}"
        )
    else:
        outcome = next(
            (a for a in history.attempts if a["state"] in ("DISPATCHED", "FAILED", "CANCELLED")),
            None,
        )
        lines.append(
            f"  ENDED: {outcome['state']} (attempt {outcome['attempt_no']})"
            if outcome
            else "  not queued and no outcome recorded"
        )
    lines.append(f"  attempts: {len(history.attempts)}")
    for attempt in history.attempts:
        lines.append(
            f"  #{attempt['attempt_no']} {attempt['state']}  at {_when(attempt['created_at'])}"
            + (f"  completed {_when(attempt['completed_at'])}" if attempt["completed_at"] else "")
        )
        details = [
            ("worker", attempt["worker_id"]),
            ("rail reference", attempt["rail_reference"]),
            ("rail code", attempt["rail_code"]),
            ("error", attempt["error_code"]),
            ("message", attempt["error_message"]),
            ("latency ms", attempt["latency_ms"]),
            ("by", attempt["acted_by"]),
            ("reason", attempt["reason"]),
            ("ticket", attempt["ticket"]),
            ("redriven as outbox", attempt["related_outbox_id"]),
        ]
        lines += [f"      {name}: {value}" for name, value in details if value is not None]
    return "\n".join(lines)


def check_reason_and_ticket(reason: str, ticket: str) -> None:
    """The rule the intervention functions enforce (22023), checked before connecting."""
    for name, value in (("--reason", reason), ("--ticket", ticket)):
        if not value.strip():
            raise SymphonyError(f"{name} must be a non-empty string (SQLSTATE 22023)")


def schema_missing(exc: psycopg.Error) -> SymphonyError | None:
    """The "migrate first" line for a database without the outbox schema (42P01: a table is
    missing, 42883: a function is), or None for any other error."""
    if exc.sqlstate == "42P01":
        missing = "the outbox tables (public.payment_outbox_pending)"
    elif exc.sqlstate == "42883":
        missing = "the outbox functions (public.outbox_metrics)"
    else:
        return None
    return SymphonyError(migrate_first(missing))


def _intervention(
    conn: psycopg.Connection[Any], function: str, outbox_id: uuid.UUID, reason: str, ticket: str
) -> tuple[Any, ...]:
    check_reason_and_ticket(reason, ticket)
    try:
        row = conn.execute(
            f"SELECT * FROM public.{function}(%s, %s, %s)", (outbox_id, reason, ticket)
        ).fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate == "22023":
            message = " ".join(str(exc).split())
            raise SymphonyError(f"{message} (SQLSTATE 22023)") from None
        raise
    assert row is not None
    return tuple(row)


def cancel_job(
    conn: psycopg.Connection[Any], outbox_id: uuid.UUID, reason: str, ticket: str
) -> tuple[Any, ...]:
    """``public.cancel_outbox_job``: (outbox_id, attempt_no, state)."""
    return _intervention(conn, "cancel_outbox_job", outbox_id, reason, ticket)


def redrive_job(
    conn: psycopg.Connection[Any], outbox_id: uuid.UUID, reason: str, ticket: str
) -> tuple[Any, ...]:
    """``public.redrive_outbox_job``: (new outbox_id, sequence_id, created_at, state)."""
    return _intervention(conn, "redrive_outbox_job", outbox_id, reason, ticket)
