-- 0034 participant-first outbox functions (issue 16, ADRs 0145, 0146, 0147): the bodies a
-- distributed outbox runs, on plain PostgreSQL 18 too (nothing here needs Citus).
--
-- 1. New functions, the participant first, then exactly the arguments and results of the
--    single-node function, with its EXECUTE grants: complete_outbox_attempt_for_participant,
--    complete_outbox_attempts_batch_for_participant (one participant per call),
--    repair_expired_leases_for_participant, cancel_outbox_job_for_participant,
--    redrive_outbox_job_for_participant, extend_outbox_lease_for_participant and
--    enqueue_payment_outbox_batch_for_participant. Same results, SQLSTATEs, fencing, ledger
--    rows, retry ceiling, head promotion and rail references as the single-node function; every
--    statement on the queue, allocator, key table, payloads and ledger filters by
--    participant_id = p_participant_id (so a function distributed with force_delegation on its
--    participant passes Citus's EnsureForceDelegationDistributionKey); no VOLATILE call inside an
--    UPDATE or DELETE (PL/pgSQL variables); a job of another participant is an unknown job.
-- 2. outbox_promote_participant_head: the completions' head promotion of 0032 (lock the
--    allocator row FOR NO KEY UPDATE, then promote, again while the first queued job has no
--    head flag), once, in statements that filter by the participant, for the new completions
--    and for promote_outbox_head() (trg_promote_outbox_head), which now calls it. Owner only.
-- 3. enqueue_payment_outbox restated: every statement on the key table, the allocator, the queue,
--    the payloads and the ledger filters by participant; the replay look-up is two statements
--    (queue, then ledger) instead of one UNION ALL; the rail's code and the head flag are read
--    before the queue insert (Citus plans no sub-select in an INSERT). Idempotency stays global
--    on one node: a key of another participant is found by a second look-up that runs only when
--    the participant's own look-up found nothing (never on a distributed key table, which is
--    keyed by participant).
-- 4. claim_outbox_batch_for_participant (0029) is not restated: with per-participant FIFO a
--    participant has one head, so there is never an unleased and an expired head to choose
--    between (0032's two passes), and its one statement already reads neither the lease index
--    nor the ledger (the ledger only in the take-over's own statements; ADR 0147).
-- Owners and grants of the restated functions stay (CREATE OR REPLACE).

-- 2. The head promotion ---------------------------------------------------------------------------

CREATE FUNCTION public.outbox_promote_participant_head(p_participant_id text) RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_first uuid;
    v_is_head boolean;
BEGIN
    -- Lock the allocator row first, as enqueue's upsert does (ADR 0116): the next statement's
    -- snapshot then holds every job of the participant enqueued before, and an enqueue waiting
    -- for the row sees the promotion (ADR 0158).
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id = p_participant_id
        FOR NO KEY UPDATE;
    -- The participant's first queued job becomes its head. Again, with a new snapshot, when the
    -- job it waited for was deleted meanwhile (a cancel of the next job): the one after it
    -- becomes the head, not nobody. One-table statements without sub-selects (Citus plans no
    -- sub-select with parameters in a delegated body).
    LOOP
        SELECT q.outbox_id, q.is_head
          INTO v_first, v_is_head
          FROM public.payment_outbox_pending AS q
         WHERE q.participant_id = p_participant_id
         ORDER BY q.sequence_id
         LIMIT 1;
        EXIT WHEN NOT FOUND OR v_is_head;
        UPDATE public.payment_outbox_pending AS p
           SET is_head = true
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_first
           AND NOT p.is_head;
        EXIT WHEN FOUND;
    END LOOP;
END
$$;

COMMENT ON FUNCTION public.outbox_promote_participant_head(text) IS
'Makes the participant''s queued job with the lowest sequence_id its head, under a FOR NO KEY '
'UPDATE lock of its allocator row (ADRs 0116, 0158); used by the participant-first completions, '
'which remove a head under a live lease (trg_promote_outbox_head skips those). Every statement '
'filters by the participant. Owner only.';

-- The trigger function (body: 0032) promotes through the same helper: on Citus it fires on the
-- participant's shard inside a delegated cancel, repair or claim, where every statement must filter
-- by the participant (its 0032 UPDATE found the row by outbox_id alone).
CREATE OR REPLACE FUNCTION public.promote_outbox_head() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM public.outbox_promote_participant_head(OLD.participant_id);
    RETURN NULL;
END
$$;

-- 1. The participant-first functions --------------------------------------------------------------

CREATE FUNCTION public.complete_outbox_attempt_for_participant(
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

CREATE FUNCTION public.complete_outbox_attempts_batch_for_participant(
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
    --     then record_outbox_rail_reference() records it (P7013 when another job of the rail, in
    --     or before this batch, reported it). Either error undoes the whole batch.
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
        PERFORM public.record_outbox_rail_reference(
            v_element.outbox_id, v_attempt_no, v_rail_type, v_element.rail_reference
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

-- repair_expired_leases for one participant (body: repair_expired_leases, 0024).
CREATE FUNCTION public.repair_expired_leases_for_participant(
    p_participant_id text,
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
    v_ceiling integer;
    v_state public.outbox_attempt_state;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);

    v_now := pg_catalog.clock_timestamp();

    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.attempt_count, p.claimed_by,
               p.lease_expires_at, p.lease_token, p.claimed_at
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.lease_token IS NOT NULL
           AND p.lease_expires_at <= v_now
         ORDER BY p.lease_expires_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    LOOP
        -- The same numbering as a claim's take-over: the ledger's last attempt (or the row's
        -- attempt_count if higher) plus one.
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

        -- worker_id records the worker that lost the lease; the repairing worker is named in
        -- error_message.
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
             COALESCE(v_row.claimed_at, v_now),
             CASE WHEN v_state = 'FAILED'::public.outbox_attempt_state THEN v_now END,
             'LEASE_EXPIRED',
             CASE
                 WHEN v_state = 'FAILED'::public.outbox_attempt_state
                     THEN pg_catalog.format('lease expired at %s; retry ceiling %s reached; '
                                            'failed by %s', v_row.lease_expires_at, v_ceiling,
                                            p_worker_id)
                 ELSE pg_catalog.format('lease expired at %s; requeued by %s',
                                        v_row.lease_expires_at, p_worker_id)
             END,
             v_row.claimed_by, v_row.lease_token, SESSION_USER);

        -- At the ceiling the job is terminal and leaves the queue (trg_promote_outbox_head
        -- promotes: the lease has expired).
        IF v_state = 'FAILED'::public.outbox_attempt_state THEN
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_row.outbox_id;
            outbox_id := v_row.outbox_id;
            attempt_no := v_attempt_no;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- In doubt from now on, due again at once, keeping its place in the queue.
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = LEAST(p.next_attempt_at, v_now),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL,
               claimed_at = NULL,
               in_doubt = true
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        attempt_no := v_attempt_no;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION public.repair_expired_leases_for_participant(text, integer, text) IS
'repair_expired_leases for one participant (ADR 0147: one shard on Citus): requeues up to '
'p_batch_size (1..1000) of the participant''s jobs whose lease expired (SKIP LOCKED), each with a '
'ZOMBIE_REQUEUE attempt (in doubt from then on, due now, keeping its place), or FAILED at '
'outbox_retry_ceiling() (the job leaves the queue). 22023 on invalid arguments. Returns '
'(outbox_id, attempt_no).';

-- cancel_outbox_job for one participant (body: cancel_outbox_job, 0020).
CREATE FUNCTION public.cancel_outbox_job_for_participant(
    p_participant_id text,
    p_outbox_id uuid,
    p_reason text,
    p_ticket text
) RETURNS TABLE (outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_outcome record;
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

    -- Lock the queue row: a worker's completion in flight finishes first, claims and repairs
    -- skip it (SKIP LOCKED) until we commit.
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT a.state, a.attempt_no
          INTO v_outcome
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
           AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'CANCELLED'::public.outbox_attempt_state);
        IF FOUND THEN
            RAISE EXCEPTION 'JOB_ALREADY_TERMINAL: outbox % already ended with % (attempt %); '
                            'it cannot be cancelled', p_outbox_id, v_outcome.state,
                v_outcome.attempt_no
                USING ERRCODE = 'P7005';
        END IF;
        RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id % for participant %', p_outbox_id,
            pg_catalog.quote_literal(p_participant_id)
            USING ERRCODE = 'P7010';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    IF v_row.lease_token IS NOT NULL AND v_row.lease_expires_at > v_now THEN
        RAISE EXCEPTION 'JOB_LEASED: outbox % is leased by worker % until %; it may be being '
                        'dispatched right now', p_outbox_id,
            pg_catalog.quote_literal(v_row.claimed_by), v_row.lease_expires_at
            USING ERRCODE = 'P7011',
                  HINT = 'Wait for the worker''s completion or for the lease to expire, then '
                         'cancel again if the job is still queued.';
    END IF;

    SELECT GREATEST(COALESCE(pg_catalog.max(a.attempt_no), 0), v_row.attempt_count)
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id;

    IF v_row.lease_token IS NOT NULL THEN
        v_attempt_no := v_attempt_no + 1;
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no,
             'ZOMBIE_REQUEUE'::public.outbox_attempt_state, 'LEASE_EXPIRED',
             pg_catalog.format('lease expired at %s; found by cancel_outbox_job (%s)',
                               v_row.lease_expires_at, SESSION_USER),
             v_row.claimed_by);
    END IF;

    v_attempt_no := v_attempt_no + 1;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, completed_at, acted_by, reason, ticket)
    VALUES
        (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_attempt_no,
         'CANCELLED'::public.outbox_attempt_state, v_now, SESSION_USER, p_reason, p_ticket);

    -- trg_promote_outbox_head promotes the next job (the row is unleased or its lease expired).
    DELETE FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id;

    RETURN QUERY
    SELECT p_outbox_id, v_attempt_no, 'CANCELLED'::public.outbox_attempt_state;
END
$$;

COMMENT ON FUNCTION public.cancel_outbox_job_for_participant(text, uuid, text, text) IS
'cancel_outbox_job for a job of one participant (ADR 0147: one shard on Citus): a CANCELLED '
'attempt naming session_user, p_reason and p_ticket, and the job leaves the queue; an expired '
'lease is recorded as ZOMBIE_REQUEUE first. P7011 JOB_LEASED under a live lease, P7005 '
'JOB_ALREADY_TERMINAL for a finished job, P7010 JOB_NOT_FOUND for an unknown id or a job of '
'another participant, 22023 on invalid arguments. EXECUTE for symphony_control.';

-- extend_outbox_lease for one participant (body: extend_outbox_lease, 0024).
CREATE FUNCTION public.extend_outbox_lease_for_participant(
    p_participant_id text,
    p_outbox_id uuid,
    p_lease_token uuid,
    p_worker_id text,
    p_lease_seconds integer
) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_expires_at timestamptz;
    v_new_expiry timestamptz;
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
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_plan_settings := public.outbox_pin_plan_settings();

    -- The new expiry from a variable: Citus refuses a VOLATILE call (clock_timestamp()) inside
    -- an UPDATE of a distributed table.
    v_new_expiry := pg_catalog.clock_timestamp()
                    + pg_catalog.make_interval(secs => p_lease_seconds);
    UPDATE public.payment_outbox_pending AS p
       SET lease_expires_at = v_new_expiry
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
       AND p.claimed_by = p_worker_id
       AND p.lease_token IS NOT DISTINCT FROM p_lease_token
    RETURNING p.lease_expires_at INTO v_expires_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'P7002',
                  HINT = 'The lease was replaced (repaired or claimed again) or never held: '
                         'stop working on it; do not dispatch again under it.';
    END IF;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN v_expires_at;
END
$$;

COMMENT ON FUNCTION public.extend_outbox_lease_for_participant(text, uuid, uuid, text, integer) IS
'extend_outbox_lease for a job of one participant (ADR 0147: one shard on Citus): sets the lease '
'to expire p_lease_seconds (1..86400) from now and returns the new expiry. P7002 LEASE_LOST '
'unless worker and token are the job''s current lease (a job of another participant is an '
'unknown job), 22023 on invalid arguments.';

-- redrive_outbox_job for one participant (body: redrive_outbox_job, 0024).
CREATE FUNCTION public.redrive_outbox_job_for_participant(
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
         payload, is_head)
    VALUES (v_new, v_outcome.instruction_id, p_participant_id, v_sequence_id,
            v_outcome.idempotency_key, v_outcome.rail_type, v_payload, v_head)
    RETURNING p.sequence_id, p.created_at INTO sequence_id, created_at;

    -- The new job's payload row: once per job, even with the same content (ADR 0124).
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

COMMENT ON FUNCTION public.redrive_outbox_job_for_participant(text, uuid, text, text) IS
'redrive_outbox_job for a job of one participant (ADR 0147: one shard on Citus): queues a FAILED '
'or CANCELLED job again as a new job (new outbox_id and sequence number, same instruction, key, '
'participant, rail and payload) and records a REDRIVEN row on the old job naming session_user, '
'p_reason, p_ticket and the new job. P7012 NOT_REDRIVABLE for a queued, DISPATCHED, already '
'redriven or superseded job, P7010 JOB_NOT_FOUND for an unknown id or a job of another '
'participant, 22023 on invalid arguments. EXECUTE for symphony_control.';

-- enqueue_payment_outbox_batch for one participant: delegable on Citus (ADR 0147) --------------

CREATE FUNCTION public.enqueue_payment_outbox_batch_for_participant(
    p_participant_id text,
    p_instruction_ids text[],
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
AS $$
DECLARE
    v_count integer := pg_catalog.cardinality(p_instruction_ids);
    v_lengths integer[];
    v_index integer;
    v_hint text;
    v_result record;
    v_ids uuid[] := '{}';
    v_seq bigint[] := '{}';
    v_at timestamptz[] := '{}';
    v_state text[] := '{}';
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    IF p_instruction_ids IS NULL OR v_count NOT BETWEEN 1 AND 1000
       OR pg_catalog.array_ndims(p_instruction_ids) <> 1 THEN
        RAISE EXCEPTION 'p_instruction_ids must be a one-dimensional array of 1 to 1000 '
                        'elements, got %', COALESCE(v_count::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_lengths := ARRAY[pg_catalog.cardinality(p_idempotency_keys),
                       pg_catalog.cardinality(p_rail_types),
                       pg_catalog.cardinality(p_payloads),
                       COALESCE(pg_catalog.cardinality(p_not_before), v_count),
                       COALESCE(pg_catalog.cardinality(p_priorities), v_count)];
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_lengths) AS l (n)
                WHERE l.n IS DISTINCT FROM v_count) THEN
        RAISE EXCEPTION 'every array must have as many elements as p_instruction_ids (%), got '
                        'p_idempotency_keys %, p_rail_types %, p_payloads %, p_not_before %, '
                        'p_priorities %',
            v_count, COALESCE(v_lengths[1]::text, 'NULL'), COALESCE(v_lengths[2]::text, 'NULL'),
            COALESCE(v_lengths[3]::text, 'NULL'), v_lengths[4], v_lengths[5]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- One subtransaction for the whole batch, only to name the failing element (as
    -- enqueue_payment_outbox_batch does): all or nothing.
    BEGIN
        -- 1. Enqueue's argument rules over the whole batch first: the first element (in array
        --    order) that breaks one gets enqueue's message.
        SELECT g.i
          INTO v_index
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
         WHERE NOT public.outbox_enqueue_args_ok(
                   p_instruction_ids[g.i], p_participant_id, p_idempotency_keys[g.i],
                   p_rail_types[g.i], p_payloads[g.i], p_not_before[g.i],
                   CASE WHEN p_priorities IS NULL THEN 0::smallint ELSE p_priorities[g.i] END)
         ORDER BY g.i
         LIMIT 1;
        IF FOUND THEN
            PERFORM public.outbox_check_enqueue_args(
                p_instruction_ids[v_index], p_participant_id, p_idempotency_keys[v_index],
                p_rail_types[v_index], p_payloads[v_index], p_not_before[v_index],
                CASE WHEN p_priorities IS NULL THEN 0::smallint
                     ELSE p_priorities[v_index] END);
        END IF;

        -- 2. Each element as enqueue_payment_outbox enqueues it, in array order: a participant's
        --    new jobs take consecutive numbers in array order, a key given twice is one job (the
        --    second is a replay of the first: P7004 if it differs), a key known before the batch
        --    answers with its job. Every statement of enqueue_payment_outbox filters by the
        --    participant, so on Citus the whole call runs on the participant's node.
        FOR v_i IN 1 .. v_count LOOP
            v_index := v_i;  -- (a FOR variable is local to its loop: the handler reads v_index)
            SELECT e.outbox_id, e.sequence_id, e.created_at, e.state
              INTO v_result
              FROM public.enqueue_payment_outbox(
                       p_instruction_ids[v_index], p_participant_id, p_idempotency_keys[v_index],
                       p_rail_types[v_index], p_payloads[v_index], p_not_before[v_index],
                       CASE WHEN p_priorities IS NULL THEN 0::smallint
                            ELSE p_priorities[v_index] END) AS e;
            v_ids := v_ids || v_result.outbox_id;
            v_seq := v_seq || v_result.sequence_id;
            v_at := v_at || v_result.created_at;
            v_state := v_state || v_result.state;
        END LOOP;
        v_index := NULL;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
        IF v_index IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'element % of the batch: %', v_index, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = v_hint;
    END;

    RETURN QUERY
        SELECT d.i::integer, d.outbox_id, d.sequence_id, d.created_at, d.state
          FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_seq),
                          pg_catalog.unnest(v_at), pg_catalog.unnest(v_state))
               WITH ORDINALITY AS d (outbox_id, sequence_id, created_at, state, i)
         ORDER BY d.i;
