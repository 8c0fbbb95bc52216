-- 0006 outbox hot path: the same contracts as 0002 for enqueue, claim and complete, with less work
-- per call. The benchmarks (docs/benchmarks/, ADR 0041) measured where a job's time went; this
-- revision removes what the contracts do not need:
--
-- * Plans rebuilt on every call. PL/pgSQL caches its statements' plans, but the plan cache keeps
--   choosing a fresh "custom" plan for the claim statement, whose LIMIT is a parameter: the
--   generic plan is costed for an unknown LIMIT (10% of the rows) and always looks dearer than a
--   plan for LIMIT 1, so the claim was planned on every call, and planning it cost more than
--   running it. The claim now runs with plan_cache_mode = force_generic_plan (restored before it
--   returns), and its statement is written so that the generic plan is right whatever the
--   table's size: each candidate scan reads its partial index in ORDER BY order under a LIMIT,
--   and the leasing UPDATE finds its rows by primary key from an array (= ANY) rather than
--   through a join whose generic row estimate could tip the planner into a hash join over the
--   whole queue.
-- * Completions reading the wrong index. complete_outbox_attempt looked its row up with
--   outbox_id = .. AND lease_token = .. AND lease_expires_at > ..; the planner could answer that
--   with ix_payment_outbox_pending_lease_expires (lease_token = .. implies the partial index's
--   predicate, and PostgreSQL 18 can skip-scan to its second column, outbox_id), which it
--   believes tiny whenever the last VACUUM or ANALYZE saw few leases. Every completion then
--   walked every lease, live and dead. The lease token is now compared with IS NOT DISTINCT
--   FROM (the same as = for the non-NULL token the function insists on, but it does not imply
--   the predicate), so the primary key is the only candidate, and plans are generic as above.
-- * Statements a call does not need. A terminal completion (DISPATCHED, FAILED) fences, locks
--   and removes the job in one DELETE ... RETURNING and appends the attempt, numbered in the
--   same INSERT; RETRYABLE and refused states keep the 0002 sequence. Enqueue looks up the
--   pending row and the latest attempt in one statement and allocates the sequence number in
--   its INSERT. Argument checks run as one expression and only a failing call looks at each
--   argument in turn (PL/pgSQL prepares every expression once per transaction, and each call
--   of these functions is usually a transaction of its own).
--
-- Signatures, results, SQLSTATEs and messages are unchanged. CREATE OR REPLACE keeps the owner
-- (symphony_owner) and the ACL granted in 0004, and the functions keep SECURITY DEFINER and the
-- pinned search_path.
--
-- plan_cache_mode is set with set_config(..., true) rather than in each function's SET clause so
-- that the functions keep exactly one configuration entry, the pinned search_path. The caller's
-- value is restored before returning; when a statement fails instead, the rollback of the
-- (sub)transaction restores it.


-- Claim: up to p_batch_size due rows, oldest due first, FOR UPDATE SKIP LOCKED in each of the two
-- bounded scans (due rows without a lease on ix_payment_outbox_pending_due_unleased, expired
-- leases on ix_payment_outbox_pending_lease_expires), a fresh lease_token per row (ADR 0004).
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
    v_ignored text;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000
       OR p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = ''
       OR p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
            RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
                COALESCE(p_batch_size::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' THEN
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
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);

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
END
$$;


-- Lease-fenced completion (ADR 0004): P7002 unless worker, token and an unexpired lease match,
-- checked first and under the row lock; P7003 for a state a worker cannot report; attempt number
-- = highest in the ledger + 1; RETRYABLE at the ceiling becomes FAILED.
--
-- A terminal outcome takes the short path: DELETE ... RETURNING locks the row, re-checks the
-- lease on its latest version (READ COMMITTED re-evaluates the WHERE clause after a lock wait)
-- and removes it in one statement; a stale lease removes nothing and raises P7002. The attempt
-- is then appended with its number computed in the same INSERT, in a new statement (so with a
-- snapshot taken while this transaction holds the row, which every writer of this job's
-- attempts must lock first).
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
    v_ignored text;
BEGIN
    IF p_outbox_id IS NULL OR p_lease_token IS NULL
       OR p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' OR p_state IS NULL
       OR p_latency_ms < 0 THEN
        IF p_outbox_id IS NULL THEN
            RAISE EXCEPTION 'p_outbox_id must not be NULL'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_lease_token IS NULL THEN
            RAISE EXCEPTION 'p_lease_token must not be NULL'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id) = '' THEN
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
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);

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
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;


-- Idempotent enqueue (ADR 0006): validate, take the per-key advisory lock, return the pending row
-- or else the latest attempt (P7004 on different content), else allocate and insert.
--
-- The two look-ups are one statement (the pending row wins over the ledger). The lock stays a
-- statement of its own: under READ COMMITTED the look-up must take its snapshot after the lock
-- is granted, or it could miss the row of the duplicate it waited for. The sequence number is
-- allocated by the INSERT itself, with the upsert of bump_participant_outbox_seq() (one row lock
-- per participant, rolled back with the enqueue, so committed numbers stay gapless): calling that
-- function cost a nested SECURITY DEFINER call per enqueue. The allocator function stays, as
-- the one other writer of participant_outbox_sequences, and both must stay the same upsert.
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
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF p_instruction_id IS NULL OR pg_catalog.btrim(p_instruction_id) = ''
       OR p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id) = ''
       OR p_idempotency_key IS NULL OR pg_catalog.btrim(p_idempotency_key) = ''
       OR p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type) = ''
       OR p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object' THEN
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
END
$$;


COMMENT ON TABLE public.participant_outbox_sequences IS
'Next sequence number to hand out per participant. Written only by the allocator upsert, in '
'public.bump_participant_outbox_seq() and inlined in public.enqueue_payment_outbox().';
