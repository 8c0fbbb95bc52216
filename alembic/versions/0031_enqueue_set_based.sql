-- 0031 cheaper enqueue, set-based batch enqueue, participant_id on the key table (issue 17 P4,
-- P4b; issue 16 prerequisite; ADRs 0135, 0136).
--
-- 1. payment_outbox_idempotency_keys gains participant_id: the participant of the job the key
--    names, back-filled from the queue, else the ledger's latest attempt of the key, else the
--    job's payload row. A key whose job left no trace (its ledger partition archived, or removed
--    by hand before any attempt) stays NULL, and so do key rows the other writers insert (the
--    P7005 guards for hand writes, redrive for a job that had no key row): the column stays
--    nullable (ADR 0135). Both enqueues write it. The primary key stays (instruction_id,
--    idempotency_key): idempotency stays global.
-- 2. Enqueue's rules get one owner each, usable per row and per set: outbox_enqueue_args_ok (an
--    inlinable SQL predicate, true when the arguments pass enqueue's argument rules),
--    outbox_check_enqueue_args (raises enqueue's 22023 message for the first rule an argument
--    breaks; called only when the predicate said no) and outbox_payload_numbers_plain (true
--    when every number of a payload is an integer of at most 15 digits, which every JSON
--    consumer reads exactly; the exact check, check_outbox_payload_numbers, runs otherwise).
-- 3. enqueue_payment_outbox restated for cost, not behaviour (ADR 0135): the predicate instead
--    of five checks and a helper call, function-level SET clauses instead of the pin/restore
--    helper pair, the exact number walk only for payloads with other numbers, the rail's
--    canonical code joined in the queue insert (outbox_rail_code raises when it found none),
--    OUT variables instead of RETURN QUERY; it writes participant_id into the key row.
-- 4. enqueue_payment_outbox_batch restated set-based (ADR 0136): one statement per table over
--    the whole batch (keys, allocators, queue, payloads) with the same validation, idempotency
--    (replays, P7004, duplicates inside the batch), per-participant gapless sequencing and
--    all-or-nothing semantics; errors still name the element.

-- 1. The key row's participant ------------------------------------------------------------------

ALTER TABLE public.payment_outbox_idempotency_keys ADD COLUMN participant_id text;

COMMENT ON COLUMN public.payment_outbox_idempotency_keys.participant_id IS
'The participant of the job the key names (revision 0031): written by both enqueues, back-filled '
'from the queue, the ledger or the payload row. NULL for keys whose job had left no trace when '
'0031 ran (archived, or removed by hand) and for key rows inserted by the P7005 guards (hand '
'writes) or by redrive_outbox_job (a job without a key row).';

UPDATE public.payment_outbox_idempotency_keys AS k
   SET participant_id = coalesce(
           (SELECT p.participant_id
              FROM public.payment_outbox_pending AS p
             WHERE p.instruction_id = k.instruction_id
               AND p.idempotency_key = k.idempotency_key
             ORDER BY p.created_at DESC, p.outbox_id DESC
             LIMIT 1),
           (SELECT a.participant_id
              FROM public.payment_outbox_attempts AS a
             WHERE a.instruction_id = k.instruction_id
               AND a.idempotency_key = k.idempotency_key
             ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
             LIMIT 1)
       )
 WHERE k.participant_id IS NULL;

-- A key whose job has no queue row and no ledger row yet may still have its payload row
-- (enqueued, then removed by hand): the payload table is keyed (participant_id, outbox_id).
UPDATE public.payment_outbox_idempotency_keys AS k
   SET participant_id = x.participant_id
  FROM public.payment_outbox_payloads AS x
 WHERE k.participant_id IS NULL
   AND x.outbox_id = k.outbox_id;

-- 2. The rules, once each ------------------------------------------------------------------------

