-- 0019 outbox operations, part 3 (issue 20, ADRs 0120-0124).
--
-- 1. Audited interventions (ADR 0120): public.cancel_outbox_job() and public.redrive_outbox_job(),
--    EXECUTE for symphony_control. Each writes a ledger row naming session_user, a reason and a
--    ticket (both required, 22023). symphony_control loses INSERT, UPDATE and DELETE on the queue,
--    INSERT on the ledger and INSERT, UPDATE on the sequence allocator: nobody but the functions
--    writes them any more.
-- 2. public.outbox_metrics() (ADR 0121) for symphony_readonly, symphony_auditor and
--    symphony_control.
-- 3. Rails (ADR 0122): public.outbox_rails with canonical upper-case codes, managed by control
--    through public.register_outbox_rail() and public.disable_outbox_rail(); RTGS, ACH, SWIFT and
--    CARD are registered here. public.outbox_rail_code() maps any spelling to the canonical code
--    (22023 for an unknown or disabled rail) and public.check_outbox_payload_numbers() refuses
--    numbers a JSON consumer cannot represent exactly (22023 naming the JSON path). Both are
--    internal (owner only) until enqueue calls them.
-- 4. Rail references (ADR 0123): public.outbox_rail_references, one row per (rail, reference),
--    written by public.record_outbox_rail_reference() (internal); a second job reporting the same
--    reference on one rail is P7013 RAIL_REFERENCE_REUSED.
--
-- The five worker functions (enqueue, claim, complete, batched complete, repair) are not restated
-- here: wiring items 3 and 4 into them is a later revision.


-- ------------------------------------------------------------------------------------------------
-- Rails
-- ------------------------------------------------------------------------------------------------

CREATE TABLE public.outbox_rails (
    rail_code text NOT NULL,
    returns_reference boolean NOT NULL DEFAULT true,
    enabled boolean NOT NULL DEFAULT true,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT session_user,
    CONSTRAINT pk_outbox_rails PRIMARY KEY (rail_code),
    -- Canonical codes only: upper-case ASCII letters, digits and underscores, 1 to 32 of them.
    CONSTRAINT ck_outbox_rails_rail_code_canonical
        CHECK (rail_code COLLATE "C" ~ '^[A-Z][A-Z0-9_]{0,31}$'),
    CONSTRAINT ck_outbox_rails_description_length
        CHECK (description IS NULL OR octet_length(description) <= 1024)
);

COMMENT ON TABLE public.outbox_rails IS
'Registered payment rails: canonical upper-case codes (input is matched case-insensitively), '
'whether a DISPATCHED attempt must carry a rail reference, and whether enqueue accepts the rail. '
'Written only by public.register_outbox_rail() and public.disable_outbox_rail().';

-- The rails a fresh database accepts (issue 20 item 3). A database that registered them already
-- keeps its own settings.
INSERT INTO public.outbox_rails (rail_code, returns_reference, description)
VALUES
('RTGS', true, 'Real-time gross settlement'),
('ACH', true, 'Automated clearing house'),
('SWIFT', true, 'SWIFT messaging'),
('CARD', true, 'Card schemes')
ON CONFLICT ON CONSTRAINT pk_outbox_rails DO NOTHING;


-- Where rail references live: one row per (rail, reference) ever reported by a DISPATCHED attempt,
-- kept for good like the idempotency keys (the ledger is partitioned by job and archived, issue
-- 15, so a unique index on it could not span every job). The primary key is the uniqueness rule.
CREATE TABLE public.outbox_rail_references (
    rail_code text NOT NULL,
    rail_reference text NOT NULL,
    outbox_id uuid NOT NULL,
    attempt_no integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_outbox_rail_references PRIMARY KEY (rail_code, rail_reference),
    CONSTRAINT ck_outbox_rail_references_attempt_no_positive CHECK (attempt_no >= 1)
);

COMMENT ON TABLE public.outbox_rail_references IS
'Every rail reference reported by a DISPATCHED attempt, unique per rail (P7013 otherwise), with '
'its job. Written only by public.record_outbox_rail_reference().';


GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TABLE public.outbox_rails OWNER TO symphony_owner;
ALTER TABLE public.outbox_rail_references OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

REVOKE ALL ON TABLE public.outbox_rails, public.outbox_rail_references FROM PUBLIC;


