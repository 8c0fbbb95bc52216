-- 0037 completion, round three (issue 17 P1/P2b, ADR 0165).
--
-- 1. record_outbox_rail_references(ids, attempt_nos, rail_types, references, elements): the
--    rail-reference rule's one writer (ADRs 0123, 0141), set-based: a batch's references are
--    recorded by one INSERT ... SELECT ... ON CONFLICT DO NOTHING in element order, then one
--    statement finds the first element that broke the rule (a missing reference on a rail that
--    returns one: 22023; a reference held by another job or an earlier element: P7013). One
--    element takes 0019's statements by primary key. record_outbox_rail_reference() keeps its
--    signature, checks and messages and calls it.
-- 2. complete_outbox_attempts_batch (body: 0032) calls that writer once per batch instead of
--    once per DISPATCHED element (and outbox_require_ids once per element), and reads the
--    ledger's last attempts once instead of twice, and the state labels once instead of once
--    per element. Same contract: all or nothing, the same SQLSTATEs, messages and results.
-- 3. complete_outbox_attempt (body: 0032) checks its arguments in one expression (the id rule
--    through outbox_id_ok(), inlined; the helpers run only on a failing call, to name the
--    argument), takes ADR 0041's plan settings as SET clauses (as enqueue does since 0031, ADR
--    0135) instead of the pin/restore helper pair, and calls the writer directly. The batch
--    takes the same SET clauses and the same worker check.
-- 4. The *_for_participant completions keep their bodies (ADR 0147: no array joins in a
--    delegated body) except that they call the writer directly, one element per call.
-- Owners and grants of the restated functions stay (CREATE OR REPLACE); the new writer and
-- predicate are owner only.

-- 0. The id rule as a predicate, inlined where it is called (like outbox_enqueue_args_ok, ADR
--    0135): only when it is false does outbox_require_ids() run, to raise its message.
CREATE FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN p_value IS NOT NULL
       AND pg_catalog.btrim(p_value, E' \t\n\r\f\x0B') <> ''
       AND (p_max_bytes IS NULL OR pg_catalog.octet_length(p_value) <= p_max_bytes);

COMMENT ON FUNCTION public.outbox_id_ok(text, integer) IS
'The id rule of outbox_require_ids() as one predicate (inlined where it is called): true when '
'the value is not NULL, not blank and (p_max_bytes NULL or) at most p_max_bytes bytes. When '
'false, outbox_require_ids() raises the message. Owner only.';

-- 1. The rail-reference rule's one writer, set-based (ADRs 0123, 0141, 0165).
CREATE FUNCTION public.record_outbox_rail_references(
    p_outbox_ids uuid[],
    p_attempt_nos integer[],
    p_rail_types text[],
    p_rail_references text[],
    p_elements integer[] DEFAULT NULL
) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_count integer;
    v_code text;
    v_required boolean;
    v_holder record;
    v_bad record;
    v_inserted integer;
    v_given integer;
    v_outbox uuid;
    v_attempt integer;
    v_reference text;
    v_element integer;
