-- 0033 wake one worker per notification; an empty claim stays cheap (issue 17 P6, ADRs 0159,
-- 0160).
--
-- 1. notify_outbox_work (body: 0026) sends '<rail code>:<hint>' instead of '<rail code>': the hint
--    is the notifying transaction's id modulo 1024 (one value per transaction, so PostgreSQL still
--    folds a transaction's notifications of one rail into one). Every listener still receives
--    every notification (PostgreSQL has no "wake one"); an executor's workers, each knowing its
--    rank among them, let only the worker with rank = hint mod workers claim at once, and the
--    others claim only if the job is still there after a take-over delay (reference_worker.py,
--    executor guide). The gate (one transaction per rail at a time) is unchanged; the payload
--    reveals the rail code, as before, and ten bits of a transaction id.
-- 2. claim_outbox_batch (body: 0032) runs its take-over statement only when an expired lease of a
--    due head exists (one probe of the lease index): an empty claim was two statements, the
--    second one opening every ledger partition; now it is two index probes.
-- Owners, grants and the trigger stay (CREATE OR REPLACE).

CREATE OR REPLACE FUNCTION public.notify_outbox_work() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- The rail's gate: held by this transaction (taken now or by an earlier job of it) or by a
    -- concurrent one, which will notify for the rail when it commits.
    PERFORM 1
       FROM public.outbox_rails AS r
      WHERE r.rail_code = NEW.rail_type
        FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        -- The hint picks the worker that claims at once (ADR 0159); constant within the
        -- transaction, so its notifications of one rail still fold into one.
        PERFORM pg_catalog.pg_notify(
            'symphony_outbox_work',
            NEW.rail_type || ':' || (pg_catalog.pg_current_xact_id()::text::bigint % 1024)::text
        );
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION public.notify_outbox_work() IS
'Trigger function (AFTER INSERT of a claimable head on payment_outbox_pending): NOTIFY '
'symphony_outbox_work with ''<rail code>:<hint>'' (hint: the transaction id modulo 1024; the '
'worker of rank hint mod workers claims at once, ADR 0159), delivered at commit, folded per '
'transaction; only the transaction holding the rail''s outbox_rails row (FOR NO KEY UPDATE SKIP '
'LOCKED) notifies, concurrent ones of the rail skip.';

