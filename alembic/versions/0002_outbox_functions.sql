-- 0002 outbox functions: retry ceiling, sequence allocator, enqueue, claim, complete, repair.
--
-- Every function here is SECURITY DEFINER (it runs as the table owner, symphony_owner after 0004)
-- and pins search_path = pg_catalog, public, pg_temp: pg_temp last, because a search_path that
-- does not list it searches it first and a caller could shadow a table with a temporary one.
-- Bodies still schema-qualify every table, type and function, so resolution never depends on the
-- path. Every table is aliased and every column qualified: several OUT columns share names with
-- table columns, and an unqualified reference would be ambiguous (PL/pgSQL raises on conflicts by
-- default, which is what we want: a silent resolution either way would be a bug).
--
-- Time: lease comparisons use clock_timestamp() captured once per call, not now(). now() is the
-- caller's transaction start; inside a long transaction it would let a completion pass after the
-- lease has really expired.
--
-- Each function is closed to PUBLIC right after it is created: between this revision and 0004 a
-- SECURITY DEFINER function still owned by the migrating user must not be callable by anyone.


-- The retry ceiling is a GUC so operators can tune it per database or role without a migration
-- (ALTER DATABASE ... SET symphony.outbox_retry_ceiling = '10'). A bad value fails loudly rather
-- than being read as 0 or 1, which would silently turn every retry into a terminal failure.
CREATE FUNCTION public.outbox_retry_ceiling() RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_raw text := pg_catalog.current_setting('symphony.outbox_retry_ceiling', true);
    v_trimmed text := pg_catalog.btrim(v_raw);
    v_ceiling bigint;
BEGIN
    IF v_trimmed IS NULL OR v_trimmed = '' THEN
        RETURN 20;
    END IF;
    -- Digits only (no sign, no decimals, no exponent); ten digits fit a bigint, so the cast
    -- cannot fail. It happens only after the pattern matched: SQL's OR does not promise
    -- short-circuit evaluation.
    IF v_trimmed ~ '^[0-9]{1,10}$' THEN
        v_ceiling := v_trimmed::bigint;
    END IF;
    IF v_ceiling IS NULL OR v_ceiling < 1 OR v_ceiling > 2147483647 THEN
        RAISE EXCEPTION 'symphony.outbox_retry_ceiling must be a positive integer, got %',
            pg_catalog.quote_literal(v_raw)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Set it to a whole number >= 1, or RESET it to use the default of 20.';
    END IF;
    RETURN v_ceiling::integer;
END
$$;

COMMENT ON FUNCTION public.outbox_retry_ceiling() IS
'Attempt number from which a RETRYABLE completion becomes FAILED. Reads GUC '
'symphony.outbox_retry_ceiling; 20 when unset or empty; 22023 when not a positive integer.';

REVOKE ALL ON FUNCTION public.outbox_retry_ceiling() FROM PUBLIC;


-- Allocation is one upsert: the row lock it takes serialises concurrent callers for the same
-- participant, and a rolled-back enqueue rolls its increment back, so committed sequence numbers
-- are 1, 2, 3, ... without gaps or duplicates.
CREATE FUNCTION public.bump_participant_outbox_seq(p_participant_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_allocated bigint;
BEGIN
    IF p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id) = '' THEN
        RAISE EXCEPTION 'p_participant_id must be a non-empty string'
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

COMMENT ON FUNCTION public.bump_participant_outbox_seq(text) IS
'Allocates the next sequence number for a participant (first call 1, then +1 per committed call). '
'Internal to enqueue_payment_outbox(); only the owner may call it.';

REVOKE ALL ON FUNCTION public.bump_participant_outbox_seq(text) FROM PUBLIC;


