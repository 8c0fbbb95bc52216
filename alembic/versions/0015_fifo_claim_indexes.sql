-- 0015 the claim's indexes of claimable heads (issue 19 item 1, ADR 0116), built without
-- blocking the queue: CREATE/DROP INDEX CONCURRENTLY, so this revision runs outside a
-- transaction (ADR 0056; an interrupted build is repaired by running it again).
--
-- ix_payment_outbox_pending_claimable: heads without a lease, highest priority then oldest due
-- first (claims of every rail). ix_payment_outbox_pending_claimable_rail: the same per rail
-- (rail-scoped claims read it once per rail). The unleased-row index of 0001 is no longer read
-- by anything (claims read heads only; repair reads the lease index) and goes.

CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_payment_outbox_pending_claimable
    ON public.payment_outbox_pending (priority DESC, next_attempt_at, outbox_id)
    WHERE is_head AND lease_token IS NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_payment_outbox_pending_claimable_rail
    ON public.payment_outbox_pending (rail_type, priority DESC, next_attempt_at, outbox_id)
    WHERE is_head AND lease_token IS NULL;

-- No IF EXISTS (INV-023: a forward-only chain knows what exists).
-- squawk-ignore prefer-robust-stmts
DROP INDEX CONCURRENTLY public.ix_payment_outbox_pending_due_unleased;
