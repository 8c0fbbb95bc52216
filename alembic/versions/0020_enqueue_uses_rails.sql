-- 0020 enqueue and claim use the rails table (issue 20 phase 2, ADR 0122).
--
-- 1. enqueue_payment_outbox (body: 0014) stores the canonical rail code of a new job
--    (public.outbox_rail_code: 22023 for an unknown or disabled rail) and refuses payload numbers
--    a JSON consumer cannot represent exactly (public.check_outbox_payload_numbers: 22023 naming
--    the JSON path). Both checks apply to a new job only, before anything is written that
--    survives: a replay of a known key is compared against what was stored, the rail by its
--    upper-cased spelling, so `rtgs` after `RTGS` (or after a job stored as `rtgs` before this
--    revision) is the same job, and a replay after its rail was disabled still returns the job.
-- 2. claim_outbox_batch (body: 0014) matches p_rail_types in any spelling: each element is
--    matched as given and upper-cased, so a worker asking for `rtgs` gets the RTGS jobs and the
--    jobs queued as `rtgs` before this revision.
--
-- Completion does not record rail references yet and the payload is still copied into the
-- ledger (INV-057's remaining half and ADR 0124 stay on the roadmap).

-- Enqueue (body: 0014): canonical rail and exact numbers for a new job (see the header).
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
AS $$
DECLARE
    v_found record;
    v_outbox_id uuid;
    v_known boolean := false;
    v_sequence_id bigint;
    v_plan_settings text[];
    v_rail_code text;
BEGIN
    -- 1. Validate; nothing has been written yet.
    PERFORM public.outbox_require_ids(
        ARRAY['p_instruction_id', 'p_participant_id', 'p_idempotency_key', 'p_rail_type'],
        ARRAY[p_instruction_id, p_participant_id, p_idempotency_key, p_rail_type]
    );
    IF p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'p_payload must be a JSON object, got %',
            COALESCE(pg_catalog.jsonb_typeof(p_payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_payload::text) > 65536 THEN
        RAISE EXCEPTION 'p_payload must be at most 65536 bytes (as jsonb text), got %',
            pg_catalog.octet_length(p_payload::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_priority IS NULL THEN
        RAISE EXCEPTION 'p_priority must not be NULL (0 is the default)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_not_before = 'infinity'::timestamptz OR p_not_before = '-infinity'::timestamptz THEN
        RAISE EXCEPTION 'p_not_before must be a finite time or NULL, got %', p_not_before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_plan_settings := public.outbox_pin_plan_settings();

    -- 2. Serialise every enqueue of this (instruction_id, idempotency_key) on the key table's
    --    primary key, which no runtime role can read or lock. A new key: the inserted row is ours
    --    and a concurrent duplicate waits on it until we commit (then finds our job) or roll back
    --    (then inserts it). A known key: lock its row. Under REPEATABLE READ or SERIALIZABLE a
    --    key committed after the snapshot makes PostgreSQL raise 40001 here (ADR 0006).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id)
    VALUES (p_instruction_id, p_idempotency_key, public.uuid_v7_or_random())
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING
    RETURNING k.outbox_id INTO v_outbox_id;
    IF NOT FOUND THEN
        v_known := true;
        PERFORM 1
           FROM public.payment_outbox_idempotency_keys AS k
          WHERE k.instruction_id = p_instruction_id
            AND k.idempotency_key = p_idempotency_key
            FOR UPDATE;
    END IF;

    -- 3 and 4. Still queued (state PENDING), else the latest attempt in the ledger.
    SELECT f.outbox_id, f.sequence_id, f.created_at, f.state, f.participant_id, f.rail_type,
           f.payload
      INTO v_found
      FROM (
          SELECT 1 AS source, p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text AS state,
                 p.participant_id, p.rail_type, p.payload
            FROM public.payment_outbox_pending AS p
           WHERE p.instruction_id = p_instruction_id
             AND p.idempotency_key = p_idempotency_key
          UNION ALL
          (SELECT 2 AS source, a.outbox_id, a.sequence_id, a.created_at, a.state::text AS state,
                  a.participant_id, a.rail_type, a.payload
             FROM public.payment_outbox_attempts AS a
            WHERE a.instruction_id = p_instruction_id
              AND a.idempotency_key = p_idempotency_key
            ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
            LIMIT 1)
      ) AS f
     ORDER BY f.source
     LIMIT 1;
    IF FOUND THEN
        -- A replay is compared against what was stored; the rail by its upper-cased spelling
        -- (ADR 0122), so `rtgs` after `RTGS`, or after a job stored as `rtgs` before 0020, is
        -- the same job, and a replay after the rail was disabled still returns its job.
        IF v_found.participant_id IS DISTINCT FROM p_participant_id
           OR pg_catalog.upper(v_found.rail_type COLLATE "C")
              IS DISTINCT FROM pg_catalog.upper(p_rail_type COLLATE "C")
           OR v_found.payload IS DISTINCT FROM p_payload THEN
            RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                            'already used with a different participant, rail type or payload',
                pg_catalog.quote_literal(p_idempotency_key),
                pg_catalog.quote_literal(p_instruction_id)
                USING ERRCODE = 'P7004';
        END IF;
        PERFORM public.outbox_restore_plan_settings(v_plan_settings);
        RETURN QUERY
            SELECT v_found.outbox_id, v_found.sequence_id, v_found.created_at, v_found.state;
        RETURN;
    END IF;

    -- 5. A new job takes the canonical code of an enabled rail (22023 for an unknown or disabled
    --    one) and only numbers a JSON consumer reads exactly (22023 naming the JSON path). The
    --    error undoes the key row inserted above: nothing is written.
    v_rail_code := public.outbox_rail_code(p_rail_type);
    PERFORM public.check_outbox_payload_numbers(p_payload);

    -- New job (a new key, or a known key whose job was removed by hand before any attempt):
    --    allocate and insert. ON CONFLICT DO NOTHING only matters for a row inserted directly by
    --    the control plane after the look-up: nothing is returned, and the serialization failure
    --    below rolls the allocated sequence number back (ADR 0006).
    IF v_known THEN
        v_outbox_id := public.uuid_v7_or_random();
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_outbox_id
         WHERE k.instruction_id = p_instruction_id
           AND k.idempotency_key = p_idempotency_key;
    END IF;
    -- 6. Allocate the participant's next sequence number (its allocator row stays locked until
    --    commit), then insert the job in a second statement: under READ COMMITTED that statement
    --    sees every job of the participant committed while we waited for the row (a completion
    --    that promoted a head updates the same row first), so the head flag is right (ADR 0116).
    --    The job is its participant's head when no other job of the participant is queued (all
    --    of them have lower sequence numbers). It is due at p_not_before, or now.
    INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
    VALUES (p_participant_id, 2)
    ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
    DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
    RETURNING s.next_sequence_id - 1 INTO v_sequence_id;

    RETURN QUERY
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload, next_attempt_at, priority, is_head)
    SELECT v_outbox_id, p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key,
           v_rail_code, p_payload, GREATEST(p_not_before, pg_catalog.now()), p_priority,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = p_participant_id
           )
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                                  smallint) IS
'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key '
'of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest '
'attempt once the job has been worked on. p_not_before: not claimable before that time; '
'p_priority: higher is claimed first across participants, never ahead of an earlier job of the '
'same participant (per-participant FIFO). P7004 when the key is reused with a different '
'participant, rail type (compared upper-cased) or payload; 22023 on invalid arguments (payload '
'over 65536 bytes, a rail that is not registered and enabled, a payload number a JSON consumer '
'cannot represent exactly, naming its JSON path). A new job stores the canonical rail code.';

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                                     smallint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb,
                                                        timestamptz, smallint)
    TO symphony_ingest, symphony_control, test_user;