-- The claim (body: 0032): the take-over statement only when an expired lease is due.
CREATE OR REPLACE FUNCTION public.claim_outbox_batch(
    p_batch_size integer,
    p_worker_id text,
    p_lease_seconds integer,
    p_rail_types text[] DEFAULT NULL
) RETURNS TABLE (
    outbox_id uuid,
    instruction_id text,
    participant_id text,
    sequence_id bigint,
    idempotency_key text,
    rail_type text,
    payload jsonb,
    attempt_count integer,
    lease_token uuid,
    lease_expires_at timestamptz,
    in_doubt boolean
)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz;
    v_expires_at timestamptz;
    v_plan_settings text[];
    v_claimed bigint;
    v_rest integer;
    v_expired boolean := false;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NULL means every rail; otherwise 1 to 100 rail types, each a valid id.
    IF p_rail_types IS NOT NULL THEN
        IF pg_catalog.cardinality(p_rail_types) NOT BETWEEN 1 AND 100
           OR pg_catalog.array_ndims(p_rail_types) <> 1 THEN
            RAISE EXCEPTION 'p_rail_types must be NULL (every rail) or a one-dimensional array '
                            'of 1 to 100 rail types, got % element(s)',
                pg_catalog.cardinality(p_rail_types)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM public.outbox_require_ids(
            pg_catalog.array_fill('p_rail_types element'::text,
                                  ARRAY[pg_catalog.cardinality(p_rail_types)]),
            p_rail_types
        );
        -- Any spelling: each rail as given and upper-cased (ADR 0122; jobs queued before 0020
        -- may carry a lower-case rail), each once.
        p_rail_types := ARRAY(
            SELECT DISTINCT r.rail_type
              FROM pg_catalog.unnest(p_rail_types) AS g (rail_type)
             CROSS JOIN LATERAL (VALUES (g.rail_type),
                                        (pg_catalog.upper(g.rail_type COLLATE "C"))) AS r (rail_type)
        );
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);
    v_plan_settings := public.outbox_pin_plan_settings();

    -- 1. The common path (ADR 0158): due heads without a lease (all rails: one partial index;
    --    some rails: the rail index, once per rail), each scan capped at the batch and reading
    --    its index in order, so the work is proportional to the batch, not to the number of
    --    queued or leased rows. Keep the first of them by priority, then due time, lease them by
    --    primary key and return them in that order. This statement reads neither the lease
    --    index nor the ledger (whose partitions a plan that may append to it has to open).
    RETURN QUERY
    WITH unleased AS (
        SELECT a.outbox_id, a.priority, a.next_attempt_at
          FROM (
              SELECT p.outbox_id, p.priority, p.next_attempt_at
                FROM public.payment_outbox_pending AS p
               WHERE p_rail_types IS NULL
                 AND p.is_head
                 AND p.lease_token IS NULL
                 AND p.next_attempt_at <= v_now
               ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
               LIMIT p_batch_size
                 FOR UPDATE SKIP LOCKED
          ) AS a
        UNION ALL
        SELECT r.outbox_id, r.priority, r.next_attempt_at
          FROM pg_catalog.unnest(p_rail_types) AS t (rail_type)
         CROSS JOIN LATERAL (
              SELECT p.outbox_id, p.priority, p.next_attempt_at
                FROM public.payment_outbox_pending AS p
               WHERE p.rail_type = t.rail_type
                 AND p.is_head
                 AND p.lease_token IS NULL
                 AND p.next_attempt_at <= v_now
               ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
               LIMIT p_batch_size
                 FOR UPDATE SKIP LOCKED
          ) AS r
    ), chosen AS (
        SELECT u.outbox_id
          FROM unleased AS u
         ORDER BY u.priority DESC, u.next_attempt_at, u.outbox_id
         LIMIT p_batch_size
    ), leased AS (
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = public.uuid_v7_or_random(),
               lease_expires_at = v_expires_at,
               -- The real claim time, read after the rows were locked: later than the commit
               -- of whatever made the job claimable (the completion of its predecessor).
               claimed_at = pg_catalog.clock_timestamp()
         WHERE p.outbox_id = ANY ((SELECT pg_catalog.array_agg(x.outbox_id) FROM chosen AS x)::uuid[])
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.in_doubt, p.priority, p.next_attempt_at
    )
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at, l.in_doubt
      FROM leased AS l
     ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;
    GET DIAGNOSTICS v_claimed = ROW_COUNT;

    -- 2. Only when those did not fill the batch: the rest of it from the 0024 statement, which
    --    also takes over expired leases of heads (so a head whose lease expired waits while
    --    unleased heads fill every claim, until a claim comes up short or repair takes it;
    --    ADR 0158). Lock the candidates: due heads without a lease and expired leases of heads.
    --    Keep the first of them by priority, then due time; record the lost lease of each
    --    expired one taken (attempt number: the ledger's last, or the locked row's
    --    attempt_count if higher, plus one; at the ceiling FAILED and the job leaves the queue,
    --    and the trigger promotes the participant's next job), lease the others by primary key
    --    (a taken-over job is in doubt from now on), return them in that order, after the rows
    --    of step 1.
    -- 0033 (ADR 0160): and only when an expired lease of a due head exists. The probe reads the
    -- lease index from its oldest expiry up to now (what step 2's own scan would read) and no
    -- ledger partition, so a claim that finds nothing costs two index probes instead of step 2's
    -- plan, which opens every ledger partition at executor start. An unleased head committed
    -- between step 1 and here is left to the next claim (its notification wakes one).
    -- Two IFs: the probe must not even start for a claim that filled its batch.
    IF v_claimed < p_batch_size THEN
        v_expired := EXISTS (
            SELECT 1
              FROM public.payment_outbox_pending AS p
             WHERE p.lease_token IS NOT NULL
               AND p.lease_expires_at <= v_now
               AND p.next_attempt_at <= v_now
               AND p.is_head
               AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
        );
    END IF;
    IF v_expired THEN
        v_rest := p_batch_size - v_claimed::integer;
        RETURN QUERY
        WITH unleased AS (
            SELECT a.outbox_id, a.priority, a.next_attempt_at
              FROM (
                  SELECT p.outbox_id, p.priority, p.next_attempt_at
                    FROM public.payment_outbox_pending AS p
                   WHERE p_rail_types IS NULL
                     AND p.is_head
                     AND p.lease_token IS NULL
                     AND p.next_attempt_at <= v_now
                   ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
                   LIMIT v_rest
                     FOR UPDATE SKIP LOCKED
              ) AS a
            UNION ALL
            SELECT r.outbox_id, r.priority, r.next_attempt_at
              FROM pg_catalog.unnest(p_rail_types) AS t (rail_type)
             CROSS JOIN LATERAL (
                  SELECT p.outbox_id, p.priority, p.next_attempt_at
                    FROM public.payment_outbox_pending AS p
                   WHERE p.rail_type = t.rail_type
                     AND p.is_head
                     AND p.lease_token IS NULL
                     AND p.next_attempt_at <= v_now
                   ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
                   LIMIT v_rest
                     FOR UPDATE SKIP LOCKED
              ) AS r
        ), expired AS (
            SELECT p.outbox_id, p.priority, p.next_attempt_at, p.instruction_id, p.participant_id,
                   p.sequence_id, p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                   p.claimed_by, p.lease_token, p.lease_expires_at, p.claimed_at
              FROM public.payment_outbox_pending AS p
             WHERE p.lease_token IS NOT NULL
               AND p.lease_expires_at <= v_now
               AND p.next_attempt_at <= v_now
               AND p.is_head
               AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
             ORDER BY p.lease_expires_at, p.outbox_id
             LIMIT v_rest
               FOR UPDATE SKIP LOCKED
        ), chosen AS (
            SELECT b.outbox_id
              FROM (
                  SELECT u.outbox_id, u.priority, u.next_attempt_at FROM unleased AS u
                  UNION ALL
                  SELECT e.outbox_id, e.priority, e.next_attempt_at FROM expired AS e
              ) AS b
             ORDER BY b.priority DESC, b.next_attempt_at, b.outbox_id
             LIMIT v_rest
        ), zombies AS (
            SELECT e.outbox_id, e.instruction_id, e.participant_id, e.sequence_id, e.idempotency_key,
                   e.rail_type, e.payload, e.claimed_by, e.lease_token, e.lease_expires_at,
                   e.claimed_at,
                   GREATEST(
                       COALESCE((SELECT pg_catalog.max(a.attempt_no)
                                   FROM public.payment_outbox_attempts AS a
                                  WHERE a.outbox_id = e.outbox_id), 0),
                       e.attempt_count
                   ) + 1 AS attempt_no,
                   -- Read only when an expired lease is taken (an InitPlan runs on first use).
                   (SELECT public.outbox_retry_ceiling()) AS ceiling
              FROM expired AS e
              JOIN chosen AS c ON c.outbox_id = e.outbox_id
        ), decided AS (
            SELECT z.outbox_id, z.instruction_id, z.participant_id, z.sequence_id, z.idempotency_key,
                   z.rail_type, z.payload, z.claimed_by, z.lease_token, z.lease_expires_at,
                   z.claimed_at, z.attempt_no, z.ceiling,
                   CASE
                       WHEN z.attempt_no >= z.ceiling THEN 'FAILED'::public.outbox_attempt_state
                       ELSE 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
                   END AS state
              FROM zombies AS z
        ), appended AS (
            INSERT INTO public.payment_outbox_attempts AS a
                (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
                 attempt_no, state, claimed_at, completed_at, error_code, error_message,
                 worker_id, lease_token, recorded_by)
            SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
                   d.idempotency_key, d.rail_type, d.attempt_no, d.state,
                   COALESCE(d.claimed_at, v_now),
                   CASE WHEN d.state = 'FAILED'::public.outbox_attempt_state THEN v_now END,
                   'LEASE_EXPIRED',
                   CASE
                       WHEN d.state = 'FAILED'::public.outbox_attempt_state
                           THEN pg_catalog.format('lease expired at %s; retry ceiling %s reached; '
                                                  'failed by %s', d.lease_expires_at, d.ceiling,
                                                  p_worker_id)
                       ELSE pg_catalog.format('lease expired at %s; requeued by %s',
                                              d.lease_expires_at, p_worker_id)
                   END,
                   d.claimed_by, d.lease_token, SESSION_USER
              FROM decided AS d
             ORDER BY d.outbox_id
            RETURNING a.outbox_id
        ), removed AS (
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.outbox_id = ANY ((
                   SELECT pg_catalog.array_agg(d.outbox_id)
                     FROM decided AS d
                    WHERE d.state = 'FAILED'::public.outbox_attempt_state
               )::uuid[])
            RETURNING p.outbox_id
        ), taken AS (
            SELECT c.outbox_id, d.attempt_no
              FROM chosen AS c
              LEFT JOIN decided AS d
                ON d.outbox_id = c.outbox_id
             WHERE d.state IS DISTINCT FROM 'FAILED'::public.outbox_attempt_state
        ), leased AS (
            UPDATE public.payment_outbox_pending AS p
               SET claimed_by = p_worker_id,
                   lease_token = public.uuid_v7_or_random(),
                   lease_expires_at = v_expires_at,
                   -- The real claim time, read after the rows were locked: later than the commit
                   -- of whatever made the job claimable (the completion of its predecessor).
                   claimed_at = pg_catalog.clock_timestamp(),
                   attempt_count = COALESCE(t.attempt_no, p.attempt_count),
                   in_doubt = p.in_doubt OR t.attempt_no IS NOT NULL
              FROM taken AS t
             WHERE p.outbox_id = ANY ((SELECT pg_catalog.array_agg(x.outbox_id) FROM taken AS x)::uuid[])
               AND p.outbox_id = t.outbox_id
            RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                      p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                      p.lease_token, p.lease_expires_at, p.in_doubt, p.priority, p.next_attempt_at
        )
        SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
               l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at, l.in_doubt
          FROM leased AS l
         ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;
    END IF;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) IS
'Leases up to p_batch_size (1..1000) claimable jobs (FOR UPDATE SKIP LOCKED): the participant''s '
'head (every earlier sequence_id is terminal), due, without a lease or with an expired one, of '
'the rails in p_rail_types (NULL: any; each matched as given and upper-cased), highest '
'priority then oldest due first. Expired leases are considered only when the unleased due '
'heads do not fill the batch; the jobs taken over then follow the unleased ones (ADR 0158). '
'Each claim gets a fresh lease_token valid for p_lease_seconds (1..86400). An expired lease it '
'takes over is recorded as a ZOMBIE_REQUEUE attempt and the job is in doubt (in_doubt stays '
'true), or as FAILED at outbox_retry_ceiling(): that job leaves the queue and is not returned, '
'so a claim may return fewer rows than are due.';
