-- 0032 the hot path, round two (issue 17 P1/P2b, ADR 0158; profile: ADR 0150).
--
-- 1. claim_outbox_batch (body: 0024) first runs a statement that leases due heads without a
--    lease only; the 0024 statement, which also takes over expired leases of heads, runs for
--    the rest of the batch only when that one came up short. Between vacuums every claim read
--    the lease index's dead entries (2 to 94 buffers per claim, ADR 0150), and every claim's plan
--    opened the ledger's partitions (the take-over's attempt look-up and INSERT). Head of line:
--    a due head whose lease expired waits while unleased heads fill every claim, until a claim
--    comes up short or repair_expired_leases() takes it; the jobs a claim takes over come after
--    the unleased ones it leased (docs/contract/schema.md, executor guide).
-- 2. complete_outbox_attempt and complete_outbox_attempts_batch (bodies: 0024) promote the
--    participant's next job themselves, after locking the participant's allocator row with
--    SELECT ... FOR NO KEY UPDATE (it conflicts with enqueue's upsert, so ADR 0116's
--    serialisation holds; no new row version and no dead allocator row per job, unlike the
--    in-place UPDATE of trg_promote_outbox_head). The trigger now skips a DELETE by the outbox
--    functions under a live lease (only a completion removes such a row); it still promotes
--    after every other delete of a head: a cancel, a repair or a claim that fails a job at the
--    retry ceiling (their rows are unleased or their lease has expired), and any DELETE by
--    another role. promote_outbox_head() locks the allocator row the same way.
-- 3. The ledger's index on (instruction_id, idempotency_key) goes: since 0028 no function reads
--    the ledger by the key without the job's outbox_id (the primary key's prefix), and the key
--    table (0011) holds the key's uniqueness. One index entry less per attempt.
-- Owners and grants stay (CREATE OR REPLACE).

-- The claim (body: 0024): the expired-lease scan only when the unleased heads fall short.
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
    IF v_claimed < p_batch_size THEN
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

-- The completion (body: 0024): promotes the next head itself.
CREATE OR REPLACE FUNCTION public.complete_outbox_attempt(
    p_outbox_id uuid,
    p_lease_token uuid,
    p_worker_id text,
    p_state public.outbox_attempt_state,
    p_rail_reference text DEFAULT NULL,
    p_rail_code text DEFAULT NULL,
    p_error_code text DEFAULT NULL,
    p_error_message text DEFAULT NULL,
    p_latency_ms integer DEFAULT NULL,
    p_retry_delay_seconds integer DEFAULT 1
) RETURNS TABLE (attempt_no integer, state public.outbox_attempt_state)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_terminal boolean;
    v_plan_settings text[];
