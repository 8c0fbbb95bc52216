-- 0038 the payload leaves the queue row (issue 17 P1, P4, P4b; ADR 0167).
--
-- Every claim, head promotion and requeue of a queued job is a non-HOT update (lease_token and
-- is_head are in index predicates), so each wrote a new version of the whole queue row, the
-- ~256-byte payload included, and every enqueue wrote the payload twice (queue row and payload
-- row, ADR 0142). The payload row becomes the one copy:
--   * payment_outbox_pending.payload becomes nullable (no table rewrite). Jobs queued before
--     this revision keep their copy; no function writes it any more;
--   * enqueue_payment_outbox, enqueue_payment_outbox_batch, redrive_outbox_job and
--     redrive_outbox_job_for_participant insert the queue row without it (the payload row as
--     before); enqueue_payment_outbox_batch_for_participant calls enqueue_payment_outbox;
--   * claim_outbox_batch returns the payload row's payload (joined by its full key,
--     (participant_id, outbox_id)) and claim_outbox_batch_for_participant reads it in a
--     statement of its own (one table, filtered by the participant: Citus-plannable); both
--     fall back to the queue row's copy when the job has no payload row (queued before 0024's
--     back-fill ran, or written around the functions).
-- The other readers already read the payload row first (enqueue's P7004 comparison, redrive,
-- outbox show; ADR 0142). On a distributed cluster the ALTER propagates to the shards.
-- The claims' wrapper, as enqueue's since 0031 (ADR 0135): ADR 0041's plan settings become their
-- SET clauses instead of the pin/restore helper pair, and outbox_require_ids runs only when an
-- id is broken (to name it: same 22023 messages). Every other statement is unchanged.

-- Every client of the queue's payload is one of the functions restated below (the roles have no
-- write privilege on the queue; readers fall back to the payload row, ADR 0167).
-- On a distributed cluster (after 0036) each statement runs through EXECUTE: Citus forwards a
-- COMMENT on a distributed table to the workers as the query text it was given, and the
-- engine sends this file as one text (a worker refuses several commands in one prepared
-- statement). Sequential mode, as in 0036: the distributed functions restated below cannot be
-- replaced after a parallel DDL on a distributed table in the same transaction.
DO $lean$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    EXECUTE 'ALTER TABLE public.payment_outbox_pending ALTER COLUMN payload DROP NOT NULL';
    EXECUTE $comment$
        COMMENT ON COLUMN public.payment_outbox_pending.payload IS
            'The job''s payload, copied into rows queued before revision 0038; NULL since (ADR '
            '0167): the job''s row in payment_outbox_payloads is its one copy, which the claim '
            'returns.'
    $comment$;