CREATE FUNCTION public.outbox_enqueue_args_ok(
    p_instruction_id text,
    p_participant_id text,
    p_idempotency_key text,
    p_rail_type text,
    p_payload jsonb,
    p_not_before timestamptz,
    p_priority smallint
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN p_instruction_id IS NOT NULL
   AND pg_catalog.btrim(p_instruction_id, E' \t\n\r\f\x0B') <> ''
   AND pg_catalog.octet_length(p_instruction_id) <= 1024
   AND p_participant_id IS NOT NULL
   AND pg_catalog.btrim(p_participant_id, E' \t\n\r\f\x0B') <> ''
   AND pg_catalog.octet_length(p_participant_id) <= 1024
   AND p_idempotency_key IS NOT NULL
   AND pg_catalog.btrim(p_idempotency_key, E' \t\n\r\f\x0B') <> ''
   AND pg_catalog.octet_length(p_idempotency_key) <= 1024
   AND p_rail_type IS NOT NULL
   AND pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') <> ''
   AND pg_catalog.octet_length(p_rail_type) <= 1024
   AND p_payload IS NOT NULL
   AND pg_catalog.jsonb_typeof(p_payload) = 'object'
   AND pg_catalog.octet_length(p_payload::text) <= 65536
   AND p_priority IS NOT NULL
   AND (p_not_before IS NULL OR pg_catalog.isfinite(p_not_before));

COMMENT ON FUNCTION public.outbox_enqueue_args_ok(text, text, text, text, jsonb, timestamptz,
                                                  smallint) IS
'Enqueue''s argument rules as one predicate (inlined where it is called): true when the ids are '
'non-blank and at most 1024 bytes, the payload a JSON object of at most 65536 bytes, the priority '
'not NULL and not_before finite or NULL. When false, outbox_check_enqueue_args raises the '
'message. Owner only.';

CREATE FUNCTION public.outbox_check_enqueue_args(
    p_instruction_id text,
    p_participant_id text,
    p_idempotency_key text,
    p_rail_type text,
    p_payload jsonb,
    p_not_before timestamptz,
    p_priority smallint
) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
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
    IF NOT public.outbox_enqueue_args_ok(p_instruction_id, p_participant_id, p_idempotency_key,
                                         p_rail_type, p_payload, p_not_before, p_priority) THEN
        RAISE EXCEPTION 'outbox_enqueue_args_ok and outbox_check_enqueue_args disagree'
            USING ERRCODE = 'internal_error';
    END IF;
END
$$;

COMMENT ON FUNCTION public.outbox_check_enqueue_args(text, text, text, text, jsonb, timestamptz,
                                                     smallint) IS
'Raises enqueue''s 22023 message for the first argument rule broken (ids, then payload, priority, '
'not_before); XX000 if it finds none although outbox_enqueue_args_ok said no. Owner only.';

CREATE FUNCTION public.outbox_payload_numbers_plain(p_payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN NOT pg_catalog.jsonb_path_exists(
    p_payload,
    'strict $.** ? (@.type() == "number" && '
    '(@.floor() != @ || @ > 999999999999999 || @ < -999999999999999))'
);

COMMENT ON FUNCTION public.outbox_payload_numbers_plain(jsonb) IS
'True when every number in the payload is an integer of at most 15 digits (exact for every JSON '
'consumer), so check_outbox_payload_numbers has nothing to refuse; false sends the payload '
'through that exact check. Owner only.';

REVOKE ALL ON FUNCTION public.outbox_enqueue_args_ok(text, text, text, text, jsonb, timestamptz,
                                                     smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_check_enqueue_args(text, text, text, text, jsonb,
                                                        timestamptz, smallint) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_payload_numbers_plain(jsonb) FROM PUBLIC;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.outbox_enqueue_args_ok(text, text, text, text, jsonb, timestamptz, smallint)
    OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_check_enqueue_args(text, text, text, text, jsonb, timestamptz,
                                                smallint)
    OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_payload_numbers_plain(jsonb) OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

-- 3. enqueue_payment_outbox --------------------------------------------------------------------

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
    v_sequence_id bigint;
    v_payload jsonb;
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
    --    primary key, which no runtime role can read or lock. A new key: the inserted row is ours
    --    and a concurrent duplicate waits on it until we commit (then finds our job) or roll back
    --    (then inserts it). A known key: lock its row. Under REPEATABLE READ or SERIALIZABLE a
    --    key committed after the snapshot makes PostgreSQL raise 40001 here (ADR 0006).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (p_instruction_id, p_idempotency_key, public.uuid_v7_or_random(), p_participant_id)
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

    -- 3 and 4. A new key has no job: the key table's primary key serialises every writer of
    --    the key (the P7005 guards give a hand-written queue row its key row), so only a known
    --    key is looked up: still queued (state PENDING), else the latest attempt in the ledger,
    --    read only for the job its key row names (ADR 0133, revision 0028).
    IF v_known THEN
        SELECT f.outbox_id, f.sequence_id, f.created_at, f.state, f.participant_id, f.rail_type,
               f.payload
          INTO v_found
          FROM (
              SELECT 1 AS source, p.outbox_id, p.sequence_id, p.created_at,
                     'PENDING'::text AS state, p.participant_id, p.rail_type, p.payload
                FROM public.payment_outbox_pending AS p
               WHERE p.instruction_id = p_instruction_id
                 AND p.idempotency_key = p_idempotency_key
              UNION ALL
              (SELECT 2 AS source, a.outbox_id, a.sequence_id, a.created_at,
                      a.state::text AS state, a.participant_id, a.rail_type, NULL::jsonb AS payload
                 FROM public.payment_outbox_attempts AS a
                WHERE a.outbox_id = v_key_outbox_id
                  AND a.instruction_id = p_instruction_id
                  AND a.idempotency_key = p_idempotency_key
                ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
                LIMIT 1)
          ) AS f
         ORDER BY f.source
         LIMIT 1;
        IF FOUND THEN
            -- The stored payload is the job's row in payment_outbox_payloads (ADRs 0124, 0142);
            -- a job whose payload row is missing falls back to its queue row or a ledger copy.
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
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_outbox_id,
               participant_id = p_participant_id
         WHERE k.instruction_id = p_instruction_id
           AND k.idempotency_key = p_idempotency_key;
    END IF;

    -- 6. Allocate the participant's next sequence number (its allocator row stays locked until
    --    commit), then insert the job in a second statement: under READ COMMITTED that statement
    --    sees every job of the participant committed while we waited for the row, so the head
    --    flag is right (ADR 0116). The rail's canonical code is joined in: an unknown or
    --    disabled rail inserts nothing and outbox_rail_code raises 22023 below. ON CONFLICT DO
    --    NOTHING only matters for a row written around the functions after the look-up: the
    --    serialization failure rolls the allocated number back (ADR 0006).
    --    A known participant's row is advanced by a plain UPDATE (no speculative insertion, no
    --    separate row-lock WAL record); the upsert only runs for a participant's first job.
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

    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload, next_attempt_at, priority, is_head)
    SELECT v_outbox_id, p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key,
           r.rail_code, p_payload, GREATEST(p_not_before, pg_catalog.now()), p_priority,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = p_participant_id
           )
      FROM public.outbox_rails AS r
     WHERE r.rail_code = pg_catalog.upper(p_rail_type COLLATE "C")
       AND r.enabled
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at INTO outbox_id, sequence_id, created_at;
    IF NOT FOUND THEN
        PERFORM public.outbox_rail_code(p_rail_type);
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;
    -- 7. The payload, once per job (ADR 0124): the ledger rows of the job do not copy it.
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_outbox_id, p_payload);
    state := 'PENDING';
    RETURN NEXT;