BEGIN
    IF p_outbox_id IS NULL THEN
        RAISE EXCEPTION 'p_outbox_id must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease_token IS NULL THEN
        RAISE EXCEPTION 'p_lease_token must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id], NULL);
    IF p_state IS NULL THEN
        RAISE EXCEPTION 'p_state must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_limit_bytes(
        ARRAY['p_worker_id', 'p_rail_reference', 'p_rail_code', 'p_error_code',
              'p_error_message'],
        ARRAY[p_worker_id, p_rail_reference, p_rail_code, p_error_code, p_error_message],
        ARRAY[1024, 1024, 1024, 1024, 4096]
    );
    IF p_latency_ms < 0 THEN
        RAISE EXCEPTION 'p_latency_ms must be NULL or >= 0, got %', p_latency_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_plan_settings := public.outbox_pin_plan_settings();

    IF p_state IN ('DISPATCHED'::public.outbox_attempt_state,
                   'FAILED'::public.outbox_attempt_state) THEN
        -- Terminal: fence, lock and remove the job in one statement.
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = p_outbox_id
           AND p.claimed_by = p_worker_id
           AND p.lease_token IS NOT DISTINCT FROM p_lease_token
        RETURNING p.* INTO v_row;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
                p_outbox_id, pg_catalog.quote_literal(p_worker_id)
                USING ERRCODE = 'P7002',
                      HINT = 'The lease was replaced (repaired or claimed again) or never held: '
                             'do not dispatch again under it; record what the rail said with '
                             'public.record_stale_outbox_outcome().';
        END IF;

        SELECT COALESCE(pg_catalog.max(x.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS x
         WHERE x.outbox_id = p_outbox_id;

        -- A dispatch carries the rail's reference, unique per rail (ADRs 0123, 0141): 22023 when
        -- the rail returns references and none was given, P7013 when another job of the rail
        -- reported it. Either error undoes the DELETE above: the job stays leased.
        IF p_state = 'DISPATCHED'::public.outbox_attempt_state THEN
            PERFORM public.record_outbox_rail_reference(
                p_outbox_id, v_attempt_no, v_row.rail_type, p_rail_reference
            );
        END IF;

        RETURN QUERY
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no, p_state,
             COALESCE(v_row.claimed_at, v_now), v_now,
             p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms,
             p_worker_id, p_lease_token, SESSION_USER)
        RETURNING a.attempt_no, a.state;

        -- The participant's next job becomes its head (ADR 0158; trg_promote_outbox_head skips
        -- a DELETE under a live lease by the outbox functions). Lock the allocator row first, as
        -- enqueue's upsert does (ADR 0116): the next statement's snapshot then holds every job of
        -- the participant enqueued before, and an enqueue waiting for the row sees the promotion.
        IF v_row.is_head THEN
            PERFORM 1
               FROM public.participant_outbox_sequences AS s
              WHERE s.participant_id = v_row.participant_id
                FOR NO KEY UPDATE;
            -- Again, with a new snapshot, when the job it waited for was deleted meanwhile (a
            -- cancel of the next job): the one after it becomes the head, not nobody.
            LOOP
                UPDATE public.payment_outbox_pending AS p
                   SET is_head = true
                 WHERE p.outbox_id = (
                           SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = v_row.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1
                       )
                   AND NOT p.is_head;
                EXIT WHEN FOUND;
                EXIT WHEN NOT EXISTS (
                    SELECT 1
                      FROM (SELECT q.is_head
                              FROM public.payment_outbox_pending AS q
                             WHERE q.participant_id = v_row.participant_id
                             ORDER BY q.sequence_id
                             LIMIT 1) AS h
                     WHERE NOT h.is_head
                );
            END LOOP;
        END IF;

        PERFORM public.outbox_restore_plan_settings(v_plan_settings);
        RETURN;
    END IF;

    -- RETRYABLE, or a state that must be refused: the 0002 sequence.
    -- 1. Lock the row only while worker and token match (the token is still the job's current
    --    one: no repair or claim replaced it, even if lease_expires_at has passed; ADR 0118).
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id
       AND p.claimed_by = p_worker_id
       AND p.lease_token IS NOT DISTINCT FROM p_lease_token
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'P7002',
                  HINT = 'The lease was replaced (repaired or claimed again) or never held: '
                         'do not dispatch again under it; record what the rail said with '
                         'public.record_stale_outbox_outcome().';
    END IF;

    -- 2. Only outcomes a worker can report (terminal ones took the path above).
    IF p_state <> 'RETRYABLE'::public.outbox_attempt_state THEN
        RAISE EXCEPTION 'invalid completion state %: expected DISPATCHED, FAILED or RETRYABLE',
            p_state
            USING ERRCODE = 'P7003';
    END IF;

    -- 3. The ledger is the truth for attempt numbers (repair events count).
    SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id;

    -- 4. Retry ceiling.
    v_state := p_state;
    IF v_attempt_no >= public.outbox_retry_ceiling() THEN
        v_state := 'FAILED'::public.outbox_attempt_state;
    END IF;
    v_terminal := v_state = 'FAILED'::public.outbox_attempt_state;

    -- 5. Append the attempt.
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
         error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
    VALUES
        (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
         COALESCE(v_row.claimed_at, v_now), CASE WHEN v_terminal THEN v_now END,
         p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms, p_worker_id,
         p_lease_token, SESSION_USER);

    -- 6. Terminal: the job leaves the queue. Retry: back in the queue after the delay, unleased.
    IF v_terminal THEN
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = p_outbox_id;
        -- The participant's next job becomes its head (ADR 0158; trg_promote_outbox_head skips
        -- a DELETE under a live lease by the outbox functions). Lock the allocator row first, as
        -- enqueue's upsert does (ADR 0116): the next statement's snapshot then holds every job of
        -- the participant enqueued before, and an enqueue waiting for the row sees the promotion.
        IF v_row.is_head THEN
            PERFORM 1
               FROM public.participant_outbox_sequences AS s
              WHERE s.participant_id = v_row.participant_id
                FOR NO KEY UPDATE;
            -- Again, with a new snapshot, when the job it waited for was deleted meanwhile (a
            -- cancel of the next job): the one after it becomes the head, not nobody.
            LOOP
                UPDATE public.payment_outbox_pending AS p
                   SET is_head = true
                 WHERE p.outbox_id = (
                           SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = v_row.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1
                       )
                   AND NOT p.is_head;
                EXIT WHEN FOUND;
                EXIT WHEN NOT EXISTS (
                    SELECT 1
                      FROM (SELECT q.is_head
                              FROM public.payment_outbox_pending AS q
                             WHERE q.participant_id = v_row.participant_id
                             ORDER BY q.sequence_id
                             LIMIT 1) AS h
                     WHERE NOT h.is_head
                );
            END LOOP;
        END IF;
    ELSE
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = v_now + pg_catalog.make_interval(
                   secs => GREATEST(1, p_retry_delay_seconds)
               ),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL,
               claimed_at = NULL
         WHERE p.outbox_id = p_outbox_id;
    END IF;

    -- 7. Report what was recorded.
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;