END
$lean$;

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
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_now timestamptz;
    v_expires_at timestamptz;
    v_claimed bigint;
    v_rest integer;
    v_expired boolean := false;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    END IF;
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
    -- 0038 (ADR 0167): ADR 0041's plan settings are the function's SET clauses (restored on
    -- exit, error or not) instead of the pin/restore helper pair.

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
    -- 0038 (ADR 0167): the payload from the payload table by its full key; the queue row's
    -- copy only for a job queued before 0038 (or written around the functions) without one.
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, COALESCE(x.payload, l.payload), l.attempt_count, l.lease_token,
           l.lease_expires_at, l.in_doubt
      FROM leased AS l
      LEFT JOIN public.payment_outbox_payloads AS x
        ON x.participant_id = l.participant_id
       AND x.outbox_id = l.outbox_id
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
               l.rail_type, COALESCE(x.payload, l.payload), l.attempt_count, l.lease_token,
               l.lease_expires_at, l.in_doubt
          FROM leased AS l
          LEFT JOIN public.payment_outbox_payloads AS x
            ON x.participant_id = l.participant_id
           AND x.outbox_id = l.outbox_id
         ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION public.claim_outbox_batch_for_participant(
    p_participant_id text,
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
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_now timestamptz;
    v_expires_at timestamptz;
    v_row record;
    v_attempt_no integer;
    v_ceiling integer;
    v_state public.outbox_attempt_state;
    v_token uuid;
    v_claimed_at timestamptz;
BEGIN
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_participant_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- NULL means every rail; otherwise 1 to 100 rail types, each a valid id, matched as given
    -- and upper-cased (ADR 0122), each once, as claim_outbox_batch does.
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
        p_rail_types := ARRAY(
            SELECT DISTINCT r.rail_type
              FROM pg_catalog.unnest(p_rail_types) AS g (rail_type)
             CROSS JOIN LATERAL (VALUES (g.rail_type),
                                        (pg_catalog.upper(g.rail_type COLLATE "C"))) AS r (rail_type)
        );
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);
    -- 0038 (ADR 0167): ADR 0041's plan settings are the function's SET clauses (restored on
    -- exit, error or not) instead of the pin/restore helper pair.

    -- The participant's due heads (per-participant FIFO: one at a time) without a lease or with
    -- an expired one, highest priority then oldest due first, locked (one shard on Citus).
    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload, p.attempt_count, p.claimed_by,
               p.lease_token, p.lease_expires_at, p.claimed_at, p.in_doubt
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.is_head
           AND p.next_attempt_at <= v_now
           AND (p.lease_token IS NULL OR p.lease_expires_at <= v_now)
           AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
         ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    LOOP
        v_attempt_no := NULL;
        IF v_row.lease_token IS NOT NULL THEN
            -- An expired lease taken over: record the lost lease first (numbered like
            -- claim_outbox_batch: the ledger's last attempt, or attempt_count if higher, plus
            -- one); at the ceiling the job fails and leaves the queue.
            SELECT GREATEST(COALESCE(pg_catalog.max(a.attempt_no), 0), v_row.attempt_count) + 1
              INTO v_attempt_no
              FROM public.payment_outbox_attempts AS a
             WHERE a.participant_id = p_participant_id
               AND a.outbox_id = v_row.outbox_id;
            IF v_ceiling IS NULL THEN
                v_ceiling := public.outbox_retry_ceiling();
            END IF;
            v_state := 'ZOMBIE_REQUEUE'::public.outbox_attempt_state;
            IF v_attempt_no >= v_ceiling THEN
                v_state := 'FAILED'::public.outbox_attempt_state;
            END IF;
            INSERT INTO public.payment_outbox_attempts AS a
                (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,
                 rail_type, attempt_no, state, claimed_at, completed_at, error_code,
                 error_message, worker_id, lease_token, recorded_by)
            VALUES
                (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
                 v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
                 COALESCE(v_row.claimed_at, v_now),
                 CASE WHEN v_state = 'FAILED'::public.outbox_attempt_state THEN v_now END,
                 'LEASE_EXPIRED',
                 CASE
                     WHEN v_state = 'FAILED'::public.outbox_attempt_state
                         THEN pg_catalog.format('lease expired at %s; retry ceiling %s reached; '
                                                'failed by %s', v_row.lease_expires_at,
                                                v_ceiling, p_worker_id)
                     ELSE pg_catalog.format('lease expired at %s; requeued by %s',
                                            v_row.lease_expires_at, p_worker_id)
                 END,
                 v_row.claimed_by, v_row.lease_token, SESSION_USER);
            IF v_state = 'FAILED'::public.outbox_attempt_state THEN
                DELETE FROM public.payment_outbox_pending AS p
                 WHERE p.participant_id = p_participant_id
                   AND p.outbox_id = v_row.outbox_id;
                CONTINUE;
            END IF;
        END IF;

        -- Lease it: token and claim time from variables (read after the row was locked).
        v_token := public.uuid_v7_or_random();
        v_claimed_at := pg_catalog.clock_timestamp();
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = v_token,
               lease_expires_at = v_expires_at,
               claimed_at = v_claimed_at,
               attempt_count = COALESCE(v_attempt_no, p.attempt_count),
               in_doubt = p.in_doubt OR v_attempt_no IS NOT NULL
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        instruction_id := v_row.instruction_id;
        participant_id := v_row.participant_id;
        sequence_id := v_row.sequence_id;
        idempotency_key := v_row.idempotency_key;
        rail_type := v_row.rail_type;
        -- 0038 (ADR 0167): the payload row by its full key (its own statement: one table,
        -- filtered by the participant); the queue row's copy only for a job queued before 0038
        -- (or written around the functions) without one.
        SELECT x.payload
          INTO payload
          FROM public.payment_outbox_payloads AS x
         WHERE x.participant_id = p_participant_id
           AND x.outbox_id = v_row.outbox_id;
        IF NOT FOUND THEN
            payload := v_row.payload;
        END IF;
        attempt_count := COALESCE(v_attempt_no, v_row.attempt_count);
        lease_token := v_token;
        lease_expires_at := v_expires_at;
        in_doubt := v_row.in_doubt OR v_attempt_no IS NOT NULL;
        RETURN NEXT;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.enqueue_payment_outbox(
    p_instruction_id text,
    p_participant_id text,
    p_idempotency_key text,
    p_rail_type text,
    p_payload jsonb,
    p_not_before timestamptz DEFAULT NULL,
    p_priority smallint DEFAULT 0
) RETURNS TABLE (outbox_id uuid, sequence_id bigint, created_at timestamptz, state text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_found record;
    v_outbox_id uuid;
    v_known boolean := false;
    v_key_outbox_id uuid;
    v_owner text;
    v_sequence_id bigint;
    v_payload jsonb;
    v_rail_code text;
    v_head boolean;
BEGIN
    -- 1. Validate; nothing has been written yet. One inlined predicate; the helper that names
    --    the broken rule runs only when it fails. The plan settings of ADR 0041 are the
    --    function's SET clauses (restored on exit, error or not).
    IF NOT public.outbox_enqueue_args_ok(p_instruction_id, p_participant_id, p_idempotency_key,
                                         p_rail_type, p_payload, p_not_before, p_priority) THEN
        PERFORM public.outbox_check_enqueue_args(p_instruction_id, p_participant_id,
                                                 p_idempotency_key, p_rail_type, p_payload,
                                                 p_not_before, p_priority);
    END IF;

    -- 2. Serialise every enqueue of this (instruction_id, idempotency_key) on the key table's
    --    primary key. A new key: the inserted row is ours. A known key: lock its row, the
    --    participant's own first. On one node the primary key is (instruction_id,
    --    idempotency_key), so the key may belong to another participant (or, written before 0031
    --    or by a P7005 guard, to none): the second look-up finds it and idempotency stays global
    --    (P7004 below). On a distributed key table the key is per participant (ADR 0126) and the
    --    second look-up never runs. Under REPEATABLE READ or SERIALIZABLE a key committed after
    --    the snapshot makes PostgreSQL raise 40001 here (ADR 0006).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (p_instruction_id, p_idempotency_key, public.uuid_v7_or_random(), p_participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING
    RETURNING k.outbox_id INTO v_outbox_id;
    IF NOT FOUND THEN
        v_known := true;
        SELECT k.outbox_id, k.participant_id
          INTO v_key_outbox_id, v_owner
          FROM public.payment_outbox_idempotency_keys AS k
         WHERE k.participant_id = p_participant_id
           AND k.instruction_id = p_instruction_id
           AND k.idempotency_key = p_idempotency_key
           FOR UPDATE;
        IF NOT FOUND THEN
            SELECT k.outbox_id, k.participant_id
              INTO v_key_outbox_id, v_owner
              FROM public.payment_outbox_idempotency_keys AS k
             WHERE k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key
               FOR UPDATE;
            IF v_owner IS NULL THEN
                -- A key row without a participant (one node only): the participant of the job
                -- it names, from the queue, else the ledger; none when the job left no trace.
                v_owner := COALESCE(
                    (SELECT p.participant_id
                       FROM public.payment_outbox_pending AS p
                      WHERE p.instruction_id = p_instruction_id
                        AND p.idempotency_key = p_idempotency_key),
                    (SELECT a.participant_id
                       FROM public.payment_outbox_attempts AS a
                      WHERE a.outbox_id = v_key_outbox_id
                      LIMIT 1)
                );
            END IF;
        END IF;
    END IF;

    -- 3 and 4. A new key has no job (the key table's primary key serialises every writer of the
    --    key). A known key is looked up under its participant: still queued (state PENDING),
    --    else the latest attempt in the ledger, read only for the job its key row names (ADR
    --    0133); two statements (Citus plans no UNION ALL of distributed tables with parameters).
    IF v_known AND v_owner IS NOT NULL THEN
        SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text AS state,
               p.participant_id, p.rail_type, p.payload
          INTO v_found
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = v_owner
           AND p.instruction_id = p_instruction_id
           AND p.idempotency_key = p_idempotency_key;
        IF NOT FOUND THEN
            SELECT a.outbox_id, a.sequence_id, a.created_at, a.state::text AS state,
                   a.participant_id, a.rail_type, NULL::jsonb AS payload
              INTO v_found
              FROM public.payment_outbox_attempts AS a
             WHERE a.participant_id = v_owner
               AND a.outbox_id = v_key_outbox_id
               AND a.instruction_id = p_instruction_id
               AND a.idempotency_key = p_idempotency_key
             ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
             LIMIT 1;
        END IF;
        IF FOUND THEN
            -- The stored payload is the job's row in payment_outbox_payloads (ADRs 0124, 0142);
            -- a job whose payload row is missing falls back to its queue row or a ledger copy.
            SELECT x.payload
              INTO v_payload
              FROM public.payment_outbox_payloads AS x
             WHERE x.participant_id = v_owner
               AND x.outbox_id = v_found.outbox_id;
            IF NOT FOUND THEN
                v_payload := v_found.payload;
                IF v_payload IS NULL THEN
                    SELECT a.payload
                      INTO v_payload
                      FROM public.payment_outbox_attempts AS a
                     WHERE a.participant_id = v_owner
                       AND a.outbox_id = v_found.outbox_id
                       AND a.payload IS NOT NULL
                     LIMIT 1;
                END IF;
            END IF;
            -- A replay is compared against what was stored; the rail by its upper-cased
            -- spelling (ADR 0122); a replay after the rail was disabled still returns its job.
            IF v_found.participant_id IS DISTINCT FROM p_participant_id
               OR pg_catalog.upper(v_found.rail_type COLLATE "C")
                  IS DISTINCT FROM pg_catalog.upper(p_rail_type COLLATE "C")
               OR v_payload IS DISTINCT FROM p_payload THEN
                RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % '
                                'was already used with a different participant, rail type or '
                                'payload',
                    pg_catalog.quote_literal(p_idempotency_key),
                    pg_catalog.quote_literal(p_instruction_id)
                    USING ERRCODE = 'P7004';
            END IF;
            outbox_id := v_found.outbox_id;
            sequence_id := v_found.sequence_id;
            created_at := v_found.created_at;
            state := v_found.state;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    -- 5. A new job: only numbers a JSON consumer reads exactly (22023 naming the JSON path). The
    --    exact walk runs only for a payload with a number other than an integer of at most 15
    --    digits; the rail is checked first there, as before (22023 for an unknown or disabled
    --    one). The error undoes the key row inserted above: nothing is written.
    IF NOT public.outbox_payload_numbers_plain(p_payload) THEN
        PERFORM public.outbox_rail_code(p_rail_type);
        PERFORM public.check_outbox_payload_numbers(p_payload);
    END IF;

    -- A known key whose job was removed by hand before any attempt: a new job under the key
    -- (the key table's archived guard refuses it with P7020 when the old job was archived).
    IF v_known THEN
        v_outbox_id := public.uuid_v7_or_random();
        IF v_owner IS NOT DISTINCT FROM p_participant_id THEN
            UPDATE public.payment_outbox_idempotency_keys AS k
               SET outbox_id = v_outbox_id
             WHERE k.participant_id = p_participant_id
               AND k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key;
        ELSE
            -- One node only: the key row named another participant or none.
            UPDATE public.payment_outbox_idempotency_keys AS k
               SET outbox_id = v_outbox_id,
                   participant_id = p_participant_id
             WHERE k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key;
        END IF;
    END IF;

    -- 6. The rail's canonical code (a reference table on Citus, read in its own statement: Citus
    --    plans no join of it inside the queue's INSERT); an unknown or disabled rail: 22023.
    SELECT r.rail_code
      INTO v_rail_code
      FROM public.outbox_rails AS r
     WHERE r.rail_code = pg_catalog.upper(p_rail_type COLLATE "C")
       AND r.enabled;
    IF NOT FOUND THEN
        PERFORM public.outbox_rail_code(p_rail_type);
    END IF;

    -- 7. Allocate the participant's next sequence number (its allocator row stays locked until
    --    commit), then decide the head flag in a second statement: under READ COMMITTED it sees
    --    every job of the participant committed while we waited for the row (ADR 0116). ON
    --    CONFLICT DO NOTHING only matters for a row written around the functions after the
    --    look-up: the serialization failure rolls the allocated number back (ADR 0006). A known
    --    participant's row is advanced by a plain UPDATE; the upsert only runs for a
    --    participant's first job.
    UPDATE public.participant_outbox_sequences AS s
       SET next_sequence_id = s.next_sequence_id + 1
     WHERE s.participant_id = p_participant_id
    RETURNING s.next_sequence_id - 1 INTO v_sequence_id;
    IF NOT FOUND THEN
        INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
        VALUES (p_participant_id, 2)
        ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
        DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
        RETURNING s.next_sequence_id - 1 INTO v_sequence_id;
    END IF;

    PERFORM 1
       FROM public.payment_outbox_pending AS q
      WHERE q.participant_id = p_participant_id
      LIMIT 1;
    v_head := NOT FOUND;
    -- 0038 (ADR 0167): the queue row carries no payload; the payload row below is its one copy.
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         next_attempt_at, priority, is_head)
    VALUES (v_outbox_id, p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key,
            v_rail_code, GREATEST(p_not_before, pg_catalog.now()), p_priority, v_head)
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at INTO outbox_id, sequence_id, created_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;
    -- 8. The payload, once per job (ADR 0124): the ledger rows of the job do not copy it.
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_outbox_id, p_payload);
    state := 'PENDING';
    RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION public.enqueue_payment_outbox_batch(
    p_instruction_ids text[],
    p_participant_ids text[],
    p_idempotency_keys text[],
    p_rail_types text[],
    p_payloads jsonb[],
    p_not_before timestamptz[] DEFAULT NULL,
    p_priorities smallint[] DEFAULT NULL
) RETURNS TABLE (
    ordinality integer,
    outbox_id uuid,
    sequence_id bigint,
    created_at timestamptz,
    state text
)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_count integer := pg_catalog.cardinality(p_instruction_ids);
    v_lengths integer[];
    v_index integer;
    v_hint text;
    v_keys integer;
    v_first integer[];          -- element i -> the first element with its key
    v_job_i integer[] := '{}';  -- the elements (first of their key) that become new jobs
    v_job_ids uuid[] := '{}';
    v_done_i integer[] := '{}'; -- first elements answered so far, and their answers
    v_done_ids uuid[] := '{}';
    v_done_seq bigint[] := '{}';
    v_done_at timestamptz[] := '{}';
    v_done_state text[] := '{}';
    v_known record;
    v_found record;
    v_payload jsonb;
    v_owner text;
    v_inserted integer;
    v_alloc_participants text[];
    v_alloc_firsts bigint[];
