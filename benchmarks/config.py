"""What a run measures: the matrix of docs/contract/quality.md §1 or the ``--quick`` subset."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EnqueueVariant:
    """One W1 configuration: share of duplicate enqueues and number of participants."""

    duplicate_pct: int
    participants: int

    @property
    def label(self) -> str:
        return f"{self.duplicate_pct}% dup, {self.participants} participant(s)"


@dataclass(frozen=True)
class Settings:
    """Durations, repeats and the workload matrix of one benchmark run."""

    quick: bool
    repeats: int
    warmup_s: float
    measure_s: float
    payload_bytes: int
    lease_seconds: int
    ceiling_clients: tuple[int, ...]
    enqueue_clients: tuple[int, ...]
    enqueue_variants: tuple[EnqueueVariant, ...]
    cycle_workers: tuple[int, ...]
    claim_batches: tuple[int, ...]
    batched_workers: tuple[int, ...]
    batched_sizes: tuple[int, ...]
    retry_workers: int
    retry_batch: int
    expiry_doomed_workers: int
    expiry_batch: int
    expiry_lease_seconds: int
    backlog_sizes: tuple[int, ...]
    backlog_claims: int
    backlog_dead_jobs: int
    pgmq_backlog_reads: int
    pgmq_backlog_budget_s: float
    timeline_s: float
    timeline_workers: int
    timeline_producers: int
    timeline_rate: float
    timeline_backlog: int
    engine_repeats: int
    slow_commands: bool
    #: Steady state (P1, issue 17): seconds per worker count, worker counts, participant counts,
    #: paced producers and their total offered rate (jobs/s, the same for both systems).
    steady_s: float = 15.0
    steady_workers: tuple[int, ...] = (1, 2, 4, 8)
    steady_participants: tuple[int, ...] = (50, 10_000)
    steady_producers: int = 2
    steady_rate: float = 200.0
    #: Wake-up latency (P6): offered jobs/s, seconds, idle workers.
    wake_rate: float = 10.0
    wake_s: float = 20.0
    wake_workers: int = 4

    def with_overrides(self, repeats: int | None, measure_s: float | None) -> Settings:
        """The same matrix with ``--repeats`` / ``--seconds`` applied (``--seconds`` is also the
        length of each steady-state and wake-up run)."""
        return replace(
            self,
            repeats=self.repeats if repeats is None else repeats,
            measure_s=self.measure_s if measure_s is None else measure_s,
            steady_s=self.steady_s if measure_s is None else measure_s,
            wake_s=self.wake_s if measure_s is None else measure_s,
        )


FULL = Settings(
    quick=False,
    repeats=3,
    warmup_s=1.0,
    measure_s=3.0,
    payload_bytes=256,
    lease_seconds=30,
    ceiling_clients=(1, 2, 4, 8),
    enqueue_clients=(1, 4, 8),
    enqueue_variants=(
        EnqueueVariant(0, 10_000),
        EnqueueVariant(10, 10_000),
        EnqueueVariant(50, 10_000),
        EnqueueVariant(0, 1),
        # Issue 17 P4 asks for 50 participants too (what the per-participant sequence costs).
        EnqueueVariant(0, 50),
    ),
    cycle_workers=(1, 2, 4, 8),
    claim_batches=(1, 10, 100),
    batched_workers=(1, 4, 8),
    batched_sizes=(10, 100),
    retry_workers=4,
    retry_batch=10,
    expiry_doomed_workers=4,
    expiry_batch=25,
    expiry_lease_seconds=2,
    backlog_sizes=(10_000, 100_000, 1_000_000),
    backlog_claims=400,
    backlog_dead_jobs=50_000,
    pgmq_backlog_reads=20,
    pgmq_backlog_budget_s=15.0,
    timeline_s=75.0,
    timeline_workers=2,
    timeline_producers=2,
    timeline_rate=500.0,
    timeline_backlog=5_000,
    engine_repeats=3,
    slow_commands=True,
)

QUICK = Settings(
    quick=True,
    repeats=1,
    warmup_s=0.3,
    measure_s=1.0,
    payload_bytes=256,
    lease_seconds=30,
    ceiling_clients=(1, 4),
    enqueue_clients=(1, 4),
    enqueue_variants=(EnqueueVariant(0, 10_000), EnqueueVariant(50, 10_000)),
    cycle_workers=(1, 4),
    claim_batches=(1, 10),
    batched_workers=(4,),
    batched_sizes=(10,),
    retry_workers=2,
    retry_batch=10,
    expiry_doomed_workers=2,
    expiry_batch=10,
    expiry_lease_seconds=1,
    backlog_sizes=(10_000, 50_000),
    backlog_claims=100,
    backlog_dead_jobs=5_000,
    pgmq_backlog_reads=5,
    pgmq_backlog_budget_s=3.0,
    timeline_s=6.0,
    timeline_workers=2,
    timeline_producers=1,
    timeline_rate=200.0,
    timeline_backlog=2_000,
    engine_repeats=1,
    slow_commands=True,
    steady_s=4.0,
    steady_workers=(2,),
    steady_participants=(50,),
    steady_producers=1,
    steady_rate=100.0,
    wake_s=5.0,
    wake_workers=2,
)
