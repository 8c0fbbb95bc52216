-- 0023 batch enqueue (issue 17 P4b, ADR 0152).
--
-- enqueue_payment_outbox_batch takes one array per argument of enqueue_payment_outbox (element i
-- of every array is job i) and runs each element through that one enqueue function, so the
-- validation, idempotency (a replayed key returns its job; P7004 on a conflicting replay),
-- canonical rail, payload checks and per-participant sequencing are enqueue's own, not a second
-- copy. All or nothing: the call is one statement, so the first element that enqueue refuses
-- aborts it and nothing of the batch stays; the error keeps enqueue's SQLSTATE and message,
-- prefixed with the element's position. Elements are enqueued in participant order (then array
-- order), so concurrent batches lock the participants' allocator rows in one order (no 40P01
-- between batches, ADR 0116) and a participant's jobs take their sequence numbers in array
-- order. Results come back in array order.

CREATE FUNCTION public.enqueue_payment_outbox_batch(
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
AS $$
DECLARE
    v_count integer := pg_catalog.cardinality(p_instruction_ids);
    v_lengths integer[];
    v_index integer;
    v_job record;
    v_ordinality integer[] := '{}';
    v_outbox_ids uuid[] := '{}';
    v_sequence_ids bigint[] := '{}';
    v_created_at timestamptz[] := '{}';
    v_states text[] := '{}';
    v_hint text;
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

    -- Each element through the one enqueue, in participant order (then array order). The block
    -- is one subtransaction for the whole batch, only to name the failing element: its error
    -- is raised again with enqueue's SQLSTATE, message and hint, and the statement fails.
    BEGIN
        FOR v_index IN
            SELECT g.i
              FROM pg_catalog.generate_series(1, v_count) AS g (i)
             ORDER BY p_participant_ids[g.i] COLLATE "C", g.i
        LOOP
            SELECT e.outbox_id, e.sequence_id, e.created_at, e.state
              INTO STRICT v_job
              FROM public.enqueue_payment_outbox(
                       p_instruction_ids[v_index], p_participant_ids[v_index],
                       p_idempotency_keys[v_index], p_rail_types[v_index],
                       p_payloads[v_index], p_not_before[v_index],
                       CASE WHEN p_priorities IS NULL THEN 0::smallint
                            ELSE p_priorities[v_index] END
                   ) AS e;
            v_ordinality := v_ordinality || v_index;
            v_outbox_ids := v_outbox_ids || v_job.outbox_id;
            v_sequence_ids := v_sequence_ids || v_job.sequence_id;
            v_created_at := v_created_at || v_job.created_at;
            v_states := v_states || v_job.state;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
        RAISE EXCEPTION 'element % of the batch: %', v_index, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = v_hint;
    END;

    RETURN QUERY
        SELECT r.ordinality, r.outbox_id, r.sequence_id, r.created_at, r.state
          FROM ROWS FROM (pg_catalog.unnest(v_ordinality), pg_catalog.unnest(v_outbox_ids),
                          pg_catalog.unnest(v_sequence_ids), pg_catalog.unnest(v_created_at),
                          pg_catalog.unnest(v_states))
               AS r (ordinality, outbox_id, sequence_id, created_at, state)
         ORDER BY r.ordinality;
END
$$;

COMMENT ON FUNCTION public.enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[],
                                                        timestamptz[], smallint[]) IS
'Enqueues element i of every array as one job through enqueue_payment_outbox (same validation, '
'idempotency, rails and per-participant sequencing), 1 to 1000 elements, in participant order '
'then array order; returns one row per element in array order (ordinality is the element''s '
'position). All or nothing: the first element enqueue refuses fails the call with enqueue''s '
'SQLSTATE, its message prefixed with "element <i> of the batch: ", and nothing of the batch is '
'written. 22023 when the arrays are missing, empty, over 1000 or of different lengths.';

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[],
                                                           timestamptz[], smallint[]) FROM PUBLIC;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[],
                                                   timestamptz[], smallint[])
    OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

GRANT EXECUTE ON FUNCTION public.enqueue_payment_outbox_batch(text[], text[], text[], text[],
                                                              jsonb[], timestamptz[], smallint[])
    TO symphony_ingest, symphony_control, test_user;