BEGIN
    IF p_instruction_ids IS NULL OR v_count NOT BETWEEN 1 AND 1000
       OR pg_catalog.array_ndims(p_instruction_ids) <> 1 THEN
        RAISE EXCEPTION 'p_instruction_ids must be a one-dimensional array of 1 to 1000 '
                        'elements, got %', COALESCE(v_count::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_lengths := ARRAY[pg_catalog.cardinality(p_participant_ids),
                       pg_catalog.cardinality(p_idempotency_keys),
                       pg_catalog.cardinality(p_rail_types),
                       pg_catalog.cardinality(p_payloads),
                       COALESCE(pg_catalog.cardinality(p_not_before), v_count),
                       COALESCE(pg_catalog.cardinality(p_priorities), v_count)];
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_lengths) AS l (n)
                WHERE l.n IS DISTINCT FROM v_count) THEN
        RAISE EXCEPTION 'every array must have as many elements as p_instruction_ids (%), got '
                        'p_participant_ids %, p_idempotency_keys %, p_rail_types %, '
                        'p_payloads %, p_not_before %, p_priorities %',
            v_count, COALESCE(v_lengths[1]::text, 'NULL'), COALESCE(v_lengths[2]::text, 'NULL'),
            COALESCE(v_lengths[3]::text, 'NULL'), COALESCE(v_lengths[4]::text, 'NULL'),
            v_lengths[5], v_lengths[6]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- One subtransaction for the whole batch, only to name the failing element: v_index is the
    -- element being checked when an error comes; its error is raised again with the SQLSTATE,
    -- message and hint it had, prefixed with the element's position.
    BEGIN
        -- 1. Enqueue's argument rules over the whole batch; the first element (in array order)
        --    that breaks one gets enqueue's message.
        SELECT g.i
          INTO v_index
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
         WHERE NOT public.outbox_enqueue_args_ok(
                   p_instruction_ids[g.i], p_participant_ids[g.i], p_idempotency_keys[g.i],
                   p_rail_types[g.i], p_payloads[g.i], p_not_before[g.i],
                   CASE WHEN p_priorities IS NULL THEN 0::smallint ELSE p_priorities[g.i] END)
         ORDER BY g.i
         LIMIT 1;
        IF FOUND THEN
            PERFORM public.outbox_check_enqueue_args(
                p_instruction_ids[v_index], p_participant_ids[v_index],
                p_idempotency_keys[v_index], p_rail_types[v_index], p_payloads[v_index],
                p_not_before[v_index],
                CASE WHEN p_priorities IS NULL THEN 0::smallint
                     ELSE p_priorities[v_index] END);
        END IF;
        v_index := NULL;

        -- 2. Each element's key's first element (a key given twice is one job).
        SELECT pg_catalog.array_agg(f.first ORDER BY f.i), count(DISTINCT f.first)
          INTO v_first, v_keys
          FROM (SELECT g.i,
                       min(g.i) OVER (PARTITION BY p_instruction_ids[g.i],
                                                   p_idempotency_keys[g.i]) AS first
                  FROM pg_catalog.generate_series(1, v_count) AS g (i)) AS f;

        -- 3. The key rows, one INSERT for the batch, in key order (concurrent batches take the
        --    keys' index entries in one order). The keys it inserted are new: their jobs are
        --    new (the outbox_id is allocated here).
        WITH ins AS (
            INSERT INTO public.payment_outbox_idempotency_keys AS k
                (instruction_id, idempotency_key, outbox_id, participant_id)
            SELECT p_instruction_ids[f.i], p_idempotency_keys[f.i],
                   public.uuid_v7_or_random(), p_participant_ids[f.i]
              FROM (SELECT DISTINCT u.first AS i
                      FROM pg_catalog.unnest(v_first) AS u (first)) AS f
             ORDER BY p_instruction_ids[f.i] COLLATE "C", p_idempotency_keys[f.i] COLLATE "C"
            ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING
            RETURNING k.instruction_id, k.idempotency_key, k.outbox_id
        )
        SELECT COALESCE(pg_catalog.array_agg(v_first[g.i] ORDER BY v_first[g.i]), '{}'),
               COALESCE(pg_catalog.array_agg(ins.outbox_id ORDER BY v_first[g.i]), '{}')
          INTO v_job_i, v_job_ids
          FROM ins
          JOIN pg_catalog.generate_series(1, v_count) AS g (i)
            ON v_first[g.i] = g.i
           AND p_instruction_ids[g.i] = ins.instruction_id
           AND p_idempotency_keys[g.i] = ins.idempotency_key;

        -- 4. Keys known before this batch (replays): each as the single enqueue does it, in key
        --    order, naming its first element if it fails: lock the key row, find the job it
        --    names (queue, else the latest attempt), compare, answer; a job removed by hand
        --    before any attempt gets a new job under the key (P7020 if it was archived).
        IF pg_catalog.cardinality(v_job_i) < v_keys THEN
            FOR v_known IN
                SELECT f.i, k.outbox_id, k.participant_id
                  FROM (SELECT DISTINCT u.first AS i
                          FROM pg_catalog.unnest(v_first) AS u (first)
                         WHERE u.first <> ALL (v_job_i)) AS f
                  JOIN public.payment_outbox_idempotency_keys AS k
                    ON k.instruction_id = p_instruction_ids[f.i]
                   AND k.idempotency_key = p_idempotency_keys[f.i]
                 ORDER BY p_instruction_ids[f.i] COLLATE "C",
                          p_idempotency_keys[f.i] COLLATE "C"
                   FOR UPDATE OF k
            LOOP
                v_index := v_known.i;
                -- The job under the key row's participant (a key row without one, written
                -- before 0031 or by a P7005 guard: the participant of the job it names), in two
                -- statements, as enqueue_payment_outbox does it (0034).
                v_owner := v_known.participant_id;
                IF v_owner IS NULL THEN
                    v_owner := COALESCE(
                        (SELECT p.participant_id
                           FROM public.payment_outbox_pending AS p
                          WHERE p.instruction_id = p_instruction_ids[v_index]
                            AND p.idempotency_key = p_idempotency_keys[v_index]),
                        (SELECT a.participant_id
                           FROM public.payment_outbox_attempts AS a
                          WHERE a.outbox_id = v_known.outbox_id
                          LIMIT 1)
                    );
                END IF;
                SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text AS state,
                       p.participant_id, p.rail_type, p.payload
                  INTO v_found
                  FROM public.payment_outbox_pending AS p
                 WHERE p.participant_id = v_owner
                   AND p.instruction_id = p_instruction_ids[v_index]
                   AND p.idempotency_key = p_idempotency_keys[v_index];
                IF NOT FOUND THEN
                    SELECT a.outbox_id, a.sequence_id, a.created_at, a.state::text AS state,
                           a.participant_id, a.rail_type, NULL::jsonb AS payload
                      INTO v_found
                      FROM public.payment_outbox_attempts AS a
                     WHERE a.participant_id = v_owner
                       AND a.outbox_id = v_known.outbox_id
                       AND a.instruction_id = p_instruction_ids[v_index]
                       AND a.idempotency_key = p_idempotency_keys[v_index]
                     ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
                     LIMIT 1;
                END IF;
                IF FOUND THEN
                    SELECT x.payload
                      INTO v_payload
                      FROM public.payment_outbox_payloads AS x
                     WHERE x.participant_id = v_owner
                       AND x.outbox_id = v_found.outbox_id;
                    IF NOT FOUND THEN
                        v_payload := v_found.payload;
                        IF v_payload IS NULL THEN
                            SELECT a.payload
                              INTO v_payload
                              FROM public.payment_outbox_attempts AS a
                             WHERE a.participant_id = v_owner
                               AND a.outbox_id = v_found.outbox_id
                               AND a.payload IS NOT NULL
                             LIMIT 1;
                        END IF;
                    END IF;
                    IF v_found.participant_id IS DISTINCT FROM p_participant_ids[v_index]
                       OR pg_catalog.upper(v_found.rail_type COLLATE "C")
                          IS DISTINCT FROM pg_catalog.upper(p_rail_types[v_index] COLLATE "C")
                       OR v_payload IS DISTINCT FROM p_payloads[v_index] THEN
                        RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction '
                                        '% was already used with a different participant, '
                                        'rail type or payload',
                            pg_catalog.quote_literal(p_idempotency_keys[v_index]),
                            pg_catalog.quote_literal(p_instruction_ids[v_index])
                            USING ERRCODE = 'P7004';
                    END IF;
                    v_done_i := v_done_i || v_index;
                    v_done_ids := v_done_ids || v_found.outbox_id;
                    v_done_seq := v_done_seq || v_found.sequence_id;
                    v_done_at := v_done_at || v_found.created_at;
                    v_done_state := v_done_state || v_found.state;
                ELSE
                    v_job_i := v_job_i || v_index;
                    v_job_ids := v_job_ids || public.uuid_v7_or_random();
                    IF v_known.participant_id IS NOT DISTINCT FROM p_participant_ids[v_index]
                    THEN
                        UPDATE public.payment_outbox_idempotency_keys AS k
                           SET outbox_id = v_job_ids[pg_catalog.cardinality(v_job_ids)]
                         WHERE k.participant_id = p_participant_ids[v_index]
                           AND k.instruction_id = p_instruction_ids[v_index]
                           AND k.idempotency_key = p_idempotency_keys[v_index];
                    ELSE
                        UPDATE public.payment_outbox_idempotency_keys AS k
                           SET outbox_id = v_job_ids[pg_catalog.cardinality(v_job_ids)],
                               participant_id = p_participant_ids[v_index]
                         WHERE k.instruction_id = p_instruction_ids[v_index]
                           AND k.idempotency_key = p_idempotency_keys[v_index];
                    END IF;
                END IF;
            END LOOP;
            v_index := NULL;
        END IF;

        -- 5. A key given twice in the batch: every later element must be the same job as its
        --    first (participant, rail by its upper-cased spelling, payload), else P7004 for the
        --    first element (in array order) that differs.
        IF v_keys < v_count THEN
            SELECT g.i
              INTO v_index
              FROM pg_catalog.generate_series(1, v_count) AS g (i)
             WHERE v_first[g.i] <> g.i
               AND (p_participant_ids[g.i] IS DISTINCT FROM p_participant_ids[v_first[g.i]]
                    OR pg_catalog.upper(p_rail_types[g.i] COLLATE "C")
                       IS DISTINCT FROM pg_catalog.upper(p_rail_types[v_first[g.i]] COLLATE "C")
                    OR p_payloads[g.i] IS DISTINCT FROM p_payloads[v_first[g.i]])
             ORDER BY g.i
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                                'already used with a different participant, rail type or '
                                'payload',
                    pg_catalog.quote_literal(p_idempotency_keys[v_index]),
                    pg_catalog.quote_literal(p_instruction_ids[v_index])
                    USING ERRCODE = 'P7004';
            END IF;
        END IF;

        IF pg_catalog.cardinality(v_job_i) > 0 THEN
            -- 6. Payload numbers of the new jobs: the exact walk only for payloads with a number
            --    other than an integer of at most 15 digits, in array order, the element's rail
            --    first (as the single enqueue).
            FOR v_index IN
                SELECT j.i
                  FROM pg_catalog.unnest(v_job_i) AS j (i)
                 WHERE NOT public.outbox_payload_numbers_plain(p_payloads[j.i])
                 ORDER BY j.i
            LOOP
                PERFORM public.outbox_rail_code(p_rail_types[v_index]);
                PERFORM public.check_outbox_payload_numbers(p_payloads[v_index]);
            END LOOP;
            v_index := NULL;

            -- 7. One allocator upsert for the batch: each participant's row advances by its
            --    number of new jobs, in participant order (concurrent batches and single
            --    enqueues lock allocator rows in one order, no 40P01; ADR 0116). The rows stay
            --    locked until commit.
            -- 8. Then, in a second statement (it sees every job committed while we waited for
            --    the allocator rows), the jobs: a participant's jobs take consecutive numbers
            --    in array order; the first is the head when no job of the participant is
            --    queued. The rail's canonical code is joined in (an unknown or disabled rail
            --    inserts nothing and is named below).
            WITH jobs AS (
                SELECT j.i, j.outbox_id, p_participant_ids[j.i] AS participant_id,
                       pg_catalog.row_number() OVER (PARTITION BY p_participant_ids[j.i]
                                                     ORDER BY j.i) AS rank
                  FROM ROWS FROM (pg_catalog.unnest(v_job_i), pg_catalog.unnest(v_job_ids))
                       AS j (i, outbox_id)
            ),
            needed AS (
                SELECT jobs.participant_id, count(*) AS n
                  FROM jobs
                 GROUP BY jobs.participant_id
            ),
            allocated AS (
                INSERT INTO public.participant_outbox_sequences AS s
                    (participant_id, next_sequence_id)
                SELECT needed.participant_id, needed.n + 1
                  FROM needed
                 ORDER BY needed.participant_id COLLATE "C"
                ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
                DO UPDATE SET next_sequence_id = s.next_sequence_id + excluded.next_sequence_id - 1
                RETURNING s.participant_id, s.next_sequence_id
            )
            SELECT pg_catalog.array_agg(a.participant_id),
                   pg_catalog.array_agg(a.next_sequence_id - n.n)
              INTO v_alloc_participants, v_alloc_firsts
              FROM allocated AS a
              JOIN needed AS n ON n.participant_id = a.participant_id;

            WITH jobs AS (
                SELECT j.i, j.outbox_id, p_participant_ids[j.i] AS participant_id,
                       pg_catalog.row_number() OVER (PARTITION BY p_participant_ids[j.i]
                                                     ORDER BY j.i) AS rank
                  FROM ROWS FROM (pg_catalog.unnest(v_job_i), pg_catalog.unnest(v_job_ids))
                       AS j (i, outbox_id)
            ),
            firsts AS (
                SELECT b.participant_id, b.first_sequence_id
                  FROM ROWS FROM (pg_catalog.unnest(v_alloc_participants),
                                  pg_catalog.unnest(v_alloc_firsts))
                       AS b (participant_id, first_sequence_id)
            ),
            ins AS (
                INSERT INTO public.payment_outbox_pending AS p
                    (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,
                     rail_type, next_attempt_at, priority, is_head)
                SELECT jobs.outbox_id, p_instruction_ids[jobs.i], jobs.participant_id,
                       firsts.first_sequence_id + jobs.rank - 1, p_idempotency_keys[jobs.i],
                       r.rail_code,
                       GREATEST(p_not_before[jobs.i], pg_catalog.now()),
                       CASE WHEN p_priorities IS NULL THEN 0 ELSE p_priorities[jobs.i] END,
                       jobs.rank = 1 AND NOT EXISTS (
                           SELECT 1
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = jobs.participant_id
                       )
                  FROM jobs
                  JOIN firsts ON firsts.participant_id = jobs.participant_id
                  JOIN public.outbox_rails AS r
                    ON r.rail_code = pg_catalog.upper(p_rail_types[jobs.i] COLLATE "C")
                   AND r.enabled
                 ORDER BY jobs.participant_id COLLATE "C", jobs.rank
                ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency
                DO NOTHING
                RETURNING p.outbox_id, p.sequence_id, p.created_at, p.participant_id
            ),
            payloads AS (  -- runs to completion although nothing reads it; 0038 (ADR 0167):
                           -- the payload's one copy (the queue row carries none)
                INSERT INTO public.payment_outbox_payloads AS x
                    (participant_id, outbox_id, payload)
                SELECT ins.participant_id, ins.outbox_id, p_payloads[jobs.i]
                  FROM ins
                  JOIN jobs ON jobs.outbox_id = ins.outbox_id
            )
            SELECT v_done_i || COALESCE(pg_catalog.array_agg(jobs.i), '{}'),
                   v_done_ids || COALESCE(pg_catalog.array_agg(ins.outbox_id), '{}'),
                   v_done_seq || COALESCE(pg_catalog.array_agg(ins.sequence_id), '{}'),
                   v_done_at || COALESCE(pg_catalog.array_agg(ins.created_at), '{}'),
                   v_done_state || COALESCE(pg_catalog.array_agg('PENDING'::text), '{}'),
                   count(*)
              INTO v_done_i, v_done_ids, v_done_seq, v_done_at, v_done_state, v_inserted
              FROM ins
              JOIN jobs ON jobs.outbox_id = ins.outbox_id;

            IF v_inserted < pg_catalog.cardinality(v_job_i) THEN
                -- An element's rail is unknown or disabled (22023 naming it), else a row was
                -- written around the functions under one of the keys after the look-up.
                FOR v_index IN
                    SELECT j.i
                      FROM pg_catalog.unnest(v_job_i) AS j (i)
                     ORDER BY j.i
                LOOP
                    PERFORM public.outbox_rail_code(p_rail_types[v_index]);
                END LOOP;
                v_index := NULL;
                RAISE EXCEPTION 'concurrent enqueue of an idempotency key of the batch'
                    USING ERRCODE = 'serialization_failure',
                          HINT = 'Retry the transaction; the retry returns the existing rows.';
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
        IF v_index IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'element % of the batch: %', v_index, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = v_hint;
    END;

    RETURN QUERY
        SELECT g.i::integer, d.outbox_id, d.sequence_id, d.created_at, d.state
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
          JOIN ROWS FROM (pg_catalog.unnest(v_done_i), pg_catalog.unnest(v_done_ids),
                          pg_catalog.unnest(v_done_seq), pg_catalog.unnest(v_done_at),
                          pg_catalog.unnest(v_done_state))
               AS d (i, outbox_id, sequence_id, created_at, state)
            ON d.i = v_first[g.i]
         ORDER BY g.i;
