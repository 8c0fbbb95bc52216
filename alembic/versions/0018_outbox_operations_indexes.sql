-- 0018 outbox operations, part 2 (issue 20, ADRs 0120 and 0121): indexes on the ledger.
--
-- Transactional, like every revision but those that need it otherwise: a crash leaves the
-- database at a revision boundary (R2), and the one-outcome rule changes in one step. The
-- statements take a SHARE lock on the ledger while they build (writes wait; reads do not), which
-- is short on today's ledger. On a large ledger, build the four indexes by hand first with
-- CREATE [UNIQUE] INDEX CONCURRENTLY and the same names and definitions (docs/operations/
-- runbook.md, "Cancelling and redriving a payment"); IF NOT EXISTS then finds them and this only
-- drops the old index (a brief ACCESS EXCLUSIVE lock).
-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion

-- One outcome per job: at most one DISPATCHED, FAILED or CANCELLED row per outbox_id. It replaces
-- uq_payment_outbox_attempts_one_terminal (DISPATCHED and FAILED only) in the same transaction.
CREATE UNIQUE INDEX IF NOT EXISTS uq_payment_outbox_attempts_one_outcome
    ON public.payment_outbox_attempts (outbox_id)
    WHERE state IN ('DISPATCHED', 'FAILED', 'CANCELLED');

DROP INDEX public.uq_payment_outbox_attempts_one_terminal;

-- A job is redriven at most once: a second REDRIVEN row would queue the payment twice.
CREATE UNIQUE INDEX IF NOT EXISTS uq_payment_outbox_attempts_one_redrive
    ON public.payment_outbox_attempts (outbox_id)
    WHERE state = 'REDRIVEN';

-- outbox show: which job was this one redriven from (rare rows, a small index).
CREATE INDEX IF NOT EXISTS ix_payment_outbox_attempts_related_outbox
    ON public.payment_outbox_attempts (related_outbox_id)
    WHERE related_outbox_id IS NOT NULL;

-- outbox_metrics(): retries, failures, cancellations and lost leases of the last 60 minutes
-- without walking the ledger. DISPATCHED rows (nearly all of them) never enter it, so the hot
-- path pays for it only when something went wrong.
CREATE INDEX IF NOT EXISTS ix_payment_outbox_attempts_recent_trouble
    ON public.payment_outbox_attempts (created_at)
    WHERE state IN ('RETRYABLE', 'FAILED', 'CANCELLED', 'ZOMBIE_REQUEUE');
