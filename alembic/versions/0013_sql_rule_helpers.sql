-- 0013 SQL rules in one place (issue 13 item 6, ADR 0115).
--
-- Two rules were written inline in every outbox function: the id rule (a text id is non-NULL,
-- not blank and at most 1024 bytes; 22023 naming the argument) 16 times, and the plan-settings
-- save/restore of ADR 0041 (force_generic_plan and enable_seqscan off for the function's own
-- statements, the caller's values put back before returning) 10 times. Revision 0010 restated
-- 789 lines of bodies to change about 58. They now live in four small owner-only helpers:
--
--   public.outbox_require_ids(names text[], values text[], max_bytes integer DEFAULT 1024)
--       the id rule: the first NULL or blank value, then the first value over max_bytes
--   public.outbox_limit_bytes(names text[], values text[], max_bytes integer[])
--       the size limits of optional arguments: the first value over its limit (NULL passes)
--   public.outbox_pin_plan_settings() / outbox_restore_plan_settings(saved text[])
--
-- and the outbox functions below call them. No behaviour change: the same checks in the same
-- order, the same messages and SQLSTATEs; the bodies are those of 0011 otherwise.
-- CREATE OR REPLACE keeps owner, grants and comments of the restated functions.
--
-- The helpers are not SECURITY DEFINER (they read no table), pin their search_path, are owned
-- by symphony_owner (the role the outbox functions run as) and are executable by nobody else.
-- A SET LOCAL made by set_config(..., true) inside a function whose SET clause names another
-- variable outlives the call (it is popped only for the variables the clause names), so the
-- pinned search_path does not undo the pinned plan settings.


-- The first argument (in order) longer than its limit in bytes: 22023 naming it and its size.
-- NULL values pass (optional arguments).
CREATE FUNCTION public.outbox_limit_bytes(
    p_names text[],
    p_values text[],
    p_max_bytes integer[]
) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
        IF pg_catalog.octet_length(p_values[i]) > p_max_bytes[i] THEN
            RAISE EXCEPTION '% must be at most % bytes, got %',
                p_names[i], p_max_bytes[i], pg_catalog.octet_length(p_values[i])
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION public.outbox_limit_bytes(text[], text[], integer[]) IS
'Rule helper of the outbox functions: raises 22023 "<name> must be at most <max> bytes, got <n>" '
'for the first value (in order) longer than its limit; NULL values pass. Owner only.';


-- The id rule (ADR 0006 addendum, ADR 0063): every value non-NULL and not blank (only spaces,
-- tabs, CR, LF, FF, VT), then every value at most p_max_bytes bytes (no size check when it is
-- NULL), in that order over all the values given; 22023 naming the first bad argument.
CREATE FUNCTION public.outbox_require_ids(
    p_names text[],
    p_values text[],
    p_max_bytes integer DEFAULT 1024
) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
        IF p_values[i] IS NULL OR pg_catalog.btrim(p_values[i], E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION '% must be a non-empty string', p_names[i]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF p_max_bytes IS NOT NULL THEN
        FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
            IF pg_catalog.octet_length(p_values[i]) > p_max_bytes THEN
                RAISE EXCEPTION '% must be at most % bytes, got %',
                    p_names[i], p_max_bytes, pg_catalog.octet_length(p_values[i])
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
    END IF;
END
$$;

COMMENT ON FUNCTION public.outbox_require_ids(text[], text[], integer) IS
'The id rule of the outbox functions: 22023 "<name> must be a non-empty string" for the first '
'NULL or blank value, then "<name> must be at most <max> bytes, got <n>" for the first value '
'over p_max_bytes (default 1024; NULL: no size check). Owner only.';


-- ADR 0041: the outbox functions plan their statements generically and never by sequential
-- scan, whatever the session says, and give the caller its settings back. Pin returns the
-- caller's values; restore puts them back (both transaction-local, as before).
CREATE FUNCTION public.outbox_pin_plan_settings() RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_saved text[];
    v_ignored text;
BEGIN
    v_saved := ARRAY[pg_catalog.current_setting('plan_cache_mode'),
                     pg_catalog.current_setting('enable_seqscan')];
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);
    RETURN v_saved;
END
$$;

COMMENT ON FUNCTION public.outbox_pin_plan_settings() IS
'Rule helper of the outbox functions (ADR 0041): sets plan_cache_mode = force_generic_plan and '
'enable_seqscan = off for the rest of the transaction and returns the previous values for '
'outbox_restore_plan_settings(). Owner only.';


CREATE FUNCTION public.outbox_restore_plan_settings(p_saved text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ignored text;
BEGIN
    v_ignored := pg_catalog.set_config('plan_cache_mode', p_saved[1], true);
    v_ignored := pg_catalog.set_config('enable_seqscan', p_saved[2], true);
END
$$;

COMMENT ON FUNCTION public.outbox_restore_plan_settings(text[]) IS
'Rule helper of the outbox functions (ADR 0041): puts back the plan_cache_mode and '
'enable_seqscan values outbox_pin_plan_settings() returned. Owner only.';


REVOKE ALL ON FUNCTION public.outbox_limit_bytes(text[], text[], integer[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_require_ids(text[], text[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_pin_plan_settings() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.outbox_restore_plan_settings(text[]) FROM PUBLIC;

-- Owned by the role the outbox functions run as (a CREATE window, as in 0011).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.outbox_limit_bytes(text[], text[], integer[]) OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_require_ids(text[], text[], integer) OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_pin_plan_settings() OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_restore_plan_settings(text[]) OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;


CREATE OR REPLACE FUNCTION public.bump_participant_outbox_seq(p_participant_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_allocated bigint;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);

    INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
    VALUES (p_participant_id, 2)
    ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
    DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
    RETURNING s.next_sequence_id - 1 INTO v_allocated;

    RETURN v_allocated;
END
$$;


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
    v_outbox_id uuid;
    v_known boolean := false;
    v_plan_settings text[];
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
        IF v_found.participant_id IS DISTINCT FROM p_participant_id
           OR v_found.rail_type IS DISTINCT FROM p_rail_type
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

    -- 5. New job (a new key, or a known key whose job was removed by hand before any attempt):
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
    RETURN QUERY
    WITH allocated AS (
        INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
        VALUES (p_participant_id, 2)
        ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
        DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
        RETURNING s.next_sequence_id - 1 AS sequence_id
    )
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload)
    SELECT v_outbox_id, p_instruction_id, p_participant_id, n.sequence_id, p_idempotency_key,
           p_rail_type, p_payload
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
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;


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

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);
    v_plan_settings := public.outbox_pin_plan_settings();

    -- One statement: lock the candidates (each scan is capped at the batch and reads its index
    -- in order, so the work is proportional to the batch, not to the number of leased rows),
    -- keep the oldest due of them, record the lost lease of each expired one taken (attempt
    -- number: the ledger's last, or the locked row's attempt_count if higher, plus one; at the
    -- ceiling FAILED and the job leaves the queue), lease the others by primary key, return
    -- them oldest due first. The expired scan returns the locked (latest) row version, so what
    -- is recorded is what was locked.
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
        SELECT p.outbox_id, p.next_attempt_at, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload, p.attempt_count, p.claimed_by,
               p.lease_expires_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NOT NULL
           AND p.lease_expires_at <= v_now
           AND p.next_attempt_at <= v_now
         ORDER BY p.lease_expires_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT b.outbox_id
          FROM (
              SELECT u.outbox_id, u.next_attempt_at FROM unleased AS u
              UNION ALL
              SELECT e.outbox_id, e.next_attempt_at FROM expired AS e
          ) AS b
         ORDER BY b.next_attempt_at, b.outbox_id
         LIMIT p_batch_size
    ), zombies AS (
        SELECT e.outbox_id, e.instruction_id, e.participant_id, e.sequence_id, e.idempotency_key,
               e.rail_type, e.payload, e.claimed_by, e.lease_expires_at,
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
               z.rail_type, z.payload, z.claimed_by, z.lease_expires_at, z.attempt_no, z.ceiling,
               CASE
                   WHEN z.attempt_no >= z.ceiling THEN 'FAILED'::public.outbox_attempt_state
                   ELSE 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
               END AS state
          FROM zombies AS z
    ), appended AS (
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, completed_at, error_code, error_message, worker_id)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.payload, d.attempt_no, d.state,
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
               d.claimed_by
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
               attempt_count = COALESCE(t.attempt_no, p.attempt_count)
          FROM taken AS t
         WHERE p.outbox_id = ANY ((SELECT pg_catalog.array_agg(x.outbox_id) FROM taken AS x)::uuid[])
           AND p.outbox_id = t.outbox_id
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.next_attempt_at
    )
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at
      FROM leased AS l
     ORDER BY l.next_attempt_at, l.outbox_id;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;


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

        PERFORM public.outbox_restore_plan_settings(v_plan_settings);
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
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;


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

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;


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
    v_ceiling integer;
    v_state public.outbox_attempt_state;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);

    v_now := pg_catalog.clock_timestamp();

    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload, p.attempt_count, p.claimed_by,
               p.lease_expires_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NOT NULL
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
         WHERE a.outbox_id = v_row.outbox_id;

        IF v_ceiling IS NULL THEN
            v_ceiling := public.outbox_retry_ceiling();
        END IF;
        v_state := 'ZOMBIE_REQUEUE'::public.outbox_attempt_state;
        IF v_attempt_no >= v_ceiling THEN
            v_state := 'FAILED'::public.outbox_attempt_state;
        END IF;

        -- worker_id records the worker that lost the lease (whose dispatch may be in doubt);
        -- the repairing worker is named in error_message.
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, completed_at, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no, v_state,
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
             v_row.claimed_by);

        -- At the ceiling the job is terminal and leaves the queue.
        IF v_state = 'FAILED'::public.outbox_attempt_state THEN
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.outbox_id = v_row.outbox_id;
            outbox_id := v_row.outbox_id;
            attempt_no := v_attempt_no;
            RETURN NEXT;
            CONTINUE;
        END IF;

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
