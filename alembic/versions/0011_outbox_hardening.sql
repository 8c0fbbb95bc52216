-- 0011 outbox hardening: issue 11 items 1 to 4 and the size limits of item 10 (ADRs 0060-0063).
--
-- 1. A lost lease counts as an attempt however it is found (ADR 0060). claim_outbox_batch, when
--    it takes over an expired lease, now records the same ZOMBIE_REQUEUE attempt as
--    repair_expired_leases; at the retry ceiling both record FAILED instead and the job leaves
--    the queue, so a job that kills its worker every time ends after outbox_retry_ceiling()
--    attempts. Only the expired leases the claim actually takes are recorded (at most the batch).
-- 2. The retry ceiling is stored in public.outbox_settings (ADR 0061), written only by
--    public.set_outbox_retry_ceiling() (EXECUTE for symphony_control) and read by
--    public.outbox_retry_ceiling(). The setting symphony.outbox_retry_ceiling is no longer read:
--    before, any session could SET it to 2147483647 and retry for ever.
-- 3. Enqueue serialises duplicates on the primary key of public.payment_outbox_idempotency_keys
--    (ADR 0062), a permanent table of every key ever enqueued that no runtime role may read or
--    lock, instead of pg_advisory_xact_lock on a guessable key that any login could hold.
-- 4. A control-plane INSERT into the ledger for a job that is still queued, or a queue row
--    written from outside for a job that already has its terminal attempt, is refused with P7005
--    (ADR 0063): the worker's completion would otherwise fail for ever with 23505.
-- 5. Size limits (ADR 0063): payload at most 65536 bytes (its jsonb text), error messages at
--    most 4096 bytes, worker ids, rail types, rail references, rail codes and error codes at most
--    1024 bytes; above them 22023 naming the argument, and nothing is written.
--
-- The function bodies are those of 0010 with these changes; signatures, results and every other
-- SQLSTATE are unchanged. CREATE OR REPLACE keeps owner, grants and comments (comments that
-- changed meaning are replaced below).


-- The retry ceiling, one row. Functions read it as the owner; no runtime role has any privilege
-- on the table (a control-plane change goes through set_outbox_retry_ceiling).
CREATE TABLE public.outbox_settings (
    singleton boolean NOT NULL DEFAULT true,
    retry_ceiling integer NOT NULL DEFAULT 20,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT session_user,
    CONSTRAINT pk_outbox_settings PRIMARY KEY (singleton),
    CONSTRAINT ck_outbox_settings_singleton CHECK (singleton),
    CONSTRAINT ck_outbox_settings_retry_ceiling_positive CHECK (retry_ceiling >= 1)
);

COMMENT ON TABLE public.outbox_settings IS
'Outbox settings, one row: retry_ceiling (attempt number from which a retry or a lost lease is '
'recorded as FAILED; default 20). Changed only with public.set_outbox_retry_ceiling().';

INSERT INTO public.outbox_settings (singleton) VALUES (true);


-- Every (instruction_id, idempotency_key) ever enqueued, kept for good (the ledger's own rows may
-- be archived one day, issue 15). Its primary key serialises enqueues of one key: the first
-- enqueue inserts the row, a concurrent duplicate waits on that insert and then finds the job.
-- outbox_id names the job the key queued last.
CREATE TABLE public.payment_outbox_idempotency_keys (
    instruction_id text NOT NULL,
    idempotency_key text NOT NULL,
    outbox_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_payment_outbox_idempotency_keys PRIMARY KEY (instruction_id, idempotency_key)
);

COMMENT ON TABLE public.payment_outbox_idempotency_keys IS
'Every idempotency key ever enqueued, with the job it queued last. Written only by '
'public.enqueue_payment_outbox(); its primary key serialises enqueues of one key.';

