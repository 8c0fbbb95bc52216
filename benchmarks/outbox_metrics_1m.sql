-- 1M pending jobs for outbox_metrics(): 4 rails x 250 participants; 10% under a live lease, 1%
-- with an expired lease, 5% retried once (half of those after a lost lease: ZOMBIE_REQUEUE);
-- a ledger of 1M DISPATCHED rows (older than an hour) plus 60k trouble rows of the last hour.
SET ROLE symphony_owner;
SET synchronous_commit = off;
INSERT INTO public.payment_outbox_pending
    (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload,
     attempt_count, next_attempt_at, created_at, claimed_by, lease_token, lease_expires_at)
SELECT public.uuid_v7_or_random(), 'i' || g, 'p' || (g % 250), g, 'k' || g,
       (ARRAY['RTGS', 'ACH', 'SWIFT', 'CARD'])[1 + g % 4], '{"amount": 100}',
       CASE WHEN g % 20 = 0 THEN 1 ELSE 0 END,
       now() - (g % 600) * interval '1 second', now(),
       CASE WHEN g % 10 = 1 OR g % 100 = 2 THEN 'w' END,
       CASE WHEN g % 10 = 1 OR g % 100 = 2 THEN gen_random_uuid() END,
       CASE WHEN g % 10 = 1 THEN now() + interval '5 min'
            WHEN g % 100 = 2 THEN now() - interval '5 s' END
  FROM generate_series(1, 1000000) AS g;
INSERT INTO public.payment_outbox_attempts
    (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload,
     attempt_no, state, created_at)
SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id, p.idempotency_key,
       p.rail_type, p.payload, 1,
       CASE WHEN p.sequence_id % 40 = 0 THEN 'ZOMBIE_REQUEUE' ELSE 'RETRYABLE' END::public.outbox_attempt_state,
       now() - (p.sequence_id % 3600) * interval '1 second'
  FROM public.payment_outbox_pending AS p WHERE p.attempt_count = 1;
-- The jobs with a lost lease are in doubt: the claim and the repair set the queue's flag with the
-- ZOMBIE_REQUEUE row (issue 19); outbox_metrics() reads the flag since 0022.
UPDATE public.payment_outbox_pending AS p SET in_doubt = true
 WHERE p.attempt_count = 1 AND p.sequence_id % 40 = 0;
INSERT INTO public.payment_outbox_attempts
    (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload,
     attempt_no, state, created_at)
SELECT public.uuid_v7_or_random(), 'd' || g, 'p' || (g % 250), g, 'dk' || g,
       (ARRAY['RTGS', 'ACH', 'SWIFT', 'CARD'])[1 + g % 4], '{"amount": 100}', 1,
       CASE WHEN g % 100 = 0 THEN 'FAILED' ELSE 'DISPATCHED' END::public.outbox_attempt_state,
       CASE WHEN g % 100 = 0 THEN now() - (g % 3600) * interval '1 second'
            ELSE now() - interval '2 hours' END
  FROM generate_series(1, 1000000) AS g;
RESET ROLE;
VACUUM ANALYZE public.payment_outbox_pending;
VACUUM ANALYZE public.payment_outbox_attempts;
SELECT count(*) AS pending FROM public.payment_outbox_pending;