BEGIN
    v_count := pg_catalog.cardinality(p_outbox_ids);
    IF v_count IS NULL
       OR pg_catalog.cardinality(p_attempt_nos) IS DISTINCT FROM v_count
       OR pg_catalog.cardinality(p_rail_types) IS DISTINCT FROM v_count
       OR pg_catalog.cardinality(p_rail_references) IS DISTINCT FROM v_count
       OR (p_elements IS NOT NULL AND pg_catalog.cardinality(p_elements) <> v_count)
       OR pg_catalog.array_ndims(p_outbox_ids) > 1 OR pg_catalog.array_ndims(p_attempt_nos) > 1
       OR pg_catalog.array_ndims(p_rail_types) > 1
       OR pg_catalog.array_ndims(p_rail_references) > 1
       OR pg_catalog.array_ndims(p_elements) > 1 THEN
        RAISE EXCEPTION 'p_outbox_ids, p_attempt_nos, p_rail_types, p_rail_references (and '
                        'p_elements when given) must be one-dimensional arrays of one length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_count = 0 THEN
        RETURN;
    END IF;

    IF v_count = 1 THEN
        -- One element (a single completion): the statements of 0019's writer, by primary key.
        v_code := pg_catalog.upper(p_rail_types[pg_catalog.array_lower(p_rail_types, 1)]
                                   COLLATE "C");
        v_outbox := p_outbox_ids[pg_catalog.array_lower(p_outbox_ids, 1)];
        v_attempt := p_attempt_nos[pg_catalog.array_lower(p_attempt_nos, 1)];
        v_reference := p_rail_references[pg_catalog.array_lower(p_rail_references, 1)];
        v_element := p_elements[pg_catalog.array_lower(p_elements, 1)];
        IF NOT public.outbox_id_ok(v_reference, NULL) THEN
            SELECT r.returns_reference INTO v_required FROM public.outbox_rails AS r
             WHERE r.rail_code = v_code;
            IF COALESCE(v_required, false) THEN
                IF v_element IS NOT NULL THEN
                    RAISE EXCEPTION 'p_rail_references element % (outbox %, DISPATCHED on rail '
                                    '%) must be a non-empty string', v_element, v_outbox, v_code
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                RAISE EXCEPTION 'p_rail_reference must be given for a DISPATCHED attempt on rail %',
                    v_code
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Report the reference the rail returned, or register the rail '
                                 'with p_returns_reference => false.';
            END IF;
            RETURN;
        END IF;
        INSERT INTO public.outbox_rail_references AS x
            (rail_code, rail_reference, outbox_id, attempt_no)
        VALUES (v_code, v_reference, v_outbox, v_attempt)
        ON CONFLICT ON CONSTRAINT pk_outbox_rail_references DO NOTHING;
        IF FOUND THEN
            RETURN;
        END IF;
        SELECT x.outbox_id, x.attempt_no, x.recorded_at
          INTO v_holder
          FROM public.outbox_rail_references AS x
         WHERE x.rail_code = v_code
           AND x.rail_reference = v_reference;
        IF v_holder.outbox_id IS DISTINCT FROM v_outbox THEN
            RAISE EXCEPTION 'RAIL_REFERENCE_REUSED: rail reference % on rail % was already '
                            'reported by outbox %', pg_catalog.quote_literal(v_reference),
                v_code, v_holder.outbox_id
                USING ERRCODE = 'P7013',
                      DETAIL = pg_catalog.format('first reported by attempt %s at %s',
                                                 v_holder.attempt_no, v_holder.recorded_at),
                      HINT = 'Two jobs cannot share one rail reference: reconcile with the rail '
                             'before completing this job.';
        END IF;
        RETURN;
    END IF;

    -- Several elements (a batch): every given reference in one INSERT, in key order (two
    -- batches reporting the same references wait for each other instead of deadlocking) and in
    -- element order within a key (an element repeating an earlier element's reference conflicts
    -- with it and is skipped), then
    -- the first element, in order, that broke the rule: a missing reference on a rail that
    -- returns one (22023), or a reference held by another job (P7013). Either error undoes
    -- everything the caller wrote.
    INSERT INTO public.outbox_rail_references AS x
        (rail_code, rail_reference, outbox_id, attempt_no)
    SELECT pg_catalog.upper(i.rail_type COLLATE "C"), i.rail_reference, i.outbox_id,
           i.attempt_no
      FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_attempt_nos),
                      pg_catalog.unnest(p_rail_types), pg_catalog.unnest(p_rail_references))
           WITH ORDINALITY AS i (outbox_id, attempt_no, rail_type, rail_reference, ord)
     WHERE public.outbox_id_ok(i.rail_reference, NULL)
     ORDER BY 1, 2, i.ord
    ON CONFLICT ON CONSTRAINT pk_outbox_rail_references DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    SELECT pg_catalog.count(*)::integer
      INTO v_given
      FROM pg_catalog.unnest(p_rail_references) AS r (rail_reference)
     WHERE public.outbox_id_ok(r.rail_reference, NULL);
    IF v_inserted = v_count AND v_given = v_count THEN
        RETURN;
    END IF;

    SELECT i.ord, i.element, i.outbox_id, i.code, i.rail_reference, i.missing,
           x.outbox_id AS holder, x.attempt_no AS holder_attempt, x.recorded_at AS holder_at
      INTO v_bad
      FROM (
          SELECT u.ord, u.element, u.outbox_id, u.rail_reference,
                 (pg_catalog.upper(u.rail_type COLLATE "C") COLLATE "default") AS code,
                 NOT public.outbox_id_ok(u.rail_reference, NULL) AS missing
            FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_rail_types),
                            pg_catalog.unnest(p_rail_references),
                            pg_catalog.unnest(p_elements))
                 WITH ORDINALITY AS u (outbox_id, rail_type, rail_reference, element, ord)
      ) AS i
      LEFT JOIN public.outbox_rails AS r
        ON r.rail_code = i.code
      LEFT JOIN public.outbox_rail_references AS x
        ON x.rail_code = i.code
       AND x.rail_reference = i.rail_reference
     WHERE CASE WHEN i.missing THEN COALESCE(r.returns_reference, false)
                ELSE x.outbox_id IS DISTINCT FROM i.outbox_id END
     ORDER BY i.ord
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_bad.missing THEN
        IF v_bad.element IS NOT NULL THEN
            RAISE EXCEPTION 'p_rail_references element % (outbox %, DISPATCHED on rail %) must '
                            'be a non-empty string', v_bad.element, v_bad.outbox_id, v_bad.code
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_rail_reference must be given for a DISPATCHED attempt on rail % '
                        '(element %, outbox %)', v_bad.code, v_bad.ord, v_bad.outbox_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Report the reference the rail returned, or register the rail with '
                         'p_returns_reference => false.';
    END IF;
    RAISE EXCEPTION 'RAIL_REFERENCE_REUSED: rail reference % on rail % was already reported by '
                    'outbox %', pg_catalog.quote_literal(v_bad.rail_reference), v_bad.code,
        v_bad.holder
        USING ERRCODE = 'P7013',
              DETAIL = pg_catalog.format('first reported by attempt %s at %s',
                                         v_bad.holder_attempt, v_bad.holder_at),
              HINT = 'Two jobs cannot share one rail reference: reconcile with the rail before '
                     'completing this job.';