-- The canonical code of a rail enqueue accepts: upper-cased in the "C" collation (ASCII only, so
-- no locale folds another letter into a code), then looked up. 22023 names the argument and the
-- registered rails when the rail is unknown or disabled.
CREATE FUNCTION public.outbox_rail_code(p_rail_type text) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_code text;
    v_enabled boolean;
BEGIN
    IF p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_rail_type must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_rail_type) > 1024 THEN
        RAISE EXCEPTION 'p_rail_type must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_rail_type)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.rail_code, r.enabled
      INTO v_code, v_enabled
      FROM public.outbox_rails AS r
     WHERE r.rail_code = pg_catalog.upper(p_rail_type COLLATE "C");
    IF NOT FOUND OR NOT v_enabled THEN
        RAISE EXCEPTION 'p_rail_type % is not % rail (enabled rails: %)',
            pg_catalog.quote_literal(p_rail_type),
            CASE WHEN FOUND THEN 'an enabled' ELSE 'a registered' END,
            COALESCE((SELECT pg_catalog.string_agg(r.rail_code, ', ' ORDER BY r.rail_code)
                        FROM public.outbox_rails AS r
                       WHERE r.enabled), 'none')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'symphony_control registers rails with public.register_outbox_rail().';
    END IF;
    RETURN v_code;
END
$$;

COMMENT ON FUNCTION public.outbox_rail_code(text) IS
'The canonical code of an enabled registered rail for any spelling (rtgs, Rtgs -> RTGS); 22023 '
'for an unknown or disabled rail, naming the enabled ones. Internal: owner only.';

REVOKE ALL ON FUNCTION public.outbox_rail_code(text) FROM PUBLIC;