END
$$;

COMMENT ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(
    text, text[], text[], text[], jsonb[], timestamptz[], smallint[]) IS
'enqueue_payment_outbox_batch for one participant (ADR 0147: delegable on Citus, where the '
'multi-participant batch is not): element i of every array is enqueued as '
'enqueue_payment_outbox(p_instruction_ids[i], p_participant_id, ...) would, in array order, 1 to '
'1000 elements; new jobs take consecutive numbers in array order; a key given twice is one job. '
'Returns one row per element in array order. All or nothing: the argument rules are checked '
'over the whole batch first, then the first refused element fails the call with enqueue''s '
'SQLSTATE, its message prefixed with "element <i> of the batch: ". 22023 when the arrays are '
'missing, empty, over 1000 or of different lengths.';

COMMENT ON FUNCTION public.complete_outbox_attempt_for_participant(
    text, uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer)
IS
'complete_outbox_attempt for a job of one participant (ADR 0147: one shard on Citus, except the '
'rail reference''s registry): the same fencing (P7002 LEASE_LOST unless worker and token are '
'the job''s current lease; a job of another participant is an unknown job), P7003 for a state '
'other than DISPATCHED, FAILED or RETRYABLE, the retry ceiling, the rail reference (22023 when '
'required and missing, P7013 RAIL_REFERENCE_REUSED), the head promotion and the ledger row. '
'22023 on invalid arguments. Returns (attempt_no, state).';