-- Claim (body: 0014): p_rail_types matched in any spelling (see the header).
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

    -- One statement: lock the candidates (each scan is capped at the batch and reads its index
    -- in order, so the work is proportional to the batch, not to the number of queued or leased
    -- rows): due heads without a lease (all rails: one partial index; some rails: the rail index,
    -- once per rail) and expired leases of heads. Keep the first of them by priority, then due
    -- time; record the lost lease of each expired one taken (attempt number: the ledger's last,
    -- or the locked row's attempt_count if higher, plus one; at the ceiling FAILED and the job
    -- leaves the queue, and the trigger promotes the participant's next job), lease the others
    -- by primary key (a taken-over job is in doubt from now on), return them in that order.
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
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT b.outbox_id
          FROM (
              SELECT u.outbox_id, u.priority, u.next_attempt_at FROM unleased AS u
              UNION ALL
              SELECT e.outbox_id, e.priority, e.next_attempt_at FROM expired AS e
          ) AS b
         ORDER BY b.priority DESC, b.next_attempt_at, b.outbox_id
         LIMIT p_batch_size
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
             payload, attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.payload, d.attempt_no, d.state,
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

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) IS
'Leases up to p_batch_size (1..1000) claimable jobs (FOR UPDATE SKIP LOCKED): the participant''s '
'head (every earlier sequence_id is terminal), due, without a lease or with an expired one, of '
'the rails in p_rail_types (NULL: any; each matched as given and upper-cased), highest '
'priority then oldest due first. Each claim gets '
'a fresh lease_token valid for p_lease_seconds (1..86400). An expired lease it takes over is '
'recorded as a ZOMBIE_REQUEUE attempt and the job is in doubt (in_doubt stays true), or as '
'FAILED at outbox_retry_ceiling(): that job leaves the queue and is not returned, so a claim may '
'return fewer rows than are due.';

REVOKE ALL ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[])
    TO symphony_executor, symphony_control, test_user;
