-- 0010 reject blank and oversized ids (defects D1 and D2 of docs/reliability.md, found by the
-- R5 fuzzers).
--
-- D1: the functions rejected blank ids with pg_catalog.btrim(x) = '', but btrim with one
-- argument strips spaces only, so a tab or a newline passed as an id or a worker id was accepted
-- (enqueue queued a job whose instruction id was a TAB). Every such test now strips all ASCII
-- whitespace: space, tab, newline, carriage return, form feed and vertical tab (\x0B, as escape
-- strings have no \v).
--
-- D2: ids longer than a btree entry allows ended in SQLSTATE 54000 ("index row size exceeds
-- btree maximum") naming no argument. enqueue_payment_outbox and bump_participant_outbox_seq now
-- refuse an instruction id, participant id or idempotency key longer than 1024 bytes with 22023
-- naming the argument; 1024 + 1024 bytes keeps (instruction_id, idempotency_key) under the
-- 2704-byte limit even for incompressible values. Nothing is written in either case.
--
-- The bodies are those of 0008 (enqueue, claim, complete, batched completion) and 0002 (repair,
-- allocator) with only these checks changed. CREATE OR REPLACE keeps owner, grants and comments;
-- signatures, results and every other SQLSTATE are unchanged.


-- Enqueue (body: 0008): ASCII-whitespace blanks, and at most 1024 bytes per indexed id.
CREATE OR REPLACE FUNCTION public.enqueue_payment_outbox(
    p_instruction_id text,
    p_participant_id text,
    p_idempotency_key text,
    p_rail_type text,
    p_payload jsonb
) RETURNS TABLE (outbox_id uuid, sequence_id bigint, created_at timestamptz, state text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_found record;
    v_plan_cache_mode text;
    v_enable_seqscan text;
    v_ignored text;
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF p_instruction_id IS NULL OR pg_catalog.btrim(p_instruction_id, E' \t\n\r\f\x0B') = ''
       OR p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id, E' \t\n\r\f\x0B') = ''
       OR p_idempotency_key IS NULL OR pg_catalog.btrim(p_idempotency_key, E' \t\n\r\f\x0B') = ''
       OR p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') = ''
       OR pg_catalog.octet_length(p_instruction_id) > 1024
       OR pg_catalog.octet_length(p_participant_id) > 1024
       OR pg_catalog.octet_length(p_idempotency_key) > 1024
       OR p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object' THEN
        IF p_instruction_id IS NULL OR pg_catalog.btrim(p_instruction_id, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_instruction_id must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_participant_id must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_idempotency_key IS NULL OR pg_catalog.btrim(p_idempotency_key, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_idempotency_key must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_rail_type must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_instruction_id) > 1024 THEN
            RAISE EXCEPTION 'p_instruction_id must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_instruction_id)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_participant_id) > 1024 THEN
            RAISE EXCEPTION 'p_participant_id must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_participant_id)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_idempotency_key) > 1024 THEN
            RAISE EXCEPTION 'p_idempotency_key must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_idempotency_key)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_payload must be a JSON object, got %',
            COALESCE(pg_catalog.jsonb_typeof(p_payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_plan_cache_mode := pg_catalog.current_setting('plan_cache_mode');
    v_enable_seqscan := pg_catalog.current_setting('enable_seqscan');
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);

    -- 2. Serialise every enqueue of this (instruction_id, idempotency_key).
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended(
            p_instruction_id || pg_catalog.chr(31) || p_idempotency_key, 1
        )
    );

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
        IF v_found.participant_id IS DISTINCT FROM p_participant_id
           OR v_found.rail_type IS DISTINCT FROM p_rail_type
           OR v_found.payload IS DISTINCT FROM p_payload THEN
            RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                            'already used with a different participant, rail type or payload',
                pg_catalog.quote_literal(p_idempotency_key),
                pg_catalog.quote_literal(p_instruction_id)
                USING ERRCODE = 'P7004';
        END IF;
        v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
        v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
        RETURN QUERY
            SELECT v_found.outbox_id, v_found.sequence_id, v_found.created_at, v_found.state;
        RETURN;
    END IF;

    -- 5. New instruction: allocate and insert. ON CONFLICT DO NOTHING only matters when the lock
    --    did not protect us (REPEATABLE READ, or a row inserted directly by the control plane):
    --    nothing is returned, and the serialization failure below rolls the allocated sequence
    --    number back (ADR 0006).
    RETURN QUERY
    WITH allocated AS (
        INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
        VALUES (p_participant_id, 2)
        ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
        DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
        RETURNING s.next_sequence_id - 1 AS sequence_id
    )
    INSERT INTO public.payment_outbox_pending AS p
        (instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload)
    SELECT p_instruction_id, p_participant_id, n.sequence_id, p_idempotency_key, p_rail_type,
           p_payload
      FROM allocated AS n
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;
    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
END
$$;


-- Allocator (body: 0002): the same rules for the participant id it is called with.
CREATE OR REPLACE FUNCTION public.bump_participant_outbox_seq(p_participant_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_allocated bigint;
BEGIN
    IF p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_participant_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF pg_catalog.octet_length(p_participant_id) > 1024 THEN
        RAISE EXCEPTION 'p_participant_id must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_participant_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
    VALUES (p_participant_id, 2)
    ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
    DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
    RETURNING s.next_sequence_id - 1 INTO v_allocated;

    RETURN v_allocated;
END
$$;


-- Claim (body: 0008): a whitespace-only worker id is invalid.
CREATE OR REPLACE FUNCTION public.claim_outbox_batch(
    p_batch_size integer,
    p_worker_id text,
    p_lease_seconds integer
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
    lease_expires_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz;
    v_expires_at timestamptz;
    v_plan_cache_mode text;
    v_enable_seqscan text;
    v_ignored text;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000
       OR p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = ''
       OR p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
            RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
                COALESCE(p_batch_size::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_worker_id must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);
    v_plan_cache_mode := pg_catalog.current_setting('plan_cache_mode');
    v_enable_seqscan := pg_catalog.current_setting('enable_seqscan');
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);

    -- One statement: lock the candidates (each scan is capped at the batch and reads its index
    -- in order, so the work is proportional to the batch, not to the number of leased rows),
    -- keep the oldest due of them, lease those by primary key, return them oldest due first.
    RETURN QUERY
    WITH unleased AS (
        SELECT p.outbox_id, p.next_attempt_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NULL
           AND p.next_attempt_at <= v_now
         ORDER BY p.next_attempt_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), expired AS (
        SELECT p.outbox_id, p.next_attempt_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NOT NULL
           AND p.lease_expires_at <= v_now
           AND p.next_attempt_at <= v_now
         ORDER BY p.lease_expires_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = public.uuid_v7_or_random(),
               lease_expires_at = v_expires_at
         WHERE p.outbox_id = ANY ((
               SELECT pg_catalog.array_agg(c.outbox_id)
                 FROM (
                     SELECT b.outbox_id
                       FROM (
                           SELECT u.outbox_id, u.next_attempt_at FROM unleased AS u
                           UNION ALL
                           SELECT e.outbox_id, e.next_attempt_at FROM expired AS e
                       ) AS b
                      ORDER BY b.next_attempt_at, b.outbox_id
                      LIMIT p_batch_size
                 ) AS c
           )::uuid[])
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.next_attempt_at
    )
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at
      FROM leased AS l
     ORDER BY l.next_attempt_at, l.outbox_id;

    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
END
$$;


-- Completion (body: 0008): a whitespace-only worker id is invalid.
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
    v_plan_cache_mode text;
    v_enable_seqscan text;
    v_ignored text;
BEGIN
    IF p_outbox_id IS NULL OR p_lease_token IS NULL
       OR p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' OR p_state IS NULL
       OR p_latency_ms < 0 THEN
        IF p_outbox_id IS NULL THEN
            RAISE EXCEPTION 'p_outbox_id must not be NULL'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_lease_token IS NULL THEN
            RAISE EXCEPTION 'p_lease_token must not be NULL'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION 'p_worker_id must be a non-empty string'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_state IS NULL THEN
            RAISE EXCEPTION 'p_state must not be NULL' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_latency_ms must be NULL or >= 0, got %', p_latency_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_plan_cache_mode := pg_catalog.current_setting('plan_cache_mode');
    v_enable_seqscan := pg_catalog.current_setting('enable_seqscan');
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);

    IF p_state IN ('DISPATCHED'::public.outbox_attempt_state,
                   'FAILED'::public.outbox_attempt_state) THEN
        -- Terminal: fence, lock and remove the job in one statement.
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = p_outbox_id
           AND p.claimed_by = p_worker_id
           AND p.lease_token IS NOT DISTINCT FROM p_lease_token
           AND p.lease_expires_at > v_now
        RETURNING p.* INTO v_row;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
                p_outbox_id, pg_catalog.quote_literal(p_worker_id)
                USING ERRCODE = 'P7002',
                      HINT = 'The lease expired, was repaired or was claimed again: drop this '
                             'result and do not dispatch again under the old lease.';
        END IF;

        RETURN QUERY
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, completed_at, rail_reference, rail_code, error_code,
             error_message, latency_ms, worker_id)
        SELECT v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
               v_row.idempotency_key, v_row.rail_type, v_row.payload,
               COALESCE(pg_catalog.max(x.attempt_no), 0) + 1, p_state, v_now,
               p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms,
               p_worker_id
          FROM public.payment_outbox_attempts AS x
         WHERE x.outbox_id = p_outbox_id
        RETURNING a.attempt_no, a.state;

        v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
        v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
        RETURN;
    END IF;

    -- RETRYABLE, or a state that must be refused: the 0002 sequence.
    -- 1. Lock the row only while worker, token and an unexpired lease all match.
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id
       AND p.claimed_by = p_worker_id
       AND p.lease_token IS NOT DISTINCT FROM p_lease_token
       AND p.lease_expires_at > v_now
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'P7002',
                  HINT = 'The lease expired, was repaired or was claimed again: drop this '
                         'result and do not dispatch again under the old lease.';
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
         payload, attempt_no, state, completed_at, rail_reference, rail_code, error_code,
         error_message, latency_ms, worker_id)
    VALUES
        (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no, v_state,
         CASE WHEN v_terminal THEN v_now END, p_rail_reference, p_rail_code, p_error_code,
         p_error_message, p_latency_ms, p_worker_id);

    -- 6. Terminal: the job leaves the queue. Retry: back in the queue after the delay, unleased.
    IF v_terminal THEN
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = p_outbox_id;
    ELSE
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = v_now + pg_catalog.make_interval(
                   secs => GREATEST(1, p_retry_delay_seconds)
               ),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL
         WHERE p.outbox_id = p_outbox_id;
    END IF;

    -- 7. Report what was recorded.
    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;


