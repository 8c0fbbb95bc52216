-- 0014 dispatch a payments team can trust (issue 19, ADRs 0116-0119).
--
-- 1. Per-participant FIFO by default (ADR 0116): a job is claimable only when it is its
--    participant's head, the queued job with the lowest sequence_id (every earlier one is
--    terminal: it left the queue). The head is stored (payment_outbox_pending.is_head) so that a
--    claim reads a partial index of claimable heads and stays proportional to its batch. Enqueue
--    sets it for a participant's first queued job; when a head leaves the queue (completion,
--    FAILED at the ceiling, or a DELETE by the control plane) the trigger
--    trg_promote_outbox_head makes the participant's next job the head. Both serialise on the
--    participant's row in participant_outbox_sequences (enqueue allocates there; the trigger
--    updates it in place), so an enqueue and a completion of one participant cannot both miss
--    the other's row. A head waiting for a retry blocks its participant (head-of-line); the
--    retry ceiling bounds how long.
-- 2. Rail-scoped claims: claim_outbox_batch(..., p_rail_types text[] DEFAULT NULL).
-- 3. Heartbeat: extend_outbox_lease(outbox_id, lease_token, worker_id, lease_seconds).
-- 4. In-doubt dispatches (ADR 0117): payment_outbox_pending.in_doubt is set when an earlier lease
--    of the job ended without a recorded outcome (a ZOMBIE_REQUEUE attempt, by repair or by a
--    claim) and stays set; the claim returns it.
-- 5. No rail outcome is lost (ADR 0118): a completion whose token is still the job's current
--    token is recorded even after lease_expires_at; a replaced token still gets P7002, and the
--    worker records what the rail said with record_stale_outbox_outcome() in
--    payment_outbox_stale_outcomes (readable by control, readonly and the auditor).
-- 6. Enqueue options: p_not_before (next_attempt_at starts there) and p_priority (higher first
--    across participants; FIFO keeps it from reordering a participant's jobs).
-- 7. Ledger facts (ADR 0119): every attempt records claimed_at (the real claim time), the
--    lease_token it ran under and recorded_by (session_user, the login that recorded it).
--
-- claim_outbox_batch and enqueue_payment_outbox gain parameters (and the claim a result column):
-- the old signatures are dropped and the new ones created in this revision (calls without the
-- new arguments work unchanged), with their grants and comments. The other functions keep their
-- signatures (CREATE OR REPLACE keeps owner, grants and comments).


-- The queue: head flag, priority, in-doubt flag and the claim time of the current lease.
ALTER TABLE public.payment_outbox_pending
    ADD COLUMN is_head boolean NOT NULL DEFAULT false,
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    ADD COLUMN in_doubt boolean NOT NULL DEFAULT false,
    ADD COLUMN claimed_at timestamptz;

COMMENT ON COLUMN public.payment_outbox_pending.is_head IS
'True for the participant''s queued job with the lowest sequence_id: the only one of its jobs a '
'claim may lease (per-participant FIFO). Maintained by enqueue and trg_promote_outbox_head.';
COMMENT ON COLUMN public.payment_outbox_pending.priority IS
'Enqueue priority (higher is claimed first across participants; never within one).';
COMMENT ON COLUMN public.payment_outbox_pending.in_doubt IS
'True once an earlier lease of the job ended without a recorded outcome (a ZOMBIE_REQUEUE '
'attempt is in the ledger): the rail may already have the payment.';
COMMENT ON COLUMN public.payment_outbox_pending.claimed_at IS
'When the current lease was taken (NULL without a lease, and for leases taken before 0014).';

-- Heads of the jobs queued before 0014 (jobs already in the ledger with a ZOMBIE_REQUEUE are in
-- doubt).
UPDATE public.payment_outbox_pending AS p
   SET is_head = true
 WHERE p.sequence_id = (
           SELECT pg_catalog.min(q.sequence_id)
             FROM public.payment_outbox_pending AS q
            WHERE q.participant_id = p.participant_id
       );
UPDATE public.payment_outbox_pending AS p
   SET in_doubt = true
 WHERE EXISTS (
           SELECT 1
             FROM public.payment_outbox_attempts AS a
            WHERE a.outbox_id = p.outbox_id
              AND a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
       );

-- The indexes of claimable heads are built by 0015 (CONCURRENTLY, outside a transaction).


-- The ledger: the facts of each attempt (NULL in rows recorded before 0014).
ALTER TABLE public.payment_outbox_attempts
    ADD COLUMN lease_token uuid,
    ADD COLUMN recorded_by text;
ALTER TABLE public.payment_outbox_attempts
    ALTER COLUMN recorded_by SET DEFAULT session_user;

COMMENT ON COLUMN public.payment_outbox_attempts.lease_token IS
'The lease the attempt ran under (for a ZOMBIE_REQUEUE or a lost lease FAILED: the lease that '
'expired). NULL for rows recorded before 0014 and for rows inserted by the control plane.';
COMMENT ON COLUMN public.payment_outbox_attempts.recorded_by IS
'session_user of the transaction that recorded the row (the login, not the worker''s '
'self-reported worker_id). NULL for rows recorded before 0014.';
COMMENT ON COLUMN public.payment_outbox_attempts.claimed_at IS
'When the lease of the attempt was taken (since 0014; before, when the attempt was recorded).';


-- Outcomes reported under a replaced lease (ADR 0118): kept for reconciliation, never applied.
CREATE TABLE public.payment_outbox_stale_outcomes (
    stale_outcome_id uuid NOT NULL DEFAULT public.uuid_v7_or_random(),
    outbox_id uuid NOT NULL,
    lease_token uuid NOT NULL,
    worker_id text NOT NULL,
    state public.outbox_attempt_state NOT NULL,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    reported_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    recorded_by text NOT NULL DEFAULT session_user,
    CONSTRAINT pk_payment_outbox_stale_outcomes PRIMARY KEY (stale_outcome_id)
);

CREATE INDEX ix_payment_outbox_stale_outcomes_outbox
    ON public.payment_outbox_stale_outcomes (outbox_id);

COMMENT ON TABLE public.payment_outbox_stale_outcomes IS
'What a rail said for an attempt whose lease had been replaced (the completion got P7002): '
'written only by public.record_stale_outbox_outcome(); for reconciliation, never applied to the '
'queue or the ledger.';

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TABLE public.payment_outbox_stale_outcomes OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;
REVOKE ALL ON TABLE public.payment_outbox_stale_outcomes FROM PUBLIC;
GRANT SELECT ON TABLE public.payment_outbox_stale_outcomes
    TO symphony_control, symphony_readonly, symphony_auditor;


-- A head left the queue: its participant's next queued job becomes the head. The participant's
-- allocator row is updated in place first (no change), which serialises with enqueue: an enqueue
-- in flight holds that row until it commits, and the look-up below (a new statement, so a new
-- snapshot under READ COMMITTED) then sees its job; an enqueue that comes after us waits for our
-- commit and then finds no queued job of the participant, so its job is the head. Under
-- REPEATABLE READ or SERIALIZABLE one of the two gets 40001 instead.
CREATE FUNCTION public.promote_outbox_head() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    UPDATE public.participant_outbox_sequences AS s
       SET next_sequence_id = s.next_sequence_id
     WHERE s.participant_id = OLD.participant_id;

    UPDATE public.payment_outbox_pending AS p
       SET is_head = true
     WHERE p.outbox_id = (
               SELECT q.outbox_id
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = OLD.participant_id
                ORDER BY q.sequence_id
                LIMIT 1
           )
       AND NOT p.is_head;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION public.promote_outbox_head() IS
'Trigger function (AFTER DELETE of a head on payment_outbox_pending): makes the participant''s '
'queued job with the lowest sequence_id its head, serialised with enqueue on the participant''s '
'row in participant_outbox_sequences.';

REVOKE ALL ON FUNCTION public.promote_outbox_head() FROM PUBLIC;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.promote_outbox_head() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

CREATE TRIGGER trg_promote_outbox_head
    AFTER DELETE ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (old.is_head)
    EXECUTE FUNCTION public.promote_outbox_head();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_promote_outbox_head;


-- A queue row written from outside (control plane) gets its head flag from the queue, as
-- enqueue sets it: the head when no earlier job of the participant is queued (an earlier head
-- that is not leased steps back).
CREATE FUNCTION public.place_outbox_head() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    UPDATE public.participant_outbox_sequences AS s
       SET next_sequence_id = s.next_sequence_id
     WHERE s.participant_id = NEW.participant_id;

    NEW.is_head := NOT EXISTS (
        SELECT 1
          FROM public.payment_outbox_pending AS q
         WHERE q.participant_id = NEW.participant_id
           AND q.sequence_id < NEW.sequence_id
           AND q.outbox_id <> NEW.outbox_id
    );
    IF NEW.is_head THEN
        UPDATE public.payment_outbox_pending AS q
           SET is_head = false
         WHERE q.participant_id = NEW.participant_id
           AND q.sequence_id > NEW.sequence_id
           AND q.is_head
           AND q.lease_token IS NULL;
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION public.place_outbox_head() IS
'Trigger function (BEFORE INSERT or UPDATE OF participant_id, sequence_id on '
'payment_outbox_pending, by anyone but the outbox functions): sets is_head from the queue.';

REVOKE ALL ON FUNCTION public.place_outbox_head() FROM PUBLIC;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.place_outbox_head() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

CREATE TRIGGER trg_place_outbox_head
    BEFORE INSERT OR UPDATE OF participant_id, sequence_id, is_head
    ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.place_outbox_head();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_place_outbox_head;

-- Enqueue (body: 0013) gains p_not_before and p_priority (issue 19 item 6) and sets the head flag
-- (item 1). The five-argument function is replaced by the seven-argument one, whose defaults keep
-- five-argument calls working; a repeat of a key returns the job as queued (its not-before time
-- and priority are those of the first enqueue).
-- The old signature goes in the same transaction as the new one arrives (no overload, no gap).
-- squawk-ignore ban-drop-function
DROP FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb);