-- Idempotent enqueue. The transaction-scoped advisory lock on the idempotency key serialises
-- duplicates: the second caller waits for the first to commit and then (READ COMMITTED takes a new
-- snapshot per statement) finds its row. The key is one 64-bit hash over both parts, joined by
-- chr(31) (the unit separator); a collision only serialises two unrelated keys.
CREATE FUNCTION public.enqueue_payment_outbox(
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
    v_pending record;
    v_attempt record;
    v_sequence_id bigint;
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF p_instruction_id IS NULL OR pg_catalog.btrim(p_instruction_id) = '' THEN
        RAISE EXCEPTION 'p_instruction_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id) = '' THEN
        RAISE EXCEPTION 'p_participant_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_idempotency_key IS NULL OR pg_catalog.btrim(p_idempotency_key) = '' THEN
        RAISE EXCEPTION 'p_idempotency_key must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type) = '' THEN
        RAISE EXCEPTION 'p_rail_type must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'p_payload must be a JSON object, got %',
            COALESCE(pg_catalog.jsonb_typeof(p_payload), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 2. Serialise every enqueue of this (instruction_id, idempotency_key).
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended(
            p_instruction_id || pg_catalog.chr(31) || p_idempotency_key, 1
        )
    );

    -- 3. Still queued: return the existing row.
    SELECT p.outbox_id, p.sequence_id, p.created_at, p.participant_id, p.rail_type, p.payload
      INTO v_pending
      FROM public.payment_outbox_pending AS p
     WHERE p.instruction_id = p_instruction_id
       AND p.idempotency_key = p_idempotency_key;
    IF FOUND THEN
        IF v_pending.participant_id IS DISTINCT FROM p_participant_id
           OR v_pending.rail_type IS DISTINCT FROM p_rail_type
           OR v_pending.payload IS DISTINCT FROM p_payload THEN
            RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                            'already used with a different participant, rail type or payload',
                pg_catalog.quote_literal(p_idempotency_key),
                pg_catalog.quote_literal(p_instruction_id)
                USING ERRCODE = 'P7004';
        END IF;
        RETURN QUERY
            SELECT v_pending.outbox_id, v_pending.sequence_id, v_pending.created_at,
                   'PENDING'::text;
        RETURN;
    END IF;

    -- 4. Already worked on (the pending row is gone or was never needed again): report the latest
    --    attempt instead of enqueueing the same payment twice.
    SELECT a.outbox_id, a.sequence_id, a.created_at, a.state,
           a.participant_id, a.rail_type, a.payload
      INTO v_attempt
      FROM public.payment_outbox_attempts AS a
     WHERE a.instruction_id = p_instruction_id
       AND a.idempotency_key = p_idempotency_key
     ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
     LIMIT 1;
    IF FOUND THEN
        IF v_attempt.participant_id IS DISTINCT FROM p_participant_id
           OR v_attempt.rail_type IS DISTINCT FROM p_rail_type
           OR v_attempt.payload IS DISTINCT FROM p_payload THEN
            RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                            'already used with a different participant, rail type or payload',
                pg_catalog.quote_literal(p_idempotency_key),
                pg_catalog.quote_literal(p_instruction_id)
                USING ERRCODE = 'P7004';
        END IF;
        RETURN QUERY
            SELECT v_attempt.outbox_id, v_attempt.sequence_id, v_attempt.created_at,
                   v_attempt.state::text;
        RETURN;
    END IF;

    -- 5. New instruction: allocate and insert. ON CONFLICT DO NOTHING only matters when the lock
    --    did not protect us (a caller in REPEATABLE READ whose snapshot predates a concurrent
    --    duplicate, or a row inserted directly by the control plane): PostgreSQL then raises a
    --    serialization failure itself, or we raise one below, so the allocated sequence number is
    --    rolled back instead of leaving a gap, and the client's retry finds the existing row.
    v_sequence_id := public.bump_participant_outbox_seq(p_participant_id);

    INSERT INTO public.payment_outbox_pending AS p
        (instruction_id, participant_id, sequence_id, idempotency_key, rail_type, payload)
    VALUES
        (p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key, p_rail_type,
         p_payload)
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at
         INTO v_pending;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;

    RETURN QUERY
        SELECT v_pending.outbox_id, v_pending.sequence_id, v_pending.created_at, 'PENDING'::text;
END
$$;

COMMENT ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb) IS
'Idempotent enqueue keyed on (instruction_id, idempotency_key). Returns the queued row (state '
'PENDING), or the latest attempt once the job has been worked on. P7004 when the key is reused '
'with a different participant, rail type or payload; 22023 on invalid arguments.';

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb) FROM PUBLIC;


