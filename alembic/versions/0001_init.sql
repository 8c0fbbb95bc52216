-- 0001 init: version gate, UUID helpers, enum types, the three outbox tables, their indexes and
-- the append-only enforcement of the attempts ledger.
--
-- Executed by the migration engine as one string inside one transaction (no BEGIN/COMMIT here).
-- Objects are created as the migrating user; 0004 hands them to symphony_owner once the roles
-- exist (0003).


-- The gate runs first so that an older server fails before anything is created. uuidv7(), the
-- PG 18 catalog and the behaviour the functions rely on are only guaranteed from 18 on. The
-- message names both the required and the actual version, e.g.
-- "Symphony requires PostgreSQL 18+ (server is 15.18)".
DO $$
BEGIN
    IF pg_catalog.current_setting('server_version_num')::integer < 180000 THEN
        RAISE EXCEPTION 'Symphony requires PostgreSQL 18+ (server is %)',
            pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1)
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Upgrade the server to PostgreSQL 18 or newer, then rerun the migration.';
    END IF;
END
$$;


-- The UUID generator is chosen once, while this revision runs, so the hot path never pays for
-- dynamic SQL or a catalog lookup. PostgreSQL 18 ships uuidv7() in pg_catalog; looking only for
-- public.uuidv7() would miss it and silently fall back, so the search covers every schema and
-- prefers pg_catalog. The dynamic SQL below runs at migration time only: the created function is
-- a plain one-line SQL function (inlinable, no SET clause).
DO $$
DECLARE
    v_schema text;
BEGIN
    SELECT n.nspname
      INTO v_schema
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
     WHERE p.proname = 'uuidv7'
       AND p.pronargs = 0
       AND p.prorettype = 'pg_catalog.uuid'::pg_catalog.regtype
     ORDER BY (n.nspname <> 'pg_catalog'), n.nspname
     LIMIT 1;

    IF v_schema IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE FUNCTION public.uuid_v7_or_random() RETURNS uuid '
            'LANGUAGE sql VOLATILE PARALLEL SAFE '
            'AS $body$SELECT %I.uuidv7()$body$',
            v_schema
        );
    ELSE
        CREATE FUNCTION public.uuid_v7_or_random() RETURNS uuid
        LANGUAGE sql VOLATILE PARALLEL SAFE
        AS $body$SELECT pg_catalog.gen_random_uuid()$body$;
    END IF;
END
$$;

COMMENT ON FUNCTION public.uuid_v7_or_random() IS
'The one UUID generator for defaults and lease tokens: uuidv7() (time-ordered) when the server '
'provided it when revision 0001 ran, gen_random_uuid() otherwise. See uuid_strategy().';

-- Closed until 0004 grants it: PostgreSQL gives EXECUTE to PUBLIC on every new function.
REVOKE ALL ON FUNCTION public.uuid_v7_or_random() FROM PUBLIC;


-- uuid_strategy() reports what the generator really does, by generating one UUID and reading its
-- version nibble, instead of repeating a decision that could drift from the generator's body.
CREATE FUNCTION public.uuid_strategy() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT CASE pg_catalog.uuid_extract_version(public.uuid_v7_or_random())
               WHEN 7 THEN 'uuidv7'
               ELSE 'gen_random_uuid'
           END
$$;