-- Keys enqueued before 0011: the queued job, else the latest attempt of the key in the ledger.
INSERT INTO public.payment_outbox_idempotency_keys (instruction_id, idempotency_key, outbox_id)
SELECT DISTINCT ON (k.instruction_id, k.idempotency_key)
    k.instruction_id,
    k.idempotency_key,
    k.outbox_id
FROM (
    SELECT
        1 AS origin,
        p.instruction_id,
        p.idempotency_key,
        p.outbox_id,
        p.created_at,
        0 AS attempt_no
    FROM public.payment_outbox_pending AS p
    UNION ALL
    SELECT
        2 AS origin,
        a.instruction_id,
        a.idempotency_key,
        a.outbox_id,
        a.created_at,
        a.attempt_no
    FROM public.payment_outbox_attempts AS a
) AS k
ORDER BY
    k.instruction_id ASC,
    k.idempotency_key ASC,
    k.origin ASC,
    k.created_at DESC,
    k.attempt_no DESC;


-- Ownership and deny-by-default, as 0004 and 0005 did (CREATE on public only for the hand-over).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TABLE public.outbox_settings OWNER TO symphony_owner;
ALTER TABLE public.payment_outbox_idempotency_keys OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

REVOKE ALL ON TABLE public.outbox_settings, public.payment_outbox_idempotency_keys FROM PUBLIC;


-- The ceiling is read from the table only: no session, role or database setting changes it. A
-- missing row (deleted by the owner) means the default, 20.
CREATE OR REPLACE FUNCTION public.outbox_retry_ceiling() RETURNS integer
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT COALESCE(
        (SELECT s.retry_ceiling FROM public.outbox_settings AS s WHERE s.singleton),
        20
    )
$$;

COMMENT ON FUNCTION public.outbox_retry_ceiling() IS
'Attempt number from which a RETRYABLE completion or a lost lease is recorded as FAILED: '
'public.outbox_settings.retry_ceiling (20 when the row is missing). No setting changes it.';


