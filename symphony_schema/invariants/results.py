"""Check results: what every lint, gate check, process gate and run step reports."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

Status = Literal["pass", "fail", "skip", "waived"]

#: Reference prefixes of the three kinds of checks (the manifest's verification references).
CHECK_KINDS = ("lint", "gate", "process")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check (or one run step such as ``step:migrate``)."""

    ref: str
    status: Status
    details: tuple[str, ...] = ()
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    invariant_id: str | None = None
    note: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def duration_ms(self) -> int:
        return int((self.ended_at - self.started_at).total_seconds() * 1000)

    def with_invariant(self, invariant_id: str | None) -> CheckResult:
        return replace(self, invariant_id=invariant_id)

    def as_record(self) -> dict[str, object]:
        """The JSON record of the evidence bundle."""
        return {
            "check": self.ref,
            "invariant_id": self.invariant_id,
            "status": self.status,
            "details": list(self.details),
            "note": self.note,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration_ms": self.duration_ms,
        }


class SkipCheck(Exception):
    """Raised by a check that cannot apply here (e.g. the change rule without a base ref)."""


def timed(ref: str, check: Callable[[], Iterable[str]]) -> CheckResult:
    """Run ``check`` (returning its problems) and time it.

    A check that raises is a failure, never a pass: the exception is reported as its detail
    (fail closed — a gate that cannot look has not proven anything).
    """
    started = datetime.now(UTC)
    clock = time.perf_counter()
    try:
        problems = tuple(check())
    except SkipCheck as skip:
        return skipped(ref, str(skip))
    except Exception as exc:  # any crash of a check must become a reported failure
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        problems = (f"the check could not run: {type(exc).__name__}: {exc}{where}",)
    elapsed = time.perf_counter() - clock
    ended = started.fromtimestamp(started.timestamp() + elapsed, UTC)
    return CheckResult(ref, "fail" if problems else "pass", problems, started, ended)


def skipped(ref: str, reason: str) -> CheckResult:
    now = datetime.now(UTC)
    return CheckResult(ref, "skip", (), now, now, note=reason)
