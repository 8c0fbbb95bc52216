-- 0029 a single-participant claim (issue 16, ADRs 0145 and 0163).
--
-- The queue's keys do NOT change here: on plain PostgreSQL they stay (outbox_id) and
-- (instruction_id, idempotency_key). Citus needs keys that contain participant_id; widening them
-- on every database would cost the single-node hot path two more unique indexes per queue row
-- version (a claim, a promotion and a requeue are non-HOT updates), so the Citus-guarded
-- distribution revision widens them where they are needed (ADR 0163).
-- claim_outbox_batch_for_participant(participant, batch, worker, lease, rails): the claim of
--    claim_outbox_batch (body: 0024) restricted to one participant (one shard on Citus): the same
--    validation, rail matching, plan pinning, ledger rows (no payload copy, 0024) and order;
--    every statement filters by participant_id, the lease token and claim time come from
--    PL/pgSQL variables (Citus refuses a VOLATILE function in an UPDATE of a distributed table,
--    even on one shard), so the rows are leased one by one instead of in one statement. EXECUTE
--    for symphony_executor, symphony_control and test_user like claim_outbox_batch.

CREATE FUNCTION public.claim_outbox_batch_for_participant(
    p_participant_id text,
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
    v_row record;
    v_attempt_no integer;
    v_ceiling integer;
    v_state public.outbox_attempt_state;
    v_token uuid;
    v_claimed_at timestamptz;
    v_plan_settings text[];
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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
    -- NULL means every rail; otherwise 1 to 100 rail types, each a valid id, matched as given
    -- and upper-cased (ADR 0122), each once, as claim_outbox_batch does.
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

    -- The participant's due heads (per-participant FIFO: one at a time) without a lease or with
    -- an expired one, highest priority then oldest due first, locked (one shard on Citus).
    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.payload, p.attempt_count, p.claimed_by,
               p.lease_token, p.lease_expires_at, p.claimed_at, p.in_doubt
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.is_head
           AND p.next_attempt_at <= v_now
           AND (p.lease_token IS NULL OR p.lease_expires_at <= v_now)
           AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
         ORDER BY p.priority DESC, p.next_attempt_at, p.outbox_id
         LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED
    LOOP
        v_attempt_no := NULL;
        IF v_row.lease_token IS NOT NULL THEN
            -- An expired lease taken over: record the lost lease first (numbered like
            -- claim_outbox_batch: the ledger's last attempt, or attempt_count if higher, plus
            -- one); at the ceiling the job fails and leaves the queue.
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
            INSERT INTO public.payment_outbox_attempts AS a
                (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,
                 rail_type, attempt_no, state, claimed_at, completed_at, error_code,
                 error_message, worker_id, lease_token, recorded_by)
            VALUES
                (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
                 v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
                 COALESCE(v_row.claimed_at, v_now),
                 CASE WHEN v_state = 'FAILED'::public.outbox_attempt_state THEN v_now END,
                 'LEASE_EXPIRED',
                 CASE
                     WHEN v_state = 'FAILED'::public.outbox_attempt_state
                         THEN pg_catalog.format('lease expired at %s; retry ceiling %s reached; '
                                                'failed by %s', v_row.lease_expires_at,
                                                v_ceiling, p_worker_id)
                     ELSE pg_catalog.format('lease expired at %s; requeued by %s',
                                            v_row.lease_expires_at, p_worker_id)
                 END,
                 v_row.claimed_by, v_row.lease_token, SESSION_USER);
            IF v_state = 'FAILED'::public.outbox_attempt_state THEN
                DELETE FROM public.payment_outbox_pending AS p
                 WHERE p.participant_id = p_participant_id
                   AND p.outbox_id = v_row.outbox_id;
                CONTINUE;
            END IF;
        END IF;

        -- Lease it: token and claim time from variables (read after the row was locked).
        v_token := public.uuid_v7_or_random();
        v_claimed_at := pg_catalog.clock_timestamp();
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = v_token,
               lease_expires_at = v_expires_at,
               claimed_at = v_claimed_at,
               attempt_count = COALESCE(v_attempt_no, p.attempt_count),
               in_doubt = p.in_doubt OR v_attempt_no IS NOT NULL
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        instruction_id := v_row.instruction_id;
        participant_id := v_row.participant_id;
        sequence_id := v_row.sequence_id;
        idempotency_key := v_row.idempotency_key;
        rail_type := v_row.rail_type;
        payload := v_row.payload;
        attempt_count := COALESCE(v_attempt_no, v_row.attempt_count);
        lease_token := v_token;
        lease_expires_at := v_expires_at;
        in_doubt := v_row.in_doubt OR v_attempt_no IS NOT NULL;
        RETURN NEXT;
    END LOOP;

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;

COMMENT ON FUNCTION public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])
IS
'claim_outbox_batch for one participant (ADR 0126: one shard on Citus): leases the '
'participant''s due head (per-participant FIFO, so at most one job; p_batch_size 1..1000 caps '
'it), without a lease or with an expired one, of the rails in p_rail_types (NULL: any; matched '
'as given and upper-cased). An expired lease taken over is first recorded as ZOMBIE_REQUEUE '
'(the job is in_doubt from then on), or FAILED at the retry ceiling (the job leaves the queue '
'and is not returned). 22023 on invalid arguments. Returns what claim_outbox_batch returns.';

-- A non-superuser migrator may hand a function to the owner only while the owner may create in
-- the schema (as 0019 and 0024 do).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])
    OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;
REVOKE ALL ON FUNCTION
    public.claim_outbox_batch_for_participant(text, integer, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])
TO symphony_executor, symphony_control, test_user;