-- Control registers a rail (or changes whether it returns a reference, or enables it again).
CREATE FUNCTION public.register_outbox_rail(
    p_rail_code text,
    p_returns_reference boolean,
    p_description text DEFAULT NULL
) RETURNS TABLE (rail_code text, returns_reference boolean, enabled boolean)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_code text;
BEGIN
    IF p_rail_code IS NULL
       OR pg_catalog.upper(p_rail_code COLLATE "C") !~ '^[A-Z][A-Z0-9_]{0,31}$' THEN
        RAISE EXCEPTION 'p_rail_code must be 1 to 32 ASCII letters, digits or underscores '
                        'starting with a letter, got %',
            COALESCE(pg_catalog.quote_literal(pg_catalog.left(p_rail_code, 64)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_returns_reference IS NULL THEN
        RAISE EXCEPTION 'p_returns_reference must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_description) > 1024 THEN
        RAISE EXCEPTION 'p_description must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_description)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_code := pg_catalog.upper(p_rail_code COLLATE "C");

    RETURN QUERY
    INSERT INTO public.outbox_rails AS r
        (rail_code, returns_reference, enabled, description, updated_at, updated_by)
    VALUES
        (v_code, p_returns_reference, true, p_description, pg_catalog.clock_timestamp(),
         SESSION_USER)
    ON CONFLICT ON CONSTRAINT pk_outbox_rails
    DO UPDATE SET returns_reference = excluded.returns_reference,
                  enabled = true,
                  description = COALESCE(excluded.description, r.description),
                  updated_at = excluded.updated_at,
                  updated_by = excluded.updated_by
    RETURNING r.rail_code, r.returns_reference, r.enabled;
END
$$;

COMMENT ON FUNCTION public.register_outbox_rail(text, boolean, text) IS
'Registers a rail under its canonical upper-case code (or updates it and enables it again) and '
'returns it; p_returns_reference false lets DISPATCHED attempts on it omit a rail reference. '
'22023 for a code that is not 1-32 ASCII letters, digits or underscores. EXECUTE for '
'symphony_control.';

REVOKE ALL ON FUNCTION public.register_outbox_rail(text, boolean, text) FROM PUBLIC;


-- Control stops a rail for new jobs; queued jobs and history are untouched. A rail is never
-- deleted: the ledger and the references name it.
CREATE FUNCTION public.disable_outbox_rail(p_rail_code text)
RETURNS TABLE (rail_code text, returns_reference boolean, enabled boolean)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF p_rail_code IS NULL OR pg_catalog.btrim(p_rail_code, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_rail_code must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    UPDATE public.outbox_rails AS r
       SET enabled = false,
           updated_at = pg_catalog.clock_timestamp(),
           updated_by = SESSION_USER
     WHERE r.rail_code = pg_catalog.upper(p_rail_code COLLATE "C")
    RETURNING r.rail_code, r.returns_reference, r.enabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'p_rail_code % is not a registered rail',
            pg_catalog.quote_literal(pg_catalog.left(p_rail_code, 64))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

COMMENT ON FUNCTION public.disable_outbox_rail(text) IS
'Stops enqueue from accepting a rail (queued jobs and history untouched) and returns it; 22023 '
'for an unregistered rail. EXECUTE for symphony_control.';

REVOKE ALL ON FUNCTION public.disable_outbox_rail(text) FROM PUBLIC;


-- ------------------------------------------------------------------------------------------------
-- JSON numbers a consumer cannot represent exactly
-- ------------------------------------------------------------------------------------------------

-- A JSON consumer (JavaScript, most JSON libraries) reads a number into an IEEE 754 double.
-- Refused: any number beyond +-2^53 (integers there are no longer exact, and no fraction is), a
-- non-zero number below 1e-307 in magnitude, and a decimal whose double, printed shortest-exact,
-- is a different number (0.30000000000000001 becomes 0.3). The fast path walks the numbers only
-- (a jsonpath query); the path of the first offending number is computed only to name it.
-- extra_float_digits = 1 makes float8 output shortest-exact whatever the session set; it is set
-- for the check and put back (a SET clause would cost every call a GUC save and restore and is
-- not the house style of the hot path).
CREATE FUNCTION public.check_outbox_payload_numbers(p_payload jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_bad record;
    v_extra_float_digits text;
    v_ignored text;
BEGIN
    IF p_payload IS NULL THEN
        RETURN;
    END IF;
    v_extra_float_digits := pg_catalog.current_setting('extra_float_digits');
    v_ignored := pg_catalog.set_config('extra_float_digits', '1', true);
    IF NOT EXISTS (
        SELECT 1
          FROM pg_catalog.jsonb_path_query(
                   p_payload, 'strict $.** ? (@.type() == "number")'
               ) AS j (value)
         WHERE pg_catalog.abs(j.value::numeric) > 9007199254740992
            OR (j.value::numeric <> 0 AND pg_catalog.abs(j.value::numeric) < 1e-307)
            OR j.value::numeric::float8::text::numeric <> j.value::numeric
    ) THEN
        v_ignored := pg_catalog.set_config('extra_float_digits', v_extra_float_digits, true);
        RETURN;
    END IF;

    WITH RECURSIVE walk (path, value) AS (
        SELECT '$'::text, p_payload
        UNION ALL
        SELECT c.path, c.value
          FROM walk AS w
         CROSS JOIN LATERAL (
             SELECT w.path || CASE
                                  WHEN e.key COLLATE "C" ~ '^[A-Za-z_][A-Za-z0-9_]*$'
                                      THEN '.' || e.key
                                  ELSE '.' || pg_catalog.to_json(e.key)::text
                              END AS path,
                    e.value
               FROM pg_catalog.jsonb_each(
                        CASE WHEN pg_catalog.jsonb_typeof(w.value) = 'object' THEN w.value
                             ELSE '{}'::jsonb END
                    ) AS e (key, value)
             UNION ALL
             SELECT w.path || '[' || (a.ord - 1)::text || ']' AS path, a.value
               FROM pg_catalog.jsonb_array_elements(
                        CASE WHEN pg_catalog.jsonb_typeof(w.value) = 'array' THEN w.value
                             ELSE '[]'::jsonb END
                    ) WITH ORDINALITY AS a (value, ord)
         ) AS c
    )
    SELECT w.path, w.value::text AS number
      INTO v_bad
      FROM walk AS w
     WHERE pg_catalog.jsonb_typeof(w.value) = 'number'
       AND (pg_catalog.abs(w.value::numeric) > 9007199254740992
            OR (w.value::numeric <> 0 AND pg_catalog.abs(w.value::numeric) < 1e-307)
            OR w.value::numeric::float8::text::numeric <> w.value::numeric)
     ORDER BY w.path
     LIMIT 1;

    RAISE EXCEPTION 'p_payload number % at % cannot be represented exactly by a JSON consumer '
                    '(beyond +-2^53, or not a double)',
        pg_catalog.left(v_bad.number, 64), v_bad.path
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Send money as a string ("100.10") or in integer minor units (10010).';
END
$$;

COMMENT ON FUNCTION public.check_outbox_payload_numbers(jsonb) IS
'Raises 22023 naming the JSON path (e.g. $.amount) of the first number in the payload that a '
'JSON consumer reading numbers as IEEE 754 doubles cannot represent exactly: beyond +-2^53, '
'non-zero below 1e-307, or a decimal that does not round-trip through a double. Internal: owner '
'only.';

REVOKE ALL ON FUNCTION public.check_outbox_payload_numbers(jsonb) FROM PUBLIC;


-- ------------------------------------------------------------------------------------------------
-- Rail references
-- ------------------------------------------------------------------------------------------------

-- Records the rail reference of a DISPATCHED attempt. A rail registered with returns_reference
-- requires one (22023); a reference already recorded for another job on the same rail is P7013
-- (the same job and reference again is accepted). Concurrent reports of one reference serialise on
-- the primary key: the second waits for the first and then sees its row.
CREATE FUNCTION public.record_outbox_rail_reference(
    p_outbox_id uuid,
    p_attempt_no integer,
    p_rail_type text,
    p_rail_reference text
) RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_code text;
    v_required boolean;
    v_holder record;
BEGIN
    IF p_outbox_id IS NULL OR p_attempt_no IS NULL OR p_attempt_no < 1 THEN
        RAISE EXCEPTION 'p_outbox_id and p_attempt_no (>= 1) must be given'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_rail_type IS NULL OR pg_catalog.btrim(p_rail_type, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_rail_type must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.octet_length(p_rail_reference) > 1024 THEN
        RAISE EXCEPTION 'p_rail_reference must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_rail_reference)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Jobs queued before rails were registered may carry any spelling or an unknown rail: the
    -- code is upper-cased, and an unknown rail requires no reference.
    v_code := pg_catalog.upper(p_rail_type COLLATE "C");
    SELECT r.returns_reference INTO v_required FROM public.outbox_rails AS r
     WHERE r.rail_code = v_code;

    IF p_rail_reference IS NULL OR pg_catalog.btrim(p_rail_reference, E' \t\n\r\f\x0B') = '' THEN
        IF COALESCE(v_required, false) THEN
            RAISE EXCEPTION 'p_rail_reference must be given for a DISPATCHED attempt on rail %',
                v_code
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Report the reference the rail returned, or register the rail with '
                             'p_returns_reference => false.';
        END IF;
        RETURN;
    END IF;

    INSERT INTO public.outbox_rail_references AS x
        (rail_code, rail_reference, outbox_id, attempt_no)
    VALUES (v_code, p_rail_reference, p_outbox_id, p_attempt_no)
    ON CONFLICT ON CONSTRAINT pk_outbox_rail_references DO NOTHING;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT x.outbox_id, x.attempt_no, x.recorded_at
      INTO v_holder
      FROM public.outbox_rail_references AS x
     WHERE x.rail_code = v_code
       AND x.rail_reference = p_rail_reference;
    IF v_holder.outbox_id IS DISTINCT FROM p_outbox_id THEN
        RAISE EXCEPTION 'RAIL_REFERENCE_REUSED: rail reference % on rail % was already reported '
                        'by outbox %', pg_catalog.quote_literal(p_rail_reference), v_code,
            v_holder.outbox_id
            USING ERRCODE = 'P7013',
                  DETAIL = pg_catalog.format('first reported by attempt %s at %s',
                                             v_holder.attempt_no, v_holder.recorded_at),
                  HINT = 'Two jobs cannot share one rail reference: reconcile with the rail '
                         'before completing this job.';
    END IF;
END
$$;

COMMENT ON FUNCTION public.record_outbox_rail_reference(uuid, integer, text, text) IS
'Records the rail reference of a DISPATCHED attempt in public.outbox_rail_references: required '
'(22023) on a rail registered with returns_reference; P7013 RAIL_REFERENCE_REUSED when another '
'job already reported it on the same rail. Internal: owner only.';

REVOKE ALL ON FUNCTION public.record_outbox_rail_reference(uuid, integer, text, text) FROM PUBLIC;


-- ------------------------------------------------------------------------------------------------
-- Audited interventions
-- ------------------------------------------------------------------------------------------------

-- Cancels a queued job: records a CANCELLED attempt (terminal) with session_user, reason and
-- ticket, and removes the job from the queue. A job under a live lease is refused (P7011): its
-- worker may be dispatching it right now. An expired lease is a lost lease (ADR 0060): it is
-- recorded as a ZOMBIE_REQUEUE attempt first, so the history shows the dispatch in doubt.
CREATE FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text)
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
             payload, attempt_no, state, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no,
             'ZOMBIE_REQUEUE'::public.outbox_attempt_state, 'LEASE_EXPIRED',
             pg_catalog.format('lease expired at %s; found by cancel_outbox_job (%s)',
                               v_row.lease_expires_at, SESSION_USER),
             v_row.claimed_by);
    END IF;

    v_attempt_no := v_attempt_no + 1;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload, attempt_no, state, completed_at, acted_by, reason, ticket)
    VALUES
        (v_row.outbox_id, v_row.instruction_id, v_row.participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_row.payload, v_attempt_no,
         'CANCELLED'::public.outbox_attempt_state, v_now, SESSION_USER, p_reason, p_ticket);

    DELETE FROM public.payment_outbox_pending AS p
     WHERE p.outbox_id = p_outbox_id;

    RETURN QUERY
    SELECT p_outbox_id, v_attempt_no, 'CANCELLED'::public.outbox_attempt_state;
END
$$;

COMMENT ON FUNCTION public.cancel_outbox_job(uuid, text, text) IS
'Cancels a queued job: a CANCELLED attempt (terminal) naming session_user, p_reason and p_ticket '
'(both required, 22023), and the job leaves the queue; an expired lease is recorded as '
'ZOMBIE_REQUEUE first. P7011 JOB_LEASED under a live lease, P7005 JOB_ALREADY_TERMINAL for a '
'finished job, P7010 JOB_NOT_FOUND for an unknown id. EXECUTE for symphony_control.';

REVOKE ALL ON FUNCTION public.cancel_outbox_job(uuid, text, text) FROM PUBLIC;


-- Redrives a FAILED or CANCELLED job as a new job (ADR 0120): a new outbox_id and the
-- participant's next sequence number, the same instruction, idempotency key, participant, rail and
-- payload; the old job gets a REDRIVEN row (session_user, reason, ticket, related_outbox_id = the
-- new job) after its terminal one, and the key table names the new job, so a replay of the
-- original key answers with the new job. Only the key's latest job can be redriven, and only
-- once: serialised on the key's row with enqueue and every other redrive of the payment.
CREATE FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text)
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

    -- The new job, queued now with the participant's next sequence number.
    v_new := public.uuid_v7_or_random();
    v_sequence_id := public.bump_participant_outbox_seq(v_outcome.participant_id);
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         payload)
    VALUES
        (v_new, v_outcome.instruction_id, v_outcome.participant_id, v_sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_outcome.payload);

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

