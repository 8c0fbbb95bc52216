-- 0024 the payload is stored once per job (issue 20 item 5, ops3, ADRs 0124 and 0142).
--
-- 1. public.payment_outbox_payloads: one row per job, primary key (participant_id, outbox_id) -
--    it leads with the Citus distribution column (ADR 0126) and contains the ledger's partition
--    key outbox_id (issue 15), so it can be distributed and partitioned with the ledger. Written
--    once by enqueue (and by redrive for the new job), append-only like the ledger (UPDATE,
--    DELETE and TRUNCATE raise P0001, triggers enabled ALWAYS), owned by the owner, SELECT for
--    control, readonly and the auditor.
-- 2. The ledger's payload column becomes nullable (no rewrite) and no function writes it any
--    more; rows written before keep their copy. The queue row keeps its payload (the claim
--    returns it without a join; the row is deleted at the outcome).
-- 3. Back-fill: every job queued or in the ledger gets its payload row (from the queue row, else
--    from its first ledger row that has a copy). Small today; ADR 0142 gives the online procedure
--    for a large ledger.
-- 4. Restated (CREATE OR REPLACE: owner, grants stay): enqueue (writes the payload row; the P7004
--    comparison reads it instead of a ledger row), claim, complete, batched complete, repair,
--    cancel (their ledger rows carry no payload) and redrive (reads the old job's payload row,
--    writes the new job's).


-- ------------------------------------------------------------------------------------------------
-- The payload table
-- ------------------------------------------------------------------------------------------------

CREATE TABLE public.payment_outbox_payloads (
    participant_id text NOT NULL,
    outbox_id uuid NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_payment_outbox_payloads PRIMARY KEY (participant_id, outbox_id),
    CONSTRAINT ck_payment_outbox_payloads_payload_is_object
        CHECK (jsonb_typeof(payload) = 'object')
);

COMMENT ON TABLE public.payment_outbox_payloads IS
'The payload of every outbox job, stored once (ledger rows since 0024 carry none). Append-only '
'(UPDATE, DELETE and TRUNCATE raise P0001); written only by enqueue_payment_outbox() and '
'redrive_outbox_job(). Keyed (participant_id, outbox_id): distributed by participant_id and '
'partitioned by outbox_id with the ledger.';

CREATE FUNCTION public.deny_outbox_payloads_mutation() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'public.payment_outbox_payloads is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'P0001',
              HINT = 'A job''s payload never changes; redrive queues a new job with its own row.';
END
$$;

COMMENT ON FUNCTION public.deny_outbox_payloads_mutation() IS
'Trigger function: rejects UPDATE, DELETE and TRUNCATE on public.payment_outbox_payloads with '
'SQLSTATE P0001 (the payloads are append-only, like the ledger).';

REVOKE ALL ON FUNCTION public.deny_outbox_payloads_mutation() FROM PUBLIC;

CREATE TRIGGER trg_deny_outbox_payloads_mutation
    BEFORE UPDATE OR DELETE ON public.payment_outbox_payloads
    FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_payloads_mutation();

CREATE TRIGGER trg_deny_outbox_payloads_truncate
    BEFORE TRUNCATE ON public.payment_outbox_payloads
    FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_payloads_mutation();

-- ENABLE ALWAYS: session_replication_role = replica must not switch them off.
ALTER TABLE public.payment_outbox_payloads ENABLE ALWAYS TRIGGER trg_deny_outbox_payloads_mutation;
ALTER TABLE public.payment_outbox_payloads ENABLE ALWAYS TRIGGER trg_deny_outbox_payloads_truncate;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TABLE public.payment_outbox_payloads OWNER TO symphony_owner;
ALTER FUNCTION public.deny_outbox_payloads_mutation() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

REVOKE ALL ON TABLE public.payment_outbox_payloads FROM PUBLIC;
GRANT SELECT ON TABLE public.payment_outbox_payloads
TO symphony_control, symphony_readonly, symphony_auditor;


-- ------------------------------------------------------------------------------------------------
-- The ledger stops copying it
-- ------------------------------------------------------------------------------------------------

-- Dropping NOT NULL reads no row and rewrites nothing. ck_payment_outbox_attempts_payload_is_object
-- still holds for the rows that keep a copy (a NULL passes a CHECK). No client breaks: the ledger
-- is read-only for every runtime role and its readers (outbox show, R4, the auditor) read the
-- payload from payment_outbox_payloads, falling back to a row's copy (ADR 0142).
-- squawk-ignore ban-drop-not-null
ALTER TABLE public.payment_outbox_attempts ALTER COLUMN payload DROP NOT NULL;

COMMENT ON COLUMN public.payment_outbox_attempts.payload IS
'The job''s payload, copied into rows written before revision 0024; NULL since then (the payload '
'is stored once in public.payment_outbox_payloads).';


-- ------------------------------------------------------------------------------------------------
-- Back-fill: a payload row for every job already queued or in the ledger
-- ------------------------------------------------------------------------------------------------

-- The queue first (its row holds the payload), then the ledger (a job's first row with a copy).
-- Enqueue and redrive write the row of every later job. Run as the migrating user: the
-- append-only triggers do not object to INSERT.
INSERT INTO public.payment_outbox_payloads (participant_id, outbox_id, payload, created_at)
SELECT
    p.participant_id,
    p.outbox_id,
    p.payload,
    p.created_at
FROM public.payment_outbox_pending AS p
ON CONFLICT ON CONSTRAINT pk_payment_outbox_payloads DO NOTHING;

INSERT INTO public.payment_outbox_payloads (participant_id, outbox_id, payload, created_at)
SELECT DISTINCT ON (a.outbox_id)
    a.participant_id,
    a.outbox_id,
    a.payload,
    a.created_at
FROM public.payment_outbox_attempts AS a
WHERE a.payload IS NOT NULL
ORDER BY a.outbox_id, a.attempt_no
ON CONFLICT ON CONSTRAINT pk_payment_outbox_payloads DO NOTHING;


-- ------------------------------------------------------------------------------------------------
-- The functions
-- ------------------------------------------------------------------------------------------------

-- Enqueue (body: 0020): writes the payload row once; the P7004 comparison reads it.
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
                  a.participant_id, a.rail_type, NULL::jsonb AS payload
             FROM public.payment_outbox_attempts AS a
            WHERE a.instruction_id = p_instruction_id
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

-- Claim (body: 0020): a taken-over lease's ledger row no longer copies the payload.
CREATE OR REPLACE FUNCTION public.claim_outbox_batch(
    p_batch_size integer,
    p_worker_id text,
    p_lease_seconds integer,
    p_rail_types text[] DEFAULT NULL
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
    lease_expires_at timestamptz,
    in_doubt boolean
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
    -- NULL means every rail; otherwise 1 to 100 rail types, each a valid id.
    IF p_rail_types IS NOT NULL THEN
        IF pg_catalog.cardinality(p_rail_types) NOT BETWEEN 1 AND 100
           OR pg_catalog.array_ndims(p_rail_types) <> 1 THEN
            RAISE EXCEPTION 'p_rail_types must be NULL (every rail) or a one-dimensional array '
                            'of 1 to 100 rail types, got % element(s)',
                pg_catalog.cardinality(p_rail_types)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM public.outbox_require_ids(
            pg_catalog.array_fill('p_rail_types element'::text,
                                  ARRAY[pg_catalog.cardinality(p_rail_types)]),
            p_rail_types
        );
        -- Any spelling: each rail as given and upper-cased (ADR 0122; jobs queued before 0020
        -- may carry a lower-case rail), each once.
        p_rail_types := ARRAY(
            SELECT DISTINCT r.rail_type
              FROM pg_catalog.unnest(p_rail_types) AS g (rail_type)
             CROSS JOIN LATERAL (VALUES (g.rail_type),
                                        (pg_catalog.upper(g.rail_type COLLATE "C"))) AS r (rail_type)
        );
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires_at := v_now + pg_catalog.make_interval(secs => p_lease_seconds);
    v_plan_settings := public.outbox_pin_plan_settings();

    -- One statement: lock the candidates (each scan is capped at the batch and reads its index
    -- in order, so the work is proportional to the batch, not to the number of queued or leased
    -- rows): due heads without a lease (all rails: one partial index; some rails: the rail index,
    -- once per rail) and expired leases of heads. Keep the first of them by priority, then due
    -- time; record the lost lease of each expired one taken (attempt number: the ledger's last,
    -- or the locked row's attempt_count if higher, plus one; at the ceiling FAILED and the job
    -- leaves the queue, and the trigger promotes the participant's next job), lease the others
    -- by primary key (a taken-over job is in doubt from now on), return them in that order.
    RETURN QUERY
    WITH unleased AS (
        SELECT a.outbox_id, a.priority, a.next_attempt_at
          FROM (
              SELECT p.outbox_id, p.priority, p.next_attempt_at
                FROM public.payment_outbox_pending AS p
               WHERE p_rail_types IS NULL
                 AND p.is_head
                 AND p.lease_token IS NULL
                 AND p.next_attempt_at <= v_now
               ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
               LIMIT p_batch_size
                 FOR UPDATE SKIP LOCKED
          ) AS a
        UNION ALL
        SELECT r.outbox_id, r.priority, r.next_attempt_at
          FROM pg_catalog.unnest(p_rail_types) AS t (rail_type)
         CROSS JOIN LATERAL (
              SELECT p.outbox_id, p.priority, p.next_attempt_at
                FROM public.payment_outbox_pending AS p
               WHERE p.rail_type = t.rail_type
                 AND p.is_head
                 AND p.lease_token IS NULL
                 AND p.next_attempt_at <= v_now
               ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
               LIMIT p_batch_size
                 FOR UPDATE SKIP LOCKED
          ) AS r
    ), expired AS (
        SELECT p.outbox_id, p.priority, p.next_attempt_at, p.instruction_id, p.participant_id,
               p.sequence_id, p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
               p.claimed_by, p.lease_token, p.lease_expires_at, p.claimed_at
          FROM public.payment_outbox_pending AS p
         WHERE p.lease_token IS NOT NULL
           AND p.lease_expires_at <= v_now
           AND p.next_attempt_at <= v_now
           AND p.is_head
           AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
         ORDER BY p.lease_expires_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT b.outbox_id
          FROM (
              SELECT u.outbox_id, u.priority, u.next_attempt_at FROM unleased AS u
              UNION ALL
              SELECT e.outbox_id, e.priority, e.next_attempt_at FROM expired AS e
          ) AS b
         ORDER BY b.priority DESC, b.next_attempt_at, b.outbox_id
         LIMIT p_batch_size
    ), zombies AS (
        SELECT e.outbox_id, e.instruction_id, e.participant_id, e.sequence_id, e.idempotency_key,
               e.rail_type, e.payload, e.claimed_by, e.lease_token, e.lease_expires_at,
               e.claimed_at,
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
               z.rail_type, z.payload, z.claimed_by, z.lease_token, z.lease_expires_at,
               z.claimed_at, z.attempt_no, z.ceiling,
               CASE
                   WHEN z.attempt_no >= z.ceiling THEN 'FAILED'::public.outbox_attempt_state
                   ELSE 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
               END AS state
          FROM zombies AS z
    ), appended AS (
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.attempt_no, d.state,
               COALESCE(d.claimed_at, v_now),
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
               d.claimed_by, d.lease_token, SESSION_USER
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
               -- The real claim time, read after the rows were locked: later than the commit
               -- of whatever made the job claimable (the completion of its predecessor).
               claimed_at = pg_catalog.clock_timestamp(),
               attempt_count = COALESCE(t.attempt_no, p.attempt_count),
               in_doubt = p.in_doubt OR t.attempt_no IS NOT NULL
          FROM taken AS t
         WHERE p.outbox_id = ANY ((SELECT pg_catalog.array_agg(x.outbox_id) FROM taken AS x)::uuid[])
           AND p.outbox_id = t.outbox_id
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.in_doubt, p.priority, p.next_attempt_at
    )
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, l.payload, l.attempt_count, l.lease_token, l.lease_expires_at, l.in_doubt
      FROM leased AS l
     ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

-- Completion (body: 0023): the ledger row no longer copies the payload.
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
             attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no, p_state,
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

-- Batched completion (body: 0023): the ledger rows no longer copy the payload.
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
               p.idempotency_key, p.rail_type,
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

-- Repair (body: 0014): the lost lease's ledger row no longer copies the payload.
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
               p.lease_expires_at, p.lease_token, p.claimed_at
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
             attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
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

        -- At the ceiling the job is terminal and leaves the queue.
        IF v_state = 'FAILED'::public.outbox_attempt_state THEN
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.outbox_id = v_row.outbox_id;
            outbox_id := v_row.outbox_id;
            attempt_no := v_attempt_no;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- The lease ended without a recorded outcome: the job is in doubt from now on (the next
        -- worker asks the rail first, ADR 0117). Due again at once, keeping its place in the
        -- queue (oldest due first): the lease
        -- already made the job wait a full lease period, and later sequence numbers of the
        -- participant should not overtake it.
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = LEAST(p.next_attempt_at, v_now),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL,
               claimed_at = NULL,
               in_doubt = true
         WHERE p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        attempt_no := v_attempt_no;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Cancel (body: 0019): its ledger rows no longer copy the payload.
CREATE OR REPLACE FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text)
RETURNS TABLE (outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
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

    -- Lock the queue row: a worker's completion in flight finishes first (its DELETE or UPDATE
    -- holds the row), claims and repairs skip it (SKIP LOCKED) until we commit.
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT a.state, a.attempt_no
          INTO v_outcome
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
           AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'CANCELLED'::public.outbox_attempt_state);
        IF FOUND THEN
            RAISE EXCEPTION 'JOB_ALREADY_TERMINAL: outbox % already ended with % (attempt %); '
                            'it cannot be cancelled', p_outbox_id, v_outcome.state,
                v_outcome.attempt_no
                USING ERRCODE = 'P7005';
        END IF;
        RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id %', p_outbox_id
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
     WHERE a.outbox_id = p_outbox_id;

    IF v_row.lease_token IS NOT NULL THEN
        v_attempt_no := v_attempt_no + 1;
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
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
        (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_attempt_no,
         'CANCELLED'::public.outbox_attempt_state, v_now, SESSION_USER, p_reason, p_ticket);

    DELETE FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id;

    RETURN QUERY
    SELECT p_outbox_id, v_attempt_no, 'CANCELLED'::public.outbox_attempt_state;
END
$$;

-- Redrive (body: 0021): reads the old job's payload row and writes the new job's.
CREATE OR REPLACE FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text)
RETURNS TABLE (outbox_id uuid, sequence_id bigint, created_at timestamptz, state text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_job record;
    v_outcome record;
    v_key_outbox uuid;
    v_redriven uuid;
    v_new uuid;
    v_sequence_id bigint;
    v_attempt_no integer;
    v_payload jsonb;
BEGIN
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

    -- The job's identity, from its queue row or its ledger rows.
    SELECT p.instruction_id, p.idempotency_key
      INTO v_job
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.instruction_id, a.idempotency_key
          INTO v_job
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
         ORDER BY a.attempt_no DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id %', p_outbox_id
                USING ERRCODE = 'P7010';
        END IF;
    END IF;

    -- Serialise with enqueue, the P7005 guards and every other redrive of this payment; what is
    -- read below is read after the lock (READ COMMITTED: a new snapshot per statement; REPEATABLE
    -- READ and SERIALIZABLE raise 40001 here if the row changed since the snapshot).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id)
    VALUES (v_job.instruction_id, v_job.idempotency_key, p_outbox_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    SELECT k.outbox_id
      INTO v_key_outbox
      FROM public.payment_outbox_idempotency_keys AS k
     WHERE k.instruction_id = v_job.instruction_id
       AND k.idempotency_key = v_job.idempotency_key
       FOR UPDATE;

    SELECT a.state, a.attempt_no, a.instruction_id, a.participant_id, a.sequence_id,
           a.idempotency_key, a.rail_type
      INTO v_outcome
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id
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
     WHERE a.outbox_id = p_outbox_id
       AND a.state = 'REDRIVEN'::public.outbox_attempt_state;
    IF FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was already redriven as outbox %', p_outbox_id,
            v_redriven
            USING ERRCODE = 'P7012',
                  HINT = 'Redrive the newest job of the payment, if it failed too.';
    END IF;
    IF v_key_outbox IS DISTINCT FROM p_outbox_id THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is not the latest job of its idempotency key; '
                        'outbox % is', p_outbox_id, v_key_outbox
            USING ERRCODE = 'P7012';
    END IF;

    -- The old job's payload: its payload row (ADR 0124), or, for a job whose payload row is
    -- missing, a ledger row that kept a copy.
    SELECT x.payload
      INTO v_payload
      FROM public.payment_outbox_payloads AS x
     WHERE x.participant_id = v_outcome.participant_id
       AND x.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.payload
          INTO v_payload
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
           AND a.payload IS NOT NULL
         LIMIT 1;
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: the payload of outbox % is not stored', p_outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The new job, queued now with the participant's next sequence number. The allocator row
    -- stays locked until commit; the insert is a second statement, so under READ COMMITTED it
    -- sees every job of the participant committed meanwhile, and the job is its participant's
    -- head exactly when no other job of the participant is queued (as enqueue decides it, ADR
    -- 0116: trg_place_outbox_head skips rows the outbox functions write).
    v_new := public.uuid_v7_or_random();
    v_sequence_id := public.bump_participant_outbox_seq(v_outcome.participant_id);
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload, is_head)
    SELECT v_new, v_outcome.instruction_id, v_outcome.participant_id, v_sequence_id,
           v_outcome.idempotency_key, v_outcome.rail_type, v_payload,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = v_outcome.participant_id
           );

    -- The new job's payload row: once per job, even with the same content (ADR 0124).
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (v_outcome.participant_id, v_new, v_payload);

    UPDATE public.payment_outbox_idempotency_keys AS k
       SET outbox_id = v_new
     WHERE k.instruction_id = v_outcome.instruction_id
       AND k.idempotency_key = v_outcome.idempotency_key;

    -- The audit row on the old job, after its terminal one.
    SELECT pg_catalog.max(a.attempt_no) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = p_outbox_id;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, completed_at, acted_by, reason, ticket, related_outbox_id)
    VALUES
        (p_outbox_id, v_outcome.instruction_id, v_outcome.participant_id, v_outcome.sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_attempt_no,
         'REDRIVEN'::public.outbox_attempt_state, pg_catalog.clock_timestamp(), SESSION_USER,
         p_reason, p_ticket, v_new);

    RETURN QUERY
    SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = v_new;