END
$$;

CREATE OR REPLACE FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text)
RETURNS TABLE (outbox_id uuid, sequence_id bigint, created_at timestamptz, state text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_job record;
    v_outcome record;
    v_key_outbox uuid;
    v_redriven uuid;
    v_new uuid;
    v_sequence_id bigint;
    v_attempt_no integer;
    v_payload jsonb;
BEGIN
    IF p_outbox_id IS NULL THEN
        RAISE EXCEPTION 'p_outbox_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_reason IS NULL OR pg_catalog.btrim(p_reason, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_reason must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_ticket IS NULL OR pg_catalog.btrim(p_ticket, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_ticket must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_reason) > 4096 THEN
        RAISE EXCEPTION 'p_reason must be at most 4096 bytes, got %',
            pg_catalog.octet_length(p_reason)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_ticket) > 1024 THEN
        RAISE EXCEPTION 'p_ticket must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_ticket)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The job's identity, from its queue row or its ledger rows.
    SELECT p.instruction_id, p.idempotency_key
      INTO v_job
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.instruction_id, a.idempotency_key
          INTO v_job
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
         ORDER BY a.attempt_no DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id %', p_outbox_id
                USING ERRCODE = 'P7010';
        END IF;
    END IF;

    -- Serialise with enqueue, the P7005 guards and every other redrive of this payment; what is
    -- read below is read after the lock (READ COMMITTED: a new snapshot per statement; REPEATABLE
    -- READ and SERIALIZABLE raise 40001 here if the row changed since the snapshot).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id)
    VALUES (v_job.instruction_id, v_job.idempotency_key, p_outbox_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    SELECT k.outbox_id
      INTO v_key_outbox
      FROM public.payment_outbox_idempotency_keys AS k
     WHERE k.instruction_id = v_job.instruction_id
       AND k.idempotency_key = v_job.idempotency_key
       FOR UPDATE;

    SELECT a.state, a.attempt_no, a.instruction_id, a.participant_id, a.sequence_id,
           a.idempotency_key, a.rail_type
      INTO v_outcome
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id
       AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                       'FAILED'::public.outbox_attempt_state,
                       'CANCELLED'::public.outbox_attempt_state);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is still queued; only a FAILED or CANCELLED '
                        'job can be redriven', p_outbox_id
            USING ERRCODE = 'P7012',
                  HINT = 'Cancel it first (public.cancel_outbox_job), or let the workers finish it.';
    END IF;
    IF v_outcome.state = 'DISPATCHED'::public.outbox_attempt_state THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was DISPATCHED (attempt %); redriving it would '
                        'pay twice', p_outbox_id, v_outcome.attempt_no
            USING ERRCODE = 'P7012';
    END IF;
    SELECT a.related_outbox_id
      INTO v_redriven
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id
       AND a.state = 'REDRIVEN'::public.outbox_attempt_state;
    IF FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was already redriven as outbox %', p_outbox_id,
            v_redriven
            USING ERRCODE = 'P7012',
                  HINT = 'Redrive the newest job of the payment, if it failed too.';
    END IF;
    IF v_key_outbox IS DISTINCT FROM p_outbox_id THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is not the latest job of its idempotency key; '
                        'outbox % is', p_outbox_id, v_key_outbox
            USING ERRCODE = 'P7012';
    END IF;

    -- The old job's payload: its payload row (ADR 0124), or, for a job whose payload row is
    -- missing, a ledger row that kept a copy.
    SELECT x.payload
      INTO v_payload
      FROM public.payment_outbox_payloads AS x
     WHERE x.participant_id = v_outcome.participant_id
       AND x.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.payload
          INTO v_payload
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
           AND a.payload IS NOT NULL
         LIMIT 1;
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: the payload of outbox % is not stored', p_outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The new job, queued now with the participant's next sequence number. The allocator row
    -- stays locked until commit; the insert is a second statement, so under READ COMMITTED it
    -- sees every job of the participant committed meanwhile, and the job is its participant's
    -- head exactly when no other job of the participant is queued (as enqueue decides it, ADR
    -- 0116: trg_place_outbox_head skips rows the outbox functions write).
    v_new := public.uuid_v7_or_random();
    v_sequence_id := public.bump_participant_outbox_seq(v_outcome.participant_id);
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         is_head)
    SELECT v_new, v_outcome.instruction_id, v_outcome.participant_id, v_sequence_id,
           v_outcome.idempotency_key, v_outcome.rail_type,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = v_outcome.participant_id
           );

    -- The new job's payload row: once per job, even with the same content (ADR 0124); since
    -- 0038 its only copy (ADR 0167).
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (v_outcome.participant_id, v_new, v_payload);

    UPDATE public.payment_outbox_idempotency_keys AS k
       SET outbox_id = v_new
     WHERE k.instruction_id = v_outcome.instruction_id
       AND k.idempotency_key = v_outcome.idempotency_key;

    -- The audit row on the old job, after its terminal one.
    SELECT pg_catalog.max(a.attempt_no) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, completed_at, acted_by, reason, ticket, related_outbox_id)
    VALUES
        (p_outbox_id, v_outcome.instruction_id, v_outcome.participant_id, v_outcome.sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_attempt_no,
         'REDRIVEN'::public.outbox_attempt_state, pg_catalog.clock_timestamp(), SESSION_USER,
         p_reason, p_ticket, v_new);

    RETURN QUERY
    SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = v_new;