COMMENT ON FUNCTION public.redrive_outbox_job(uuid, text, text) IS
'Queues a FAILED or CANCELLED job again as a new job (new outbox_id and sequence number, same '
'instruction, key, participant, rail and payload) and records a REDRIVEN row on the old job '
'naming session_user, p_reason, p_ticket (both required, 22023) and the new job; replays of the '
'key then answer with the new job. P7012 NOT_REDRIVABLE for a queued, DISPATCHED, already '
'redriven or superseded job, P7010 JOB_NOT_FOUND for an unknown id. EXECUTE for '
'symphony_control.';

REVOKE ALL ON FUNCTION public.redrive_outbox_job(uuid, text, text) FROM PUBLIC;


-- ------------------------------------------------------------------------------------------------
-- Metrics
-- ------------------------------------------------------------------------------------------------

-- One row per (rail, participant) seen in the queue or in the last hour's trouble, and one total
-- row (rail_type and participant_id NULL, is_total true). The queue part is one pass over
-- payment_outbox_pending; in-doubt jobs (queued jobs with a ZOMBIE_REQUEUE attempt: a lost lease
-- whose dispatch may have happened) probe the ledger only for jobs with attempts; the trouble
-- counts read the last hour of ix_payment_outbox_attempts_recent_trouble (DISPATCHED rows are not
-- in it).
CREATE FUNCTION public.outbox_metrics()
RETURNS TABLE (
    rail_type text,
    participant_id text,
    is_total boolean,
    queue_depth bigint,
    due_now bigint,
    leased bigint,
    expired_leases bigint,
    in_doubt bigint,
    oldest_due_age_seconds double precision,
    retries_5m bigint,
    retries_60m bigint,
    lost_leases_5m bigint,
    lost_leases_60m bigint,
    failures_5m bigint,
    failures_60m bigint,
    cancellations_5m bigint,
    cancellations_60m bigint
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH clock AS (
        SELECT pg_catalog.clock_timestamp() AS now
    ), queue AS (
        SELECT p.rail_type, p.participant_id,
               pg_catalog.count(*) AS queue_depth,
               pg_catalog.count(*) FILTER (
                   WHERE p.next_attempt_at <= c.now
                     AND (p.lease_token IS NULL OR p.lease_expires_at <= c.now)
               ) AS due_now,
               pg_catalog.count(*) FILTER (
                   WHERE p.lease_token IS NOT NULL AND p.lease_expires_at > c.now
               ) AS leased,
               pg_catalog.count(*) FILTER (
                   WHERE p.lease_token IS NOT NULL AND p.lease_expires_at <= c.now
               ) AS expired_leases,
               pg_catalog.count(*) FILTER (
                   WHERE p.attempt_count > 0
                     AND EXISTS (
                         SELECT 1
                           FROM public.payment_outbox_attempts AS a
                          WHERE a.outbox_id = p.outbox_id
                            AND a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
                     )
               ) AS in_doubt,
               pg_catalog.min(p.next_attempt_at) FILTER (
                   WHERE p.next_attempt_at <= c.now
                     AND (p.lease_token IS NULL OR p.lease_expires_at <= c.now)
               ) AS oldest_due_at
          FROM public.payment_outbox_pending AS p
         CROSS JOIN clock AS c
         GROUP BY p.rail_type, p.participant_id
    ), trouble AS (
        SELECT a.rail_type, a.participant_id,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'RETRYABLE'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS retries_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'RETRYABLE'::public.outbox_attempt_state
               ) AS retries_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS lost_leases_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'ZOMBIE_REQUEUE'::public.outbox_attempt_state
               ) AS lost_leases_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'FAILED'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS failures_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'FAILED'::public.outbox_attempt_state
               ) AS failures_60m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'CANCELLED'::public.outbox_attempt_state
                     AND a.created_at > c.now - INTERVAL '5 minutes'
               ) AS cancellations_5m,
               pg_catalog.count(*) FILTER (
                   WHERE a.state = 'CANCELLED'::public.outbox_attempt_state
               ) AS cancellations_60m
          FROM public.payment_outbox_attempts AS a
         CROSS JOIN clock AS c
         WHERE a.state IN ('RETRYABLE'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'CANCELLED'::public.outbox_attempt_state,
                           'ZOMBIE_REQUEUE'::public.outbox_attempt_state)
           AND a.created_at > c.now - INTERVAL '60 minutes'
         GROUP BY a.rail_type, a.participant_id
    ), joined AS (
        SELECT COALESCE(q.rail_type, t.rail_type) AS rail_type,
               COALESCE(q.participant_id, t.participant_id) AS participant_id,
               COALESCE(q.queue_depth, 0) AS queue_depth,
               COALESCE(q.due_now, 0) AS due_now,
               COALESCE(q.leased, 0) AS leased,
               COALESCE(q.expired_leases, 0) AS expired_leases,
               COALESCE(q.in_doubt, 0) AS in_doubt,
               q.oldest_due_at,
               COALESCE(t.retries_5m, 0) AS retries_5m,
               COALESCE(t.retries_60m, 0) AS retries_60m,
               COALESCE(t.lost_leases_5m, 0) AS lost_leases_5m,
               COALESCE(t.lost_leases_60m, 0) AS lost_leases_60m,
               COALESCE(t.failures_5m, 0) AS failures_5m,
               COALESCE(t.failures_60m, 0) AS failures_60m,
               COALESCE(t.cancellations_5m, 0) AS cancellations_5m,
               COALESCE(t.cancellations_60m, 0) AS cancellations_60m
          FROM queue AS q
          FULL JOIN trouble AS t
            ON t.rail_type = q.rail_type AND t.participant_id = q.participant_id
    )
    SELECT j.rail_type, j.participant_id,
           GROUPING(j.rail_type, j.participant_id) <> 0 AS is_total,
           COALESCE(pg_catalog.sum(j.queue_depth), 0)::bigint,
           COALESCE(pg_catalog.sum(j.due_now), 0)::bigint,
           COALESCE(pg_catalog.sum(j.leased), 0)::bigint,
           COALESCE(pg_catalog.sum(j.expired_leases), 0)::bigint,
           COALESCE(pg_catalog.sum(j.in_doubt), 0)::bigint,
           COALESCE(pg_catalog.date_part(
               'epoch', (SELECT c.now FROM clock AS c) - pg_catalog.min(j.oldest_due_at)
           ), 0)::double precision,
           COALESCE(pg_catalog.sum(j.retries_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.retries_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.lost_leases_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.lost_leases_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.failures_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.failures_60m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.cancellations_5m), 0)::bigint,
           COALESCE(pg_catalog.sum(j.cancellations_60m), 0)::bigint
      FROM joined AS j
     GROUP BY GROUPING SETS ((j.rail_type, j.participant_id), ())
     ORDER BY is_total, j.rail_type, j.participant_id