END
$$;

COMMENT ON FUNCTION public.record_outbox_rail_references(uuid[], integer[], text[], text[],
                                                        integer[]) IS
'The one writer of public.outbox_rail_references (ADRs 0123, 0141, 0165): records the rail '
'references of DISPATCHED attempts, element i being (p_outbox_ids[i], p_attempt_nos[i], '
'p_rail_types[i], p_rail_references[i]), in one statement for several elements. A NULL or blank '
'reference on a rail registered with returns_reference is 22023 (naming p_elements[i], the '
'caller''s element number, when given); a reference another job reported on the same rail, or '
'an earlier element of the call, is P7013 RAIL_REFERENCE_REUSED; the first such element in '
'order fails the call. The callers validate the elements (record_outbox_rail_reference() and '
'the completions do). Internal: owner only.';

-- The single-row entry keeps its signature, checks and messages; the rule is the writer's.
CREATE OR REPLACE FUNCTION public.record_outbox_rail_reference(
    p_outbox_id uuid,
    p_attempt_no integer,
    p_rail_type text,
    p_rail_reference text
) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_outbox_id IS NULL OR p_attempt_no IS NULL OR p_attempt_no < 1 THEN
        RAISE EXCEPTION 'p_outbox_id and p_attempt_no (>= 1) must be given'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_rail_type must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_rail_reference) > 1024 THEN
        RAISE EXCEPTION 'p_rail_reference must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_rail_reference)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.record_outbox_rail_references(
        ARRAY[p_outbox_id], ARRAY[p_attempt_no], ARRAY[p_rail_type], ARRAY[p_rail_reference]
    );