-- Batched completion (body: 0008): a whitespace-only worker id is invalid.
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
    v_plan_cache_mode text;
    v_enable_seqscan text;
    v_ignored text;
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_worker_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    v_plan_cache_mode := pg_catalog.current_setting('plan_cache_mode');
    v_enable_seqscan := pg_catalog.current_setting('enable_seqscan');
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);

    -- 2. Lock every row whose lease matches (worker, token, unexpired), in outbox_id order so
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
             AND p.lease_expires_at > v_now
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
                      AND p.lease_expires_at > v_now
               );
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token '
                        '(% of % completions in the batch are stale; none was recorded)',
            v_stale[1], pg_catalog.quote_literal(p_worker_id),
            pg_catalog.cardinality(v_stale), v_count
            USING ERRCODE = 'P7002',
                  DETAIL = 'stale outbox ids: '
                           || pg_catalog.array_to_string(v_stale, ', '),
                  HINT = 'Drop the results of the stale leases (do not dispatch them again under '
                         'the old lease) and complete the other jobs again.';
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

    -- 6. Record everything in one statement: number each attempt from the ledger, apply the
    --    ceiling, append the attempts, remove terminal jobs, requeue retries, and report one row
    --    per element in input order. The rows are locked by this transaction since step 2.
    RETURN QUERY
    WITH input AS (
        SELECT i.ord, i.outbox_id, i.state, i.rail_reference, i.rail_code, i.error_code,
               i.error_message, i.latency_ms, i.retry_delay_seconds
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references), pg_catalog.unnest(p_rail_codes),
                          pg_catalog.unnest(p_error_codes), pg_catalog.unnest(p_error_messages),
                          pg_catalog.unnest(p_latency_ms),
                          pg_catalog.unnest(p_retry_delay_seconds))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, rail_code, error_code,
                                     error_message, latency_ms, retry_delay_seconds, ord)
    ), previous AS (
        SELECT a.outbox_id, pg_catalog.max(a.attempt_no) AS attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = ANY (p_outbox_ids)
         GROUP BY a.outbox_id
    ), decided AS (
        SELECT i.ord, p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload,
               COALESCE(r.attempt_no, 0) + 1 AS attempt_no,
               CASE
                   WHEN i.state = 'RETRYABLE'::public.outbox_attempt_state
                        AND COALESCE(r.attempt_no, 0) + 1 >= v_ceiling
                       THEN 'FAILED'::public.outbox_attempt_state
                   ELSE i.state
               END AS state,
               i.rail_reference, i.rail_code, i.error_code, i.error_message, i.latency_ms,
               i.retry_delay_seconds
          FROM input AS i
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
          LEFT JOIN previous AS r
            ON r.outbox_id = i.outbox_id
         WHERE p.outbox_id = ANY (p_outbox_ids)
    ), appended AS (
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, completed_at, rail_reference, rail_code, error_code,
             error_message, latency_ms, worker_id)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.payload, d.attempt_no, d.state,
               CASE WHEN d.state <> 'RETRYABLE'::public.outbox_attempt_state THEN v_now END,
               d.rail_reference, d.rail_code, d.error_code, d.error_message, d.latency_ms,
               p_worker_id
          FROM decided AS d
         ORDER BY d.ord
        RETURNING a.outbox_id
    ), removed AS (
        DELETE FROM public.payment_outbox_pending AS p
         USING decided AS d
         WHERE p.outbox_id = ANY (p_outbox_ids)
           AND p.outbox_id = d.outbox_id
           AND d.state <> 'RETRYABLE'::public.outbox_attempt_state
        RETURNING p.outbox_id
    ), requeued AS (
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = d.attempt_no,
               next_attempt_at = v_now + pg_catalog.make_interval(
                   secs => GREATEST(1, d.retry_delay_seconds)
               ),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL
          FROM decided AS d
         WHERE p.outbox_id = ANY (p_outbox_ids)
           AND p.outbox_id = d.outbox_id
           AND d.state = 'RETRYABLE'::public.outbox_attempt_state
        RETURNING p.outbox_id
    )
    SELECT d.outbox_id, d.attempt_no, d.state
      FROM decided AS d
     ORDER BY d.ord;

    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