CREATE FUNCTION public.enqueue_payment_outbox(
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
           p_rail_type, p_payload, GREATEST(p_not_before, pg_catalog.now()), p_priority,
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
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                                  smallint) IS
'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key '
'of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest '
'attempt once the job has been worked on. p_not_before: not claimable before that time; '
'p_priority: higher is claimed first across participants, never ahead of an earlier job of the '
'same participant (per-participant FIFO). P7004 when the key is reused with a different '
'participant, rail type or payload; 22023 on invalid arguments (payload over 65536 bytes).';

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                                     smallint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb,
                                                        timestamptz, smallint)
    TO symphony_ingest, symphony_control, test_user;


-- Claim (body: 0013): claimable heads only (item 1), highest priority then oldest due first
-- (item 6), optionally of some rails only (item 2); returns in_doubt (item 4); records the claim
-- time and, for an expired lease it takes over, the expired token (item 7).
-- squawk-ignore ban-drop-function
DROP FUNCTION public.claim_outbox_batch(integer, text, integer);

CREATE FUNCTION public.claim_outbox_batch(
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
             payload, attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        SELECT d.outbox_id, d.instruction_id, d.participant_id, d.sequence_id,
               d.idempotency_key, d.rail_type, d.payload, d.attempt_no, d.state,
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

COMMENT ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) IS
'Leases up to p_batch_size (1..1000) claimable jobs (FOR UPDATE SKIP LOCKED): the participant''s '
'head (every earlier sequence_id is terminal), due, without a lease or with an expired one, of '
'the rails in p_rail_types (NULL: any), highest priority then oldest due first. Each claim gets '
'a fresh lease_token valid for p_lease_seconds (1..86400). An expired lease it takes over is '
'recorded as a ZOMBIE_REQUEUE attempt and the job is in doubt (in_doubt stays true), or as '
'FAILED at outbox_retry_ceiling(): that job leaves the queue and is not returned, so a claim may '
'return fewer rows than are due.';