-- Claim. Two bounded scans, each on its own partial index and each FOR UPDATE SKIP LOCKED under
-- its LIMIT (so concurrent claimers walk past each other's rows instead of colliding):
--   * due rows without a lease (ix_payment_outbox_pending_due_unleased), oldest due first;
--   * rows whose lease has expired (ix_payment_outbox_pending_lease_expires).
-- Both are capped at the batch size, so the work is proportional to the batch, not to the number
-- of rows currently leased. The union is ordered by next_attempt_at and cut to the batch size;
-- rows locked but not taken (only when expired leases exist) are released at commit.
CREATE FUNCTION public.claim_outbox_batch(
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
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'p_worker_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);

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
    ), picked AS (
        SELECT c.outbox_id, c.next_attempt_at
          FROM (
              SELECT u.outbox_id, u.next_attempt_at FROM unleased AS u
              UNION ALL
              SELECT e.outbox_id, e.next_attempt_at FROM expired AS e
          ) AS c
         ORDER BY c.next_attempt_at, c.outbox_id
         LIMIT p_batch_size
    ), leased AS (
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = public.uuid_v7_or_random(),
               lease_expires_at = v_expires_at
          FROM picked AS k
         WHERE p.outbox_id = k.outbox_id
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.next_attempt_at
    )
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at
      FROM leased AS l
     ORDER BY l.next_attempt_at, l.outbox_id;
END
$$;

COMMENT ON FUNCTION public.claim_outbox_batch(integer, text, integer) IS
'Leases up to p_batch_size (1..1000) due rows, oldest due first (FOR UPDATE SKIP LOCKED): rows '
'without a lease and rows whose lease expired. Each claim gets a fresh lease_token valid for '
'p_lease_seconds (1..86400). Never deletes and never changes attempt_count.';

REVOKE ALL ON FUNCTION public.claim_outbox_batch(integer, text, integer) FROM PUBLIC;


-- Lease-fenced completion. The lease check comes first and is done under the row lock: a worker
-- whose lease expired, was repaired or was re-claimed by another worker (new token) gets P7002 and
-- writes nothing, so a stale worker can never record an outcome over a newer lease.
CREATE FUNCTION public.complete_outbox_attempt(
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
BEGIN
    IF p_outbox_id IS NULL THEN
        RAISE EXCEPTION 'p_outbox_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lease_token IS NULL THEN
        RAISE EXCEPTION 'p_lease_token must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' THEN
        RAISE EXCEPTION 'p_worker_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_state IS NULL THEN
        RAISE EXCEPTION 'p_state must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_latency_ms IS NOT NULL AND p_latency_ms < 0 THEN
        RAISE EXCEPTION 'p_latency_ms must be NULL or >= 0, got %', p_latency_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_now := pg_catalog.clock_timestamp();

    -- 1. Lock the row only while worker, token and an unexpired lease all match.
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id
       AND p.claimed_by = p_worker_id
       AND p.lease_token = p_lease_token
       AND p.lease_expires_at > v_now
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'LEASE_LOST: no live lease on outbox % for worker % with this token',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'P7002',
                  HINT = 'The lease expired, was repaired or was claimed again: drop this '
                         'result and do not dispatch again under the old lease.';
    END IF;

    -- 2. Only outcomes a worker can report.
    IF p_state NOT IN ('DISPATCHED'::public.outbox_attempt_state,
                       'FAILED'::public.outbox_attempt_state,
                       'RETRYABLE'::public.outbox_attempt_state) THEN
        RAISE EXCEPTION 'invalid completion state %: expected DISPATCHED, FAILED or RETRYABLE',
            p_state
            USING ERRCODE = 'P7003';
    END IF;

    -- 3. The ledger is the truth for attempt numbers (repair events count). The row lock above
    --    serialises every writer of attempts for this outbox_id.
    SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id;

    -- 4. Retry ceiling.
    v_state := p_state;
    IF v_state = 'RETRYABLE'::public.outbox_attempt_state
       AND v_attempt_no >= public.outbox_retry_ceiling() THEN
        v_state := 'FAILED'::public.outbox_attempt_state;
    END IF;
    v_terminal := v_state IN ('DISPATCHED'::public.outbox_attempt_state,
                              'FAILED'::public.outbox_attempt_state);

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
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;

COMMENT ON FUNCTION public.complete_outbox_attempt(
    uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer
) IS
'Records the outcome of a leased attempt. P7002 (LEASE_LOST) unless worker, token and an '
'unexpired lease match; P7003 unless the state is DISPATCHED, FAILED or RETRYABLE. RETRYABLE at '
'or above outbox_retry_ceiling() becomes FAILED. Terminal outcomes remove the pending row; '
'retries requeue it after max(1, p_retry_delay_seconds) seconds. Returns (attempt_no, state).';

REVOKE ALL ON FUNCTION public.complete_outbox_attempt(
    uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer
) FROM PUBLIC;


-- Repair turns expired leases into a visible ZOMBIE_REQUEUE attempt (the ledger shows that a
-- worker lost its lease and that the job may have reached the rail) and requeues the row. Rows
-- with a live lease or no lease are never touched: the WHERE clause only matches expired leases
-- and FOR UPDATE re-checks it on the latest row version.
CREATE FUNCTION public.repair_expired_leases(
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
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' THEN
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

COMMENT ON FUNCTION public.repair_expired_leases(integer, text) IS
'Requeues up to p_batch_size (1..1000) rows whose lease expired (SKIP LOCKED): appends a '
'ZOMBIE_REQUEUE attempt, clears the lease, bumps attempt_count and makes the row due now, '
'keeping its place in the queue. '
'Never touches rows with a live lease or without a lease. Returns (outbox_id, attempt_no).';

REVOKE ALL ON FUNCTION public.repair_expired_leases(integer, text) FROM PUBLIC;