-- The batched completion (body: 0024): promotes the next heads itself (step 7).
CREATE OR REPLACE FUNCTION public.complete_outbox_attempts_batch(
    p_worker_id text,
    p_outbox_ids uuid[],
    p_lease_tokens uuid[],
    p_states text[],
    p_rail_references text[] DEFAULT NULL,
    p_rail_codes text[] DEFAULT NULL,
    p_error_codes text[] DEFAULT NULL,
    p_error_messages text[] DEFAULT NULL,
    p_latency_ms integer[] DEFAULT NULL,
    p_retry_delay_seconds integer[] DEFAULT NULL
) RETURNS TABLE (outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_count integer;
    v_now timestamptz;
    v_locked integer;
    v_stale uuid[];
    v_bad record;
    v_states public.outbox_attempt_state[];
    v_ceiling integer;
    v_plan_settings text[];
    v_reference record;
    v_participants text[];
BEGIN
    -- 1. Validate; nothing has been written yet.
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    v_count := pg_catalog.cardinality(p_outbox_ids);
    IF v_count IS NULL OR v_count < 1 OR v_count > 1000
       OR pg_catalog.array_ndims(p_outbox_ids) <> 1 THEN
        RAISE EXCEPTION 'p_outbox_ids must be a one-dimensional array of 1 to 1000 ids, got %',
            COALESCE(v_count::text || ' elements', 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.array_position(p_outbox_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_outbox_ids must not contain NULL (element %)',
            pg_catalog.array_position(p_outbox_ids, NULL)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.cardinality(p_lease_tokens) IS DISTINCT FROM v_count
       OR pg_catalog.array_ndims(p_lease_tokens) <> 1
       OR pg_catalog.array_position(p_lease_tokens, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'p_lease_tokens must hold one non-NULL token per outbox id (% expected)',
            v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.cardinality(p_states) IS DISTINCT FROM v_count
       OR pg_catalog.array_ndims(p_states) <> 1 THEN
        RAISE EXCEPTION 'p_states must hold one state per outbox id (% expected)', v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT i.ord, i.label
      INTO v_bad
      FROM pg_catalog.unnest(p_states) WITH ORDINALITY AS i (label, ord)
     WHERE i.label IS NULL
        OR i.label <> ALL (
               pg_catalog.enum_range(NULL::public.outbox_attempt_state)::text[]
           )
     ORDER BY i.ord
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'p_states element % is %, not an outbox attempt state',
            v_bad.ord, COALESCE(pg_catalog.quote_literal(v_bad.label), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A worker reports DISPATCHED, FAILED or RETRYABLE.';
    END IF;
    v_states := p_states::public.outbox_attempt_state[];
    IF (p_rail_references IS NOT NULL AND (pg_catalog.cardinality(p_rail_references) <> v_count
            OR pg_catalog.array_ndims(p_rail_references) <> 1)) THEN
        RAISE EXCEPTION 'p_rail_references must be NULL or hold one value per outbox id (% '
                        'expected)', v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_rail_codes IS NOT NULL AND (pg_catalog.cardinality(p_rail_codes) <> v_count
            OR pg_catalog.array_ndims(p_rail_codes) <> 1)) THEN
        RAISE EXCEPTION 'p_rail_codes must be NULL or hold one value per outbox id (% expected)',
            v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_error_codes IS NOT NULL AND (pg_catalog.cardinality(p_error_codes) <> v_count
            OR pg_catalog.array_ndims(p_error_codes) <> 1)) THEN
        RAISE EXCEPTION 'p_error_codes must be NULL or hold one value per outbox id (% expected)',
            v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_error_messages IS NOT NULL AND (pg_catalog.cardinality(p_error_messages) <> v_count
            OR pg_catalog.array_ndims(p_error_messages) <> 1)) THEN
        RAISE EXCEPTION 'p_error_messages must be NULL or hold one value per outbox id (% '
                        'expected)', v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_latency_ms IS NOT NULL AND (pg_catalog.cardinality(p_latency_ms) <> v_count
            OR pg_catalog.array_ndims(p_latency_ms) <> 1)) THEN
        RAISE EXCEPTION 'p_latency_ms must be NULL or hold one value per outbox id (% expected)',
            v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_retry_delay_seconds IS NOT NULL
        AND (pg_catalog.cardinality(p_retry_delay_seconds) <> v_count
             OR pg_catalog.array_ndims(p_retry_delay_seconds) <> 1)) THEN
        RAISE EXCEPTION 'p_retry_delay_seconds must be NULL or hold one value per outbox id (% '
                        'expected)', v_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Size limits (ADR 0063): the first element over its limit, in argument order.
    SELECT i.name, i.ord, i.bytes, i.max_bytes
      INTO v_bad
      FROM (
          SELECT 1 AS arg, 'p_rail_references' AS name, 1024 AS max_bytes, u.ord,
                 pg_catalog.octet_length(u.val) AS bytes
            FROM pg_catalog.unnest(p_rail_references) WITH ORDINALITY AS u (val, ord)
          UNION ALL
          SELECT 2 AS arg, 'p_rail_codes' AS name, 1024 AS max_bytes, u.ord,
                 pg_catalog.octet_length(u.val) AS bytes
            FROM pg_catalog.unnest(p_rail_codes) WITH ORDINALITY AS u (val, ord)
          UNION ALL
          SELECT 3 AS arg, 'p_error_codes' AS name, 1024 AS max_bytes, u.ord,
                 pg_catalog.octet_length(u.val) AS bytes
            FROM pg_catalog.unnest(p_error_codes) WITH ORDINALITY AS u (val, ord)
          UNION ALL
          SELECT 4 AS arg, 'p_error_messages' AS name, 4096 AS max_bytes, u.ord,
                 pg_catalog.octet_length(u.val) AS bytes
            FROM pg_catalog.unnest(p_error_messages) WITH ORDINALITY AS u (val, ord)
      ) AS i
     WHERE i.bytes > i.max_bytes
     ORDER BY i.arg, i.ord
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% element % must be at most % bytes, got %',
            v_bad.name, v_bad.ord, v_bad.max_bytes, v_bad.bytes
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT i.ord, i.outbox_id, i.latency_ms, i.seen
      INTO v_bad
      FROM (
          SELECT u.ord, u.outbox_id, u.latency_ms,
                 pg_catalog.row_number() OVER (PARTITION BY u.outbox_id ORDER BY u.ord) AS seen
            FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_latency_ms))
                 WITH ORDINALITY AS u (outbox_id, latency_ms, ord)
      ) AS i
     WHERE i.latency_ms < 0 OR i.seen > 1
     ORDER BY i.ord
     LIMIT 1;
    IF FOUND THEN
        IF v_bad.seen > 1 THEN
            RAISE EXCEPTION 'p_outbox_ids must not repeat an outbox: % appears again as element %',
                v_bad.outbox_id, v_bad.ord
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_latency_ms must be NULL or >= 0, got % (element %, outbox %)',
            v_bad.latency_ms, v_bad.ord, v_bad.outbox_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_plan_settings := public.outbox_pin_plan_settings();

    -- 2. Lock every row whose lease matches (worker, current token), in outbox_id order so
    --    that concurrent batches cannot deadlock. READ COMMITTED re-checks the conditions on the
    --    latest version of a row it had to wait for. The token comparison is IS NOT DISTINCT
    --    FROM for the reason given in 0006 (the primary key must be the only index used).
    SELECT pg_catalog.count(*)::integer
      INTO v_locked
      FROM (
          SELECT p.outbox_id
            FROM public.payment_outbox_pending AS p
            JOIN ROWS FROM (pg_catalog.unnest(p_outbox_ids),
                            pg_catalog.unnest(p_lease_tokens)) AS i (outbox_id, lease_token)
              ON i.outbox_id = p.outbox_id
           WHERE p.outbox_id = ANY (p_outbox_ids)
             AND p.claimed_by = p_worker_id
             AND p.lease_token IS NOT DISTINCT FROM i.lease_token
           ORDER BY p.outbox_id
             FOR UPDATE OF p
      ) AS l;

    -- 3. All or nothing: one stale lease refuses the whole batch, before anything is written.
    IF v_locked < v_count THEN
        SELECT pg_catalog.array_agg(i.outbox_id ORDER BY i.ord)
          INTO v_stale
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_lease_tokens))
               WITH ORDINALITY AS i (outbox_id, lease_token, ord)
         WHERE NOT EXISTS (
                   SELECT 1
                     FROM public.payment_outbox_pending AS p
                    WHERE p.outbox_id = i.outbox_id
                      AND p.claimed_by = p_worker_id
                      AND p.lease_token IS NOT DISTINCT FROM i.lease_token
               );
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token '
                        '(% of % completions in the batch are stale; none was recorded)',
            v_stale[1], pg_catalog.quote_literal(p_worker_id),
            pg_catalog.cardinality(v_stale), v_count
            USING ERRCODE = 'P7002',
                  DETAIL = 'stale outbox ids: '
                           || pg_catalog.array_to_string(v_stale, ', '),
                  HINT = 'Do not dispatch the stale jobs again under their old leases; record '
                         'what the rail said for them with public.record_stale_outbox_outcome() '
                         'and complete the other jobs again.';
    END IF;

    -- 4. Only outcomes a worker can report.
    SELECT i.ord, i.outbox_id, i.state
      INTO v_bad
      FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states))
           WITH ORDINALITY AS i (outbox_id, state, ord)
     WHERE i.state NOT IN ('DISPATCHED'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'RETRYABLE'::public.outbox_attempt_state)
     ORDER BY i.ord
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid completion state % for outbox % (element %): expected '
                        'DISPATCHED, FAILED or RETRYABLE', v_bad.state, v_bad.outbox_id, v_bad.ord
            USING ERRCODE = 'P7003';
    END IF;

    -- 5. The retry ceiling, read once (a bad GUC raises 22023 before anything is written).
    IF 'RETRYABLE'::public.outbox_attempt_state = ANY (v_states) THEN
        v_ceiling := public.outbox_retry_ceiling();
    END IF;

    -- 5b. A job leaving the queue promotes its participant's next job (step 7), under a lock of
    --     the participant's allocator row (ADRs 0116, 0158). Lock those rows here first, in
    --     participant order - the order a multi-job enqueue transaction locks them in - so that
    --     a batch and an enqueue cannot deadlock. FOR NO KEY UPDATE: it conflicts with enqueue's
    --     upsert and writes no new row version.
    SELECT pg_catalog.array_agg(l.participant_id)
      INTO v_participants
      FROM (
          SELECT s.participant_id
            FROM public.participant_outbox_sequences AS s
           WHERE s.participant_id IN (
                     SELECT p.participant_id
                       FROM public.payment_outbox_pending AS p
                      WHERE p.outbox_id = ANY (p_outbox_ids)
                 )
           ORDER BY s.participant_id
             FOR NO KEY UPDATE OF s
      ) AS l;

    -- 5c. Rail references of the DISPATCHED elements (ADRs 0123, 0141), in input order: on a
    --     rail that returns references the element must carry one (22023 naming the element,
    --     through the id rule's helper), then record_outbox_rail_reference() records it (P7013
    --     when another job of the rail, in or before this batch, reported it). Either error
    --     undoes the whole batch.
    --     The ledger's last attempt of every job is read once, by one index search per
    --     ledger partition (a look-up per job inside the join would search every partition
    --     once per job: the partition is not known when the plan is made; ADR 0158).
    FOR v_reference IN
        WITH previous AS MATERIALIZED (
            SELECT a.outbox_id, pg_catalog.max(a.attempt_no) AS attempt_no
              FROM public.payment_outbox_attempts AS a
             WHERE a.outbox_id = ANY (p_outbox_ids)
             GROUP BY a.outbox_id
        )
        SELECT i.ord, i.outbox_id, p.rail_type, i.rail_reference,
               COALESCE(r.returns_reference, false) AS required,
               COALESCE(b.attempt_no, 0) + 1 AS attempt_no
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
          LEFT JOIN public.outbox_rails AS r
            ON r.rail_code = pg_catalog.upper(p.rail_type COLLATE "C")
          LEFT JOIN previous AS b
            ON b.outbox_id = i.outbox_id
         WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state
         ORDER BY i.ord
    LOOP
        IF v_reference.required THEN
            PERFORM public.outbox_require_ids(
                ARRAY[pg_catalog.format('p_rail_references element %s (outbox %s, DISPATCHED on '
                                        'rail %s)', v_reference.ord, v_reference.outbox_id,
                                        pg_catalog.upper(v_reference.rail_type COLLATE "C"))],
                ARRAY[v_reference.rail_reference],
                NULL
            );
        END IF;
        PERFORM public.record_outbox_rail_reference(
            v_reference.outbox_id, v_reference.attempt_no, v_reference.rail_type,
            v_reference.rail_reference
        );
    END LOOP;

    -- 6. Record everything in one statement: number each attempt from the ledger, apply the
    --    ceiling, append the attempts, remove terminal jobs, requeue retries, and report one row
    --    per element in input order. The rows are locked by this transaction since step 2.
    RETURN QUERY
    WITH input AS (
        SELECT i.ord, i.outbox_id, i.state, i.rail_reference, i.rail_code, i.error_code,
               i.error_message, i.latency_ms, i.retry_delay_seconds, i.lease_token
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references), pg_catalog.unnest(p_rail_codes),
                          pg_catalog.unnest(p_error_codes), pg_catalog.unnest(p_error_messages),
                          pg_catalog.unnest(p_latency_ms),
                          pg_catalog.unnest(p_retry_delay_seconds),
                          pg_catalog.unnest(p_lease_tokens))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, rail_code, error_code,
                                     error_message, latency_ms, retry_delay_seconds, lease_token,
                                     ord)
    ), previous AS MATERIALIZED (
        -- Once, by one index search per ledger partition (ADR 0158; see step 5c).
        SELECT a.outbox_id, pg_catalog.max(a.attempt_no) AS attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = ANY (p_outbox_ids)
         GROUP BY a.outbox_id
    ), decided AS (
        SELECT i.ord, p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type,
               COALESCE(r.attempt_no, 0) + 1 AS attempt_no,
               CASE
                   WHEN i.state = 'RETRYABLE'::public.outbox_attempt_state
                        AND COALESCE(r.attempt_no, 0) + 1 >= v_ceiling
                       THEN 'FAILED'::public.outbox_attempt_state
                   ELSE i.state
               END AS state,
               i.rail_reference, i.rail_code, i.error_code, i.error_message, i.latency_ms,
               i.retry_delay_seconds, i.lease_token, p.claimed_at
          FROM input AS i
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
          LEFT JOIN previous AS r
            ON r.outbox_id = i.outbox_id
         WHERE p.outbox_id = ANY (p_outbox_ids)
    ), appended AS (
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.attempt_no, d.state,
               COALESCE(d.claimed_at, v_now),
               CASE WHEN d.state <> 'RETRYABLE'::public.outbox_attempt_state THEN v_now END,
               d.rail_reference, d.rail_code, d.error_code, d.error_message, d.latency_ms,
               p_worker_id, d.lease_token, SESSION_USER
          FROM decided AS d
         ORDER BY d.ord
        RETURNING a.outbox_id
    ), removed AS (
        -- By primary key from an array, in one index scan (a join with decided, estimated at
        -- one row, rescanned the whole id list once per job; ADR 0158).
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = ANY ((
               SELECT pg_catalog.array_agg(x.outbox_id)
                 FROM decided AS x
                WHERE x.state <> 'RETRYABLE'::public.outbox_attempt_state
           )::uuid[])
        RETURNING p.outbox_id
    ), requeued AS (
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = d.attempt_no,
               next_attempt_at = v_now + pg_catalog.make_interval(
                   secs => GREATEST(1, d.retry_delay_seconds)
               ),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL,
               claimed_at = NULL
          FROM decided AS d
         WHERE p.outbox_id = ANY ((
               SELECT pg_catalog.array_agg(x.outbox_id)
                 FROM decided AS x
                WHERE x.state = 'RETRYABLE'::public.outbox_attempt_state
           )::uuid[])
           AND p.outbox_id = d.outbox_id
           AND d.state = 'RETRYABLE'::public.outbox_attempt_state
        RETURNING p.outbox_id
    )
    SELECT d.outbox_id, d.attempt_no, d.state
      FROM decided AS d
     ORDER BY d.ord;

    -- 7. Each participant whose head left the queue gets its next job as head (its allocator
    --    row is locked since step 5b, so this snapshot holds every job enqueued before; a
    --    participant whose job was requeued keeps that job as head: nothing to do).
    --    Again, with a new snapshot, while some participant's first queued job has no head
    --    flag (the job it waited for was deleted meanwhile: a cancel of the next job).
    LOOP
        UPDATE public.payment_outbox_pending AS p
           SET is_head = true
         WHERE p.outbox_id = ANY (ARRAY(
                   SELECT (SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = w.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1)
                     FROM pg_catalog.unnest(v_participants) AS w (participant_id)
               ))
           AND NOT p.is_head;
        EXIT WHEN NOT EXISTS (
            SELECT 1
              FROM pg_catalog.unnest(v_participants) AS w (participant_id)
             CROSS JOIN LATERAL (
                   SELECT q.is_head
                     FROM public.payment_outbox_pending AS q
                    WHERE q.participant_id = w.participant_id
                    ORDER BY q.sequence_id
                    LIMIT 1
             ) AS h
             WHERE NOT h.is_head
        );
    END LOOP;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