REVOKE ALL ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.claim_outbox_batch(integer, text, integer, text[])
    TO symphony_executor, symphony_control, test_user;


-- Completion (body: 0013): fenced on the current token, not on lease_expires_at (item 5: a late
-- completion nobody overtook is recorded); records claim time, token and session_user (item 7).
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

        RETURN QUERY
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             payload, attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        SELECT v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
               v_row.idempotency_key, v_row.rail_type, v_row.payload,
               COALESCE(pg_catalog.max(x.attempt_no), 0) + 1, p_state,
               COALESCE(v_row.claimed_at, v_now), v_now,
               p_rail_reference, p_rail_code, p_error_code, p_error_message, p_latency_ms,
               p_worker_id, p_lease_token, SESSION_USER
          FROM public.payment_outbox_attempts AS x
         WHERE x.outbox_id = p_outbox_id
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
'FAILED. Terminal outcomes remove the pending row; retries requeue it after '
'max(1, p_retry_delay_seconds) seconds. Returns (attempt_no, state).';


-- Batched completion (body: 0013): the same fence and ledger facts as complete_outbox_attempt.
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
'DISPATCHED, FAILED or RETRYABLE, 22023 for invalid arguments; nothing is recorded then. Returns '
'(outbox_id, attempt_no, state) per element, in input order.';


