-- 0022 outbox_metrics() counts in-doubt jobs from the queue's in_doubt flag (ops3, ADR 0140).
--
-- 0019's metrics (ADR 0121) probed the ledger for a ZOMBIE_REQUEUE row of every queued job with
-- attempts: one index probe per retried job, most of the function's cost at 1M pending. Since
-- issue 19 the claim and the repair set payment_outbox_pending.in_doubt when they record a lost
-- lease (and nothing clears it while the job is queued), so the flag is the one owner of "this
-- job is in doubt" and the queue part is a single pass over the queue. Nothing else changes;
-- owner and grants stay (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION public.outbox_metrics()
RETURNS TABLE (
    rail_type text,
    participant_id text,
    is_total boolean,
    queue_depth bigint,
    due_now bigint,
    leased bigint,
    expired_leases bigint,
    in_doubt bigint,
    oldest_due_age_seconds double precision,
    retries_5m bigint,
    retries_60m bigint,
    lost_leases_5m bigint,
    lost_leases_60m bigint,
    failures_5m bigint,
    failures_60m bigint,
    cancellations_5m bigint,
    cancellations_60m bigint
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH clock AS (
        SELECT pg_catalog.clock_timestamp() AS now
    ), queue AS (
        SELECT p.rail_type, p.participant_id,
               pg_catalog.count(*) AS queue_depth,
               pg_catalog.count(*) FILTER (
                   WHERE p.next_attempt_at <= c.now
                     AND (p.lease_token IS NULL OR p.lease_expires_at <= c.now)
               ) AS due_now,
               pg_catalog.count(*) FILTER (
                   WHERE p.lease_token IS NOT NULL AND p.lease_expires_at > c.now
               ) AS leased,
               pg_catalog.count(*) FILTER (
                   WHERE p.lease_token IS NOT NULL AND p.lease_expires_at <= c.now
               ) AS expired_leases,
               pg_catalog.count(*) FILTER (WHERE p.in_doubt) AS in_doubt,
               pg_catalog.min(p.next_attempt_at) FILTER (
                   WHERE p.next_attempt_at <= c.now
                     AND (p.lease_token IS NULL OR p.lease_expires_at <= c.now)
               ) AS oldest_due_at
          FROM public.payment_outbox_pending AS p
         CROSS JOIN clock AS c
         GROUP BY p.rail_type, p.participant_id
    ), trouble AS (
        SELECT a.rail_type, a.participant_id,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'RETRYABLE'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS retries_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'RETRYABLE'::public.outbox_attempt_state
               ) AS retries_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS lost_leases_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
               ) AS lost_leases_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'FAILED'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS failures_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'FAILED'::public.outbox_attempt_state
               ) AS failures_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'CANCELLED'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS cancellations_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'CANCELLED'::public.outbox_attempt_state
               ) AS cancellations_60m
          FROM public.payment_outbox_attempts AS a
         CROSS JOIN clock AS c
         WHERE a.state IN ('RETRYABLE'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'CANCELLED'::public.outbox_attempt_state,
                           'ZOMBIE_REQUEUE'::public.outbox_attempt_state)
           AND a.created_at > c.now - INTERVAL '60 minutes'
         GROUP BY a.rail_type, a.participant_id
    ), joined AS (
        SELECT COALESCE(q.rail_type, t.rail_type) AS rail_type,
               COALESCE(q.participant_id, t.participant_id) AS participant_id,
               COALESCE(q.queue_depth, 0) AS queue_depth,
               COALESCE(q.due_now, 0) AS due_now,
               COALESCE(q.leased, 0) AS leased,
               COALESCE(q.expired_leases, 0) AS expired_leases,
               COALESCE(q.in_doubt, 0) AS in_doubt,
               q.oldest_due_at,
               COALESCE(t.retries_5m, 0) AS retries_5m,
               COALESCE(t.retries_60m, 0) AS retries_60m,
               COALESCE(t.lost_leases_5m, 0) AS lost_leases_5m,
               COALESCE(t.lost_leases_60m, 0) AS lost_leases_60m,
               COALESCE(t.failures_5m, 0) AS failures_5m,
               COALESCE(t.failures_60m, 0) AS failures_60m,
               COALESCE(t.cancellations_5m, 0) AS cancellations_5m,
               COALESCE(t.cancellations_60m, 0) AS cancellations_60m
          FROM queue AS q
          FULL JOIN trouble AS t
            ON t.rail_type = q.rail_type AND t.participant_id = q.participant_id
    )
    SELECT j.rail_type, j.participant_id,
           GROUPING(j.rail_type, j.participant_id) <> 0 AS is_total,
           COALESCE(pg_catalog.sum(j.queue_depth), 0)::bigint,
           COALESCE(pg_catalog.sum(j.due_now), 0)::bigint,
           COALESCE(pg_catalog.sum(j.leased), 0)::bigint,
           COALESCE(pg_catalog.sum(j.expired_leases), 0)::bigint,
           COALESCE(pg_catalog.sum(j.in_doubt), 0)::bigint,
           COALESCE(pg_catalog.date_part(
               'epoch', (SELECT c.now FROM clock AS c) - pg_catalog.min(j.oldest_due_at)
           ), 0)::double precision,
           COALESCE(pg_catalog.sum(j.retries_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.retries_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.lost_leases_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.lost_leases_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.failures_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.failures_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.cancellations_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.cancellations_60m), 0)::bigint
      FROM joined AS j
     GROUP BY GROUPING SETS ((j.rail_type, j.participant_id), ())
     ORDER BY is_total, j.rail_type, j.participant_id
$$;

COMMENT ON FUNCTION public.outbox_metrics() IS
'Outbox health per (rail_type, participant_id) and one total row (is_total): queue depth, due '
'now, leased, expired leases, in-doubt jobs (the queue''s in_doubt flag: a lost lease was '
'recorded), the '
'oldest due job''s age in seconds, and RETRYABLE, ZOMBIE_REQUEUE, FAILED and CANCELLED attempts '
'of the last 5 and 60 minutes. EXECUTE for symphony_readonly, symphony_auditor and '
'symphony_control.';