-- The trigger function (body: 0014) locks the allocator row instead of updating it in place.
CREATE OR REPLACE FUNCTION public.promote_outbox_head() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id = OLD.participant_id
        FOR NO KEY UPDATE;

    -- Again, with a new snapshot, when the job it waited for was deleted meanwhile (a
    -- cancel of the next job): the one after it becomes the head, not nobody.
    LOOP
        UPDATE public.payment_outbox_pending AS p
           SET is_head = true
         WHERE p.outbox_id = (
                   SELECT q.outbox_id
                     FROM public.payment_outbox_pending AS q
                    WHERE q.participant_id = OLD.participant_id
                    ORDER BY q.sequence_id
                    LIMIT 1
               )
           AND NOT p.is_head;
        EXIT WHEN FOUND;
        EXIT WHEN NOT EXISTS (
            SELECT 1
              FROM (SELECT q.is_head
                      FROM public.payment_outbox_pending AS q
                     WHERE q.participant_id = OLD.participant_id
                     ORDER BY q.sequence_id
                     LIMIT 1) AS h
             WHERE NOT h.is_head
        );
    END LOOP;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION public.promote_outbox_head() IS
'Trigger function (AFTER DELETE of a head on payment_outbox_pending, except a DELETE by the '
'outbox functions under a live lease: the completions promote themselves): makes the '
'participant''s queued job with the lowest sequence_id its head, serialised with enqueue on the '
'participant''s row in participant_outbox_sequences (FOR NO KEY UPDATE).';

COMMENT ON COLUMN public.payment_outbox_pending.is_head IS
'True for the participant''s queued job with the lowest sequence_id: the only one of its jobs a '
'claim may lease (per-participant FIFO). Maintained by enqueue, the completions and '
'trg_promote_outbox_head.';

DROP TRIGGER trg_promote_outbox_head ON public.payment_outbox_pending;

CREATE TRIGGER trg_promote_outbox_head
    AFTER DELETE ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (old.is_head
          AND (current_user <> 'symphony_owner'
               OR old.lease_token IS NULL
               OR old.lease_expires_at <= pg_catalog.clock_timestamp()))
    EXECUTE FUNCTION public.promote_outbox_head();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_promote_outbox_head;

-- A partitioned index cannot be dropped CONCURRENTLY: a brief ACCESS EXCLUSIVE lock on the
-- ledger and its partitions (no scan, no rebuild). No IF EXISTS (INV-023).
-- squawk-ignore require-concurrent-index-deletion, prefer-robust-stmts
DROP INDEX public.ix_payment_outbox_attempts_instruction_idempotency;