END
$$;

-- 2. The batched completion (body: 0032): one writer call, one ledger read.
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
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_count integer;
    v_now timestamptz;
    v_locked integer;
    v_stale uuid[];
    v_bad record;
    v_states public.outbox_attempt_state[];
    v_ceiling integer;
    v_labels text[];
    v_attempt_nos integer[];
    v_ref_ids uuid[];
    v_ref_attempts integer[];
    v_ref_rails text[];
    v_ref_references text[];
    v_ref_elements integer[];
    v_participants text[];
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        -- Only a failing call names the argument through the id rule's helper (ADR 0135).
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
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
    -- The state labels once (0032 evaluated enum_range() once per element).
    v_labels := pg_catalog.enum_range(NULL::public.outbox_attempt_state)::text[];
    SELECT i.ord, i.label
      INTO v_bad
      FROM pg_catalog.unnest(p_states) WITH ORDINALITY AS i (label, ord)
     WHERE i.label IS NULL
        OR i.label <> ALL (v_labels)
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

    -- 5c. Number every element from the ledger, and record the rail references of the
    --     DISPATCHED elements (ADRs 0123, 0141) through the rule's one writer in ONE call, in
    --     input order (ADR 0165): 22023 naming the first element without a reference on a rail
    --     that returns one, P7013 for a reference another job of the rail (in or before this
    --     batch) reported. Either error undoes the whole batch.
    --     The ledger's last attempt of every job is read once, by one index search per
    --     ledger partition (a look-up per job inside the join would search every partition
    --     once per job: the partition is not known when the plan is made; ADR 0158); step 6
    --     uses the numbers read here (the rows are locked since step 2: nobody else appends).
    WITH previous AS MATERIALIZED (
        SELECT a.outbox_id, pg_catalog.max(a.attempt_no) AS attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = ANY (p_outbox_ids)
         GROUP BY a.outbox_id
    )
    SELECT pg_catalog.array_agg(COALESCE(b.attempt_no, 0) + 1 ORDER BY i.ord),
           pg_catalog.array_agg(i.outbox_id ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(COALESCE(b.attempt_no, 0) + 1 ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(p.rail_type ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(i.rail_reference ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(i.ord::integer ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state)
      INTO v_attempt_nos, v_ref_ids, v_ref_attempts, v_ref_rails, v_ref_references,
           v_ref_elements
      FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                      pg_catalog.unnest(p_rail_references))
           WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
      JOIN public.payment_outbox_pending AS p
        ON p.outbox_id = i.outbox_id
      LEFT JOIN previous AS b
        ON b.outbox_id = i.outbox_id;
    IF v_ref_ids IS NOT NULL THEN
        PERFORM public.record_outbox_rail_references(
            v_ref_ids, v_ref_attempts, v_ref_rails, v_ref_references, v_ref_elements
        );
    END IF;

    -- 6. Record everything in one statement: number each attempt from the ledger, apply the
    --    ceiling, append the attempts, remove terminal jobs, requeue retries, and report one row
    --    per element in input order. The rows are locked by this transaction since step 2.
    RETURN QUERY
    WITH input AS (
        SELECT i.ord, i.outbox_id, i.state, i.rail_reference, i.rail_code, i.error_code,
               i.error_message, i.latency_ms, i.retry_delay_seconds, i.lease_token, i.attempt_no
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references), pg_catalog.unnest(p_rail_codes),
                          pg_catalog.unnest(p_error_codes), pg_catalog.unnest(p_error_messages),
                          pg_catalog.unnest(p_latency_ms),
                          pg_catalog.unnest(p_retry_delay_seconds),
                          pg_catalog.unnest(p_lease_tokens), pg_catalog.unnest(v_attempt_nos))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, rail_code, error_code,
                                     error_message, latency_ms, retry_delay_seconds, lease_token,
                                     attempt_no, ord)
    ), decided AS (
        SELECT i.ord, p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type,
               i.attempt_no,
               CASE
                   WHEN i.state = 'RETRYABLE'::public.outbox_attempt_state
                        AND i.attempt_no >= v_ceiling
                       THEN 'FAILED'::public.outbox_attempt_state
                   ELSE i.state
               END AS state,
               i.rail_reference, i.rail_code, i.error_code, i.error_message, i.latency_ms,
               i.retry_delay_seconds, i.lease_token, p.claimed_at
          FROM input AS i
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
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

END
$$;

COMMENT ON FUNCTION public.complete_outbox_attempts_batch(
    text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[]) IS
'Records the outcomes of up to 1000 leases of one worker (parallel arrays, element i describes '
'p_outbox_ids[i]; states as text) exactly as complete_outbox_attempt() would, all or nothing: '
'P7002 (LEASE_LOST) naming the first stale outbox when any lease is missing, replaced or not this '
'worker''s and token''s (DETAIL lists all of them), P7003 for a state other than DISPATCHED, '
'FAILED or RETRYABLE, 22023 for invalid arguments (and for a DISPATCHED element without a '
'reference on a rail that returns references, naming the element), P7013 RAIL_REFERENCE_REUSED '
'when another job of the rail reported a reference; nothing is recorded then. The references '
'go to record_outbox_rail_references() in one call. Returns (outbox_id, attempt_no, state) per '
'element, in input order.';

-- 3. The single completion (body: 0032): inline checks and plan settings.
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
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_terminal boolean;
BEGIN
    -- Argument checks as one expression (the id rule through its inlined predicate); only a
    -- failing call runs the checks that name the argument (ADR 0135's pattern; ADR 0165).
    IF p_outbox_id IS NULL OR p_lease_token IS NULL OR p_state IS NULL
       OR NOT public.outbox_id_ok(p_worker_id, 1024)
       OR pg_catalog.octet_length(p_rail_reference) > 1024
       OR pg_catalog.octet_length(p_rail_code) > 1024
       OR pg_catalog.octet_length(p_error_code) > 1024
       OR pg_catalog.octet_length(p_error_message) > 4096
       OR p_latency_ms < 0 THEN
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
    END IF;

    v_now := pg_catalog.clock_timestamp();

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
        -- reported it. Either error undoes the DELETE above: the job stays leased. The writer
        -- is called directly (record_outbox_rail_reference() adds a call and checks done here).
        IF p_state = 'DISPATCHED'::public.outbox_attempt_state THEN
            PERFORM public.record_outbox_rail_references(
                ARRAY[p_outbox_id], ARRAY[v_attempt_no], ARRAY[v_row.rail_type],
                ARRAY[p_rail_reference]
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
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;

COMMENT ON FUNCTION public.complete_outbox_attempt(
    uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer) IS
'Records the outcome of a leased attempt. P7002 (LEASE_LOST) unless worker and token match the '
'job''s current lease (a lease past lease_expires_at that nobody replaced still counts; a '
'replaced one does not: keep its outcome with record_stale_outbox_outcome()); P7003 unless the '
'state is DISPATCHED, FAILED or RETRYABLE. RETRYABLE at or above outbox_retry_ceiling() becomes '
'FAILED. A DISPATCHED outcome records p_rail_reference through record_outbox_rail_references(): '
'22023 when the rail returns references and none is given, P7013 RAIL_REFERENCE_REUSED when '
'another job of the rail reported it (nothing is written then). Terminal outcomes remove the '
'pending row; retries requeue it after max(1, p_retry_delay_seconds) seconds. Returns '
'(attempt_no, state).';

-- 4. The participant-first completions (bodies: 0034) call the writer directly instead of
--    through record_outbox_rail_reference() (one nested call less than 0036 would have after 1.);
--    nothing else changes: one element per call, no array join (ADR 0147).
CREATE OR REPLACE FUNCTION public.complete_outbox_attempt_for_participant(
    p_participant_id text,
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
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id
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
         WHERE x.outbox_id = p_outbox_id
           AND x.participant_id = p_participant_id;

        -- A dispatch carries the rail's reference, unique per rail (ADRs 0123, 0141): 22023 when
        -- the rail returns references and none was given, P7013 when another job of the rail
        -- reported it. Either error undoes the DELETE above: the job stays leased.
        IF p_state = 'DISPATCHED'::public.outbox_attempt_state THEN
            PERFORM public.record_outbox_rail_references(
                ARRAY[p_outbox_id], ARRAY[v_attempt_no], ARRAY[v_row.rail_type],
                ARRAY[p_rail_reference]
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

        -- The participant's next job becomes its head (ADR 0158), under the allocator row's
        -- lock, as complete_outbox_attempt does it.
        IF v_row.is_head THEN
            PERFORM public.outbox_promote_participant_head(p_participant_id);
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
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
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
     WHERE a.outbox_id = p_outbox_id
       AND a.participant_id = p_participant_id;

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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id;
        -- The participant's next job becomes its head (ADR 0158), under the allocator row's
        -- lock, as complete_outbox_attempt does it.
        IF v_row.is_head THEN
            PERFORM public.outbox_promote_participant_head(p_participant_id);
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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id;
    END IF;

    -- 7. Report what was recorded.
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;

CREATE OR REPLACE FUNCTION public.complete_outbox_attempts_batch_for_participant(
    p_participant_id text,
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
    v_stale uuid[];
    v_stale_ords integer[] := '{}';
    v_bad record;
    v_states public.outbox_attempt_state[];
    v_ceiling integer;
    v_plan_settings text[];
    v_element record;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_rail_type text;
    v_required boolean;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_retry_at timestamptz;
BEGIN
    -- 1. Validate; nothing has been written yet.
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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
    --    latest version of a row it had to wait for. One job per statement, by the participant
    --    and the job's id (a delegated body on Citus plans no join of the queue with the
    --    arrays); a participant has at most one leased head at a time, so a batch is short.
    FOR v_element IN
        SELECT i.ord, i.outbox_id, i.lease_token
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_lease_tokens))
               WITH ORDINALITY AS i (outbox_id, lease_token, ord)
         ORDER BY i.outbox_id
    LOOP
        PERFORM 1
           FROM public.payment_outbox_pending AS p
          WHERE p.participant_id = p_participant_id
            AND p.outbox_id = v_element.outbox_id
            AND p.claimed_by = p_worker_id
            AND p.lease_token IS NOT DISTINCT FROM v_element.lease_token
            FOR UPDATE;
        IF NOT FOUND THEN
            v_stale_ords := v_stale_ords || v_element.ord::integer;
        END IF;
    END LOOP;

    -- 3. All or nothing: one stale lease (a job of another participant is one) refuses the whole
    --    batch, before anything is written.
    IF pg_catalog.cardinality(v_stale_ords) > 0 THEN
        SELECT pg_catalog.array_agg(p_outbox_ids[o.ord] ORDER BY o.ord)
          INTO v_stale
          FROM pg_catalog.unnest(v_stale_ords) AS o (ord);
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

    -- 5b. A job leaving the queue promotes the participant's next job (step 7), under a lock of
    --     the participant's allocator row (ADRs 0116, 0158), taken here first, as
    --     complete_outbox_attempts_batch does. FOR NO KEY UPDATE: it conflicts with enqueue's
    --     upsert and writes no new row version.
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id = p_participant_id
        FOR NO KEY UPDATE;

    -- 5c. Rail references of the DISPATCHED elements (ADRs 0123, 0141), in input order: on a
    --     rail that returns references the element must carry one (22023 naming the element),
    --     then record_outbox_rail_references(), the rule's writer, records it (P7013 when
    --     another job of the rail, in or before this batch, reported it; one element per call,
    --     ADR 0165). Either error undoes the whole batch.
    FOR v_element IN
        SELECT i.ord, i.outbox_id, i.rail_reference
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
         WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state
         ORDER BY i.ord
    LOOP
        SELECT p.rail_type
          INTO v_rail_type
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_element.outbox_id;
        SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = v_element.outbox_id;
        SELECT r.returns_reference
          INTO v_required
          FROM public.outbox_rails AS r
         WHERE r.rail_code = pg_catalog.upper(v_rail_type COLLATE "C");
        IF COALESCE(v_required, false) THEN
            PERFORM public.outbox_require_ids(
                ARRAY[pg_catalog.format('p_rail_references element %s (outbox %s, DISPATCHED on '
                                        'rail %s)', v_element.ord, v_element.outbox_id,
                                        pg_catalog.upper(v_rail_type COLLATE "C"))],
                ARRAY[v_element.rail_reference],
                NULL
            );
        END IF;
        PERFORM public.record_outbox_rail_references(
            ARRAY[v_element.outbox_id], ARRAY[v_attempt_no], ARRAY[v_rail_type],
            ARRAY[v_element.rail_reference]
        );
    END LOOP;

    -- 6. Record each element in input order: number the attempt from the ledger, apply the
    --    ceiling, append the attempt, remove a terminal job or requeue a retry, and report one
    --    row per element. The rows are locked by this transaction since step 2.
    FOR v_element IN
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
         ORDER BY i.ord
    LOOP
        SELECT p.*
          INTO v_row
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_element.outbox_id;
        SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = v_element.outbox_id;
        v_state := v_element.state;
        IF v_state = 'RETRYABLE'::public.outbox_attempt_state AND v_attempt_no >= v_ceiling THEN
            v_state := 'FAILED'::public.outbox_attempt_state;
        END IF;
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
             COALESCE(v_row.claimed_at, v_now),
             CASE WHEN v_state <> 'RETRYABLE'::public.outbox_attempt_state THEN v_now END,
             v_element.rail_reference, v_element.rail_code, v_element.error_code,
             v_element.error_message, v_element.latency_ms, p_worker_id,
             v_element.lease_token, SESSION_USER);
        IF v_state = 'RETRYABLE'::public.outbox_attempt_state THEN
            v_retry_at := v_now + pg_catalog.make_interval(
                secs => GREATEST(1, v_element.retry_delay_seconds)
            );
            UPDATE public.payment_outbox_pending AS p
               SET attempt_count = v_attempt_no,
                   next_attempt_at = v_retry_at,
                   claimed_by = NULL,
                   lease_token = NULL,
                   lease_expires_at = NULL,
                   claimed_at = NULL
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_element.outbox_id;
        ELSE
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_element.outbox_id;
        END IF;
        outbox_id := v_element.outbox_id;
        attempt_no := v_attempt_no;
        state := v_state;
        RETURN NEXT;
    END LOOP;

    -- 7. The participant's next job becomes its head when its head left the queue (the
    --    allocator row is locked since step 5b; a requeued head stays the head: nothing to do).
    PERFORM public.outbox_promote_participant_head(p_participant_id);

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON TABLE public.outbox_rail_references IS
'Every rail reference reported by a DISPATCHED attempt, unique per rail (P7013 otherwise), with '
'its job. Written only by public.record_outbox_rail_references().';

-- Owner and grants of the new writer: owner only. A non-superuser migrator may hand a function
-- to the owner only while the owner may create in the schema (as 0029 and 0034 do).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.record_outbox_rail_references(uuid[], integer[], text[], text[], integer[])
    OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_id_ok(text, integer) OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;
REVOKE ALL ON FUNCTION public.record_outbox_rail_references(
    uuid[], integer[], text[], text[], integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_id_ok(text, integer) FROM PUBLIC;