COMMENT ON FUNCTION public.complete_outbox_attempts_batch_for_participant(
    text, text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[]) IS
'complete_outbox_attempts_batch for jobs of one participant (ADR 0147: one shard on Citus, '
'except the rail references'' registry), all or nothing, with the same results and SQLSTATEs; an '
'element naming a job of another participant is stale like an unknown job (P7002 naming it, '
'nothing recorded). Returns (outbox_id, attempt_no, state) per element, in input order.';

-- Owners and grants: the single-node function's EXECUTE grants; helpers owner only. A
-- non-superuser migrator may hand a function to the owner only while the owner may create in the
-- schema (as 0029 does).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.outbox_promote_participant_head(text) OWNER TO symphony_owner;
ALTER FUNCTION public.complete_outbox_attempt_for_participant(
    text, uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer)
    OWNER TO symphony_owner;
ALTER FUNCTION public.complete_outbox_attempts_batch_for_participant(
    text, text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[])
    OWNER TO symphony_owner;
ALTER FUNCTION public.repair_expired_leases_for_participant(text, integer, text)
    OWNER TO symphony_owner;
ALTER FUNCTION public.cancel_outbox_job_for_participant(text, uuid, text, text)
    OWNER TO symphony_owner;
ALTER FUNCTION public.redrive_outbox_job_for_participant(text, uuid, text, text)
    OWNER TO symphony_owner;
