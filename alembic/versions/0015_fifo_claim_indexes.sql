-- 0015 the claim's indexes of claimable heads (issue 19 item 1, ADR 0116).
--
-- Transactional, like every revision but those that need it otherwise: a crash leaves the
-- database at a revision boundary (R2), and concurrent deployers queued on the deploy lock cannot
-- stall the build (R1: a CREATE INDEX CONCURRENTLY here waited on the queued deployers' sessions
-- until its lock_timeout and left an INVALID index). The statements take a SHARE lock on the queue
-- while they build (writes wait; reads do not), which is short on a queue that holds only the
-- unfinished jobs. On a large queue, build both indexes by hand first with CREATE INDEX
-- CONCURRENTLY and the same names and definitions (docs/operations/runbook.md); IF NOT EXISTS
-- then finds them and this only drops the old index (a brief ACCESS EXCLUSIVE lock).
--
-- ix_payment_outbox_pending_claimable: heads without a lease, highest priority then oldest due
-- first (claims of every rail). ix_payment_outbox_pending_claimable_rail: the same per rail
-- (rail-scoped claims read it once per rail). The unleased-row index of 0001 is no longer read
-- by anything (claims read heads only; repair reads the lease index) and goes.
-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion

CREATE INDEX IF NOT EXISTS ix_payment_outbox_pending_claimable
    ON public.payment_outbox_pending (priority DESC, next_attempt_at, outbox_id)
    WHERE is_head AND lease_token IS NULL;

CREATE INDEX IF NOT EXISTS ix_payment_outbox_pending_claimable_rail
    ON public.payment_outbox_pending (rail_type, priority DESC, next_attempt_at, outbox_id)
    WHERE is_head AND lease_token IS NULL;

-- No IF EXISTS (INV-023: a forward-only chain knows what exists).
-- squawk-ignore prefer-robust-stmts
DROP INDEX public.ix_payment_outbox_pending_due_unleased;
