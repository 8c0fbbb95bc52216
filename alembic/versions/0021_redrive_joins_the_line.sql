-- 0021 a redriven job takes its place in its participant's line (issue 20 with issue 19's FIFO).
--
-- redrive_outbox_job (body: 0019) inserted the new job as the owner without setting is_head, and
-- trg_place_outbox_head skips rows the outbox functions write (they set the flag themselves), so
-- a redriven job was never claimable. The new job is now its participant's head exactly when no
-- other job of the participant is queued; otherwise it waits behind them and is promoted like any
-- later job (trg_promote_outbox_head). Nothing else changes; owner and grants stay (CREATE OR
-- REPLACE).

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
           a.idempotency_key, a.rail_type, a.payload
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
           v_outcome.idempotency_key, v_outcome.rail_type, v_outcome.payload,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = v_outcome.participant_id
           );

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
         payload, attempt_no, state, completed_at, acted_by, reason, ticket, related_outbox_id)
    VALUES
        (p_outbox_id, v_outcome.instruction_id, v_outcome.participant_id, v_outcome.sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_outcome.payload, v_attempt_no,
         'REDRIVEN'::public.outbox_attempt_state, pg_catalog.clock_timestamp(), SESSION_USER,
         p_reason, p_ticket, v_new);

    RETURN QUERY
    SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text
      FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = v_new;
END
$$;