END
$$;

CREATE OR REPLACE FUNCTION public.redrive_outbox_job_for_participant(
    p_participant_id text,
    p_outbox_id uuid,
    p_reason text,
    p_ticket text
) RETURNS TABLE (outbox_id uuid, sequence_id bigint, created_at timestamptz, state text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_job record;
    v_outcome record;
    v_key record;
    v_redriven uuid;
    v_new uuid;
    v_sequence_id bigint;
    v_attempt_no integer;
    v_payload jsonb;
    v_head boolean;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    IF p_outbox_id IS NULL THEN
        RAISE EXCEPTION 'p_outbox_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_reason IS NULL OR pg_catalog.btrim(p_reason, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_reason must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_ticket IS NULL OR pg_catalog.btrim(p_ticket, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_ticket must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_reason) > 4096 THEN
        RAISE EXCEPTION 'p_reason must be at most 4096 bytes, got %',
            pg_catalog.octet_length(p_reason)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_ticket) > 1024 THEN
        RAISE EXCEPTION 'p_ticket must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_ticket)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- The job's identity, from its queue row or its ledger rows (the participant's only).
    SELECT p.instruction_id, p.idempotency_key
      INTO v_job
      FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.instruction_id, a.idempotency_key
          INTO v_job
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
         ORDER BY a.attempt_no DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id % for participant %',
                p_outbox_id, pg_catalog.quote_literal(p_participant_id)
                USING ERRCODE = 'P7010';
        END IF;
    END IF;

    -- Serialise with enqueue, the P7005 guards and every other redrive of this payment on the
    -- key row (written with the participant when missing). The participant's own key row is
    -- locked; on one node a key row without a participant (written before 0031 or by a P7005
    -- guard) is locked instead: a distributed key table has none (its distribution column).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (v_job.instruction_id, v_job.idempotency_key, p_outbox_id, p_participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    SELECT k.outbox_id, k.participant_id
      INTO v_key
      FROM public.payment_outbox_idempotency_keys AS k
     WHERE k.participant_id = p_participant_id
       AND k.instruction_id = v_job.instruction_id
       AND k.idempotency_key = v_job.idempotency_key
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT k.outbox_id, k.participant_id
          INTO v_key
          FROM public.payment_outbox_idempotency_keys AS k
         WHERE k.instruction_id = v_job.instruction_id
           AND k.idempotency_key = v_job.idempotency_key
           FOR UPDATE;
    END IF;

    SELECT a.state, a.attempt_no, a.instruction_id, a.participant_id, a.sequence_id,
           a.idempotency_key, a.rail_type
      INTO v_outcome
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id
       AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                       'FAILED'::public.outbox_attempt_state,
                       'CANCELLED'::public.outbox_attempt_state);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is still queued; only a FAILED or CANCELLED '
                        'job can be redriven', p_outbox_id
            USING ERRCODE = 'P7012',
                  HINT = 'Cancel it first (public.cancel_outbox_job), or let the workers finish it.';
    END IF;
    IF v_outcome.state = 'DISPATCHED'::public.outbox_attempt_state THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was DISPATCHED (attempt %); redriving it would '
                        'pay twice', p_outbox_id, v_outcome.attempt_no
            USING ERRCODE = 'P7012';
    END IF;
    SELECT a.related_outbox_id
      INTO v_redriven
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id
       AND a.state = 'REDRIVEN'::public.outbox_attempt_state;
    IF FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was already redriven as outbox %', p_outbox_id,
            v_redriven
            USING ERRCODE = 'P7012',
                  HINT = 'Redrive the newest job of the payment, if it failed too.';
    END IF;
    IF v_key.outbox_id IS DISTINCT FROM p_outbox_id THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is not the latest job of its idempotency key; '
                        'outbox % is', p_outbox_id, v_key.outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The old job's payload: its payload row (ADR 0124), or a ledger row that kept a copy.
    SELECT x.payload
      INTO v_payload
      FROM public.payment_outbox_payloads AS x
     WHERE x.participant_id = p_participant_id
       AND x.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.payload
          INTO v_payload
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
           AND a.payload IS NOT NULL
         LIMIT 1;
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: the payload of outbox % is not stored', p_outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The new job with the participant's next sequence number (the allocator row stays locked
    -- until commit); the head flag is read in a second statement, after that lock, and the
    -- insert is a third (Citus plans no sub-select in an INSERT), as enqueue decides it (ADR
    -- 0116).
    v_new := public.uuid_v7_or_random();
    v_sequence_id := public.bump_participant_outbox_seq(p_participant_id);
    PERFORM 1
       FROM public.payment_outbox_pending AS q
      WHERE q.participant_id = p_participant_id
      LIMIT 1;
    v_head := NOT FOUND;
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         is_head)
    VALUES (v_new, v_outcome.instruction_id, p_participant_id, v_sequence_id,
            v_outcome.idempotency_key, v_outcome.rail_type, v_head)
    RETURNING p.sequence_id, p.created_at INTO sequence_id, created_at;

    -- The new job's payload row: once per job, even with the same content (ADR 0124); since
    -- 0038 its only copy (ADR 0167).
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_new, v_payload);

    IF v_key.participant_id IS NULL THEN
        -- One node only (see the key row's look-up above).
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_new,
               participant_id = p_participant_id
         WHERE k.instruction_id = v_outcome.instruction_id
           AND k.idempotency_key = v_outcome.idempotency_key;
    ELSE
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_new
         WHERE k.participant_id = p_participant_id
           AND k.instruction_id = v_outcome.instruction_id
           AND k.idempotency_key = v_outcome.idempotency_key;
    END IF;

    -- The audit row on the old job, after its terminal one.
    SELECT pg_catalog.max(a.attempt_no) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, completed_at, acted_by, reason, ticket, related_outbox_id)
    VALUES
        (p_outbox_id, v_outcome.instruction_id, p_participant_id, v_outcome.sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_attempt_no,
         'REDRIVEN'::public.outbox_attempt_state, pg_catalog.clock_timestamp(), SESSION_USER,
         p_reason, p_ticket, v_new);

    outbox_id := v_new;
    state := 'PENDING';
    RETURN NEXT;
END
$$;