ALTER FUNCTION public.extend_outbox_lease_for_participant(text, uuid, uuid, text, integer)
    OWNER TO symphony_owner;
ALTER FUNCTION public.enqueue_payment_outbox_batch_for_participant(
    text, text[], text[], text[], jsonb[], timestamptz[], smallint[])
    OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

REVOKE ALL ON FUNCTION public.outbox_promote_participant_head(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.complete_outbox_attempt_for_participant(
    text, uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.complete_outbox_attempts_batch_for_participant(
    text, text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[])
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.repair_expired_leases_for_participant(text, integer, text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.cancel_outbox_job_for_participant(text, uuid, text, text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.redrive_outbox_job_for_participant(text, uuid, text, text)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.extend_outbox_lease_for_participant(text, uuid, uuid, text, integer)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(
    text, text[], text[], text[], jsonb[], timestamptz[], smallint[])
    FROM PUBLIC;

GRANT EXECUTE ON FUNCTION public.complete_outbox_attempt_for_participant(
    text, uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer)
    TO symphony_executor, symphony_control, test_user;
GRANT EXECUTE ON FUNCTION public.complete_outbox_attempts_batch_for_participant(
    text, text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[])
    TO symphony_executor, symphony_control, test_user;
GRANT EXECUTE ON FUNCTION public.repair_expired_leases_for_participant(text, integer, text)
    TO symphony_executor, symphony_control, test_user;
GRANT EXECUTE ON FUNCTION public.extend_outbox_lease_for_participant(
    text, uuid, uuid, text, integer)
    TO symphony_executor, symphony_control, test_user;
GRANT EXECUTE ON FUNCTION public.cancel_outbox_job_for_participant(text, uuid, text, text)
    TO symphony_control;
GRANT EXECUTE ON FUNCTION public.redrive_outbox_job_for_participant(text, uuid, text, text)
    TO symphony_control;
GRANT EXECUTE ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(
    text, text[], text[], text[], jsonb[], timestamptz[], smallint[])
    TO symphony_ingest, symphony_control, test_user;

-- 3. enqueue_payment_outbox (body: 0031): every statement filters by participant ----------------

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
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload, next_attempt_at, priority, is_head)
    VALUES (v_outbox_id, p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key,
            v_rail_code, p_payload, GREATEST(p_not_before, pg_catalog.now()), p_priority, v_head)
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

-- enqueue_payment_outbox_batch (body: 0031): the replay look-up under the key row's participant, in
-- two statements, as enqueue_payment_outbox (above).

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
                     rail_type, payload, next_attempt_at, priority, is_head)
                SELECT jobs.outbox_id, p_instruction_ids[jobs.i], jobs.participant_id,
                       firsts.first_sequence_id + jobs.rank - 1, p_idempotency_keys[jobs.i],
                       r.rail_code, p_payloads[jobs.i],
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
                RETURNING p.outbox_id, p.sequence_id, p.created_at, p.participant_id, p.payload
            ),
            payloads AS (  -- runs to completion although nothing reads it
                INSERT INTO public.payment_outbox_payloads AS x
                    (participant_id, outbox_id, payload)
                SELECT ins.participant_id, ins.outbox_id, ins.payload
                  FROM ins
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