-- The control plane's way to change the ceiling; returns the ceiling it replaced.
CREATE FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) RETURNS integer
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_previous integer;
BEGIN
    IF p_ceiling IS NULL OR p_ceiling < 1 THEN
        RAISE EXCEPTION 'p_ceiling must be a whole number >= 1, got %',
            COALESCE(p_ceiling::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Lock the row first so that the previous value returned is the one replaced.
    SELECT s.retry_ceiling
      INTO v_previous
      FROM public.outbox_settings AS s
     WHERE s.singleton
       FOR UPDATE;

    INSERT INTO public.outbox_settings AS s (singleton, retry_ceiling, updated_at, updated_by)
    VALUES (true, p_ceiling, pg_catalog.clock_timestamp(), SESSION_USER)
    ON CONFLICT ON CONSTRAINT pk_outbox_settings
    DO UPDATE SET retry_ceiling = excluded.retry_ceiling,
                  updated_at = excluded.updated_at,
                  updated_by = excluded.updated_by;

    RETURN COALESCE(v_previous, 20);
END
$$;

COMMENT ON FUNCTION public.set_outbox_retry_ceiling(integer) IS
'Sets the retry ceiling (a whole number >= 1; 22023 otherwise) for every session at once and '
'returns the previous one. EXECUTE for symphony_control only.';

REVOKE ALL ON FUNCTION public.set_outbox_retry_ceiling(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.set_outbox_retry_ceiling(integer) TO symphony_control;


-- Only the outbox functions record attempts of a queued job. The trigger fires for every other
-- inserter (the WHEN clause skips the functions, which run as symphony_owner, so the hot path
-- pays nothing): it locks the job's queue row - waiting for a worker's completion in flight - and
-- refuses the row with P7005 while the job is queued. The control plane records a manual outcome
-- by deleting the queue row first, in the same transaction.
CREATE FUNCTION public.guard_outbox_attempts_insert() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    PERFORM 1
       FROM public.payment_outbox_pending AS p
      WHERE p.outbox_id = NEW.outbox_id
        FOR UPDATE;
    IF FOUND THEN
        RAISE EXCEPTION 'JOB_STILL_QUEUED: outbox % is still queued; only the outbox functions '
                        'record its attempts', NEW.outbox_id
            USING ERRCODE = 'P7005',
                  HINT = 'Let a worker complete the job, or DELETE its row from '
                         'public.payment_outbox_pending in the same transaction first.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION public.guard_outbox_attempts_insert() IS
'Trigger function: refuses (P7005) an attempt inserted by anyone but the outbox functions for a '
'job that is still in public.payment_outbox_pending.';

REVOKE ALL ON FUNCTION public.guard_outbox_attempts_insert() FROM PUBLIC;

CREATE TRIGGER trg_guard_outbox_attempts_insert
    BEFORE INSERT ON public.payment_outbox_attempts
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.guard_outbox_attempts_insert();

-- ENABLE ALWAYS, like the append-only triggers: session_replication_role must not switch it off.
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_outbox_attempts_insert;


-- The other direction: a queue row written from outside (control plane) for a job that already
-- has its terminal attempt would be dispatched again, and its completion would fail for ever
-- with 23505. Refused with P7005 as well; the functions (as symphony_owner) skip the trigger.
CREATE FUNCTION public.guard_outbox_pending_write() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF EXISTS (
        SELECT 1
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = NEW.outbox_id
           AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state)
    ) THEN
        RAISE EXCEPTION 'JOB_ALREADY_TERMINAL: outbox % already has its terminal attempt; it '
                        'cannot be queued again', NEW.outbox_id
            USING ERRCODE = 'P7005',
                  HINT = 'Enqueue a new instruction (or a new idempotency key) instead.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION public.guard_outbox_pending_write() IS
'Trigger function: refuses (P7005) a queue row written by anyone but the outbox functions for a '
'job that already has a terminal attempt.';

REVOKE ALL ON FUNCTION public.guard_outbox_pending_write() FROM PUBLIC;

-- Ownership of the new functions, in a CREATE window as above (a non-superuser migrator
-- needs it to hand them over).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.set_outbox_retry_ceiling(integer) OWNER TO symphony_owner;
ALTER FUNCTION public.guard_outbox_attempts_insert() OWNER TO symphony_owner;
ALTER FUNCTION public.guard_outbox_pending_write() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

CREATE TRIGGER trg_guard_outbox_pending_write
    BEFORE INSERT OR UPDATE OF outbox_id ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.guard_outbox_pending_write();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_guard_outbox_pending_write;

-- Enqueue (body: 0010): the key table replaces the advisory lock (ADR 0062); size limits for the
-- rail type (1024 bytes) and the payload (65536 bytes of jsonb text).
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
       OR pg_catalog.octet_length(p_rail_type) > 1024
       OR p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object'
       OR pg_catalog.octet_length(p_payload::text) > 65536 THEN
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
        IF pg_catalog.octet_length(p_rail_type) > 1024 THEN
            RAISE EXCEPTION 'p_rail_type must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_rail_type)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object' THEN
            RAISE EXCEPTION 'p_payload must be a JSON object, got %',
                COALESCE(pg_catalog.jsonb_typeof(p_payload), 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_payload must be at most 65536 bytes (as jsonb text), got %',
            pg_catalog.octet_length(p_payload::text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_plan_cache_mode := pg_catalog.current_setting('plan_cache_mode');
    v_enable_seqscan := pg_catalog.current_setting('enable_seqscan');
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);

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
        v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
        v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
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
    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
END
$$;


-- Claim (body: 0010): an expired lease it takes over is recorded as an attempt, as repair records
-- it, and at the retry ceiling the job is FAILED instead of leased again (ADR 0060); worker ids
-- of at most 1024 bytes.
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
       OR pg_catalog.octet_length(p_worker_id) > 1024
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
        IF pg_catalog.octet_length(p_worker_id) > 1024 THEN
            RAISE EXCEPTION 'p_worker_id must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_worker_id)
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

    v_ignored := pg_catalog.set_config('plan_cache_mode', v_plan_cache_mode, true);
    v_ignored := pg_catalog.set_config('enable_seqscan', v_enable_seqscan, true);
END
$$;


-- Completion (body: 0010): size limits for the worker id, rail reference, rail code and error
-- code (1024 bytes each) and the error message (4096 bytes), ADR 0063.
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
       OR p_latency_ms < 0
       OR pg_catalog.octet_length(p_worker_id) > 1024
       OR pg_catalog.octet_length(p_rail_reference) > 1024
       OR pg_catalog.octet_length(p_rail_code) > 1024
       OR pg_catalog.octet_length(p_error_code) > 1024
       OR pg_catalog.octet_length(p_error_message) > 4096 THEN
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
        IF pg_catalog.octet_length(p_worker_id) > 1024 THEN
            RAISE EXCEPTION 'p_worker_id must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_worker_id)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_rail_reference) > 1024 THEN
            RAISE EXCEPTION 'p_rail_reference must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_rail_reference)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_rail_code) > 1024 THEN
            RAISE EXCEPTION 'p_rail_code must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_rail_code)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_error_code) > 1024 THEN
            RAISE EXCEPTION 'p_error_code must be at most 1024 bytes, got %',
                pg_catalog.octet_length(p_error_code)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pg_catalog.octet_length(p_error_message) > 4096 THEN
            RAISE EXCEPTION 'p_error_message must be at most 4096 bytes, got %',
                pg_catalog.octet_length(p_error_message)
                USING ERRCODE = 'invalid_parameter_value';
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


-- Batched completion (body: 0010): size limits for the worker id and for every element of the
-- rail reference, rail code, error code (1024 bytes) and error message (4096 bytes) arrays.
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
    IF pg_catalog.octet_length(p_worker_id) > 1024 THEN
        RAISE EXCEPTION 'p_worker_id must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_worker_id)
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


-- Repair (body: 0010): at the retry ceiling the lost lease is recorded as FAILED and the job
-- leaves the queue, as a claim that takes it over does (ADR 0060); worker ids of at most 1024
-- bytes.
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
    IF p_worker_id IS NULL OR pg_catalog.btrim(p_worker_id, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_worker_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_worker_id) > 1024 THEN
        RAISE EXCEPTION 'p_worker_id must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_worker_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

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

-- Comments whose meaning changed.
COMMENT ON FUNCTION public.claim_outbox_batch(integer, text, integer) IS
'Leases up to p_batch_size (1..1000) due rows, oldest due first (FOR UPDATE SKIP LOCKED): rows '
'without a lease and rows whose lease expired. Each claim gets a fresh lease_token valid for '
'p_lease_seconds (1..86400). An expired lease it takes over is recorded as a ZOMBIE_REQUEUE '
'attempt (attempt_count follows), or as FAILED at outbox_retry_ceiling(): that job leaves the '
'queue and is not returned, so a claim may return fewer rows than are due.';

COMMENT ON FUNCTION public.repair_expired_leases(integer, text) IS
'Requeues up to p_batch_size (1..1000) rows whose lease expired (SKIP LOCKED): appends a '
'ZOMBIE_REQUEUE attempt, clears the lease, bumps attempt_count and makes the row due now, '
'keeping its place in the queue; at outbox_retry_ceiling() the attempt is FAILED and the job '
'leaves the queue. Never touches rows with a live lease or without a lease. Returns '
'(outbox_id, attempt_no).';

COMMENT ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb) IS
'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key '
'of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest '
'attempt once the job has been worked on. P7004 when the key is reused with a different '
'participant, rail type or payload; 22023 on invalid arguments (payload over 65536 bytes).';
