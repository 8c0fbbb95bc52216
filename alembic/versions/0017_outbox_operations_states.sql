-- 0017 outbox operations, part 1 (issue 20, ADR 0120): the new attempt states and the audit
-- columns of the ledger.
--
-- A new enum value cannot be used in the transaction that adds it, so the states come first, in a
-- revision of their own; 0018 builds the indexes that use them and 0019 the functions.
--
-- CANCELLED is terminal: public.cancel_outbox_job() records it for a job an operator takes out
-- of the queue. REDRIVEN is not terminal and is written only after a job's terminal FAILED or
-- CANCELLED attempt, by public.redrive_outbox_job(), naming the new job in related_outbox_id.
ALTER TYPE public.outbox_attempt_state ADD VALUE IF NOT EXISTS 'CANCELLED' AFTER 'ZOMBIE_REQUEUE';
ALTER TYPE public.outbox_attempt_state ADD VALUE IF NOT EXISTS 'REDRIVEN' AFTER 'CANCELLED';

COMMENT ON TYPE public.outbox_attempt_state IS
'Outcome of one outbox attempt. DISPATCHED, FAILED and CANCELLED are terminal; RETRYABLE and '
'ZOMBIE_REQUEUE put the job back in the queue; REDRIVEN (after FAILED or CANCELLED) records that '
'a new job replaced it; DISPATCHING is legacy and never written.';

-- Who intervened, why and under which ticket (CANCELLED and REDRIVEN rows; NULL on the rows the
-- workers' functions write), and the job a REDRIVEN row created. Nullable columns without a
-- default: no table rewrite.
ALTER TABLE public.payment_outbox_attempts
    ADD COLUMN acted_by text,
    ADD COLUMN reason text,
    ADD COLUMN ticket text,
    ADD COLUMN related_outbox_id uuid;

COMMENT ON COLUMN public.payment_outbox_attempts.acted_by IS
'session_user of the operator who cancelled or redrove the job (CANCELLED and REDRIVEN rows).';
COMMENT ON COLUMN public.payment_outbox_attempts.reason IS
'Why the operator intervened (required for CANCELLED and REDRIVEN rows).';
COMMENT ON COLUMN public.payment_outbox_attempts.ticket IS
'The change or incident ticket of the intervention (required for CANCELLED and REDRIVEN rows).';
COMMENT ON COLUMN public.payment_outbox_attempts.related_outbox_id IS
'On a REDRIVEN row: the new job that replaced this one.';