-- Repair (body: 0013): the requeued job is in doubt (item 4); the attempt records the expired
-- token, its claim time and session_user (item 7).
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
             payload, attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no, v_state,
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

COMMENT ON FUNCTION public.repair_expired_leases(integer, text) IS
'Requeues up to p_batch_size (1..1000) rows whose lease expired (SKIP LOCKED): appends a '
'ZOMBIE_REQUEUE attempt (with the expired lease_token), clears the lease, marks the job in doubt, '
'bumps attempt_count and makes the row due now, keeping its place in the queue; at '
'outbox_retry_ceiling() the attempt is FAILED and the job leaves the queue. Never touches rows '
'with a live lease or without a lease. Returns (outbox_id, attempt_no).';


-- Heartbeat (item 3): a worker whose rail is slow extends its lease before it expires. Fenced
-- like completion: worker and the job's current token (an expired lease nobody replaced may be
-- extended; a replaced one is P7002). Returns the new expiry, now + p_lease_seconds.
CREATE FUNCTION public.extend_outbox_lease(
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
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    IF p_lease_seconds IS NULL OR p_lease_seconds < 1 OR p_lease_seconds > 86400 THEN
        RAISE EXCEPTION 'p_lease_seconds must be between 1 and 86400, got %',
            COALESCE(p_lease_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_plan_settings := public.outbox_pin_plan_settings();

    UPDATE public.payment_outbox_pending AS p
       SET lease_expires_at = pg_catalog.clock_timestamp()
                              + pg_catalog.make_interval(secs => p_lease_seconds)
     WHERE p.outbox_id = p_outbox_id
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

COMMENT ON FUNCTION public.extend_outbox_lease(uuid, uuid, text, integer) IS
'Heartbeat: sets the lease of p_outbox_id to expire p_lease_seconds (1..86400) from now and '
'returns the new expiry. Fenced like completion: P7002 (LEASE_LOST) unless worker and token are '
'the job''s current lease (an expired lease nobody replaced may still be extended).';

REVOKE ALL ON FUNCTION public.extend_outbox_lease(uuid, uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.extend_outbox_lease(uuid, uuid, text, integer)
    TO symphony_executor, symphony_control, test_user;


-- Item 5: what a rail said under a lease that was replaced. PostgreSQL has no autonomous
-- transactions, so the completion that raises P7002 cannot also keep a row (its writes roll
-- back with it): the worker records the outcome with this function, in a new transaction, after
-- the P7002 (ADR 0118). Only a token the job really ran under and lost is accepted: the ledger
-- holds the lost lease (ZOMBIE_REQUEUE or FAILED with that token, for that worker). The row goes
-- to payment_outbox_stale_outcomes for reconciliation; the queue and the ledger do not change.
CREATE FUNCTION public.record_stale_outbox_outcome(
    p_outbox_id uuid,
    p_lease_token uuid,
    p_worker_id text,
    p_state public.outbox_attempt_state,
    p_rail_reference text DEFAULT NULL,
    p_rail_code text DEFAULT NULL,
    p_error_code text DEFAULT NULL,
    p_error_message text DEFAULT NULL,
    p_latency_ms integer DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_id uuid;
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
    IF p_state NOT IN ('DISPATCHED'::public.outbox_attempt_state,
                       'FAILED'::public.outbox_attempt_state,
                       'RETRYABLE'::public.outbox_attempt_state) THEN
        RAISE EXCEPTION 'invalid completion state %: expected DISPATCHED, FAILED or RETRYABLE',
            p_state
            USING ERRCODE = 'P7003';
    END IF;

    IF EXISTS (
        SELECT 1
          FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = p_outbox_id
           AND p.claimed_by = p_worker_id
           AND p.lease_token IS NOT DISTINCT FROM p_lease_token
    ) THEN
        RAISE EXCEPTION 'the lease of outbox % for worker % with this token is still current',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Record the outcome with public.complete_outbox_attempt().';
    END IF;
    IF NOT EXISTS (
        SELECT 1
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = p_outbox_id
           AND a.lease_token = p_lease_token
           AND a.worker_id = p_worker_id
           AND a.error_code = 'LEASE_EXPIRED'
    ) THEN
        RAISE EXCEPTION 'LEASE_LOST: outbox % never lost a lease of worker % with this token',
            p_outbox_id, pg_catalog.quote_literal(p_worker_id)
            USING ERRCODE = 'P7002',
                  HINT = 'Only an outcome under a lease the ledger records as lost is kept.';
    END IF;

    INSERT INTO public.payment_outbox_stale_outcomes AS s
        (outbox_id, lease_token, worker_id, state, rail_reference, rail_code, error_code,
         error_message, latency_ms, recorded_by)
    VALUES
        (p_outbox_id, p_lease_token, p_worker_id, p_state, p_rail_reference, p_rail_code,
         p_error_code, p_error_message, p_latency_ms, SESSION_USER)
    RETURNING s.stale_outcome_id INTO v_id;
    RETURN v_id;
END
$$;

COMMENT ON FUNCTION public.record_stale_outbox_outcome(uuid, uuid, text,
                                                       public.outbox_attempt_state, text, text,
                                                       text, text, integer) IS
'Keeps what a rail said under a lease that was replaced (the completion got P7002) in '
'payment_outbox_stale_outcomes for reconciliation; changes neither the queue nor the ledger. '
'22023 while the lease is still current (complete it instead); P7002 unless the ledger records '
'that lease as lost by that worker. Returns the stale_outcome_id.';

REVOKE ALL ON FUNCTION public.record_stale_outbox_outcome(uuid, uuid, text,
                                                          public.outbox_attempt_state, text, text,
                                                          text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.record_stale_outbox_outcome(uuid, uuid, text,
                                                             public.outbox_attempt_state, text,
                                                             text, text, text, integer)
    TO symphony_executor, symphony_control, test_user;


-- Ownership of the functions created here (a CREATE window, as in 0011).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz,
                                             smallint) OWNER TO symphony_owner;
ALTER FUNCTION public.claim_outbox_batch(integer, text, integer, text[]) OWNER TO symphony_owner;
ALTER FUNCTION public.extend_outbox_lease(uuid, uuid, text, integer) OWNER TO symphony_owner;
ALTER FUNCTION public.record_stale_outbox_outcome(uuid, uuid, text, public.outbox_attempt_state,
                                                  text, text, text, text, integer)
    OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;