END
$$;


COMMENT ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                                  smallint) IS
'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key '
'of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest '
'attempt once the job has been worked on. p_not_before: not claimable before that time; '
'p_priority: higher is claimed first across participants, never ahead of an earlier job of the '
'same participant (per-participant FIFO). P7004 when the key is reused with a different '
'participant, rail type (compared upper-cased) or payload (compared with the job''s row in '
'payment_outbox_payloads); 22023 on invalid arguments (payload over 65536 bytes, a rail that is '
'not registered and enabled, a payload number a JSON consumer cannot represent exactly, naming '
'its JSON path). A new job stores the canonical rail code and its payload once, in '
'payment_outbox_payloads.';

COMMENT ON FUNCTION public.redrive_outbox_job(uuid, text, text) IS
'Queues a FAILED or CANCELLED job again as a new job (new outbox_id and sequence number, same '
'instruction, key, participant, rail and payload, with its own payment_outbox_payloads row) and '
'records a REDRIVEN row on the old job naming session_user, p_reason, p_ticket (both required, '
'22023) and the new job; replays of the key then answer with the new job. P7012 NOT_REDRIVABLE '
'for a queued, DISPATCHED, already redriven or superseded job, P7010 JOB_NOT_FOUND for an '
'unknown id. EXECUTE for symphony_control.';
