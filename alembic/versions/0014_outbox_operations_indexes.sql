-- 0014 outbox operations, part 2 (issue 20, ADRs 0120 and 0121): indexes on the ledger, built
-- CONCURRENTLY (ADR 0056) because the ledger is the biggest table and takes writes all the time.
-- A rerun after an interruption skips the indexes already built and the drop already done.

-- One outcome per job: at most one DISPATCHED, FAILED or CANCELLED row per outbox_id. It replaces
-- uq_payment_outbox_attempts_one_terminal (DISPATCHED and FAILED only), which is dropped once this
-- one is valid, so the rule is enforced at every moment in between.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_payment_outbox_attempts_one_outcome
    ON public.payment_outbox_attempts (outbox_id)
    WHERE state IN ('DISPATCHED', 'FAILED', 'CANCELLED');

-- No IF EXISTS (lint:no-legacy-references): on a rerun the engine does not send a DROP INDEX
-- CONCURRENTLY whose index is already gone (ADR 0056), which is what squawk asks IF EXISTS for.
-- squawk-ignore prefer-robust-stmts
DROP INDEX CONCURRENTLY public.uq_payment_outbox_attempts_one_terminal;

-- A job is redriven at most once: a second REDRIVEN row would queue the payment twice.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_payment_outbox_attempts_one_redrive
    ON public.payment_outbox_attempts (outbox_id)
    WHERE state = 'REDRIVEN';

-- outbox show: which job was this one redriven from (rare rows, a small index).
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_payment_outbox_attempts_related_outbox
    ON public.payment_outbox_attempts (related_outbox_id)
    WHERE related_outbox_id IS NOT NULL;

-- outbox_metrics(): retries, failures, cancellations and lost leases of the last 60 minutes
-- without walking the ledger. DISPATCHED rows (nearly all of them) never enter it, so the hot
-- path pays for it only when something went wrong.
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_payment_outbox_attempts_recent_trouble
    ON public.payment_outbox_attempts (created_at)
    WHERE state IN ('RETRYABLE', 'FAILED', 'CANCELLED', 'ZOMBIE_REQUEUE');