$$;

COMMENT ON FUNCTION public.outbox_metrics() IS
'Outbox health per (rail_type, participant_id) and one total row (is_total): queue depth, due '
'now, leased, expired leases, in-doubt jobs (queued jobs with a ZOMBIE_REQUEUE attempt), the '
'oldest due job''s age in seconds, and RETRYABLE, ZOMBIE_REQUEUE, FAILED and CANCELLED attempts '
'of the last 5 and 60 minutes. EXECUTE for symphony_readonly, symphony_auditor and '
'symphony_control.';

REVOKE ALL ON FUNCTION public.outbox_metrics() FROM PUBLIC;


-- ------------------------------------------------------------------------------------------------
-- Ownership and grants
-- ------------------------------------------------------------------------------------------------

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.outbox_rail_code(text) OWNER TO symphony_owner;
ALTER FUNCTION public.register_outbox_rail(text, boolean, text) OWNER TO symphony_owner;
ALTER FUNCTION public.disable_outbox_rail(text) OWNER TO symphony_owner;
ALTER FUNCTION public.check_outbox_payload_numbers(jsonb) OWNER TO symphony_owner;
ALTER FUNCTION public.record_outbox_rail_reference(uuid, integer, text, text)
OWNER TO symphony_owner;
ALTER FUNCTION public.cancel_outbox_job(uuid, text, text) OWNER TO symphony_owner;
ALTER FUNCTION public.redrive_outbox_job(uuid, text, text) OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_metrics() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

