-- Bytes per failing job (issue 20 item 5, ADR 0142): 1000 jobs with a 1 KB payload, each
-- attempted 5 times (4 RETRYABLE, then FAILED at a retry ceiling of 5). Prints the WAL written
-- for the whole life of the jobs (enqueue, 5 claims and completions) and the bytes the jobs
-- leave behind once they are out of the queue (ledger, plus the payload table from 0024 on),
-- both per job. Run as a superuser on a scratch database at the revision to measure:
--   symphony-schema db psql -- -d SCRATCH -f benchmarks/payload_bytes.sql
\set jobs 1000
SELECT public.set_outbox_retry_ceiling(5);
CHECKPOINT;
CREATE TEMP TABLE before_run AS
SELECT pg_catalog.pg_current_wal_insert_lsn() AS lsn,
       pg_catalog.pg_total_relation_size('public.payment_outbox_attempts')
       + COALESCE(pg_catalog.pg_total_relation_size(
                      pg_catalog.to_regclass('public.payment_outbox_payloads')), 0) AS kept;
SELECT count(*) AS enqueued
  FROM pg_catalog.generate_series(1, :jobs) AS g,
       LATERAL public.enqueue_payment_outbox(
           'bytes-' || g, 'bytes-p' || g, 'bytes-k' || g, 'RTGS',
           pg_catalog.jsonb_build_object('memo', pg_catalog.repeat('x', 1000), 'n', g)
       ) AS e;
DO $$
BEGIN
    FOR round IN 1..5 LOOP
        PERFORM public.complete_outbox_attempt(c.outbox_id, c.lease_token, 'bytes-w',
                                               'RETRYABLE')
           FROM public.claim_outbox_batch(1000, 'bytes-w', 60) AS c;
        UPDATE public.payment_outbox_pending
           SET next_attempt_at = pg_catalog.now() - INTERVAL '1 second';
    END LOOP;
END
$$;
SELECT (SELECT count(*) FROM public.payment_outbox_pending) AS still_queued,
       (SELECT count(*) FROM public.payment_outbox_attempts WHERE state = 'FAILED') AS failed,
       pg_catalog.round(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), b.lsn)
                        / :jobs) AS wal_bytes_per_job,
       pg_catalog.round((pg_catalog.pg_total_relation_size('public.payment_outbox_attempts')
                         + COALESCE(pg_catalog.pg_total_relation_size(
                               pg_catalog.to_regclass('public.payment_outbox_payloads')), 0)
                         - b.kept) / :jobs) AS kept_bytes_per_job
  FROM before_run AS b;