END
$$;

-- 4. enqueue_payment_outbox_batch ----------------------------------------------------------------

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
                SELECT f.i, k.outbox_id
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
                SELECT s.outbox_id, s.sequence_id, s.created_at, s.state, s.participant_id,
                       s.rail_type, s.payload
                  INTO v_found
                  FROM (
                      SELECT 1 AS source, p.outbox_id, p.sequence_id, p.created_at,
                             'PENDING'::text AS state, p.participant_id, p.rail_type, p.payload
                        FROM public.payment_outbox_pending AS p
                       WHERE p.instruction_id = p_instruction_ids[v_index]
                         AND p.idempotency_key = p_idempotency_keys[v_index]
                      UNION ALL
                      (SELECT 2 AS source, a.outbox_id, a.sequence_id, a.created_at,
                              a.state::text AS state, a.participant_id, a.rail_type,
                              NULL::jsonb AS payload
                         FROM public.payment_outbox_attempts AS a
                        WHERE a.outbox_id = v_known.outbox_id
                          AND a.instruction_id = p_instruction_ids[v_index]
                          AND a.idempotency_key = p_idempotency_keys[v_index]
                        ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
                        LIMIT 1)
                  ) AS s
                 ORDER BY s.source
                 LIMIT 1;
                IF FOUND THEN
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
                    UPDATE public.payment_outbox_idempotency_keys AS k
                       SET outbox_id = v_job_ids[pg_catalog.cardinality(v_job_ids)],
                           participant_id = p_participant_ids[v_index]
                     WHERE k.instruction_id = p_instruction_ids[v_index]
                       AND k.idempotency_key = p_idempotency_keys[v_index];
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

COMMENT ON FUNCTION public.enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[],
                                                        timestamptz[], smallint[]) IS
'Enqueues element i of every array as one job with enqueue_payment_outbox''s validation, '
'idempotency, rails and per-participant sequencing, set-based (one statement per table), 1 to '
'1000 elements; a participant''s new jobs take consecutive numbers in array order; a key given '
'twice is one job. Returns one row per element in array order (ordinality is the element''s '
'position). All or nothing: the first refused element (in array order, per rule) fails the call '
'with enqueue''s SQLSTATE, its message prefixed with "element <i> of the batch: ", and nothing '
'of the batch is written. 22023 when the arrays are missing, empty, over 1000 or of different '
'lengths.';