END
$$;


-- Repair (body: 0002): a whitespace-only worker id is invalid.
CREATE OR REPLACE FUNCTION public.repair_expired_leases(
    p_batch_size integer,
    p_worker_id text
) RETURNS TABLE (outbox_id uuid, attempt_no integer)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz;
    v_row record;
    v_attempt_no integer;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_worker_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();

    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload, p.claimed_by, p.lease_expires_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NOT NULL
           AND p.lease_expires_at <= v_now
         ORDER BY p.lease_expires_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    LOOP
        SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = v_row.outbox_id;

        -- worker_id records the worker that lost the lease (whose dispatch may be in doubt);
        -- the repairing worker is named in error_message.
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no,
             'ZOMBIE_REQUEUE'::public.outbox_attempt_state, 'LEASE_EXPIRED',
             pg_catalog.format('lease expired at %s; requeued by %s',
                               v_row.lease_expires_at, p_worker_id),
             v_row.claimed_by);

        -- Due again at once, keeping its place in the queue (oldest due first): the lease
        -- already made the job wait a full lease period, and later sequence numbers of the
        -- participant should not overtake it.
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = LEAST(p.next_attempt_at, v_now),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL
         WHERE p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        attempt_no := v_attempt_no;
        RETURN NEXT;
    END LOOP;
END
$$;