GRANT EXECUTE ON FUNCTION
    public.cancel_outbox_job(uuid, text, text),
    public.redrive_outbox_job(uuid, text, text),
    public.register_outbox_rail(text, boolean, text),
    public.disable_outbox_rail(text)
TO symphony_control;

GRANT EXECUTE ON FUNCTION public.outbox_metrics()
TO symphony_readonly, symphony_auditor, symphony_control;

GRANT SELECT ON TABLE public.outbox_rails, public.outbox_rail_references
TO symphony_control, symphony_readonly, symphony_auditor;

-- Nobody but the functions writes the queue, the ledger or the allocator any more (issue 20):
-- interventions go through cancel_outbox_job() and redrive_outbox_job(), which leave a ledger row.
REVOKE INSERT, UPDATE, DELETE ON TABLE public.payment_outbox_pending FROM symphony_control;
REVOKE INSERT ON TABLE public.payment_outbox_attempts FROM symphony_control;
REVOKE INSERT, UPDATE ON TABLE public.participant_outbox_sequences FROM symphony_control;

COMMENT ON TABLE public.payment_outbox_attempts IS
'Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001), written only '
'by the outbox functions. At most one outcome (DISPATCHED, FAILED or CANCELLED) per outbox_id; '
'a REDRIVEN row after FAILED or CANCELLED names the job that replaced it.';
