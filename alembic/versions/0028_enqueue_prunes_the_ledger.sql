-- 0028 enqueue reads the partitioned ledger by the job, not by the key (issue 15).
--
-- enqueue_payment_outbox (body: 0024) looked a replay's latest attempt up by
-- (instruction_id, idempotency_key): on the ledger partitioned by outbox_id (0025) that is one
-- index probe per partition, for every enqueue, new keys included. The key row
-- (payment_outbox_idempotency_keys) names the key's latest job (enqueue and redrive keep it so),
-- so a new key now reads no ledger partition and a known key only the rows of that job, which
-- prunes to one partition. A duplicate of a job whose partition was archived is still refused
-- by the key table's archived guard (P7020). Nothing else changes; owner and grants stay
-- (CREATE OR REPLACE).

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
    v_key_outbox_id uuid;
    v_sequence_id bigint;
    v_plan_settings text[];
    v_rail_code text;
    v_payload jsonb;
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
        SELECT k.outbox_id
          INTO v_key_outbox_id
          FROM public.payment_outbox_idempotency_keys AS k
         WHERE k.instruction_id = p_instruction_id
           AND k.idempotency_key = p_idempotency_key
           FOR UPDATE;
    END IF;

    -- 3 and 4. Still queued (state PENDING), else the latest attempt in the ledger. The ledger
    --    is read only for a known key, and only the rows of the job the key row names (enqueue
    --    and redrive keep it pointing at the key's latest job): a new key probes no ledger
    --    partition and a known key one partition (ADR 0133), instead of one index probe per
    --    partition by (instruction_id, idempotency_key).
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
                  a.participant_id, a.rail_type, NULL::jsonb AS payload
             FROM public.payment_outbox_attempts AS a
            WHERE v_known
              AND a.outbox_id = v_key_outbox_id
              AND a.instruction_id = p_instruction_id
              AND a.idempotency_key = p_idempotency_key
            ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
            LIMIT 1)
      ) AS f
     ORDER BY f.source
     LIMIT 1;
    IF FOUND THEN
        -- The stored payload is the job's row in payment_outbox_payloads (ADRs 0124, 0142; by
        -- its primary key). A job whose payload row is missing (enqueued by the old body while
        -- 0024 was committing) falls back to its queue row or a ledger row that kept a copy.
        SELECT x.payload
          INTO v_payload
          FROM public.payment_outbox_payloads AS x
         WHERE x.participant_id = v_found.participant_id
           AND x.outbox_id = v_found.outbox_id;
        IF NOT FOUND THEN
            v_payload := COALESCE(
                v_found.payload,
                (SELECT a.payload
                   FROM public.payment_outbox_attempts AS a
                  WHERE a.outbox_id = v_found.outbox_id
                    AND a.payload IS NOT NULL
                  LIMIT 1)
            );
        END IF;
        -- A replay is compared against what was stored; the rail by its upper-cased spelling
        -- (ADR 0122), so `rtgs` after `RTGS`, or after a job stored as `rtgs` before 0020, is
        -- the same job, and a replay after the rail was disabled still returns its job.
        IF v_found.participant_id IS DISTINCT FROM p_participant_id
           OR pg_catalog.upper(v_found.rail_type COLLATE "C")
              IS DISTINCT FROM pg_catalog.upper(p_rail_type COLLATE "C")
           OR v_payload IS DISTINCT FROM p_payload THEN
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
    -- 7. The payload, once per job (ADR 0124): the ledger rows of the job do not copy it.
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_outbox_id, p_payload);
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;