COMMENT ON FUNCTION public.uuid_strategy() IS
'''uuidv7'' or ''gen_random_uuid'': what public.uuid_v7_or_random() actually generates '
'(read from the version nibble of a freshly generated UUID).';

REVOKE ALL ON FUNCTION public.uuid_strategy() FROM PUBLIC;


-- Attempt outcomes. DISPATCHING exists for compatibility only: no function writes it and the
-- invariant gate requires zero rows in that state.
CREATE TYPE public.outbox_attempt_state AS ENUM (
    'DISPATCHING',
    'DISPATCHED',
    'RETRYABLE',
    'FAILED',
    'ZOMBIE_REQUEUE'
);

COMMENT ON TYPE public.outbox_attempt_state IS
'Outcome of one outbox attempt. DISPATCHED and FAILED are terminal; RETRYABLE and ZOMBIE_REQUEUE '
'put the job back in the queue; DISPATCHING is legacy and never written.';


-- Per-participant sequence allocator state. Written only by bump_participant_outbox_seq(), whose
-- upsert row lock serialises allocation and keeps sequences gapless for committed enqueues.
CREATE TABLE public.participant_outbox_sequences (
    participant_id text NOT NULL,
    next_sequence_id bigint NOT NULL,
    CONSTRAINT pk_participant_outbox_sequences PRIMARY KEY (participant_id),
    CONSTRAINT ck_participant_outbox_sequences_next_sequence_id_positive
        CHECK (next_sequence_id >= 1)
);

COMMENT ON TABLE public.participant_outbox_sequences IS
'Next sequence number to hand out per participant. Written only by '
'public.bump_participant_outbox_seq().';


-- The work queue. A row lives here from enqueue until its terminal attempt; leases are fenced by
-- lease_token, which changes on every claim.
CREATE TABLE public.payment_outbox_pending (
    outbox_id uuid NOT NULL DEFAULT public.uuid_v7_or_random(),
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb NOT NULL,
    attempt_count integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    lease_token uuid,
    lease_expires_at timestamptz,
    CONSTRAINT pk_payment_outbox_pending PRIMARY KEY (outbox_id),
    CONSTRAINT uq_payment_outbox_pending_participant_sequence
        UNIQUE (participant_id, sequence_id),
    CONSTRAINT uq_payment_outbox_pending_instruction_idempotency
        UNIQUE (instruction_id, idempotency_key),
    CONSTRAINT ck_payment_outbox_pending_payload_is_object
        CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT ck_payment_outbox_pending_attempt_count_nonnegative
        CHECK (attempt_count >= 0),
    -- A half-set lease (e.g. a token without an expiry) could never be fenced correctly.
    CONSTRAINT ck_payment_outbox_pending_lease_all_or_nothing
        CHECK (
            (claimed_by IS NULL AND lease_token IS NULL AND lease_expires_at IS NULL)
            OR (claimed_by IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)
        )
);

COMMENT ON TABLE public.payment_outbox_pending IS
'Outbox work queue: one row per enqueued payment instruction until its terminal attempt. '
'attempt_count caches the highest attempt number; payment_outbox_attempts is the truth.';

-- Claim scans due rows without a lease, oldest first. The partial index holds only unleased rows,
-- so a claim never walks past rows that other workers currently lease (when 90% of the due head
-- is leased a full index would make every claim scan them all).
CREATE INDEX ix_payment_outbox_pending_due_unleased
    ON public.payment_outbox_pending (next_attempt_at, outbox_id)
    WHERE lease_token IS NULL;

-- Leased rows ordered by expiry: claim (expired leases are claimable again) and
-- repair_expired_leases() read only the expired prefix of this index.
CREATE INDEX ix_payment_outbox_pending_lease_expires
    ON public.payment_outbox_pending (lease_expires_at, outbox_id)
    WHERE lease_token IS NOT NULL;


-- The append-only attempts ledger. It copies the instruction columns so history survives deletion
-- of the pending row; there is deliberately no foreign key to pending for the same reason.
CREATE TABLE public.payment_outbox_attempts (
    attempt_id uuid NOT NULL DEFAULT public.uuid_v7_or_random(),
    outbox_id uuid NOT NULL,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb NOT NULL,
    attempt_no integer NOT NULL,
    state public.outbox_attempt_state NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    worker_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_payment_outbox_attempts PRIMARY KEY (attempt_id),
    CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no UNIQUE (outbox_id, attempt_no),
    CONSTRAINT ck_payment_outbox_attempts_payload_is_object
        CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT ck_payment_outbox_attempts_attempt_no_positive CHECK (attempt_no >= 1),
    CONSTRAINT ck_payment_outbox_attempts_latency_ms_nonnegative
        CHECK (latency_ms IS NULL OR latency_ms >= 0)
);

COMMENT ON TABLE public.payment_outbox_attempts IS
'Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001). At most one '
'terminal attempt (DISPATCHED or FAILED) per outbox_id.';

-- A payment is dispatched or failed at most once: a second terminal row is a double payment.
CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_terminal
    ON public.payment_outbox_attempts (outbox_id)
    WHERE state IN ('DISPATCHED', 'FAILED');

-- Enqueue step 4 looks up the ledger by idempotency key once the pending row is gone.
CREATE INDEX ix_payment_outbox_attempts_instruction_idempotency
    ON public.payment_outbox_attempts (instruction_id, idempotency_key);


-- Append-only enforcement lives in triggers, not only in privileges, so it also binds the owner
-- and superusers (who bypass privilege checks) unless they deliberately disable the triggers.
CREATE FUNCTION public.deny_outbox_attempts_mutation() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'public.payment_outbox_attempts is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'P0001',
              HINT = 'Record a new attempt instead of changing or removing history.';
END
$$;

COMMENT ON FUNCTION public.deny_outbox_attempts_mutation() IS
'Trigger function: rejects UPDATE, DELETE and TRUNCATE on public.payment_outbox_attempts with '
'SQLSTATE P0001 (the ledger is append-only).';

-- Trigger functions need no EXECUTE grant to fire; nobody needs to call this one directly.
REVOKE ALL ON FUNCTION public.deny_outbox_attempts_mutation() FROM PUBLIC;

CREATE TRIGGER trg_deny_outbox_attempts_mutation
    BEFORE UPDATE OR DELETE ON public.payment_outbox_attempts
    FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

-- Row triggers do not fire on TRUNCATE; a statement trigger closes that path.
CREATE TRIGGER trg_deny_outbox_attempts_truncate
    BEFORE TRUNCATE ON public.payment_outbox_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

-- ENABLE ALWAYS: an ordinary trigger is skipped when session_replication_role = replica, which
-- would turn a session setting into a silent way around the ledger guarantee.
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_mutation;
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_truncate;
