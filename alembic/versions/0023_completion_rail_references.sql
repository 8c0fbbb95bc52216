-- 0023 a DISPATCHED attempt carries its rail reference, unique per rail (issue 20 item 4,
-- ops3, ADRs 0123 and 0141).
--
-- complete_outbox_attempt() and complete_outbox_attempts_batch() (bodies: 0014) keep their
-- signatures (p_rail_reference / p_rail_references existed since 0002 / 0007, so no caller
-- breaks at the SQL level) and now record a DISPATCHED outcome's reference through
-- record_outbox_rail_reference() (0019): a rail registered with returns_reference requires a
-- non-blank one (22023 naming the argument, or the batch element), a reference another job of the
-- rail reported is P7013 RAIL_REFERENCE_REUSED, and either refusal writes nothing (the job stays
-- leased by its worker). The ledger row keeps the value as before; public.outbox_rail_references
-- owns the uniqueness (it survives ledger archiving, issue 15). FAILED and RETRYABLE outcomes
-- need none. record_stale_outbox_outcome() is unchanged: a stale DISPATCHED outcome keeps its
-- reference in payment_outbox_stale_outcomes for reconciliation, and the job's next worker may
-- report the same reference for the same job. Owner and grants stay (CREATE OR REPLACE).


-- Completion (body: 0014): a DISPATCHED outcome records its rail reference before the ledger row.
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
             payload, attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no, p_state,
             COALESCE(v_row.claimed_at, v_now), v_now,
             p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms,
             p_worker_id, p_lease_token, SESSION_USER)
        RETURNING a.attempt_no, a.state;

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
         payload, attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
         error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
    VALUES
        (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no, v_state,
         COALESCE(v_row.claimed_at, v_now), CASE WHEN v_terminal THEN v_now END,
         p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms, p_worker_id,
         p_lease_token, SESSION_USER);

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
               lease_expires_at = NULL,
               claimed_at = NULL
         WHERE p.outbox_id = p_outbox_id;
    END IF;

    -- 7. Report what was recorded.
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;

COMMENT ON FUNCTION public.complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state,
                                                   text, text, text, text, integer, integer) IS
'Records the outcome of a leased attempt. P7002 (LEASE_LOST) unless worker and token match the '
'job''s current lease (a lease past lease_expires_at that nobody replaced still counts; a '
'replaced one does not: keep its outcome with record_stale_outbox_outcome()); P7003 unless the '
'state is DISPATCHED, FAILED or RETRYABLE. RETRYABLE at or above outbox_retry_ceiling() becomes '
'FAILED. A DISPATCHED outcome records p_rail_reference through record_outbox_rail_reference(): '
'22023 when the rail returns references and none is given, P7013 RAIL_REFERENCE_REUSED when '
'another job of the rail reported it (nothing is written then). Terminal outcomes remove the '
'pending row; retries requeue it after max(1, p_retry_delay_seconds) seconds. Returns '
'(attempt_no, state).';


-- Batched completion (body: 0014): the same reference rule, element by element.
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

    -- 5b. A job leaving the queue promotes its participant's next job, which locks the
    --     participant's allocator row (trg_promote_outbox_head, ADR 0116). Lock those rows here
    --     first, in participant order - the order a multi-job enqueue transaction locks them in
    --     - so that a batch and an enqueue cannot deadlock.
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id IN (
                SELECT p.participant_id
                  FROM public.payment_outbox_pending AS p
                 WHERE p.outbox_id = ANY (p_outbox_ids)
            )
      ORDER BY s.participant_id
        FOR UPDATE OF s;

    -- 5c. Rail references of the DISPATCHED elements (ADRs 0123, 0141), in input order: on a
    --     rail that returns references the element must carry one (22023 naming the element,
    --     through the id rule's helper), then record_outbox_rail_reference() records it (P7013
    --     when another job of the rail, in or before this batch, reported it). Either error
    --     undoes the whole batch.
    FOR v_reference IN
        SELECT i.ord, i.outbox_id, p.rail_type, i.rail_reference,
               COALESCE(r.returns_reference, false) AS required,
               (SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
                  FROM public.payment_outbox_attempts AS a
                 WHERE a.outbox_id = i.outbox_id) AS attempt_no
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
          LEFT JOIN public.outbox_rails AS r
            ON r.rail_code = pg_catalog.upper(p.rail_type COLLATE "C")
         WHERE p.outbox_id = ANY (p_outbox_ids)
           AND i.state = 'DISPATCHED'::public.outbox_attempt_state
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
             payload, attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.payload, d.attempt_no, d.state,
               COALESCE(d.claimed_at, v_now),
               CASE WHEN d.state <> 'RETRYABLE'::public.outbox_attempt_state THEN v_now END,
               d.rail_reference, d.rail_code, d.error_code, d.error_message, d.latency_ms,
               p_worker_id, d.lease_token, SESSION_USER
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
               lease_expires_at = NULL,
               claimed_at = NULL
          FROM decided AS d
         WHERE p.outbox_id = ANY (p_outbox_ids)
           AND p.outbox_id = d.outbox_id
           AND d.state = 'RETRYABLE'::public.outbox_attempt_state
        RETURNING p.outbox_id
    )
    SELECT d.outbox_id, d.attempt_no, d.state
      FROM decided AS d
     ORDER BY d.ord;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.complete_outbox_attempts_batch(text, uuid[], uuid[], text[], text[],
                                                          text[], text[], text[], integer[],
                                                          integer[]) IS
'Records the outcomes of up to 1000 leases of one worker (parallel arrays, element i describes '
'p_outbox_ids[i]; states as text) exactly as complete_outbox_attempt() would, all or nothing: '
'P7002 (LEASE_LOST) naming the first stale outbox when any lease is missing, replaced or not '
'this worker''s and token''s (DETAIL lists all of them), P7003 for a state other than '
'DISPATCHED, FAILED or RETRYABLE, 22023 for invalid arguments (and for a DISPATCHED element '
'without a reference on a rail that returns references, naming the element), P7013 '
'RAIL_REFERENCE_REUSED when another job of the rail reported a reference; nothing is recorded '
'then. Returns (outbox_id, attempt_no, state) per element, in input order.';
