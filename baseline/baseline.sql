-- Symphony schema baseline at revision 0039_one_id_predicate.
--
-- GENERATED FILE - DO NOT EDIT. The revisions under alembic/versions are the
-- source of truth; regenerate this file with `nox -s baseline`
-- (symphony-schema baseline generate). `nox -s drift` fails when it differs
-- from a freshly migrated database.
--
-- Bring up an EMPTY database from it with `symphony-schema baseline apply` (one
-- transaction); `alembic upgrade head` then continues with any later revision.


-- =================================================================================================
-- 1. Roles (cluster-wide; created when missing, attributes and comments enforced)
-- Passwords are never part of the schema. Every membership involving a Symphony
-- role appears, logins included, except the runtime-role memberships of other
-- logins that symphony-schema grant-login manages (environment setup).
-- =================================================================================================

DO $symphony_baseline_roles$
DECLARE
    v_role record;
    v_current pg_catalog.pg_roles%ROWTYPE;
    v_changes text[];
BEGIN
    FOR v_role IN
        SELECT *
          FROM (VALUES
                -- rolname, login, superuser, createdb, createrole, inherit, replication, bypassrls,
                -- connection limit, comment, valid until (UTC)
                   ('symphony_auditor', false, false, false, false, true, false, false, -1, 'Symphony runtime role: audit reads, including the migration ledger.', NULL::text),
                   ('symphony_control', false, false, false, false, true, false, false, -1, 'Symphony control plane: admin reads and writes, never mutates the attempts ledger.', NULL::text),
                   ('symphony_executor', false, false, false, false, true, false, false, -1, 'Symphony runtime role: claim, complete and repair through functions; reads the boot policy.', NULL::text),
                   ('symphony_ingest', false, false, false, false, true, false, false, -1, 'Symphony runtime role: enqueue through public.enqueue_payment_outbox() only.', NULL::text),
                   ('symphony_owner', false, false, false, false, true, false, false, -1, 'Symphony: owns every Symphony object; SECURITY DEFINER functions run as it.', NULL::text),
                   ('symphony_readonly', false, false, false, false, true, false, false, -1, 'Symphony runtime role: read-only dashboards.', NULL::text),
                   ('test_user', true, false, false, false, true, false, false, -1, 'Symphony test/CI login; its password is set outside migrations (TEST_DB_PASSWORD).', NULL::text)
               ) AS r (rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit,
                       rolreplication, rolbypassrls, rolconnlimit, description, rolvaliduntil)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS x WHERE x.rolname = v_role.rolname) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I', v_role.rolname);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created concurrently; the attributes are enforced below
            END;
        END IF;

        SELECT x.* INTO STRICT v_current
          FROM pg_catalog.pg_roles AS x
         WHERE x.rolname = v_role.rolname;

        v_changes := ARRAY[]::text[];
        IF v_current.rolcanlogin IS DISTINCT FROM v_role.rolcanlogin THEN
            v_changes := v_changes || CASE WHEN v_role.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END;
        END IF;
        IF v_current.rolsuper IS DISTINCT FROM v_role.rolsuper THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END;
        END IF;
        IF v_current.rolcreatedb IS DISTINCT FROM v_role.rolcreatedb THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END;
        END IF;
        IF v_current.rolcreaterole IS DISTINCT FROM v_role.rolcreaterole THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END;
        END IF;
        IF v_current.rolinherit IS DISTINCT FROM v_role.rolinherit THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END;
        END IF;
        IF v_current.rolreplication IS DISTINCT FROM v_role.rolreplication THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolreplication THEN 'REPLICATION' ELSE 'NOREPLICATION' END;
        END IF;
        IF v_current.rolbypassrls IS DISTINCT FROM v_role.rolbypassrls THEN
            v_changes := v_changes
                || CASE WHEN v_role.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END;
        END IF;
        IF v_current.rolconnlimit IS DISTINCT FROM v_role.rolconnlimit THEN
            v_changes := v_changes || ('CONNECTION LIMIT ' || v_role.rolconnlimit);
        END IF;
        -- A password expiry can be set but never reset to "none"; drift shows such a difference.
        IF v_role.rolvaliduntil IS NOT NULL
           AND v_current.rolvaliduntil IS DISTINCT FROM v_role.rolvaliduntil::timestamptz THEN
            v_changes := v_changes || pg_catalog.format('VALID UNTIL %L', v_role.rolvaliduntil);
        END IF;
        IF pg_catalog.cardinality(v_changes) > 0 THEN
            EXECUTE pg_catalog.format('ALTER ROLE %I WITH %s', v_role.rolname,
                                      pg_catalog.array_to_string(v_changes, ' '));
        END IF;

        IF pg_catalog.shobj_description(v_current.oid, 'pg_authid')
           IS DISTINCT FROM v_role.description THEN
            EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L',
                                      v_role.rolname, v_role.description);
        END IF;
    END LOOP;
END
$symphony_baseline_roles$;

-- Memberships involving a Symphony role: none.

-- Settings of Symphony roles (ALTER ROLE ... SET): none.


-- =================================================================================================
-- 2. Schema (pg_dump --schema-only, PostgreSQL 18 client, normalised)
-- Objects owned by the migrating user (the ledger tables) are owned by whoever
-- applies this file, just as they are owned by whoever runs the migrations.
-- =================================================================================================

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: outbox_attempt_state; Type: TYPE; Schema: public; Owner: symphony_owner
--

CREATE TYPE public.outbox_attempt_state AS ENUM (
    'DISPATCHING',
    'DISPATCHED',
    'RETRYABLE',
    'FAILED',
    'ZOMBIE_REQUEUE',
    'CANCELLED',
    'REDRIVEN'
);


ALTER TYPE public.outbox_attempt_state OWNER TO symphony_owner;

--
-- Name: TYPE outbox_attempt_state; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TYPE public.outbox_attempt_state IS 'Outcome of one outbox attempt. DISPATCHED, FAILED and CANCELLED are terminal; RETRYABLE and ZOMBIE_REQUEUE put the job back in the queue; REDRIVEN (after FAILED or CANCELLED) records that a new job replaced it; DISPATCHING is legacy and never written.';


--
-- Name: policy_version_status; Type: TYPE; Schema: public; Owner: symphony_owner
--

CREATE TYPE public.policy_version_status AS ENUM (
    'ACTIVE',
    'GRACE',
    'RETIRED'
);


ALTER TYPE public.policy_version_status OWNER TO symphony_owner;

--
-- Name: TYPE policy_version_status; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TYPE public.policy_version_status IS 'Lifecycle of a policy version: ACTIVE (the one services boot with), GRACE (still accepted until grace_expires_at), RETIRED.';


--
-- Name: archive_ledger_partition(text, bigint, text, text, text[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
DECLARE
    v_rel regclass;
    v_bound text;
    v_from uuid;
    v_to uuid;
    v_count bigint;
BEGIN
    v_rel := pg_catalog.to_regclass('symphony_ledger.' || pg_catalog.quote_ident(p_partition));
    IF v_rel IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_inherits AS i
         WHERE i.inhrelid = v_rel
           AND i.inhparent = 'public.payment_outbox_attempts'::pg_catalog.regclass) THEN
        RAISE EXCEPTION 'symphony_ledger.% is not a ledger partition', p_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_sha256 IS NULL OR p_sha256 !~ '^[0-9a-f]{64}$' OR p_row_count IS NULL
       OR p_row_count < 0 OR p_file_name IS NULL OR p_file_name = '' OR p_columns IS NULL THEN
        RAISE EXCEPTION 'archive of %: row count, sha256, file name and columns are required',
            p_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_bound := pg_catalog.pg_get_expr(c.relpartbound, c.oid)
      FROM pg_catalog.pg_class AS c WHERE c.oid = v_rel;
    IF v_bound !~ '^FOR VALUES FROM \(.*\) TO \(''[0-9a-f-]{36}''\)$' THEN
        RAISE EXCEPTION 'symphony_ledger.% has bounds % and cannot be archived', p_partition, v_bound
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_to := pg_catalog.substring(v_bound, 'TO \(''([0-9a-f-]{36})''\)')::uuid;
    v_from := COALESCE(
        pg_catalog.substring(v_bound, 'FROM \(''([0-9a-f-]{36})''\)')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid);
    -- No writer may add a row between the count and the drop; the queue must hold no job of the
    -- range (every job of it is terminal).
    EXECUTE pg_catalog.format('LOCK TABLE %s IN SHARE MODE', v_rel);
    IF EXISTS (SELECT 1 FROM public.payment_outbox_pending AS p
                WHERE p.outbox_id >= v_from AND p.outbox_id < v_to) THEN
        RAISE EXCEPTION 'symphony_ledger.% still has queued jobs; it cannot be archived', p_partition
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', v_rel) INTO v_count;
    IF v_count <> p_row_count THEN
        RAISE EXCEPTION 'symphony_ledger.% holds % rows but the archive file holds %: nothing '
                        'was dropped', p_partition, v_count, p_row_count
            USING ERRCODE = 'data_exception',
                  HINT = 'Rows were added after the file was written; archive it again.';
    END IF;
    INSERT INTO public.archived_ledger_partitions AS a
        (partition_name, range_from, range_to, state, row_count, sha256, file_name, columns)
    VALUES (p_partition, v_from, v_to, 'ARCHIVED', p_row_count, p_sha256, p_file_name, p_columns)
    ON CONFLICT ON CONSTRAINT pk_archived_ledger_partitions DO UPDATE
        SET range_from = EXCLUDED.range_from, range_to = EXCLUDED.range_to,
            state = 'ARCHIVED', row_count = EXCLUDED.row_count, sha256 = EXCLUDED.sha256,
            file_name = EXCLUDED.file_name, columns = EXCLUDED.columns,
            archived_at = pg_catalog.now(), archived_by = session_user, restored_at = NULL
        WHERE a.state = 'RESTORED';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'symphony_ledger.% is already recorded as archived', p_partition
            USING ERRCODE = 'unique_violation';
    END IF;
    EXECUTE pg_catalog.format('DROP TABLE %s', v_rel);
    RETURN v_count;
END
$_$;


ALTER FUNCTION public.archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]) IS 'The retention step after the archive file was written and re-read: locks the partition, checks that no job of its range is queued (55000) and that it holds exactly p_row_count rows (22000), records it in public.archived_ledger_partitions and drops it, in one transaction.';


--
-- Name: bump_participant_outbox_seq(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.bump_participant_outbox_seq(p_participant_id text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_allocated bigint;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);

    INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
    VALUES (p_participant_id, 2)
    ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
    DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
    RETURNING s.next_sequence_id - 1 INTO v_allocated;

    RETURN v_allocated;
END
$$;


ALTER FUNCTION public.bump_participant_outbox_seq(p_participant_id text) OWNER TO symphony_owner;

--
-- Name: FUNCTION bump_participant_outbox_seq(p_participant_id text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.bump_participant_outbox_seq(p_participant_id text) IS 'Allocates the next sequence number for a participant (first call 1, then +1 per committed call). Internal to enqueue_payment_outbox(); only the owner may call it.';


--
-- Name: cancel_outbox_job(uuid, text, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) RETURNS TABLE(outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) OWNER TO symphony_owner;

--
-- Name: FUNCTION cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) IS 'Cancels a queued job: a CANCELLED attempt (terminal) naming session_user, p_reason and p_ticket (both required, 22023), and the job leaves the queue; an expired lease is recorded as ZOMBIE_REQUEUE first. P7011 JOB_LEASED under a live lease, P7005 JOB_ALREADY_TERMINAL for a finished job, P7010 JOB_NOT_FOUND for an unknown id. EXECUTE for symphony_control.';


--
-- Name: cancel_outbox_job_for_participant(text, uuid, text, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) RETURNS TABLE(outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_outcome record;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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

    -- Lock the queue row: a worker's completion in flight finishes first, claims and repairs
    -- skip it (SKIP LOCKED) until we commit.
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT a.state, a.attempt_no
          INTO v_outcome
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
           AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                           'FAILED'::public.outbox_attempt_state,
                           'CANCELLED'::public.outbox_attempt_state);
        IF FOUND THEN
            RAISE EXCEPTION 'JOB_ALREADY_TERMINAL: outbox % already ended with % (attempt %); '
                            'it cannot be cancelled', p_outbox_id, v_outcome.state,
                v_outcome.attempt_no
                USING ERRCODE = 'P7005';
        END IF;
        RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id % for participant %', p_outbox_id,
            pg_catalog.quote_literal(p_participant_id)
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
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id;

    IF v_row.lease_token IS NOT NULL THEN
        v_attempt_no := v_attempt_no + 1;
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, error_code, error_message, worker_id)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
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
        (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
         v_row.idempotency_key, v_row.rail_type, v_attempt_no,
         'CANCELLED'::public.outbox_attempt_state, v_now, SESSION_USER, p_reason, p_ticket);

    -- trg_promote_outbox_head promotes the next job (the row is unleased or its lease expired).
    DELETE FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id;

    RETURN QUERY
    SELECT p_outbox_id, v_attempt_no, 'CANCELLED'::public.outbox_attempt_state;
END
$$;


ALTER FUNCTION public.cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) OWNER TO symphony_owner;

--
-- Name: FUNCTION cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) IS 'cancel_outbox_job for a job of one participant (ADR 0147: one shard on Citus): a CANCELLED attempt naming session_user, p_reason and p_ticket, and the job leaves the queue; an expired lease is recorded as ZOMBIE_REQUEUE first. P7011 JOB_LEASED under a live lease, P7005 JOB_ALREADY_TERMINAL for a finished job, P7010 JOB_NOT_FOUND for an unknown id or a job of another participant, 22023 on invalid arguments. EXECUTE for symphony_control.';


--
-- Name: check_outbox_payload_numbers(jsonb); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.check_outbox_payload_numbers(p_payload jsonb) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
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
$_$;


ALTER FUNCTION public.check_outbox_payload_numbers(p_payload jsonb) OWNER TO symphony_owner;

--
-- Name: FUNCTION check_outbox_payload_numbers(p_payload jsonb); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.check_outbox_payload_numbers(p_payload jsonb) IS 'Raises 22023 naming the JSON path (e.g. $.amount) of the first number in the payload that a JSON consumer reading numbers as IEEE 754 doubles cannot represent exactly: beyond +-2^53, non-zero below 1e-307, or a decimal that does not round-trip through a double. Internal: owner only.';


--
-- Name: claim_outbox_batch(integer, text, integer, text[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[] DEFAULT NULL::text[]) RETURNS TABLE(outbox_id uuid, instruction_id text, participant_id text, sequence_id bigint, idempotency_key text, rail_type text, payload jsonb, attempt_count integer, lease_token uuid, lease_expires_at timestamp with time zone, in_doubt boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    v_now timestamptz;
    v_expires_at timestamptz;
    v_claimed bigint;
    v_rest integer;
    v_expired boolean := false;
BEGIN
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    END IF;
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
    -- 0038 (ADR 0167): ADR 0041's plan settings are the function's SET clauses (restored on
    -- exit, error or not) instead of the pin/restore helper pair.

    -- 1. The common path (ADR 0158): due heads without a lease (all rails: one partial index;
    --    some rails: the rail index, once per rail), each scan capped at the batch and reading
    --    its index in order, so the work is proportional to the batch, not to the number of
    --    queued or leased rows. Keep the first of them by priority, then due time, lease them by
    --    primary key and return them in that order. This statement reads neither the lease
    --    index nor the ledger (whose partitions a plan that may append to it has to open).
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
    ), chosen AS (
        SELECT u.outbox_id
          FROM unleased AS u
         ORDER BY u.priority DESC, u.next_attempt_at, u.outbox_id
         LIMIT p_batch_size
    ), leased AS (
        UPDATE public.payment_outbox_pending AS p
           SET claimed_by = p_worker_id,
               lease_token = public.uuid_v7_or_random(),
               lease_expires_at = v_expires_at,
               -- The real claim time, read after the rows were locked: later than the commit
               -- of whatever made the job claimable (the completion of its predecessor).
               claimed_at = pg_catalog.clock_timestamp()
         WHERE p.outbox_id = ANY ((SELECT pg_catalog.array_agg(x.outbox_id) FROM chosen AS x)::uuid[])
        RETURNING p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
                  p.idempotency_key, p.rail_type, p.payload, p.attempt_count,
                  p.lease_token, p.lease_expires_at, p.in_doubt, p.priority, p.next_attempt_at
    )
    -- 0038 (ADR 0167): the payload from the payload table by its full key; the queue row's
    -- copy only for a job queued before 0038 (or written around the functions) without one.
    SELECT l.outbox_id, l.instruction_id, l.participant_id, l.sequence_id, l.idempotency_key,
           l.rail_type, COALESCE(x.payload, l.payload), l.attempt_count, l.lease_token,
           l.lease_expires_at, l.in_doubt
      FROM leased AS l
      LEFT JOIN public.payment_outbox_payloads AS x
        ON x.participant_id = l.participant_id
       AND x.outbox_id = l.outbox_id
     ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;
    GET DIAGNOSTICS v_claimed = ROW_COUNT;

    -- 2. Only when those did not fill the batch: the rest of it from the 0024 statement, which
    --    also takes over expired leases of heads (so a head whose lease expired waits while
    --    unleased heads fill every claim, until a claim comes up short or repair takes it;
    --    ADR 0158). Lock the candidates: due heads without a lease and expired leases of heads.
    --    Keep the first of them by priority, then due time; record the lost lease of each
    --    expired one taken (attempt number: the ledger's last, or the locked row's
    --    attempt_count if higher, plus one; at the ceiling FAILED and the job leaves the queue,
    --    and the trigger promotes the participant's next job), lease the others by primary key
    --    (a taken-over job is in doubt from now on), return them in that order, after the rows
    --    of step 1.
    -- 0033 (ADR 0160): and only when an expired lease of a due head exists. The probe reads the
    -- lease index from its oldest expiry up to now (what step 2's own scan would read) and no
    -- ledger partition, so a claim that finds nothing costs two index probes instead of step 2's
    -- plan, which opens every ledger partition at executor start. An unleased head committed
    -- between step 1 and here is left to the next claim (its notification wakes one).
    -- Two IFs: the probe must not even start for a claim that filled its batch.
    IF v_claimed < p_batch_size THEN
        v_expired := EXISTS (
            SELECT 1
              FROM public.payment_outbox_pending AS p
             WHERE p.lease_token IS NOT NULL
               AND p.lease_expires_at <= v_now
               AND p.next_attempt_at <= v_now
               AND p.is_head
               AND (p_rail_types IS NULL OR p.rail_type = ANY (p_rail_types))
        );
    END IF;
    IF v_expired THEN
        v_rest := p_batch_size - v_claimed::integer;
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
                   LIMIT v_rest
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
                   LIMIT v_rest
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
             LIMIT v_rest
               FOR UPDATE SKIP LOCKED
        ), chosen AS (
            SELECT b.outbox_id
              FROM (
                  SELECT u.outbox_id, u.priority, u.next_attempt_at FROM unleased AS u
                  UNION ALL
                  SELECT e.outbox_id, e.priority, e.next_attempt_at FROM expired AS e
              ) AS b
             ORDER BY b.priority DESC, b.next_attempt_at, b.outbox_id
             LIMIT v_rest
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
               l.rail_type, COALESCE(x.payload, l.payload), l.attempt_count, l.lease_token,
               l.lease_expires_at, l.in_doubt
          FROM leased AS l
          LEFT JOIN public.payment_outbox_payloads AS x
            ON x.participant_id = l.participant_id
           AND x.outbox_id = l.outbox_id
         ORDER BY l.priority DESC, l.next_attempt_at, l.outbox_id;
    END IF;
END
$$;


ALTER FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) IS 'Leases up to p_batch_size (1..1000) claimable jobs (FOR UPDATE SKIP LOCKED): the participant''s head (every earlier sequence_id is terminal), due, without a lease or with an expired one, of the rails in p_rail_types (NULL: any; each matched as given and upper-cased), highest priority then oldest due first. Expired leases are considered only when the unleased due heads do not fill the batch; the jobs taken over then follow the unleased ones (ADR 0158). Each claim gets a fresh lease_token valid for p_lease_seconds (1..86400). An expired lease it takes over is recorded as a ZOMBIE_REQUEUE attempt and the job is in doubt (in_doubt stays true), or as FAILED at outbox_retry_ceiling(): that job leaves the queue and is not returned, so a claim may return fewer rows than are due.';


--
-- Name: claim_outbox_batch_for_participant(text, integer, text, integer, text[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[] DEFAULT NULL::text[]) RETURNS TABLE(outbox_id uuid, instruction_id text, participant_id text, sequence_id bigint, idempotency_key text, rail_type text, payload jsonb, attempt_count integer, lease_token uuid, lease_expires_at timestamp with time zone, in_doubt boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
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
BEGIN
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_participant_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 0038 (ADR 0167): the id rule's helper runs only to name a broken argument.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
    END IF;
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
    -- 0038 (ADR 0167): ADR 0041's plan settings are the function's SET clauses (restored on
    -- exit, error or not) instead of the pin/restore helper pair.

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
        -- 0038 (ADR 0167): the payload row by its full key (its own statement: one table,
        -- filtered by the participant); the queue row's copy only for a job queued before 0038
        -- (or written around the functions) without one.
        SELECT x.payload
          INTO payload
          FROM public.payment_outbox_payloads AS x
         WHERE x.participant_id = p_participant_id
           AND x.outbox_id = v_row.outbox_id;
        IF NOT FOUND THEN
            payload := v_row.payload;
        END IF;
        attempt_count := COALESCE(v_attempt_no, v_row.attempt_count);
        lease_token := v_token;
        lease_expires_at := v_expires_at;
        in_doubt := v_row.in_doubt OR v_attempt_no IS NOT NULL;
        RETURN NEXT;
    END LOOP;
END
$$;


ALTER FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) IS 'claim_outbox_batch for one participant (ADR 0126: one shard on Citus): leases the participant''s due head (per-participant FIFO, so at most one job; p_batch_size 1..1000 caps it), without a lease or with an expired one, of the rails in p_rail_types (NULL: any; matched as given and upper-cased). An expired lease taken over is first recorded as ZOMBIE_REQUEUE (the job is in_doubt from then on), or FAILED at the retry ceiling (the job leaves the queue and is not returned). 22023 on invalid arguments. Returns what claim_outbox_batch returns.';


--
-- Name: complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text DEFAULT NULL::text, p_rail_code text DEFAULT NULL::text, p_error_code text DEFAULT NULL::text, p_error_message text DEFAULT NULL::text, p_latency_ms integer DEFAULT NULL::integer, p_retry_delay_seconds integer DEFAULT 1) RETURNS TABLE(attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_terminal boolean;
BEGIN
    -- Argument checks as one expression (the id rule through its inlined predicate); only a
    -- failing call runs the checks that name the argument (ADR 0135's pattern; ADR 0165).
    IF p_outbox_id IS NULL OR p_lease_token IS NULL OR p_state IS NULL
       OR NOT public.outbox_id_ok(p_worker_id, 1024)
       OR pg_catalog.octet_length(p_rail_reference) > 1024
       OR pg_catalog.octet_length(p_rail_code) > 1024
       OR pg_catalog.octet_length(p_error_code) > 1024
       OR pg_catalog.octet_length(p_error_message) > 4096
       OR p_latency_ms < 0 THEN
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
    END IF;

    v_now := pg_catalog.clock_timestamp();

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
        -- reported it. Either error undoes the DELETE above: the job stays leased. The writer
        -- is called directly (record_outbox_rail_reference() adds a call and checks done here).
        IF p_state = 'DISPATCHED'::public.outbox_attempt_state THEN
            PERFORM public.record_outbox_rail_references(
                ARRAY[p_outbox_id], ARRAY[v_attempt_no], ARRAY[v_row.rail_type],
                ARRAY[p_rail_reference]
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

        -- The participant's next job becomes its head (ADR 0158; trg_promote_outbox_head skips
        -- a DELETE under a live lease by the outbox functions). Lock the allocator row first, as
        -- enqueue's upsert does (ADR 0116): the next statement's snapshot then holds every job of
        -- the participant enqueued before, and an enqueue waiting for the row sees the promotion.
        IF v_row.is_head THEN
            PERFORM 1
               FROM public.participant_outbox_sequences AS s
              WHERE s.participant_id = v_row.participant_id
                FOR NO KEY UPDATE;
            -- Again, with a new snapshot, when the job it waited for was deleted meanwhile (a
            -- cancel of the next job): the one after it becomes the head, not nobody.
            LOOP
                UPDATE public.payment_outbox_pending AS p
                   SET is_head = true
                 WHERE p.outbox_id = (
                           SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = v_row.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1
                       )
                   AND NOT p.is_head;
                EXIT WHEN FOUND;
                EXIT WHEN NOT EXISTS (
                    SELECT 1
                      FROM (SELECT q.is_head
                              FROM public.payment_outbox_pending AS q
                             WHERE q.participant_id = v_row.participant_id
                             ORDER BY q.sequence_id
                             LIMIT 1) AS h
                     WHERE NOT h.is_head
                );
            END LOOP;
        END IF;

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
        -- The participant's next job becomes its head (ADR 0158; trg_promote_outbox_head skips
        -- a DELETE under a live lease by the outbox functions). Lock the allocator row first, as
        -- enqueue's upsert does (ADR 0116): the next statement's snapshot then holds every job of
        -- the participant enqueued before, and an enqueue waiting for the row sees the promotion.
        IF v_row.is_head THEN
            PERFORM 1
               FROM public.participant_outbox_sequences AS s
              WHERE s.participant_id = v_row.participant_id
                FOR NO KEY UPDATE;
            -- Again, with a new snapshot, when the job it waited for was deleted meanwhile (a
            -- cancel of the next job): the one after it becomes the head, not nobody.
            LOOP
                UPDATE public.payment_outbox_pending AS p
                   SET is_head = true
                 WHERE p.outbox_id = (
                           SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = v_row.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1
                       )
                   AND NOT p.is_head;
                EXIT WHEN FOUND;
                EXIT WHEN NOT EXISTS (
                    SELECT 1
                      FROM (SELECT q.is_head
                              FROM public.payment_outbox_pending AS q
                             WHERE q.participant_id = v_row.participant_id
                             ORDER BY q.sequence_id
                             LIMIT 1) AS h
                     WHERE NOT h.is_head
                );
            END LOOP;
        END IF;
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
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;


ALTER FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) IS 'Records the outcome of a leased attempt. P7002 (LEASE_LOST) unless worker and token match the job''s current lease (a lease past lease_expires_at that nobody replaced still counts; a replaced one does not: keep its outcome with record_stale_outbox_outcome()); P7003 unless the state is DISPATCHED, FAILED or RETRYABLE. RETRYABLE at or above outbox_retry_ceiling() becomes FAILED. A DISPATCHED outcome records p_rail_reference through record_outbox_rail_references(): 22023 when the rail returns references and none is given, P7013 RAIL_REFERENCE_REUSED when another job of the rail reported it (nothing is written then). Terminal outcomes remove the pending row; retries requeue it after max(1, p_retry_delay_seconds) seconds. Returns (attempt_no, state).';


--
-- Name: complete_outbox_attempt_for_participant(text, uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text DEFAULT NULL::text, p_rail_code text DEFAULT NULL::text, p_error_code text DEFAULT NULL::text, p_error_message text DEFAULT NULL::text, p_latency_ms integer DEFAULT NULL::integer, p_retry_delay_seconds integer DEFAULT 1) RETURNS TABLE(attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_now timestamptz;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_terminal boolean;
    v_plan_settings text[];
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id
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
         WHERE x.outbox_id = p_outbox_id
           AND x.participant_id = p_participant_id;

        -- A dispatch carries the rail's reference, unique per rail (ADRs 0123, 0141): 22023 when
        -- the rail returns references and none was given, P7013 when another job of the rail
        -- reported it. Either error undoes the DELETE above: the job stays leased.
        IF p_state = 'DISPATCHED'::public.outbox_attempt_state THEN
            PERFORM public.record_outbox_rail_references(
                ARRAY[p_outbox_id], ARRAY[v_attempt_no], ARRAY[v_row.rail_type],
                ARRAY[p_rail_reference]
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

        -- The participant's next job becomes its head (ADR 0158), under the allocator row's
        -- lock, as complete_outbox_attempt does it.
        IF v_row.is_head THEN
            PERFORM public.outbox_promote_participant_head(p_participant_id);
        END IF;

        PERFORM public.outbox_restore_plan_settings(v_plan_settings);
        RETURN;
    END IF;

    -- RETRYABLE, or a state that must be refused: the 0002 sequence.
    -- 1. Lock the row only while worker and token match (the token is still the job's current
    --    one: no repair or claim replaced it, even if lease_expires_at has passed; ADR 0118).
    SELECT p.*
      INTO v_row
      FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
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
     WHERE a.outbox_id = p_outbox_id
       AND a.participant_id = p_participant_id;

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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id;
        -- The participant's next job becomes its head (ADR 0158), under the allocator row's
        -- lock, as complete_outbox_attempt does it.
        IF v_row.is_head THEN
            PERFORM public.outbox_promote_participant_head(p_participant_id);
        END IF;
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
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = p_outbox_id;
    END IF;

    -- 7. Report what was recorded.
    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
    RETURN QUERY SELECT v_attempt_no, v_state;
END
$$;


ALTER FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) IS 'complete_outbox_attempt for a job of one participant (ADR 0147: one shard on Citus, except the rail reference''s registry): the same fencing (P7002 LEASE_LOST unless worker and token are the job''s current lease; a job of another participant is an unknown job), P7003 for a state other than DISPATCHED, FAILED or RETRYABLE, the retry ceiling, the rail reference (22023 when required and missing, P7013 RAIL_REFERENCE_REUSED), the head promotion and the ledger row. 22023 on invalid arguments. Returns (attempt_no, state).';


--
-- Name: complete_outbox_attempts_batch(text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[] DEFAULT NULL::text[], p_rail_codes text[] DEFAULT NULL::text[], p_error_codes text[] DEFAULT NULL::text[], p_error_messages text[] DEFAULT NULL::text[], p_latency_ms integer[] DEFAULT NULL::integer[], p_retry_delay_seconds integer[] DEFAULT NULL::integer[]) RETURNS TABLE(outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    v_count integer;
    v_now timestamptz;
    v_locked integer;
    v_stale uuid[];
    v_bad record;
    v_states public.outbox_attempt_state[];
    v_ceiling integer;
    v_labels text[];
    v_attempt_nos integer[];
    v_ref_ids uuid[];
    v_ref_attempts integer[];
    v_ref_rails text[];
    v_ref_references text[];
    v_ref_elements integer[];
    v_participants text[];
BEGIN
    -- 1. Validate; nothing has been written yet.
    IF NOT public.outbox_id_ok(p_worker_id, 1024) THEN
        -- Only a failing call names the argument through the id rule's helper (ADR 0135).
        PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);
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
    -- The state labels once (0032 evaluated enum_range() once per element).
    v_labels := pg_catalog.enum_range(NULL::public.outbox_attempt_state)::text[];
    SELECT i.ord, i.label
      INTO v_bad
      FROM pg_catalog.unnest(p_states) WITH ORDINALITY AS i (label, ord)
     WHERE i.label IS NULL
        OR i.label <> ALL (v_labels)
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

    -- 5b. A job leaving the queue promotes its participant's next job (step 7), under a lock of
    --     the participant's allocator row (ADRs 0116, 0158). Lock those rows here first, in
    --     participant order - the order a multi-job enqueue transaction locks them in - so that
    --     a batch and an enqueue cannot deadlock. FOR NO KEY UPDATE: it conflicts with enqueue's
    --     upsert and writes no new row version.
    SELECT pg_catalog.array_agg(l.participant_id)
      INTO v_participants
      FROM (
          SELECT s.participant_id
            FROM public.participant_outbox_sequences AS s
           WHERE s.participant_id IN (
                     SELECT p.participant_id
                       FROM public.payment_outbox_pending AS p
                      WHERE p.outbox_id = ANY (p_outbox_ids)
                 )
           ORDER BY s.participant_id
             FOR NO KEY UPDATE OF s
      ) AS l;

    -- 5c. Number every element from the ledger, and record the rail references of the
    --     DISPATCHED elements (ADRs 0123, 0141) through the rule's one writer in ONE call, in
    --     input order (ADR 0165): 22023 naming the first element without a reference on a rail
    --     that returns one, P7013 for a reference another job of the rail (in or before this
    --     batch) reported. Either error undoes the whole batch.
    --     The ledger's last attempt of every job is read once, by one index search per
    --     ledger partition (a look-up per job inside the join would search every partition
    --     once per job: the partition is not known when the plan is made; ADR 0158); step 6
    --     uses the numbers read here (the rows are locked since step 2: nobody else appends).
    WITH previous AS MATERIALIZED (
        SELECT a.outbox_id, pg_catalog.max(a.attempt_no) AS attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.outbox_id = ANY (p_outbox_ids)
         GROUP BY a.outbox_id
    )
    SELECT pg_catalog.array_agg(COALESCE(b.attempt_no, 0) + 1 ORDER BY i.ord),
           pg_catalog.array_agg(i.outbox_id ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(COALESCE(b.attempt_no, 0) + 1 ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(p.rail_type ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(i.rail_reference ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state),
           pg_catalog.array_agg(i.ord::integer ORDER BY i.ord)
               FILTER (WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state)
      INTO v_attempt_nos, v_ref_ids, v_ref_attempts, v_ref_rails, v_ref_references,
           v_ref_elements
      FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                      pg_catalog.unnest(p_rail_references))
           WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
      JOIN public.payment_outbox_pending AS p
        ON p.outbox_id = i.outbox_id
      LEFT JOIN previous AS b
        ON b.outbox_id = i.outbox_id;
    IF v_ref_ids IS NOT NULL THEN
        PERFORM public.record_outbox_rail_references(
            v_ref_ids, v_ref_attempts, v_ref_rails, v_ref_references, v_ref_elements
        );
    END IF;

    -- 6. Record everything in one statement: number each attempt from the ledger, apply the
    --    ceiling, append the attempts, remove terminal jobs, requeue retries, and report one row
    --    per element in input order. The rows are locked by this transaction since step 2.
    RETURN QUERY
    WITH input AS (
        SELECT i.ord, i.outbox_id, i.state, i.rail_reference, i.rail_code, i.error_code,
               i.error_message, i.latency_ms, i.retry_delay_seconds, i.lease_token, i.attempt_no
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references), pg_catalog.unnest(p_rail_codes),
                          pg_catalog.unnest(p_error_codes), pg_catalog.unnest(p_error_messages),
                          pg_catalog.unnest(p_latency_ms),
                          pg_catalog.unnest(p_retry_delay_seconds),
                          pg_catalog.unnest(p_lease_tokens), pg_catalog.unnest(v_attempt_nos))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, rail_code, error_code,
                                     error_message, latency_ms, retry_delay_seconds, lease_token,
                                     attempt_no, ord)
    ), decided AS (
        SELECT i.ord, p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type,
               i.attempt_no,
               CASE
                   WHEN i.state = 'RETRYABLE'::public.outbox_attempt_state
                        AND i.attempt_no >= v_ceiling
                       THEN 'FAILED'::public.outbox_attempt_state
                   ELSE i.state
               END AS state,
               i.rail_reference, i.rail_code, i.error_code, i.error_message, i.latency_ms,
               i.retry_delay_seconds, i.lease_token, p.claimed_at
          FROM input AS i
          JOIN public.payment_outbox_pending AS p
            ON p.outbox_id = i.outbox_id
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
        -- By primary key from an array, in one index scan (a join with decided, estimated at
        -- one row, rescanned the whole id list once per job; ADR 0158).
        DELETE FROM public.payment_outbox_pending AS p
         WHERE p.outbox_id = ANY ((
               SELECT pg_catalog.array_agg(x.outbox_id)
                 FROM decided AS x
                WHERE x.state <> 'RETRYABLE'::public.outbox_attempt_state
           )::uuid[])
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
         WHERE p.outbox_id = ANY ((
               SELECT pg_catalog.array_agg(x.outbox_id)
                 FROM decided AS x
                WHERE x.state = 'RETRYABLE'::public.outbox_attempt_state
           )::uuid[])
           AND p.outbox_id = d.outbox_id
           AND d.state = 'RETRYABLE'::public.outbox_attempt_state
        RETURNING p.outbox_id
    )
    SELECT d.outbox_id, d.attempt_no, d.state
      FROM decided AS d
     ORDER BY d.ord;

    -- 7. Each participant whose head left the queue gets its next job as head (its allocator
    --    row is locked since step 5b, so this snapshot holds every job enqueued before; a
    --    participant whose job was requeued keeps that job as head: nothing to do).
    --    Again, with a new snapshot, while some participant's first queued job has no head
    --    flag (the job it waited for was deleted meanwhile: a cancel of the next job).
    LOOP
        UPDATE public.payment_outbox_pending AS p
           SET is_head = true
         WHERE p.outbox_id = ANY (ARRAY(
                   SELECT (SELECT q.outbox_id
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = w.participant_id
                            ORDER BY q.sequence_id
                            LIMIT 1)
                     FROM pg_catalog.unnest(v_participants) AS w (participant_id)
               ))
           AND NOT p.is_head;
        EXIT WHEN NOT EXISTS (
            SELECT 1
              FROM pg_catalog.unnest(v_participants) AS w (participant_id)
             CROSS JOIN LATERAL (
                   SELECT q.is_head
                     FROM public.payment_outbox_pending AS q
                    WHERE q.participant_id = w.participant_id
                    ORDER BY q.sequence_id
                    LIMIT 1
             ) AS h
             WHERE NOT h.is_head
        );
    END LOOP;

END
$$;


ALTER FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) IS 'Records the outcomes of up to 1000 leases of one worker (parallel arrays, element i describes p_outbox_ids[i]; states as text) exactly as complete_outbox_attempt() would, all or nothing: P7002 (LEASE_LOST) naming the first stale outbox when any lease is missing, replaced or not this worker''s and token''s (DETAIL lists all of them), P7003 for a state other than DISPATCHED, FAILED or RETRYABLE, 22023 for invalid arguments (and for a DISPATCHED element without a reference on a rail that returns references, naming the element), P7013 RAIL_REFERENCE_REUSED when another job of the rail reported a reference; nothing is recorded then. The references go to record_outbox_rail_references() in one call. Returns (outbox_id, attempt_no, state) per element, in input order.';


--
-- Name: complete_outbox_attempts_batch_for_participant(text, text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[] DEFAULT NULL::text[], p_rail_codes text[] DEFAULT NULL::text[], p_error_codes text[] DEFAULT NULL::text[], p_error_messages text[] DEFAULT NULL::text[], p_latency_ms integer[] DEFAULT NULL::integer[], p_retry_delay_seconds integer[] DEFAULT NULL::integer[]) RETURNS TABLE(outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_count integer;
    v_now timestamptz;
    v_stale uuid[];
    v_stale_ords integer[] := '{}';
    v_bad record;
    v_states public.outbox_attempt_state[];
    v_ceiling integer;
    v_plan_settings text[];
    v_element record;
    v_row public.payment_outbox_pending%ROWTYPE;
    v_rail_type text;
    v_required boolean;
    v_attempt_no integer;
    v_state public.outbox_attempt_state;
    v_retry_at timestamptz;
BEGIN
    -- 1. Validate; nothing has been written yet.
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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
    --    latest version of a row it had to wait for. One job per statement, by the participant
    --    and the job's id (a delegated body on Citus plans no join of the queue with the
    --    arrays); a participant has at most one leased head at a time, so a batch is short.
    FOR v_element IN
        SELECT i.ord, i.outbox_id, i.lease_token
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_lease_tokens))
               WITH ORDINALITY AS i (outbox_id, lease_token, ord)
         ORDER BY i.outbox_id
    LOOP
        PERFORM 1
           FROM public.payment_outbox_pending AS p
          WHERE p.participant_id = p_participant_id
            AND p.outbox_id = v_element.outbox_id
            AND p.claimed_by = p_worker_id
            AND p.lease_token IS NOT DISTINCT FROM v_element.lease_token
            FOR UPDATE;
        IF NOT FOUND THEN
            v_stale_ords := v_stale_ords || v_element.ord::integer;
        END IF;
    END LOOP;

    -- 3. All or nothing: one stale lease (a job of another participant is one) refuses the whole
    --    batch, before anything is written.
    IF pg_catalog.cardinality(v_stale_ords) > 0 THEN
        SELECT pg_catalog.array_agg(p_outbox_ids[o.ord] ORDER BY o.ord)
          INTO v_stale
          FROM pg_catalog.unnest(v_stale_ords) AS o (ord);
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

    -- 5b. A job leaving the queue promotes the participant's next job (step 7), under a lock of
    --     the participant's allocator row (ADRs 0116, 0158), taken here first, as
    --     complete_outbox_attempts_batch does. FOR NO KEY UPDATE: it conflicts with enqueue's
    --     upsert and writes no new row version.
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id = p_participant_id
        FOR NO KEY UPDATE;

    -- 5c. Rail references of the DISPATCHED elements (ADRs 0123, 0141), in input order: on a
    --     rail that returns references the element must carry one (22023 naming the element),
    --     then record_outbox_rail_references(), the rule's writer, records it (P7013 when
    --     another job of the rail, in or before this batch, reported it; one element per call,
    --     ADR 0165). Either error undoes the whole batch.
    FOR v_element IN
        SELECT i.ord, i.outbox_id, i.rail_reference
          FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(v_states),
                          pg_catalog.unnest(p_rail_references))
               WITH ORDINALITY AS i (outbox_id, state, rail_reference, ord)
         WHERE i.state = 'DISPATCHED'::public.outbox_attempt_state
         ORDER BY i.ord
    LOOP
        SELECT p.rail_type
          INTO v_rail_type
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_element.outbox_id;
        SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = v_element.outbox_id;
        SELECT r.returns_reference
          INTO v_required
          FROM public.outbox_rails AS r
         WHERE r.rail_code = pg_catalog.upper(v_rail_type COLLATE "C");
        IF COALESCE(v_required, false) THEN
            PERFORM public.outbox_require_ids(
                ARRAY[pg_catalog.format('p_rail_references element %s (outbox %s, DISPATCHED on '
                                        'rail %s)', v_element.ord, v_element.outbox_id,
                                        pg_catalog.upper(v_rail_type COLLATE "C"))],
                ARRAY[v_element.rail_reference],
                NULL
            );
        END IF;
        PERFORM public.record_outbox_rail_references(
            ARRAY[v_element.outbox_id], ARRAY[v_attempt_no], ARRAY[v_rail_type],
            ARRAY[v_element.rail_reference]
        );
    END LOOP;

    -- 6. Record each element in input order: number the attempt from the ledger, apply the
    --    ceiling, append the attempt, remove a terminal job or requeue a retry, and report one
    --    row per element. The rows are locked by this transaction since step 2.
    FOR v_element IN
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
         ORDER BY i.ord
    LOOP
        SELECT p.*
          INTO v_row
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_element.outbox_id;
        SELECT COALESCE(pg_catalog.max(a.attempt_no), 0) + 1
          INTO v_attempt_no
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = v_element.outbox_id;
        v_state := v_element.state;
        IF v_state = 'RETRYABLE'::public.outbox_attempt_state AND v_attempt_no >= v_ceiling THEN
            v_state := 'FAILED'::public.outbox_attempt_state;
        END IF;
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, rail_reference, rail_code,
             error_code, error_message, latency_ms, worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
             v_row.idempotency_key, v_row.rail_type, v_attempt_no, v_state,
             COALESCE(v_row.claimed_at, v_now),
             CASE WHEN v_state <> 'RETRYABLE'::public.outbox_attempt_state THEN v_now END,
             v_element.rail_reference, v_element.rail_code, v_element.error_code,
             v_element.error_message, v_element.latency_ms, p_worker_id,
             v_element.lease_token, SESSION_USER);
        IF v_state = 'RETRYABLE'::public.outbox_attempt_state THEN
            v_retry_at := v_now + pg_catalog.make_interval(
                secs => GREATEST(1, v_element.retry_delay_seconds)
            );
            UPDATE public.payment_outbox_pending AS p
               SET attempt_count = v_attempt_no,
                   next_attempt_at = v_retry_at,
                   claimed_by = NULL,
                   lease_token = NULL,
                   lease_expires_at = NULL,
                   claimed_at = NULL
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_element.outbox_id;
        ELSE
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_element.outbox_id;
        END IF;
        outbox_id := v_element.outbox_id;
        attempt_no := v_attempt_no;
        state := v_state;
        RETURN NEXT;
    END LOOP;

    -- 7. The participant's next job becomes its head when its head left the queue (the
    --    allocator row is locked since step 5b; a requeued head stays the head: nothing to do).
    PERFORM public.outbox_promote_participant_head(p_participant_id);

    PERFORM public.outbox_restore_plan_settings(v_plan_settings);
END
$$;


ALTER FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) IS 'complete_outbox_attempts_batch for jobs of one participant (ADR 0147: one shard on Citus, except the rail references'' registry), all or nothing, with the same results and SQLSTATEs; an element naming a job of another participant is stale like an unknown job (P7002 naming it, nothing recorded). Returns (outbox_id, attempt_no, state) per element, in input order.';


--
-- Name: deny_outbox_attempts_mutation(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.deny_outbox_attempts_mutation() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'public.payment_outbox_attempts is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'P0001',
              HINT = 'Record a new attempt instead of changing or removing history.';
END
$$;


ALTER FUNCTION public.deny_outbox_attempts_mutation() OWNER TO symphony_owner;

--
-- Name: FUNCTION deny_outbox_attempts_mutation(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.deny_outbox_attempts_mutation() IS 'Trigger function: rejects UPDATE, DELETE and TRUNCATE on public.payment_outbox_attempts with SQLSTATE P0001 (the ledger is append-only).';


--
-- Name: deny_outbox_payloads_mutation(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.deny_outbox_payloads_mutation() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION 'public.payment_outbox_payloads is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'P0001',
              HINT = 'A job''s payload never changes; redrive queues a new job with its own row.';
END
$$;


ALTER FUNCTION public.deny_outbox_payloads_mutation() OWNER TO symphony_owner;

--
-- Name: FUNCTION deny_outbox_payloads_mutation(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.deny_outbox_payloads_mutation() IS 'Trigger function: rejects UPDATE, DELETE and TRUNCATE on public.payment_outbox_payloads with SQLSTATE P0001 (the payloads are append-only, like the ledger).';


--
-- Name: disable_outbox_rail(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.disable_outbox_rail(p_rail_code text) RETURNS TABLE(rail_code text, returns_reference boolean, enabled boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.disable_outbox_rail(p_rail_code text) OWNER TO symphony_owner;

--
-- Name: FUNCTION disable_outbox_rail(p_rail_code text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.disable_outbox_rail(p_rail_code text) IS 'Stops enqueue from accepting a rail (queued jobs and history untouched) and returns it; 22023 for an unregistered rail. EXECUTE for symphony_control.';


--
-- Name: enqueue_payment_outbox(text, text, text, text, jsonb, timestamp with time zone, smallint); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone DEFAULT NULL::timestamp with time zone, p_priority smallint DEFAULT 0) RETURNS TABLE(outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    v_found record;
    v_outbox_id uuid;
    v_known boolean := false;
    v_key_outbox_id uuid;
    v_owner text;
    v_sequence_id bigint;
    v_payload jsonb;
    v_rail_code text;
    v_head boolean;
BEGIN
    -- 1. Validate; nothing has been written yet. One inlined predicate; the helper that names
    --    the broken rule runs only when it fails. The plan settings of ADR 0041 are the
    --    function's SET clauses (restored on exit, error or not).
    IF NOT public.outbox_enqueue_args_ok(p_instruction_id, p_participant_id, p_idempotency_key,
                                         p_rail_type, p_payload, p_not_before, p_priority) THEN
        PERFORM public.outbox_check_enqueue_args(p_instruction_id, p_participant_id,
                                                 p_idempotency_key, p_rail_type, p_payload,
                                                 p_not_before, p_priority);
    END IF;

    -- 2. Serialise every enqueue of this (instruction_id, idempotency_key) on the key table's
    --    primary key. A new key: the inserted row is ours. A known key: lock its row, the
    --    participant's own first. On one node the primary key is (instruction_id,
    --    idempotency_key), so the key may belong to another participant (or, written before 0031
    --    or by a P7005 guard, to none): the second look-up finds it and idempotency stays global
    --    (P7004 below). On a distributed key table the key is per participant (ADR 0126) and the
    --    second look-up never runs. Under REPEATABLE READ or SERIALIZABLE a key committed after
    --    the snapshot makes PostgreSQL raise 40001 here (ADR 0006).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (p_instruction_id, p_idempotency_key, public.uuid_v7_or_random(), p_participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING
    RETURNING k.outbox_id INTO v_outbox_id;
    IF NOT FOUND THEN
        v_known := true;
        SELECT k.outbox_id, k.participant_id
          INTO v_key_outbox_id, v_owner
          FROM public.payment_outbox_idempotency_keys AS k
         WHERE k.participant_id = p_participant_id
           AND k.instruction_id = p_instruction_id
           AND k.idempotency_key = p_idempotency_key
           FOR UPDATE;
        IF NOT FOUND THEN
            SELECT k.outbox_id, k.participant_id
              INTO v_key_outbox_id, v_owner
              FROM public.payment_outbox_idempotency_keys AS k
             WHERE k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key
               FOR UPDATE;
            IF v_owner IS NULL THEN
                -- A key row without a participant (one node only): the participant of the job
                -- it names, from the queue, else the ledger; none when the job left no trace.
                v_owner := COALESCE(
                    (SELECT p.participant_id
                       FROM public.payment_outbox_pending AS p
                      WHERE p.instruction_id = p_instruction_id
                        AND p.idempotency_key = p_idempotency_key),
                    (SELECT a.participant_id
                       FROM public.payment_outbox_attempts AS a
                      WHERE a.outbox_id = v_key_outbox_id
                      LIMIT 1)
                );
            END IF;
        END IF;
    END IF;

    -- 3 and 4. A new key has no job (the key table's primary key serialises every writer of the
    --    key). A known key is looked up under its participant: still queued (state PENDING),
    --    else the latest attempt in the ledger, read only for the job its key row names (ADR
    --    0133); two statements (Citus plans no UNION ALL of distributed tables with parameters).
    IF v_known AND v_owner IS NOT NULL THEN
        SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text AS state,
               p.participant_id, p.rail_type, p.payload
          INTO v_found
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = v_owner
           AND p.instruction_id = p_instruction_id
           AND p.idempotency_key = p_idempotency_key;
        IF NOT FOUND THEN
            SELECT a.outbox_id, a.sequence_id, a.created_at, a.state::text AS state,
                   a.participant_id, a.rail_type, NULL::jsonb AS payload
              INTO v_found
              FROM public.payment_outbox_attempts AS a
             WHERE a.participant_id = v_owner
               AND a.outbox_id = v_key_outbox_id
               AND a.instruction_id = p_instruction_id
               AND a.idempotency_key = p_idempotency_key
             ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
             LIMIT 1;
        END IF;
        IF FOUND THEN
            -- The stored payload is the job's row in payment_outbox_payloads (ADRs 0124, 0142);
            -- a job whose payload row is missing falls back to its queue row or a ledger copy.
            SELECT x.payload
              INTO v_payload
              FROM public.payment_outbox_payloads AS x
             WHERE x.participant_id = v_owner
               AND x.outbox_id = v_found.outbox_id;
            IF NOT FOUND THEN
                v_payload := v_found.payload;
                IF v_payload IS NULL THEN
                    SELECT a.payload
                      INTO v_payload
                      FROM public.payment_outbox_attempts AS a
                     WHERE a.participant_id = v_owner
                       AND a.outbox_id = v_found.outbox_id
                       AND a.payload IS NOT NULL
                     LIMIT 1;
                END IF;
            END IF;
            -- A replay is compared against what was stored; the rail by its upper-cased
            -- spelling (ADR 0122); a replay after the rail was disabled still returns its job.
            IF v_found.participant_id IS DISTINCT FROM p_participant_id
               OR pg_catalog.upper(v_found.rail_type COLLATE "C")
                  IS DISTINCT FROM pg_catalog.upper(p_rail_type COLLATE "C")
               OR v_payload IS DISTINCT FROM p_payload THEN
                RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % '
                                'was already used with a different participant, rail type or '
                                'payload',
                    pg_catalog.quote_literal(p_idempotency_key),
                    pg_catalog.quote_literal(p_instruction_id)
                    USING ERRCODE = 'P7004';
            END IF;
            outbox_id := v_found.outbox_id;
            sequence_id := v_found.sequence_id;
            created_at := v_found.created_at;
            state := v_found.state;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    -- 5. A new job: only numbers a JSON consumer reads exactly (22023 naming the JSON path). The
    --    exact walk runs only for a payload with a number other than an integer of at most 15
    --    digits; the rail is checked first there, as before (22023 for an unknown or disabled
    --    one). The error undoes the key row inserted above: nothing is written.
    IF NOT public.outbox_payload_numbers_plain(p_payload) THEN
        PERFORM public.outbox_rail_code(p_rail_type);
        PERFORM public.check_outbox_payload_numbers(p_payload);
    END IF;

    -- A known key whose job was removed by hand before any attempt: a new job under the key
    -- (the key table's archived guard refuses it with P7020 when the old job was archived).
    IF v_known THEN
        v_outbox_id := public.uuid_v7_or_random();
        IF v_owner IS NOT DISTINCT FROM p_participant_id THEN
            UPDATE public.payment_outbox_idempotency_keys AS k
               SET outbox_id = v_outbox_id
             WHERE k.participant_id = p_participant_id
               AND k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key;
        ELSE
            -- One node only: the key row named another participant or none.
            UPDATE public.payment_outbox_idempotency_keys AS k
               SET outbox_id = v_outbox_id,
                   participant_id = p_participant_id
             WHERE k.instruction_id = p_instruction_id
               AND k.idempotency_key = p_idempotency_key;
        END IF;
    END IF;

    -- 6. The rail's canonical code (a reference table on Citus, read in its own statement: Citus
    --    plans no join of it inside the queue's INSERT); an unknown or disabled rail: 22023.
    SELECT r.rail_code
      INTO v_rail_code
      FROM public.outbox_rails AS r
     WHERE r.rail_code = pg_catalog.upper(p_rail_type COLLATE "C")
       AND r.enabled;
    IF NOT FOUND THEN
        PERFORM public.outbox_rail_code(p_rail_type);
    END IF;

    -- 7. Allocate the participant's next sequence number (its allocator row stays locked until
    --    commit), then decide the head flag in a second statement: under READ COMMITTED it sees
    --    every job of the participant committed while we waited for the row (ADR 0116). ON
    --    CONFLICT DO NOTHING only matters for a row written around the functions after the
    --    look-up: the serialization failure rolls the allocated number back (ADR 0006). A known
    --    participant's row is advanced by a plain UPDATE; the upsert only runs for a
    --    participant's first job.
    UPDATE public.participant_outbox_sequences AS s
       SET next_sequence_id = s.next_sequence_id + 1
     WHERE s.participant_id = p_participant_id
    RETURNING s.next_sequence_id - 1 INTO v_sequence_id;
    IF NOT FOUND THEN
        INSERT INTO public.participant_outbox_sequences AS s (participant_id, next_sequence_id)
        VALUES (p_participant_id, 2)
        ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
        DO UPDATE SET next_sequence_id = s.next_sequence_id + 1
        RETURNING s.next_sequence_id - 1 INTO v_sequence_id;
    END IF;

    PERFORM 1
       FROM public.payment_outbox_pending AS q
      WHERE q.participant_id = p_participant_id
      LIMIT 1;
    v_head := NOT FOUND;
    -- 0038 (ADR 0167): the queue row carries no payload; the payload row below is its one copy.
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         next_attempt_at, priority, is_head)
    VALUES (v_outbox_id, p_instruction_id, p_participant_id, v_sequence_id, p_idempotency_key,
            v_rail_code, GREATEST(p_not_before, pg_catalog.now()), p_priority, v_head)
    ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency DO NOTHING
    RETURNING p.outbox_id, p.sequence_id, p.created_at INTO outbox_id, sequence_id, created_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'concurrent enqueue of idempotency key % of instruction %',
            pg_catalog.quote_literal(p_idempotency_key),
            pg_catalog.quote_literal(p_instruction_id)
            USING ERRCODE = 'serialization_failure',
                  HINT = 'Retry the transaction; the retry returns the existing row.';
    END IF;
    -- 8. The payload, once per job (ADR 0124): the ledger rows of the job do not copy it.
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_outbox_id, p_payload);
    state := 'PENDING';
    RETURN NEXT;
END
$$;


ALTER FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) OWNER TO symphony_owner;

--
-- Name: FUNCTION enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) IS 'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest attempt once the job has been worked on. p_not_before: not claimable before that time; p_priority: higher is claimed first across participants, never ahead of an earlier job of the same participant (per-participant FIFO). P7004 when the key is reused with a different participant, rail type (compared upper-cased) or payload (compared with the job''s row in payment_outbox_payloads); 22023 on invalid arguments (payload over 65536 bytes, a rail that is not registered and enabled, a payload number a JSON consumer cannot represent exactly, naming its JSON path). A new job stores the canonical rail code and its payload once, in payment_outbox_payloads.';


--
-- Name: enqueue_payment_outbox_batch(text[], text[], text[], text[], jsonb[], timestamp with time zone[], smallint[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[] DEFAULT NULL::timestamp with time zone[], p_priorities smallint[] DEFAULT NULL::smallint[]) RETURNS TABLE(ordinality integer, outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    v_count integer := pg_catalog.cardinality(p_instruction_ids);
    v_lengths integer[];
    v_index integer;
    v_hint text;
    v_keys integer;
    v_first integer[];          -- element i -> the first element with its key
    v_job_i integer[] := '{}';  -- the elements (first of their key) that become new jobs
    v_job_ids uuid[] := '{}';
    v_done_i integer[] := '{}'; -- first elements answered so far, and their answers
    v_done_ids uuid[] := '{}';
    v_done_seq bigint[] := '{}';
    v_done_at timestamptz[] := '{}';
    v_done_state text[] := '{}';
    v_known record;
    v_found record;
    v_payload jsonb;
    v_owner text;
    v_inserted integer;
    v_alloc_participants text[];
    v_alloc_firsts bigint[];
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

    -- One subtransaction for the whole batch, only to name the failing element: v_index is the
    -- element being checked when an error comes; its error is raised again with the SQLSTATE,
    -- message and hint it had, prefixed with the element's position.
    BEGIN
        -- 1. Enqueue's argument rules over the whole batch; the first element (in array order)
        --    that breaks one gets enqueue's message.
        SELECT g.i
          INTO v_index
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
         WHERE NOT public.outbox_enqueue_args_ok(
                   p_instruction_ids[g.i], p_participant_ids[g.i], p_idempotency_keys[g.i],
                   p_rail_types[g.i], p_payloads[g.i], p_not_before[g.i],
                   CASE WHEN p_priorities IS NULL THEN 0::smallint ELSE p_priorities[g.i] END)
         ORDER BY g.i
         LIMIT 1;
        IF FOUND THEN
            PERFORM public.outbox_check_enqueue_args(
                p_instruction_ids[v_index], p_participant_ids[v_index],
                p_idempotency_keys[v_index], p_rail_types[v_index], p_payloads[v_index],
                p_not_before[v_index],
                CASE WHEN p_priorities IS NULL THEN 0::smallint
                     ELSE p_priorities[v_index] END);
        END IF;
        v_index := NULL;

        -- 2. Each element's key's first element (a key given twice is one job).
        SELECT pg_catalog.array_agg(f.first ORDER BY f.i), count(DISTINCT f.first)
          INTO v_first, v_keys
          FROM (SELECT g.i,
                       min(g.i) OVER (PARTITION BY p_instruction_ids[g.i],
                                                   p_idempotency_keys[g.i]) AS first
                  FROM pg_catalog.generate_series(1, v_count) AS g (i)) AS f;

        -- 3. The key rows, one INSERT for the batch, in key order (concurrent batches take the
        --    keys' index entries in one order). The keys it inserted are new: their jobs are
        --    new (the outbox_id is allocated here).
        WITH ins AS (
            INSERT INTO public.payment_outbox_idempotency_keys AS k
                (instruction_id, idempotency_key, outbox_id, participant_id)
            SELECT p_instruction_ids[f.i], p_idempotency_keys[f.i],
                   public.uuid_v7_or_random(), p_participant_ids[f.i]
              FROM (SELECT DISTINCT u.first AS i
                      FROM pg_catalog.unnest(v_first) AS u (first)) AS f
             ORDER BY p_instruction_ids[f.i] COLLATE "C", p_idempotency_keys[f.i] COLLATE "C"
            ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING
            RETURNING k.instruction_id, k.idempotency_key, k.outbox_id
        )
        SELECT COALESCE(pg_catalog.array_agg(v_first[g.i] ORDER BY v_first[g.i]), '{}'),
               COALESCE(pg_catalog.array_agg(ins.outbox_id ORDER BY v_first[g.i]), '{}')
          INTO v_job_i, v_job_ids
          FROM ins
          JOIN pg_catalog.generate_series(1, v_count) AS g (i)
            ON v_first[g.i] = g.i
           AND p_instruction_ids[g.i] = ins.instruction_id
           AND p_idempotency_keys[g.i] = ins.idempotency_key;

        -- 4. Keys known before this batch (replays): each as the single enqueue does it, in key
        --    order, naming its first element if it fails: lock the key row, find the job it
        --    names (queue, else the latest attempt), compare, answer; a job removed by hand
        --    before any attempt gets a new job under the key (P7020 if it was archived).
        IF pg_catalog.cardinality(v_job_i) < v_keys THEN
            FOR v_known IN
                SELECT f.i, k.outbox_id, k.participant_id
                  FROM (SELECT DISTINCT u.first AS i
                          FROM pg_catalog.unnest(v_first) AS u (first)
                         WHERE u.first <> ALL (v_job_i)) AS f
                  JOIN public.payment_outbox_idempotency_keys AS k
                    ON k.instruction_id = p_instruction_ids[f.i]
                   AND k.idempotency_key = p_idempotency_keys[f.i]
                 ORDER BY p_instruction_ids[f.i] COLLATE "C",
                          p_idempotency_keys[f.i] COLLATE "C"
                   FOR UPDATE OF k
            LOOP
                v_index := v_known.i;
                -- The job under the key row's participant (a key row without one, written
                -- before 0031 or by a P7005 guard: the participant of the job it names), in two
                -- statements, as enqueue_payment_outbox does it (0034).
                v_owner := v_known.participant_id;
                IF v_owner IS NULL THEN
                    v_owner := COALESCE(
                        (SELECT p.participant_id
                           FROM public.payment_outbox_pending AS p
                          WHERE p.instruction_id = p_instruction_ids[v_index]
                            AND p.idempotency_key = p_idempotency_keys[v_index]),
                        (SELECT a.participant_id
                           FROM public.payment_outbox_attempts AS a
                          WHERE a.outbox_id = v_known.outbox_id
                          LIMIT 1)
                    );
                END IF;
                SELECT p.outbox_id, p.sequence_id, p.created_at, 'PENDING'::text AS state,
                       p.participant_id, p.rail_type, p.payload
                  INTO v_found
                  FROM public.payment_outbox_pending AS p
                 WHERE p.participant_id = v_owner
                   AND p.instruction_id = p_instruction_ids[v_index]
                   AND p.idempotency_key = p_idempotency_keys[v_index];
                IF NOT FOUND THEN
                    SELECT a.outbox_id, a.sequence_id, a.created_at, a.state::text AS state,
                           a.participant_id, a.rail_type, NULL::jsonb AS payload
                      INTO v_found
                      FROM public.payment_outbox_attempts AS a
                     WHERE a.participant_id = v_owner
                       AND a.outbox_id = v_known.outbox_id
                       AND a.instruction_id = p_instruction_ids[v_index]
                       AND a.idempotency_key = p_idempotency_keys[v_index]
                     ORDER BY a.created_at DESC, a.attempt_no DESC, a.attempt_id DESC
                     LIMIT 1;
                END IF;
                IF FOUND THEN
                    SELECT x.payload
                      INTO v_payload
                      FROM public.payment_outbox_payloads AS x
                     WHERE x.participant_id = v_owner
                       AND x.outbox_id = v_found.outbox_id;
                    IF NOT FOUND THEN
                        v_payload := v_found.payload;
                        IF v_payload IS NULL THEN
                            SELECT a.payload
                              INTO v_payload
                              FROM public.payment_outbox_attempts AS a
                             WHERE a.participant_id = v_owner
                               AND a.outbox_id = v_found.outbox_id
                               AND a.payload IS NOT NULL
                             LIMIT 1;
                        END IF;
                    END IF;
                    IF v_found.participant_id IS DISTINCT FROM p_participant_ids[v_index]
                       OR pg_catalog.upper(v_found.rail_type COLLATE "C")
                          IS DISTINCT FROM pg_catalog.upper(p_rail_types[v_index] COLLATE "C")
                       OR v_payload IS DISTINCT FROM p_payloads[v_index] THEN
                        RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction '
                                        '% was already used with a different participant, '
                                        'rail type or payload',
                            pg_catalog.quote_literal(p_idempotency_keys[v_index]),
                            pg_catalog.quote_literal(p_instruction_ids[v_index])
                            USING ERRCODE = 'P7004';
                    END IF;
                    v_done_i := v_done_i || v_index;
                    v_done_ids := v_done_ids || v_found.outbox_id;
                    v_done_seq := v_done_seq || v_found.sequence_id;
                    v_done_at := v_done_at || v_found.created_at;
                    v_done_state := v_done_state || v_found.state;
                ELSE
                    v_job_i := v_job_i || v_index;
                    v_job_ids := v_job_ids || public.uuid_v7_or_random();
                    IF v_known.participant_id IS NOT DISTINCT FROM p_participant_ids[v_index]
                    THEN
                        UPDATE public.payment_outbox_idempotency_keys AS k
                           SET outbox_id = v_job_ids[pg_catalog.cardinality(v_job_ids)]
                         WHERE k.participant_id = p_participant_ids[v_index]
                           AND k.instruction_id = p_instruction_ids[v_index]
                           AND k.idempotency_key = p_idempotency_keys[v_index];
                    ELSE
                        UPDATE public.payment_outbox_idempotency_keys AS k
                           SET outbox_id = v_job_ids[pg_catalog.cardinality(v_job_ids)],
                               participant_id = p_participant_ids[v_index]
                         WHERE k.instruction_id = p_instruction_ids[v_index]
                           AND k.idempotency_key = p_idempotency_keys[v_index];
                    END IF;
                END IF;
            END LOOP;
            v_index := NULL;
        END IF;

        -- 5. A key given twice in the batch: every later element must be the same job as its
        --    first (participant, rail by its upper-cased spelling, payload), else P7004 for the
        --    first element (in array order) that differs.
        IF v_keys < v_count THEN
            SELECT g.i
              INTO v_index
              FROM pg_catalog.generate_series(1, v_count) AS g (i)
             WHERE v_first[g.i] <> g.i
               AND (p_participant_ids[g.i] IS DISTINCT FROM p_participant_ids[v_first[g.i]]
                    OR pg_catalog.upper(p_rail_types[g.i] COLLATE "C")
                       IS DISTINCT FROM pg_catalog.upper(p_rail_types[v_first[g.i]] COLLATE "C")
                    OR p_payloads[g.i] IS DISTINCT FROM p_payloads[v_first[g.i]])
             ORDER BY g.i
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'IDEMPOTENCY_CONFLICT: idempotency key % of instruction % was '
                                'already used with a different participant, rail type or '
                                'payload',
                    pg_catalog.quote_literal(p_idempotency_keys[v_index]),
                    pg_catalog.quote_literal(p_instruction_ids[v_index])
                    USING ERRCODE = 'P7004';
            END IF;
        END IF;

        IF pg_catalog.cardinality(v_job_i) > 0 THEN
            -- 6. Payload numbers of the new jobs: the exact walk only for payloads with a number
            --    other than an integer of at most 15 digits, in array order, the element's rail
            --    first (as the single enqueue).
            FOR v_index IN
                SELECT j.i
                  FROM pg_catalog.unnest(v_job_i) AS j (i)
                 WHERE NOT public.outbox_payload_numbers_plain(p_payloads[j.i])
                 ORDER BY j.i
            LOOP
                PERFORM public.outbox_rail_code(p_rail_types[v_index]);
                PERFORM public.check_outbox_payload_numbers(p_payloads[v_index]);
            END LOOP;
            v_index := NULL;

            -- 7. One allocator upsert for the batch: each participant's row advances by its
            --    number of new jobs, in participant order (concurrent batches and single
            --    enqueues lock allocator rows in one order, no 40P01; ADR 0116). The rows stay
            --    locked until commit.
            -- 8. Then, in a second statement (it sees every job committed while we waited for
            --    the allocator rows), the jobs: a participant's jobs take consecutive numbers
            --    in array order; the first is the head when no job of the participant is
            --    queued. The rail's canonical code is joined in (an unknown or disabled rail
            --    inserts nothing and is named below).
            WITH jobs AS (
                SELECT j.i, j.outbox_id, p_participant_ids[j.i] AS participant_id,
                       pg_catalog.row_number() OVER (PARTITION BY p_participant_ids[j.i]
                                                     ORDER BY j.i) AS rank
                  FROM ROWS FROM (pg_catalog.unnest(v_job_i), pg_catalog.unnest(v_job_ids))
                       AS j (i, outbox_id)
            ),
            needed AS (
                SELECT jobs.participant_id, count(*) AS n
                  FROM jobs
                 GROUP BY jobs.participant_id
            ),
            allocated AS (
                INSERT INTO public.participant_outbox_sequences AS s
                    (participant_id, next_sequence_id)
                SELECT needed.participant_id, needed.n + 1
                  FROM needed
                 ORDER BY needed.participant_id COLLATE "C"
                ON CONFLICT ON CONSTRAINT pk_participant_outbox_sequences
                DO UPDATE SET next_sequence_id = s.next_sequence_id + excluded.next_sequence_id - 1
                RETURNING s.participant_id, s.next_sequence_id
            )
            SELECT pg_catalog.array_agg(a.participant_id),
                   pg_catalog.array_agg(a.next_sequence_id - n.n)
              INTO v_alloc_participants, v_alloc_firsts
              FROM allocated AS a
              JOIN needed AS n ON n.participant_id = a.participant_id;

            WITH jobs AS (
                SELECT j.i, j.outbox_id, p_participant_ids[j.i] AS participant_id,
                       pg_catalog.row_number() OVER (PARTITION BY p_participant_ids[j.i]
                                                     ORDER BY j.i) AS rank
                  FROM ROWS FROM (pg_catalog.unnest(v_job_i), pg_catalog.unnest(v_job_ids))
                       AS j (i, outbox_id)
            ),
            firsts AS (
                SELECT b.participant_id, b.first_sequence_id
                  FROM ROWS FROM (pg_catalog.unnest(v_alloc_participants),
                                  pg_catalog.unnest(v_alloc_firsts))
                       AS b (participant_id, first_sequence_id)
            ),
            ins AS (
                INSERT INTO public.payment_outbox_pending AS p
                    (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key,
                     rail_type, next_attempt_at, priority, is_head)
                SELECT jobs.outbox_id, p_instruction_ids[jobs.i], jobs.participant_id,
                       firsts.first_sequence_id + jobs.rank - 1, p_idempotency_keys[jobs.i],
                       r.rail_code,
                       GREATEST(p_not_before[jobs.i], pg_catalog.now()),
                       CASE WHEN p_priorities IS NULL THEN 0 ELSE p_priorities[jobs.i] END,
                       jobs.rank = 1 AND NOT EXISTS (
                           SELECT 1
                             FROM public.payment_outbox_pending AS q
                            WHERE q.participant_id = jobs.participant_id
                       )
                  FROM jobs
                  JOIN firsts ON firsts.participant_id = jobs.participant_id
                  JOIN public.outbox_rails AS r
                    ON r.rail_code = pg_catalog.upper(p_rail_types[jobs.i] COLLATE "C")
                   AND r.enabled
                 ORDER BY jobs.participant_id COLLATE "C", jobs.rank
                ON CONFLICT ON CONSTRAINT uq_payment_outbox_pending_instruction_idempotency
                DO NOTHING
                RETURNING p.outbox_id, p.sequence_id, p.created_at, p.participant_id
            ),
            payloads AS (  -- runs to completion although nothing reads it; 0038 (ADR 0167):
                           -- the payload's one copy (the queue row carries none)
                INSERT INTO public.payment_outbox_payloads AS x
                    (participant_id, outbox_id, payload)
                SELECT ins.participant_id, ins.outbox_id, p_payloads[jobs.i]
                  FROM ins
                  JOIN jobs ON jobs.outbox_id = ins.outbox_id
            )
            SELECT v_done_i || COALESCE(pg_catalog.array_agg(jobs.i), '{}'),
                   v_done_ids || COALESCE(pg_catalog.array_agg(ins.outbox_id), '{}'),
                   v_done_seq || COALESCE(pg_catalog.array_agg(ins.sequence_id), '{}'),
                   v_done_at || COALESCE(pg_catalog.array_agg(ins.created_at), '{}'),
                   v_done_state || COALESCE(pg_catalog.array_agg('PENDING'::text), '{}'),
                   count(*)
              INTO v_done_i, v_done_ids, v_done_seq, v_done_at, v_done_state, v_inserted
              FROM ins
              JOIN jobs ON jobs.outbox_id = ins.outbox_id;

            IF v_inserted < pg_catalog.cardinality(v_job_i) THEN
                -- An element's rail is unknown or disabled (22023 naming it), else a row was
                -- written around the functions under one of the keys after the look-up.
                FOR v_index IN
                    SELECT j.i
                      FROM pg_catalog.unnest(v_job_i) AS j (i)
                     ORDER BY j.i
                LOOP
                    PERFORM public.outbox_rail_code(p_rail_types[v_index]);
                END LOOP;
                v_index := NULL;
                RAISE EXCEPTION 'concurrent enqueue of an idempotency key of the batch'
                    USING ERRCODE = 'serialization_failure',
                          HINT = 'Retry the transaction; the retry returns the existing rows.';
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
        IF v_index IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'element % of the batch: %', v_index, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = v_hint;
    END;

    RETURN QUERY
        SELECT g.i::integer, d.outbox_id, d.sequence_id, d.created_at, d.state
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
          JOIN ROWS FROM (pg_catalog.unnest(v_done_i), pg_catalog.unnest(v_done_ids),
                          pg_catalog.unnest(v_done_seq), pg_catalog.unnest(v_done_at),
                          pg_catalog.unnest(v_done_state))
               AS d (i, outbox_id, sequence_id, created_at, state)
            ON d.i = v_first[g.i]
         ORDER BY g.i;
END
$$;


ALTER FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) IS 'Enqueues element i of every array as one job with enqueue_payment_outbox''s validation, idempotency, rails and per-participant sequencing, set-based (one statement per table), 1 to 1000 elements; a participant''s new jobs take consecutive numbers in array order; a key given twice is one job. Returns one row per element in array order (ordinality is the element''s position). All or nothing: the first refused element (in array order, per rule) fails the call with enqueue''s SQLSTATE, its message prefixed with "element <i> of the batch: ", and nothing of the batch is written. 22023 when the arrays are missing, empty, over 1000 or of different lengths.';


--
-- Name: enqueue_payment_outbox_batch_for_participant(text, text[], text[], text[], jsonb[], timestamp with time zone[], smallint[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[] DEFAULT NULL::timestamp with time zone[], p_priorities smallint[] DEFAULT NULL::smallint[]) RETURNS TABLE(ordinality integer, outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_count integer := pg_catalog.cardinality(p_instruction_ids);
    v_lengths integer[];
    v_index integer;
    v_hint text;
    v_result record;
    v_ids uuid[] := '{}';
    v_seq bigint[] := '{}';
    v_at timestamptz[] := '{}';
    v_state text[] := '{}';
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    IF p_instruction_ids IS NULL OR v_count NOT BETWEEN 1 AND 1000
       OR pg_catalog.array_ndims(p_instruction_ids) <> 1 THEN
        RAISE EXCEPTION 'p_instruction_ids must be a one-dimensional array of 1 to 1000 '
                        'elements, got %', COALESCE(v_count::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_lengths := ARRAY[pg_catalog.cardinality(p_idempotency_keys),
                       pg_catalog.cardinality(p_rail_types),
                       pg_catalog.cardinality(p_payloads),
                       COALESCE(pg_catalog.cardinality(p_not_before), v_count),
                       COALESCE(pg_catalog.cardinality(p_priorities), v_count)];
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(v_lengths) AS l (n)
                WHERE l.n IS DISTINCT FROM v_count) THEN
        RAISE EXCEPTION 'every array must have as many elements as p_instruction_ids (%), got '
                        'p_idempotency_keys %, p_rail_types %, p_payloads %, p_not_before %, '
                        'p_priorities %',
            v_count, COALESCE(v_lengths[1]::text, 'NULL'), COALESCE(v_lengths[2]::text, 'NULL'),
            COALESCE(v_lengths[3]::text, 'NULL'), v_lengths[4], v_lengths[5]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- One subtransaction for the whole batch, only to name the failing element (as
    -- enqueue_payment_outbox_batch does): all or nothing.
    BEGIN
        -- 1. Enqueue's argument rules over the whole batch first: the first element (in array
        --    order) that breaks one gets enqueue's message.
        SELECT g.i
          INTO v_index
          FROM pg_catalog.generate_series(1, v_count) AS g (i)
         WHERE NOT public.outbox_enqueue_args_ok(
                   p_instruction_ids[g.i], p_participant_id, p_idempotency_keys[g.i],
                   p_rail_types[g.i], p_payloads[g.i], p_not_before[g.i],
                   CASE WHEN p_priorities IS NULL THEN 0::smallint ELSE p_priorities[g.i] END)
         ORDER BY g.i
         LIMIT 1;
        IF FOUND THEN
            PERFORM public.outbox_check_enqueue_args(
                p_instruction_ids[v_index], p_participant_id, p_idempotency_keys[v_index],
                p_rail_types[v_index], p_payloads[v_index], p_not_before[v_index],
                CASE WHEN p_priorities IS NULL THEN 0::smallint
                     ELSE p_priorities[v_index] END);
        END IF;

        -- 2. Each element as enqueue_payment_outbox enqueues it, in array order: a participant's
        --    new jobs take consecutive numbers in array order, a key given twice is one job (the
        --    second is a replay of the first: P7004 if it differs), a key known before the batch
        --    answers with its job. Every statement of enqueue_payment_outbox filters by the
        --    participant, so on Citus the whole call runs on the participant's node.
        FOR v_i IN 1 .. v_count LOOP
            v_index := v_i;  -- (a FOR variable is local to its loop: the handler reads v_index)
            SELECT e.outbox_id, e.sequence_id, e.created_at, e.state
              INTO v_result
              FROM public.enqueue_payment_outbox(
                       p_instruction_ids[v_index], p_participant_id, p_idempotency_keys[v_index],
                       p_rail_types[v_index], p_payloads[v_index], p_not_before[v_index],
                       CASE WHEN p_priorities IS NULL THEN 0::smallint
                            ELSE p_priorities[v_index] END) AS e;
            v_ids := v_ids || v_result.outbox_id;
            v_seq := v_seq || v_result.sequence_id;
            v_at := v_at || v_result.created_at;
            v_state := v_state || v_result.state;
        END LOOP;
        v_index := NULL;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
        IF v_index IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'element % of the batch: %', v_index, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = v_hint;
    END;

    RETURN QUERY
        SELECT d.i::integer, d.outbox_id, d.sequence_id, d.created_at, d.state
          FROM ROWS FROM (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_seq),
                          pg_catalog.unnest(v_at), pg_catalog.unnest(v_state))
               WITH ORDINALITY AS d (outbox_id, sequence_id, created_at, state, i)
         ORDER BY d.i;
END
$$;


ALTER FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) IS 'enqueue_payment_outbox_batch for one participant (ADR 0147: delegable on Citus, where the multi-participant batch is not): element i of every array is enqueued as enqueue_payment_outbox(p_instruction_ids[i], p_participant_id, ...) would, in array order, 1 to 1000 elements; new jobs take consecutive numbers in array order; a key given twice is one job. Returns one row per element in array order. All or nothing: the argument rules are checked over the whole batch first, then the first refused element fails the call with enqueue''s SQLSTATE, its message prefixed with "element <i> of the batch: ". 22023 when the arrays are missing, empty, over 1000 or of different lengths.';


--
-- Name: ensure_ledger_partitions(integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.ensure_ledger_partitions(p_days_ahead integer DEFAULT 14) RETURNS TABLE(partition_name text, action text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_day date;
    v_last date;
    v_name text;
    v_from uuid;
    v_to uuid;
    v_part record;
BEGIN
    IF p_days_ahead IS NULL OR p_days_ahead < 1 OR p_days_ahead > 366 THEN
        RAISE EXCEPTION 'p_days_ahead must be between 1 and 366, got %',
            COALESCE(p_days_ahead::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One maintenance run at a time (a second waits, then finds the partitions made).
    LOCK TABLE public.archived_ledger_partitions IN SHARE ROW EXCLUSIVE MODE;
    v_day := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
    v_last := v_day + p_days_ahead;
    WHILE v_day <= v_last LOOP
        v_name := 'attempts_p' || pg_catalog.to_char(v_day, 'YYYYMMDD');
        v_from := public.ledger_uuid_lower_bound(v_day::timestamp AT TIME ZONE 'UTC');
        v_to := public.ledger_uuid_lower_bound((v_day + 1)::timestamp AT TIME ZONE 'UTC');
        IF pg_catalog.to_regclass('symphony_ledger.' || v_name) IS NULL
           AND NOT EXISTS (SELECT 1 FROM public.archived_ledger_partitions AS a
                            WHERE a.partition_name = v_name AND a.state = 'ARCHIVED') THEN
            IF EXISTS (SELECT 1 FROM public.payment_outbox_attempts_default AS d
                        WHERE d.outbox_id >= v_from AND d.outbox_id < v_to) THEN
                RAISE EXCEPTION 'the default ledger partition holds rows of %: partition % cannot '
                                'be created', v_day, v_name
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'See "Rows in the default ledger partition" in the runbook.';
            END IF;
            EXECUTE pg_catalog.format(
                'CREATE TABLE symphony_ledger.%I PARTITION OF public.payment_outbox_attempts '
                'FOR VALUES FROM (%L) TO (%L)', v_name, v_from, v_to);
            PERFORM public.protect_ledger_partition(('symphony_ledger.' || v_name)::regclass);
            partition_name := 'symphony_ledger.' || v_name;
            action := 'created';
            RETURN NEXT;
        END IF;
        v_day := v_day + 1;
    END LOOP;
    -- Every partition, including one created by hand, ends up protected.
    FOR v_part IN
        SELECT i.inhrelid::pg_catalog.regclass AS rel
          FROM pg_catalog.pg_inherits AS i
         WHERE i.inhparent = 'public.payment_outbox_attempts'::pg_catalog.regclass
         ORDER BY 1
    LOOP
        IF public.protect_ledger_partition(v_part.rel) THEN
            partition_name := v_part.rel::text;
            action := 'protected';
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;


ALTER FUNCTION public.ensure_ledger_partitions(p_days_ahead integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION ensure_ledger_partitions(p_days_ahead integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.ensure_ledger_partitions(p_days_ahead integer) IS 'Creates the daily ledger partitions (symphony_ledger.attempts_pYYYYMMDD, UTC days) from today to p_days_ahead days ahead (default 14, 1-366) and protects every partition; returns what it created or fixed. 22023 on a bad argument, 55000 when the default partition holds rows of a day to create.';


--
-- Name: extend_outbox_lease(uuid, uuid, text, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) RETURNS timestamp with time zone
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) IS 'Heartbeat: sets the lease of p_outbox_id to expire p_lease_seconds (1..86400) from now and returns the new expiry. Fenced like completion: P7002 (LEASE_LOST) unless worker and token are the job''s current lease (an expired lease nobody replaced may still be extended).';


--
-- Name: extend_outbox_lease_for_participant(text, uuid, uuid, text, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) RETURNS timestamp with time zone
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_expires_at timestamptz;
    v_new_expiry timestamptz;
    v_plan_settings text[];
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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

    -- The new expiry from a variable: Citus refuses a VOLATILE call (clock_timestamp()) inside
    -- an UPDATE of a distributed table.
    v_new_expiry := pg_catalog.clock_timestamp()
                    + pg_catalog.make_interval(secs => p_lease_seconds);
    UPDATE public.payment_outbox_pending AS p
       SET lease_expires_at = v_new_expiry
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id
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


ALTER FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) IS 'extend_outbox_lease for a job of one participant (ADR 0147: one shard on Citus): sets the lease to expire p_lease_seconds (1..86400) from now and returns the new expiry. P7002 LEASE_LOST unless worker and token are the job''s current lease (a job of another participant is an unknown job), 22023 on invalid arguments.';


--
-- Name: guard_archived_outbox_id(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_archived_outbox_id() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_partition text;
BEGIN
    SELECT a.partition_name INTO v_partition
      FROM public.archived_ledger_partitions AS a
     WHERE a.state = 'ARCHIVED'
       AND NEW.outbox_id >= a.range_from AND NEW.outbox_id < a.range_to;
    IF FOUND THEN
        RAISE EXCEPTION 'JOB_ARCHIVED: outbox % lies in the archived ledger partition %; its '
                        'jobs are terminal and cannot be queued or recorded again',
            NEW.outbox_id, v_partition
            USING ERRCODE = 'P7020',
                  HINT = 'Restore the partition to read the job''s history; enqueue a new '
                         'instruction for a new payment.';
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_archived_outbox_id() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_archived_outbox_id(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_archived_outbox_id() IS 'Trigger function: refuses (P7020 JOB_ARCHIVED) a queue or ledger row written by anyone but the outbox functions (a superuser or the migrating role by hand) for an outbox_id whose ledger partition is archived.';


--
-- Name: guard_attempt_participant(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_attempt_participant() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_participant text;
BEGIN
    IF pg_catalog.pg_partition_root(TG_RELID)
           IS DISTINCT FROM 'public.payment_outbox_attempts'::pg_catalog.regclass THEN
        -- A shard of a distributed ledger: a job is (participant_id, outbox_id) there.
        RETURN NEW;
    END IF;
    SELECT a.participant_id INTO v_participant
      FROM public.payment_outbox_attempts AS a
     WHERE a.outbox_id = NEW.outbox_id
       AND a.participant_id <> NEW.participant_id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'outbox % belongs to participant %: an attempt naming participant % '
                        'is refused (uq_payment_outbox_attempts_one_outcome, _one_redrive and '
                        '_outbox_attempt_no hold per job only with one participant)',
            NEW.outbox_id, pg_catalog.quote_literal(v_participant),
            pg_catalog.quote_literal(NEW.participant_id)
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'uq_payment_outbox_attempts_one_outcome';
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_attempt_participant() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_attempt_participant(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_attempt_participant() IS 'Trigger function: refuses (23505) a ledger row whose participant_id differs from the one the job''s earlier rows name, so the unique keys that carry participant_id still allow one outcome, one redrive and one row per attempt number per job. On a shard of a distributed ledger (Citus) it looks nothing up: a job is (participant_id, outbox_id) there (revision 0035, ADR 0149).';


--
-- Name: guard_idempotency_key_archived(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_idempotency_key_archived() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_partition text;
BEGIN
    SELECT a.partition_name INTO v_partition
      FROM public.archived_ledger_partitions AS a
     WHERE a.state = 'ARCHIVED'
       AND OLD.outbox_id >= a.range_from AND OLD.outbox_id < a.range_to;
    IF FOUND THEN
        RAISE EXCEPTION 'JOB_ARCHIVED: idempotency key % of instruction % belongs to outbox %, '
                        'whose ledger partition % is archived; it is never queued again',
            pg_catalog.quote_literal(OLD.idempotency_key),
            pg_catalog.quote_literal(OLD.instruction_id), OLD.outbox_id, v_partition
            USING ERRCODE = 'P7020',
                  HINT = 'The payment was processed; restore the partition to read its history.';
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_idempotency_key_archived() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_idempotency_key_archived(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_idempotency_key_archived() IS 'Trigger function: refuses (P7020 JOB_ARCHIVED) moving an idempotency key away from an outbox_id whose ledger partition is archived, so a duplicate of an archived payment is never queued again.';


--
-- Name: guard_outbox_attempts_insert(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_outbox_attempts_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    -- Serialise with every other writer of this payment (enqueue, the other guard).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (NEW.instruction_id, NEW.idempotency_key, NEW.outbox_id, NEW.participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    IF pg_catalog.pg_partition_root(TG_RELID)
           IS NOT DISTINCT FROM 'public.payment_outbox_attempts'::pg_catalog.regclass THEN
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = k.outbox_id
         WHERE k.instruction_id = NEW.instruction_id
           AND k.idempotency_key = NEW.idempotency_key;
        PERFORM 1
           FROM public.payment_outbox_pending AS p
          WHERE p.outbox_id = NEW.outbox_id
            FOR UPDATE;
    ELSE
        -- A shard: the participant's key row and queue shard, on this node.
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = k.outbox_id
         WHERE k.participant_id = NEW.participant_id
           AND k.instruction_id = NEW.instruction_id
           AND k.idempotency_key = NEW.idempotency_key;
        PERFORM 1
           FROM public.payment_outbox_pending AS p
          WHERE p.participant_id = NEW.participant_id
            AND p.outbox_id = NEW.outbox_id
            FOR UPDATE;
    END IF;
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


ALTER FUNCTION public.guard_outbox_attempts_insert() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_outbox_attempts_insert(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_outbox_attempts_insert() IS 'Trigger function: refuses (P7005) an attempt inserted by anyone but the outbox functions for a job that is still in public.payment_outbox_pending; serialised with enqueue and the queue guard on the payment''s row in payment_outbox_idempotency_keys.';


--
-- Name: guard_outbox_pending_write(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_outbox_pending_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_terminal boolean;
BEGIN
    -- Serialise with every other writer of this payment (enqueue, the other guard).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (NEW.instruction_id, NEW.idempotency_key, NEW.outbox_id, NEW.participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    IF TG_RELID = 'public.payment_outbox_pending'::pg_catalog.regclass THEN
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = k.outbox_id
         WHERE k.instruction_id = NEW.instruction_id
           AND k.idempotency_key = NEW.idempotency_key;
        v_terminal := EXISTS (
            SELECT 1
              FROM public.payment_outbox_attempts AS a
             WHERE a.outbox_id = NEW.outbox_id
               AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                               'FAILED'::public.outbox_attempt_state));
    ELSE
        -- A shard: the participant's key row and ledger shard, on this node.
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = k.outbox_id
         WHERE k.participant_id = NEW.participant_id
           AND k.instruction_id = NEW.instruction_id
           AND k.idempotency_key = NEW.idempotency_key;
        v_terminal := EXISTS (
            SELECT 1
              FROM public.payment_outbox_attempts AS a
             WHERE a.participant_id = NEW.participant_id
               AND a.outbox_id = NEW.outbox_id
               AND a.state IN ('DISPATCHED'::public.outbox_attempt_state,
                               'FAILED'::public.outbox_attempt_state));
    END IF;
    IF v_terminal THEN
        RAISE EXCEPTION 'JOB_ALREADY_TERMINAL: outbox % already has its terminal attempt; it '
                        'cannot be queued again', NEW.outbox_id
            USING ERRCODE = 'P7005',
                  HINT = 'Enqueue a new instruction (or a new idempotency key) instead.';
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_outbox_pending_write() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_outbox_pending_write(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_outbox_pending_write() IS 'Trigger function: refuses (P7005) a queue row written by anyone but the outbox functions for a job that already has a terminal attempt; serialised with enqueue and the attempts guard on the payment''s row in payment_outbox_idempotency_keys.';


--
-- Name: guard_policy_version_identity(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_policy_version_identity() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NEW.version IS DISTINCT FROM OLD.version
       OR NEW.checksum IS DISTINCT FROM OLD.checksum
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'POLICY_VERSION_IMMUTABLE: the version, checksum and created_at of '
                        'policy version % never change', quote_literal(OLD.version)
            USING ERRCODE = 'P7104',
                  HINT = 'Publish the changed document as a new version (rotate).';
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_policy_version_identity() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_policy_version_identity(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_policy_version_identity() IS 'Trigger function: refuses (P7104) any change of a policy version''s version, checksum or created_at.';


--
-- Name: guard_policy_version_lifecycle(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.guard_policy_version_lifecycle() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_problem text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        v_problem := 'policy versions are never truncated';
    ELSIF TG_OP = 'DELETE' THEN
        v_problem := format('policy version %L is never deleted (%s)', OLD.version, OLD.status);
    ELSIF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'ACTIVE'::public.policy_version_status THEN
            v_problem := format('a new policy version (%L) must be ACTIVE, not %s',
                                NEW.version, NEW.status);
        END IF;
    ELSIF OLD.status = 'RETIRED'::public.policy_version_status THEN
        v_problem := format('RETIRED policy version %L never changes', OLD.version);
    ELSIF NOT (
        (NEW.status = OLD.status
         AND NEW.grace_expires_at IS NOT DISTINCT FROM OLD.grace_expires_at)
        OR (OLD.status = 'ACTIVE'::public.policy_version_status
            AND NEW.status = 'GRACE'::public.policy_version_status)
        OR (OLD.status = 'GRACE'::public.policy_version_status
            AND NEW.status = 'RETIRED'::public.policy_version_status
            AND NEW.grace_expires_at IS NOT DISTINCT FROM OLD.grace_expires_at)
    ) THEN
        v_problem := format(
            'policy version %L may not go from %s (grace until %s) to %s (grace until %s): '
            'only ACTIVE -> GRACE -> RETIRED, and a GRACE version keeps its expiry',
            OLD.version, OLD.status, COALESCE(OLD.grace_expires_at::text, '-'),
            NEW.status, COALESCE(NEW.grace_expires_at::text, '-'));
    END IF;
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'POLICY_VERSION_IMMUTABLE: %', v_problem
            USING ERRCODE = 'P7104',
                  HINT = 'Use rotate_policy_version() and retire_expired_policy_versions().';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;


ALTER FUNCTION public.guard_policy_version_lifecycle() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_policy_version_lifecycle(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_policy_version_lifecycle() IS 'Trigger function: refuses (P7104) deleting or truncating policy versions, changing a RETIRED one, inserting one that is not ACTIVE, and any status move but ACTIVE -> GRACE -> RETIRED.';


--
-- Name: keep_one_active_policy_version(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.keep_one_active_policy_version() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1
          FROM public.policy_versions AS pv
         WHERE pv.status = 'ACTIVE'::public.policy_version_status
    ) THEN
        RAISE EXCEPTION 'NO_ACTIVE_POLICY: policy version % stopped being ACTIVE and no other '
                        'version became ACTIVE in the same transaction', quote_literal(OLD.version)
            USING ERRCODE = 'P7103',
                  HINT = 'Rotate with rotate_policy_version(), which does both at once.';
    END IF;
    RETURN NULL;
END
$$;


ALTER FUNCTION public.keep_one_active_policy_version() OWNER TO symphony_owner;

--
-- Name: FUNCTION keep_one_active_policy_version(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.keep_one_active_policy_version() IS 'Constraint trigger function (deferred): refuses (P7103) to commit a transaction that leaves public.policy_versions without an ACTIVE version after demoting one.';


--
-- Name: ledger_uuid_lower_bound(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.ledger_uuid_lower_bound(p_at timestamp with time zone) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT (pg_catalog.substr(h, 1, 8) || '-' || pg_catalog.substr(h, 9, 4)
            || '-0000-0000-000000000000')::pg_catalog.uuid
      FROM (SELECT pg_catalog.lpad(pg_catalog.to_hex(
                       pg_catalog.floor(pg_catalog.date_part('epoch', p_at) * 1000)::bigint),
                   12, '0') AS h) AS x
$$;


ALTER FUNCTION public.ledger_uuid_lower_bound(p_at timestamp with time zone) OWNER TO symphony_owner;

--
-- Name: FUNCTION ledger_uuid_lower_bound(p_at timestamp with time zone); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.ledger_uuid_lower_bound(p_at timestamp with time zone) IS 'The smallest UUIDv7 generated at or after p_at (its first 48 bits are the Unix time in milliseconds): the range bound of a ledger partition.';


--
-- Name: mark_ledger_partition_restored(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.mark_ledger_partition_restored(p_partition text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_rec public.archived_ledger_partitions;
    v_rel regclass;
    v_count bigint;
BEGIN
    SELECT * INTO v_rec FROM public.archived_ledger_partitions AS a
     WHERE a.partition_name = p_partition FOR UPDATE;
    IF NOT FOUND OR v_rec.state <> 'ARCHIVED' THEN
        RAISE EXCEPTION 'symphony_ledger.% is not recorded as archived', p_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_rel := pg_catalog.to_regclass('symphony_ledger.' || pg_catalog.quote_ident(p_partition));
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'symphony_ledger.% has not been recreated', p_partition
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', v_rel) INTO v_count;
    IF v_count <> v_rec.row_count THEN
        RAISE EXCEPTION 'restored symphony_ledger.% holds % rows, the archive recorded %',
            p_partition, v_count, v_rec.row_count
            USING ERRCODE = 'data_exception';
    END IF;
    PERFORM public.protect_ledger_partition(v_rel);
    UPDATE public.archived_ledger_partitions AS a
       SET state = 'RESTORED', restored_at = pg_catalog.now()
     WHERE a.partition_name = p_partition;
END
$$;


ALTER FUNCTION public.mark_ledger_partition_restored(p_partition text) OWNER TO symphony_owner;

--
-- Name: FUNCTION mark_ledger_partition_restored(p_partition text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.mark_ledger_partition_restored(p_partition text) IS 'The last restore step: checks the recreated partition holds the recorded row count, protects it and marks its archive RESTORED.';


--
-- Name: notify_outbox_work(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.notify_outbox_work() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    -- The rail's gate: held by this transaction (taken now or by an earlier job of it) or by a
    -- concurrent one, which will notify for the rail when it commits.
    PERFORM 1
       FROM public.outbox_rails AS r
      WHERE r.rail_code = NEW.rail_type
        FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        -- The hint picks the worker that claims at once (ADR 0159); constant within the
        -- transaction, so its notifications of one rail still fold into one.
        PERFORM pg_catalog.pg_notify(
            'symphony_outbox_work',
            NEW.rail_type || ':' || (pg_catalog.pg_current_xact_id()::text::bigint % 1024)::text
        );
    END IF;
    RETURN NULL;
END
$$;


ALTER FUNCTION public.notify_outbox_work() OWNER TO symphony_owner;

--
-- Name: FUNCTION notify_outbox_work(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.notify_outbox_work() IS 'Trigger function (AFTER INSERT of a claimable head on payment_outbox_pending): NOTIFY symphony_outbox_work with ''<rail code>:<hint>'' (hint: the transaction id modulo 1024; the worker of rank hint mod workers claims at once, ADR 0159), delivered at commit, folded per transaction; only the transaction holding the rail''s outbox_rails row (FOR NO KEY UPDATE SKIP LOCKED) notifies, concurrent ones of the rail skip.';


--
-- Name: outbox_check_enqueue_args(text, text, text, text, jsonb, timestamp with time zone, smallint); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
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
    IF NOT public.outbox_enqueue_args_ok(p_instruction_id, p_participant_id, p_idempotency_key,
                                         p_rail_type, p_payload, p_not_before, p_priority) THEN
        RAISE EXCEPTION 'outbox_enqueue_args_ok and outbox_check_enqueue_args disagree'
            USING ERRCODE = 'internal_error';
    END IF;
END
$$;


ALTER FUNCTION public.outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) IS 'Raises enqueue''s 22023 message for the first argument rule broken (ids, then payload, priority, not_before); XX000 if it finds none although outbox_enqueue_args_ok said no. Owner only.';


--
-- Name: outbox_id_ok(text, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((p_value IS NOT NULL) AND (btrim(p_value, ' 	

'::text) <> ''::text) AND ((p_max_bytes IS NULL) OR (octet_length(p_value) <= p_max_bytes)));


ALTER FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_id_ok(p_value text, p_max_bytes integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer) IS 'The id rule of outbox_require_ids() as one predicate (inlined where it is called): true when the value is not NULL, not blank and (p_max_bytes NULL or) at most p_max_bytes bytes. When false, outbox_require_ids() raises the message. Owner only.';


--
-- Name: outbox_enqueue_args_ok(text, text, text, text, jsonb, timestamp with time zone, smallint); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (public.outbox_id_ok(p_instruction_id, 1024) AND public.outbox_id_ok(p_participant_id, 1024) AND public.outbox_id_ok(p_idempotency_key, 1024) AND public.outbox_id_ok(p_rail_type, 1024) AND (p_payload IS NOT NULL) AND (jsonb_typeof(p_payload) = 'object'::text) AND (octet_length((p_payload)::text) <= 65536) AND (p_priority IS NOT NULL) AND ((p_not_before IS NULL) OR isfinite(p_not_before)));


ALTER FUNCTION public.outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) IS 'Enqueue''s argument rules as one predicate (inlined where it is called): true when the ids are non-blank and at most 1024 bytes, the payload a JSON object of at most 65536 bytes, the priority not NULL and not_before finite or NULL. When false, outbox_check_enqueue_args raises the message. Owner only.';


--
-- Name: outbox_limit_bytes(text[], text[], integer[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
        IF pg_catalog.octet_length(p_values[i]) > p_max_bytes[i] THEN
            RAISE EXCEPTION '% must be at most % bytes, got %',
                p_names[i], p_max_bytes[i], pg_catalog.octet_length(p_values[i])
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
END
$$;


ALTER FUNCTION public.outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]) IS 'Rule helper of the outbox functions: raises 22023 "<name> must be at most <max> bytes, got <n>" for the first value (in order) longer than its limit; NULL values pass. Owner only.';


--
-- Name: outbox_metrics(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_metrics() RETURNS TABLE(rail_type text, participant_id text, is_total boolean, queue_depth bigint, due_now bigint, leased bigint, expired_leases bigint, in_doubt bigint, oldest_due_age_seconds double precision, retries_5m bigint, retries_60m bigint, lost_leases_5m bigint, lost_leases_60m bigint, failures_5m bigint, failures_60m bigint, cancellations_5m bigint, cancellations_60m bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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
               pg_catalog.count(*) FILTER (WHERE p.in_doubt) AS in_doubt,
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


ALTER FUNCTION public.outbox_metrics() OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_metrics(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_metrics() IS 'Outbox health per (rail_type, participant_id) and one total row (is_total): queue depth, due now, leased, expired leases, in-doubt jobs (the queue''s in_doubt flag: a lost lease was recorded), the oldest due job''s age in seconds, and RETRYABLE, ZOMBIE_REQUEUE, FAILED and CANCELLED attempts of the last 5 and 60 minutes. EXECUTE for symphony_readonly, symphony_auditor and symphony_control.';


--
-- Name: outbox_payload_numbers_plain(jsonb); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_payload_numbers_plain(p_payload jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (NOT jsonb_path_exists(p_payload, 'strict $.**?(@.type() == "number" && ((@.floor() != @ || @ > 999999999999999) || @ < -999999999999999))'::jsonpath));


ALTER FUNCTION public.outbox_payload_numbers_plain(p_payload jsonb) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_payload_numbers_plain(p_payload jsonb); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_payload_numbers_plain(p_payload jsonb) IS 'True when every number in the payload is an integer of at most 15 digits (exact for every JSON consumer), so check_outbox_payload_numbers has nothing to refuse; false sends the payload through that exact check. Owner only.';


--
-- Name: outbox_pin_plan_settings(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_pin_plan_settings() RETURNS text[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_saved text[];
    v_ignored text;
BEGIN
    v_saved := ARRAY[pg_catalog.current_setting('plan_cache_mode'),
                     pg_catalog.current_setting('enable_seqscan')];
    v_ignored := pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    v_ignored := pg_catalog.set_config('enable_seqscan', 'off', true);
    RETURN v_saved;
END
$$;


ALTER FUNCTION public.outbox_pin_plan_settings() OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_pin_plan_settings(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_pin_plan_settings() IS 'Rule helper of the outbox functions (ADR 0041): sets plan_cache_mode = force_generic_plan and enable_seqscan = off for the rest of the transaction and returns the previous values for outbox_restore_plan_settings(). Owner only.';


--
-- Name: outbox_promote_participant_head(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_promote_participant_head(p_participant_id text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_first uuid;
    v_is_head boolean;
BEGIN
    -- Lock the allocator row first, as enqueue's upsert does (ADR 0116): the next statement's
    -- snapshot then holds every job of the participant enqueued before, and an enqueue waiting
    -- for the row sees the promotion (ADR 0158).
    PERFORM 1
       FROM public.participant_outbox_sequences AS s
      WHERE s.participant_id = p_participant_id
        FOR NO KEY UPDATE;
    -- The participant's first queued job becomes its head. Again, with a new snapshot, when the
    -- job it waited for was deleted meanwhile (a cancel of the next job): the one after it
    -- becomes the head, not nobody. One-table statements without sub-selects (Citus plans no
    -- sub-select with parameters in a delegated body).
    LOOP
        SELECT q.outbox_id, q.is_head
          INTO v_first, v_is_head
          FROM public.payment_outbox_pending AS q
         WHERE q.participant_id = p_participant_id
         ORDER BY q.sequence_id
         LIMIT 1;
        EXIT WHEN NOT FOUND OR v_is_head;
        UPDATE public.payment_outbox_pending AS p
           SET is_head = true
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_first
           AND NOT p.is_head;
        EXIT WHEN FOUND;
    END LOOP;
END
$$;


ALTER FUNCTION public.outbox_promote_participant_head(p_participant_id text) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_promote_participant_head(p_participant_id text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_promote_participant_head(p_participant_id text) IS 'Makes the participant''s queued job with the lowest sequence_id its head, under a FOR NO KEY UPDATE lock of its allocator row (ADRs 0116, 0158); used by the participant-first completions, which remove a head under a live lease (trg_promote_outbox_head skips those). Every statement filters by the participant. Owner only.';


--
-- Name: outbox_rail_code(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_rail_code(p_rail_type text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.outbox_rail_code(p_rail_type text) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_rail_code(p_rail_type text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_rail_code(p_rail_type text) IS 'The canonical code of an enabled registered rail for any spelling (rtgs, Rtgs -> RTGS); 22023 for an unknown or disabled rail, naming the enabled ones. Internal: owner only.';


--
-- Name: outbox_require_ids(text[], text[], integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer DEFAULT 1024) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
        IF p_values[i] IS NULL OR pg_catalog.btrim(p_values[i], E' \t\n\r\f\x0B') = '' THEN
            RAISE EXCEPTION '% must be a non-empty string', p_names[i]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF p_max_bytes IS NOT NULL THEN
        FOR i IN 1 .. pg_catalog.cardinality(p_names) LOOP
            IF pg_catalog.octet_length(p_values[i]) > p_max_bytes THEN
                RAISE EXCEPTION '% must be at most % bytes, got %',
                    p_names[i], p_max_bytes, pg_catalog.octet_length(p_values[i])
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
    END IF;
END
$$;


ALTER FUNCTION public.outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer) IS 'The id rule of the outbox functions: 22023 "<name> must be a non-empty string" for the first NULL or blank value, then "<name> must be at most <max> bytes, got <n>" for the first value over p_max_bytes (default 1024; NULL: no size check). Owner only.';


--
-- Name: outbox_restore_plan_settings(text[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_restore_plan_settings(p_saved text[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_ignored text;
BEGIN
    v_ignored := pg_catalog.set_config('plan_cache_mode', p_saved[1], true);
    v_ignored := pg_catalog.set_config('enable_seqscan', p_saved[2], true);
END
$$;


ALTER FUNCTION public.outbox_restore_plan_settings(p_saved text[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_restore_plan_settings(p_saved text[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_restore_plan_settings(p_saved text[]) IS 'Rule helper of the outbox functions (ADR 0041): puts back the plan_cache_mode and enable_seqscan values outbox_pin_plan_settings() returned. Owner only.';


--
-- Name: outbox_retry_ceiling(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.outbox_retry_ceiling() RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT COALESCE(
        (SELECT s.retry_ceiling FROM public.outbox_settings AS s WHERE s.singleton),
        20
    )
$$;


ALTER FUNCTION public.outbox_retry_ceiling() OWNER TO symphony_owner;

--
-- Name: FUNCTION outbox_retry_ceiling(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.outbox_retry_ceiling() IS 'Attempt number from which a RETRYABLE completion or a lost lease is recorded as FAILED: public.outbox_settings.retry_ceiling (20 when the row is missing). No setting changes it.';


--
-- Name: place_outbox_head(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.place_outbox_head() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.place_outbox_head() OWNER TO symphony_owner;

--
-- Name: FUNCTION place_outbox_head(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.place_outbox_head() IS 'Trigger function (BEFORE INSERT or UPDATE OF participant_id, sequence_id on payment_outbox_pending, by anyone but the outbox functions): sets is_head from the queue.';


--
-- Name: policy_version_accepted(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.policy_version_accepted(p_version text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT COALESCE(
        (
            SELECT
                pv.status = 'ACTIVE'::public.policy_version_status
                OR (
                    pv.status = 'GRACE'::public.policy_version_status
                    AND pv.grace_expires_at > statement_timestamp()
                )
            FROM public.policy_versions AS pv
            WHERE pv.version = p_version
        ),
        false
    )
$$;


ALTER FUNCTION public.policy_version_accepted(p_version text) OWNER TO symphony_owner;

--
-- Name: FUNCTION policy_version_accepted(p_version text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.policy_version_accepted(p_version text) IS 'True when the policy version is ACTIVE, or GRACE with grace_expires_at after statement_timestamp(); false otherwise (unknown, RETIRED, expired, NULL). Does not depend on retire_expired_policy_versions() having run.';


--
-- Name: policy_version_sort_key(text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.policy_version_sort_key(p_version text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT string_agg(
        CASE
            WHEN r.run[1] IS NOT NULL
                THEN '1' || lpad(length(ltrim(r.run[1], '0'))::text, 4, '0')
                || ltrim(r.run[1], '0')
            ELSE '2' || r.run[2] || chr(1)
        END,
        '' ORDER BY r.ord
    ) COLLATE "C"
    FROM regexp_matches(p_version, '([0-9]+)|([^0-9]+)', 'g') WITH ORDINALITY AS r (run, ord)
$$;


ALTER FUNCTION public.policy_version_sort_key(p_version text) OWNER TO symphony_owner;

--
-- Name: FUNCTION policy_version_sort_key(p_version text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.policy_version_sort_key(p_version text) IS 'Sort key of a policy version (ADR 0105): digit runs compare as numbers, other runs byte-wise, compare keys with COLLATE "C". Internal: used by rotate_policy_version().';


--
-- Name: promote_outbox_head(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.promote_outbox_head() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    PERFORM public.outbox_promote_participant_head(OLD.participant_id);
    RETURN NULL;
END
$$;


ALTER FUNCTION public.promote_outbox_head() OWNER TO symphony_owner;

--
-- Name: FUNCTION promote_outbox_head(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.promote_outbox_head() IS 'Trigger function (AFTER DELETE of a head on payment_outbox_pending, except a DELETE by the outbox functions under a live lease: the completions promote themselves): makes the participant''s queued job with the lowest sequence_id its head, serialised with enqueue on the participant''s row in participant_outbox_sequences (FOR NO KEY UPDATE).';


--
-- Name: protect_ledger_partition(regclass); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.protect_ledger_partition(p_partition regclass) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_changed boolean := false;
    v_suffix text;
    v_index record;
    v_trigger record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i
                    WHERE i.inhrelid = p_partition
                      AND i.inhparent = 'public.payment_outbox_attempts'::pg_catalog.regclass) THEN
        RAISE EXCEPTION '% is not a partition of public.payment_outbox_attempts', p_partition
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = p_partition)
       <> 'symphony_owner'::pg_catalog.regrole THEN
        RAISE EXCEPTION 'ledger partition % is owned by %, not symphony_owner; it cannot be '
                        'protected', p_partition,
            (SELECT c.relowner::pg_catalog.regrole FROM pg_catalog.pg_class AS c
              WHERE c.oid = p_partition)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('ALTER TABLE %s OWNER TO symphony_owner, then run '
                                           'symphony-schema attempts partitions ensure',
                                           p_partition);
    END IF;
    -- Each index (and so each unique or primary key constraint) of a partition is named after
    -- the parent's, so a 23505 still names the rule: uq_payment_outbox_attempts_one_outcome_p20261130.
    SELECT pg_catalog.regexp_replace(c.relname, '^(payment_outbox_)?attempts_', '')
      INTO v_suffix
      FROM pg_catalog.pg_class AS c WHERE c.oid = p_partition;
    FOR v_index IN
        SELECT ci.oid AS child, ci.relname AS child_name,
               pg_catalog.left(pi.relname || '_' || v_suffix, 63) AS wanted
          FROM pg_catalog.pg_index AS x
          JOIN pg_catalog.pg_class AS ci ON ci.oid = x.indexrelid
          JOIN pg_catalog.pg_inherits AS h ON h.inhrelid = x.indexrelid
          JOIN pg_catalog.pg_class AS pi ON pi.oid = h.inhparent
         WHERE x.indrelid = p_partition
    LOOP
        IF v_index.child_name <> v_index.wanted THEN
            EXECUTE pg_catalog.format('ALTER INDEX %s RENAME TO %I',
                                      v_index.child::pg_catalog.regclass, v_index.wanted);
            v_changed := true;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger AS t
                    WHERE t.tgrelid = p_partition
                      AND t.tgname = 'trg_deny_outbox_attempts_truncate') THEN
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER trg_deny_outbox_attempts_truncate BEFORE TRUNCATE ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_attempts_mutation()',
            p_partition);
        v_changed := true;
    END IF;
    FOR v_trigger IN
        SELECT t.tgname
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgrelid = p_partition
           AND t.tgname IN ('trg_deny_outbox_attempts_truncate',
                            'trg_deny_outbox_attempts_mutation',
                            'trg_guard_outbox_attempts_insert',
                            'trg_guard_archived_outbox_id',
                            'trg_guard_attempt_participant')
           AND t.tgenabled <> 'A'
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I',
                                  p_partition, v_trigger.tgname);
        v_changed := true;
    END LOOP;
    RETURN v_changed;
END
$$;


ALTER FUNCTION public.protect_ledger_partition(p_partition regclass) OWNER TO symphony_owner;

--
-- Name: FUNCTION protect_ledger_partition(p_partition regclass); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.protect_ledger_partition(p_partition regclass) IS 'Gives a ledger partition its own BEFORE TRUNCATE deny trigger, sets its append-only and insert-guard triggers to ENABLE ALWAYS and names its indexes after the parent''s (plus the partition suffix). Returns true when something had to be fixed.';


--
-- Name: record_outbox_rail_reference(uuid, integer, text, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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
    PERFORM public.record_outbox_rail_references(
        ARRAY[p_outbox_id], ARRAY[p_attempt_no], ARRAY[p_rail_type], ARRAY[p_rail_reference]
    );
END
$$;


ALTER FUNCTION public.record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text) OWNER TO symphony_owner;

--
-- Name: FUNCTION record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text) IS 'Records the rail reference of a DISPATCHED attempt in public.outbox_rail_references: required (22023) on a rail registered with returns_reference; P7013 RAIL_REFERENCE_REUSED when another job already reported it on the same rail. Internal: owner only.';


--
-- Name: record_outbox_rail_references(uuid[], integer[], text[], text[], integer[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[] DEFAULT NULL::integer[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_count integer;
    v_code text;
    v_required boolean;
    v_holder record;
    v_bad record;
    v_inserted integer;
    v_given integer;
    v_outbox uuid;
    v_attempt integer;
    v_reference text;
    v_element integer;
BEGIN
    v_count := pg_catalog.cardinality(p_outbox_ids);
    IF v_count IS NULL
       OR pg_catalog.cardinality(p_attempt_nos) IS DISTINCT FROM v_count
       OR pg_catalog.cardinality(p_rail_types) IS DISTINCT FROM v_count
       OR pg_catalog.cardinality(p_rail_references) IS DISTINCT FROM v_count
       OR (p_elements IS NOT NULL AND pg_catalog.cardinality(p_elements) <> v_count)
       OR pg_catalog.array_ndims(p_outbox_ids) > 1 OR pg_catalog.array_ndims(p_attempt_nos) > 1
       OR pg_catalog.array_ndims(p_rail_types) > 1
       OR pg_catalog.array_ndims(p_rail_references) > 1
       OR pg_catalog.array_ndims(p_elements) > 1 THEN
        RAISE EXCEPTION 'p_outbox_ids, p_attempt_nos, p_rail_types, p_rail_references (and '
                        'p_elements when given) must be one-dimensional arrays of one length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_count = 0 THEN
        RETURN;
    END IF;

    IF v_count = 1 THEN
        -- One element (a single completion): the statements of 0019's writer, by primary key.
        v_code := pg_catalog.upper(p_rail_types[pg_catalog.array_lower(p_rail_types, 1)]
                                   COLLATE "C");
        v_outbox := p_outbox_ids[pg_catalog.array_lower(p_outbox_ids, 1)];
        v_attempt := p_attempt_nos[pg_catalog.array_lower(p_attempt_nos, 1)];
        v_reference := p_rail_references[pg_catalog.array_lower(p_rail_references, 1)];
        v_element := p_elements[pg_catalog.array_lower(p_elements, 1)];
        IF NOT public.outbox_id_ok(v_reference, NULL) THEN
            SELECT r.returns_reference INTO v_required FROM public.outbox_rails AS r
             WHERE r.rail_code = v_code;
            IF COALESCE(v_required, false) THEN
                IF v_element IS NOT NULL THEN
                    RAISE EXCEPTION 'p_rail_references element % (outbox %, DISPATCHED on rail '
                                    '%) must be a non-empty string', v_element, v_outbox, v_code
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                RAISE EXCEPTION 'p_rail_reference must be given for a DISPATCHED attempt on rail %',
                    v_code
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Report the reference the rail returned, or register the rail '
                                 'with p_returns_reference => false.';
            END IF;
            RETURN;
        END IF;
        INSERT INTO public.outbox_rail_references AS x
            (rail_code, rail_reference, outbox_id, attempt_no)
        VALUES (v_code, v_reference, v_outbox, v_attempt)
        ON CONFLICT ON CONSTRAINT pk_outbox_rail_references DO NOTHING;
        IF FOUND THEN
            RETURN;
        END IF;
        SELECT x.outbox_id, x.attempt_no, x.recorded_at
          INTO v_holder
          FROM public.outbox_rail_references AS x
         WHERE x.rail_code = v_code
           AND x.rail_reference = v_reference;
        IF v_holder.outbox_id IS DISTINCT FROM v_outbox THEN
            RAISE EXCEPTION 'RAIL_REFERENCE_REUSED: rail reference % on rail % was already '
                            'reported by outbox %', pg_catalog.quote_literal(v_reference),
                v_code, v_holder.outbox_id
                USING ERRCODE = 'P7013',
                      DETAIL = pg_catalog.format('first reported by attempt %s at %s',
                                                 v_holder.attempt_no, v_holder.recorded_at),
                      HINT = 'Two jobs cannot share one rail reference: reconcile with the rail '
                             'before completing this job.';
        END IF;
        RETURN;
    END IF;

    -- Several elements (a batch): every given reference in one INSERT, in key order (two
    -- batches reporting the same references wait for each other instead of deadlocking) and in
    -- element order within a key (an element repeating an earlier element's reference conflicts
    -- with it and is skipped), then
    -- the first element, in order, that broke the rule: a missing reference on a rail that
    -- returns one (22023), or a reference held by another job (P7013). Either error undoes
    -- everything the caller wrote.
    INSERT INTO public.outbox_rail_references AS x
        (rail_code, rail_reference, outbox_id, attempt_no)
    SELECT pg_catalog.upper(i.rail_type COLLATE "C"), i.rail_reference, i.outbox_id,
           i.attempt_no
      FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_attempt_nos),
                      pg_catalog.unnest(p_rail_types), pg_catalog.unnest(p_rail_references))
           WITH ORDINALITY AS i (outbox_id, attempt_no, rail_type, rail_reference, ord)
     WHERE public.outbox_id_ok(i.rail_reference, NULL)
     ORDER BY 1, 2, i.ord
    ON CONFLICT ON CONSTRAINT pk_outbox_rail_references DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    SELECT pg_catalog.count(*)::integer
      INTO v_given
      FROM pg_catalog.unnest(p_rail_references) AS r (rail_reference)
     WHERE public.outbox_id_ok(r.rail_reference, NULL);
    IF v_inserted = v_count AND v_given = v_count THEN
        RETURN;
    END IF;

    SELECT i.ord, i.element, i.outbox_id, i.code, i.rail_reference, i.missing,
           x.outbox_id AS holder, x.attempt_no AS holder_attempt, x.recorded_at AS holder_at
      INTO v_bad
      FROM (
          SELECT u.ord, u.element, u.outbox_id, u.rail_reference,
                 (pg_catalog.upper(u.rail_type COLLATE "C") COLLATE "default") AS code,
                 NOT public.outbox_id_ok(u.rail_reference, NULL) AS missing
            FROM ROWS FROM (pg_catalog.unnest(p_outbox_ids), pg_catalog.unnest(p_rail_types),
                            pg_catalog.unnest(p_rail_references),
                            pg_catalog.unnest(p_elements))
                 WITH ORDINALITY AS u (outbox_id, rail_type, rail_reference, element, ord)
      ) AS i
      LEFT JOIN public.outbox_rails AS r
        ON r.rail_code = i.code
      LEFT JOIN public.outbox_rail_references AS x
        ON x.rail_code = i.code
       AND x.rail_reference = i.rail_reference
     WHERE CASE WHEN i.missing THEN COALESCE(r.returns_reference, false)
                ELSE x.outbox_id IS DISTINCT FROM i.outbox_id END
     ORDER BY i.ord
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_bad.missing THEN
        IF v_bad.element IS NOT NULL THEN
            RAISE EXCEPTION 'p_rail_references element % (outbox %, DISPATCHED on rail %) must '
                            'be a non-empty string', v_bad.element, v_bad.outbox_id, v_bad.code
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'p_rail_reference must be given for a DISPATCHED attempt on rail % '
                        '(element %, outbox %)', v_bad.code, v_bad.ord, v_bad.outbox_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Report the reference the rail returned, or register the rail with '
                         'p_returns_reference => false.';
    END IF;
    RAISE EXCEPTION 'RAIL_REFERENCE_REUSED: rail reference % on rail % was already reported by '
                    'outbox %', pg_catalog.quote_literal(v_bad.rail_reference), v_bad.code,
        v_bad.holder
        USING ERRCODE = 'P7013',
              DETAIL = pg_catalog.format('first reported by attempt %s at %s',
                                         v_bad.holder_attempt, v_bad.holder_at),
              HINT = 'Two jobs cannot share one rail reference: reconcile with the rail before '
                     'completing this job.';
END
$$;


ALTER FUNCTION public.record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[]) IS 'The one writer of public.outbox_rail_references (ADRs 0123, 0141, 0165): records the rail references of DISPATCHED attempts, element i being (p_outbox_ids[i], p_attempt_nos[i], p_rail_types[i], p_rail_references[i]), in one statement for several elements. A NULL or blank reference on a rail registered with returns_reference is 22023 (naming p_elements[i], the caller''s element number, when given); a reference another job reported on the same rail, or an earlier element of the call, is P7013 RAIL_REFERENCE_REUSED; the first such element in order fails the call. The callers validate the elements (record_outbox_rail_reference() and the completions do). Internal: owner only.';


--
-- Name: record_stale_outbox_outcome(uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text DEFAULT NULL::text, p_rail_code text DEFAULT NULL::text, p_error_code text DEFAULT NULL::text, p_error_message text DEFAULT NULL::text, p_latency_ms integer DEFAULT NULL::integer) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) IS 'Keeps what a rail said under a lease that was replaced (the completion got P7002) in payment_outbox_stale_outcomes for reconciliation; changes neither the queue nor the ledger. 22023 while the lease is still current (complete it instead); P7002 unless the ledger records that lease as lost by that worker. Returns the stale_outcome_id.';


--
-- Name: redrive_outbox_job(uuid, text, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) RETURNS TABLE(outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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
         is_head)
    SELECT v_new, v_outcome.instruction_id, v_outcome.participant_id, v_sequence_id,
           v_outcome.idempotency_key, v_outcome.rail_type,
           NOT EXISTS (
               SELECT 1
                 FROM public.payment_outbox_pending AS q
                WHERE q.participant_id = v_outcome.participant_id
           );

    -- The new job's payload row: once per job, even with the same content (ADR 0124); since
    -- 0038 its only copy (ADR 0167).
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


ALTER FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) OWNER TO symphony_owner;

--
-- Name: FUNCTION redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) IS 'Queues a FAILED or CANCELLED job again as a new job (new outbox_id and sequence number, same instruction, key, participant, rail and payload, with its own payment_outbox_payloads row) and records a REDRIVEN row on the old job naming session_user, p_reason, p_ticket (both required, 22023) and the new job; replays of the key then answer with the new job. P7012 NOT_REDRIVABLE for a queued, DISPATCHED, already redriven or superseded job, P7010 JOB_NOT_FOUND for an unknown id. EXECUTE for symphony_control.';


--
-- Name: redrive_outbox_job_for_participant(text, uuid, text, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) RETURNS TABLE(outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_job record;
    v_outcome record;
    v_key record;
    v_redriven uuid;
    v_new uuid;
    v_sequence_id bigint;
    v_attempt_no integer;
    v_payload jsonb;
    v_head boolean;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
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

    -- The job's identity, from its queue row or its ledger rows (the participant's only).
    SELECT p.instruction_id, p.idempotency_key
      INTO v_job
      FROM public.payment_outbox_pending AS p
     WHERE p.participant_id = p_participant_id
       AND p.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.instruction_id, a.idempotency_key
          INTO v_job
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
         ORDER BY a.attempt_no DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'JOB_NOT_FOUND: no job with outbox id % for participant %',
                p_outbox_id, pg_catalog.quote_literal(p_participant_id)
                USING ERRCODE = 'P7010';
        END IF;
    END IF;

    -- Serialise with enqueue, the P7005 guards and every other redrive of this payment on the
    -- key row (written with the participant when missing). The participant's own key row is
    -- locked; on one node a key row without a participant (written before 0031 or by a P7005
    -- guard) is locked instead: a distributed key table has none (its distribution column).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id, participant_id)
    VALUES (v_job.instruction_id, v_job.idempotency_key, p_outbox_id, p_participant_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    SELECT k.outbox_id, k.participant_id
      INTO v_key
      FROM public.payment_outbox_idempotency_keys AS k
     WHERE k.participant_id = p_participant_id
       AND k.instruction_id = v_job.instruction_id
       AND k.idempotency_key = v_job.idempotency_key
       FOR UPDATE;
    IF NOT FOUND THEN
        SELECT k.outbox_id, k.participant_id
          INTO v_key
          FROM public.payment_outbox_idempotency_keys AS k
         WHERE k.instruction_id = v_job.instruction_id
           AND k.idempotency_key = v_job.idempotency_key
           FOR UPDATE;
    END IF;

    SELECT a.state, a.attempt_no, a.instruction_id, a.participant_id, a.sequence_id,
           a.idempotency_key, a.rail_type
      INTO v_outcome
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id
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
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id
       AND a.state = 'REDRIVEN'::public.outbox_attempt_state;
    IF FOUND THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % was already redriven as outbox %', p_outbox_id,
            v_redriven
            USING ERRCODE = 'P7012',
                  HINT = 'Redrive the newest job of the payment, if it failed too.';
    END IF;
    IF v_key.outbox_id IS DISTINCT FROM p_outbox_id THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: outbox % is not the latest job of its idempotency key; '
                        'outbox % is', p_outbox_id, v_key.outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The old job's payload: its payload row (ADR 0124), or a ledger row that kept a copy.
    SELECT x.payload
      INTO v_payload
      FROM public.payment_outbox_payloads AS x
     WHERE x.participant_id = p_participant_id
       AND x.outbox_id = p_outbox_id;
    IF NOT FOUND THEN
        SELECT a.payload
          INTO v_payload
          FROM public.payment_outbox_attempts AS a
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = p_outbox_id
           AND a.payload IS NOT NULL
         LIMIT 1;
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'NOT_REDRIVABLE: the payload of outbox % is not stored', p_outbox_id
            USING ERRCODE = 'P7012';
    END IF;

    -- The new job with the participant's next sequence number (the allocator row stays locked
    -- until commit); the head flag is read in a second statement, after that lock, and the
    -- insert is a third (Citus plans no sub-select in an INSERT), as enqueue decides it (ADR
    -- 0116).
    v_new := public.uuid_v7_or_random();
    v_sequence_id := public.bump_participant_outbox_seq(p_participant_id);
    PERFORM 1
       FROM public.payment_outbox_pending AS q
      WHERE q.participant_id = p_participant_id
      LIMIT 1;
    v_head := NOT FOUND;
    INSERT INTO public.payment_outbox_pending AS p
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         is_head)
    VALUES (v_new, v_outcome.instruction_id, p_participant_id, v_sequence_id,
            v_outcome.idempotency_key, v_outcome.rail_type, v_head)
    RETURNING p.sequence_id, p.created_at INTO sequence_id, created_at;

    -- The new job's payload row: once per job, even with the same content (ADR 0124); since
    -- 0038 its only copy (ADR 0167).
    INSERT INTO public.payment_outbox_payloads AS x (participant_id, outbox_id, payload)
    VALUES (p_participant_id, v_new, v_payload);

    IF v_key.participant_id IS NULL THEN
        -- One node only (see the key row's look-up above).
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_new,
               participant_id = p_participant_id
         WHERE k.instruction_id = v_outcome.instruction_id
           AND k.idempotency_key = v_outcome.idempotency_key;
    ELSE
        UPDATE public.payment_outbox_idempotency_keys AS k
           SET outbox_id = v_new
         WHERE k.participant_id = p_participant_id
           AND k.instruction_id = v_outcome.instruction_id
           AND k.idempotency_key = v_outcome.idempotency_key;
    END IF;

    -- The audit row on the old job, after its terminal one.
    SELECT pg_catalog.max(a.attempt_no) + 1
      INTO v_attempt_no
      FROM public.payment_outbox_attempts AS a
     WHERE a.participant_id = p_participant_id
       AND a.outbox_id = p_outbox_id;
    INSERT INTO public.payment_outbox_attempts AS a
        (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
         attempt_no, state, completed_at, acted_by, reason, ticket, related_outbox_id)
    VALUES
        (p_outbox_id, v_outcome.instruction_id, p_participant_id, v_outcome.sequence_id,
         v_outcome.idempotency_key, v_outcome.rail_type, v_attempt_no,
         'REDRIVEN'::public.outbox_attempt_state, pg_catalog.clock_timestamp(), SESSION_USER,
         p_reason, p_ticket, v_new);

    outbox_id := v_new;
    state := 'PENDING';
    RETURN NEXT;
END
$$;


ALTER FUNCTION public.redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) OWNER TO symphony_owner;

--
-- Name: FUNCTION redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) IS 'redrive_outbox_job for a job of one participant (ADR 0147: one shard on Citus): queues a FAILED or CANCELLED job again as a new job (new outbox_id and sequence number, same instruction, key, participant, rail and payload) and records a REDRIVEN row on the old job naming session_user, p_reason, p_ticket and the new job. P7012 NOT_REDRIVABLE for a queued, DISPATCHED, already redriven or superseded job, P7010 JOB_NOT_FOUND for an unknown id or a job of another participant, 22023 on invalid arguments. EXECUTE for symphony_control.';


--
-- Name: register_outbox_rail(text, boolean, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text DEFAULT NULL::text) RETURNS TABLE(rail_code text, returns_reference boolean, enabled boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
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
$_$;


ALTER FUNCTION public.register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text) OWNER TO symphony_owner;

--
-- Name: FUNCTION register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text) IS 'Registers a rail under its canonical upper-case code (or updates it and enables it again) and returns it; p_returns_reference false lets DISPATCHED attempts on it omit a rail reference. 22023 for a code that is not 1-32 ASCII letters, digits or underscores. EXECUTE for symphony_control.';


--
-- Name: repair_expired_leases(integer, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) RETURNS TABLE(outbox_id uuid, attempt_no integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) OWNER TO symphony_owner;

--
-- Name: FUNCTION repair_expired_leases(p_batch_size integer, p_worker_id text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) IS 'Requeues up to p_batch_size (1..1000) rows whose lease expired (SKIP LOCKED): appends a ZOMBIE_REQUEUE attempt (with the expired lease_token), clears the lease, marks the job in doubt, bumps attempt_count and makes the row due now, keeping its place in the queue; at outbox_retry_ceiling() the attempt is FAILED and the job leaves the queue. Never touches rows with a live lease or without a lease. Returns (outbox_id, attempt_no).';


--
-- Name: repair_expired_leases_for_participant(text, integer, text); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) RETURNS TABLE(outbox_id uuid, attempt_no integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_now timestamptz;
    v_row record;
    v_attempt_no integer;
    v_ceiling integer;
    v_state public.outbox_attempt_state;
BEGIN
    PERFORM public.outbox_require_ids(ARRAY['p_participant_id'], ARRAY[p_participant_id]);
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_batch_size > 1000 THEN
        RAISE EXCEPTION 'p_batch_size must be between 1 and 1000, got %',
            COALESCE(p_batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM public.outbox_require_ids(ARRAY['p_worker_id'], ARRAY[p_worker_id]);

    v_now := pg_catalog.clock_timestamp();

    FOR v_row IN
        SELECT p.outbox_id, p.instruction_id, p.participant_id, p.sequence_id,
               p.idempotency_key, p.rail_type, p.attempt_count, p.claimed_by,
               p.lease_expires_at, p.lease_token, p.claimed_at
          FROM public.payment_outbox_pending AS p
         WHERE p.participant_id = p_participant_id
           AND p.lease_token IS NOT NULL
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
         WHERE a.participant_id = p_participant_id
           AND a.outbox_id = v_row.outbox_id;

        IF v_ceiling IS NULL THEN
            v_ceiling := public.outbox_retry_ceiling();
        END IF;
        v_state := 'ZOMBIE_REQUEUE'::public.outbox_attempt_state;
        IF v_attempt_no >= v_ceiling THEN
            v_state := 'FAILED'::public.outbox_attempt_state;
        END IF;

        -- worker_id records the worker that lost the lease; the repairing worker is named in
        -- error_message.
        INSERT INTO public.payment_outbox_attempts AS a
            (outbox_id, instruction_id, participant_id, sequence_id, idempotency_key, rail_type,
             attempt_no, state, claimed_at, completed_at, error_code, error_message,
             worker_id, lease_token, recorded_by)
        VALUES
            (v_row.outbox_id, v_row.instruction_id, p_participant_id, v_row.sequence_id,
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

        -- At the ceiling the job is terminal and leaves the queue (trg_promote_outbox_head
        -- promotes: the lease has expired).
        IF v_state = 'FAILED'::public.outbox_attempt_state THEN
            DELETE FROM public.payment_outbox_pending AS p
             WHERE p.participant_id = p_participant_id
               AND p.outbox_id = v_row.outbox_id;
            outbox_id := v_row.outbox_id;
            attempt_no := v_attempt_no;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- In doubt from now on, due again at once, keeping its place in the queue.
        UPDATE public.payment_outbox_pending AS p
           SET attempt_count = v_attempt_no,
               next_attempt_at = LEAST(p.next_attempt_at, v_now),
               claimed_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL,
               claimed_at = NULL,
               in_doubt = true
         WHERE p.participant_id = p_participant_id
           AND p.outbox_id = v_row.outbox_id;

        outbox_id := v_row.outbox_id;
        attempt_no := v_attempt_no;
        RETURN NEXT;
    END LOOP;
END
$$;


ALTER FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) OWNER TO symphony_owner;

--
-- Name: FUNCTION repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) IS 'repair_expired_leases for one participant (ADR 0147: one shard on Citus): requeues up to p_batch_size (1..1000) of the participant''s jobs whose lease expired (SKIP LOCKED), each with a ZOMBIE_REQUEUE attempt (in doubt from then on, due now, keeping its place), or FAILED at outbox_retry_ceiling() (the job leaves the queue). 22023 on invalid arguments. Returns (outbox_id, attempt_no).';


--
-- Name: retire_expired_policy_versions(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.retire_expired_policy_versions() RETURNS TABLE(version text, grace_expires_at timestamp with time zone)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    UPDATE public.policy_versions AS pv
       SET status = 'RETIRED'::public.policy_version_status
     WHERE pv.status = 'GRACE'::public.policy_version_status
       AND pv.grace_expires_at <= statement_timestamp()
    RETURNING pv.version, pv.grace_expires_at
$$;


ALTER FUNCTION public.retire_expired_policy_versions() OWNER TO symphony_owner;

--
-- Name: FUNCTION retire_expired_policy_versions(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.retire_expired_policy_versions() IS 'Moves every GRACE policy version whose grace_expires_at has passed to RETIRED and returns them. EXECUTE for symphony_control (a scheduler); acceptance never waits for it.';


--
-- Name: rotate_policy_version(text, text, interval); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.rotate_policy_version(p_version text, p_checksum text, p_grace interval) RETURNS TABLE(version text, status text, checksum text, created boolean, demoted_version text, demoted_grace_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $_$
#variable_conflict use_column
DECLARE
    v_existing_status text;
    v_existing_checksum text;
    v_active text;
    v_newest text;
    v_expires timestamptz;
BEGIN
    IF p_version IS NULL
       OR p_version !~ '[^[:space:]]'
       OR p_version ~ '^[[:space:]]|[[:space:]]$'
       OR p_version ~ '[[:cntrl:]]'
       OR length(p_version) > 200 THEN
        RAISE EXCEPTION 'p_version must be a non-empty label of at most 200 characters without '
                        'surrounding whitespace or control characters, got %',
            COALESCE(quote_literal(left(p_version, 210)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_checksum IS NULL OR p_checksum !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'p_checksum must be 64 lowercase hex digits (the SHA-256 of the RFC 8785 '
                        'canonical document), got %',
            COALESCE(quote_literal(left(p_checksum, 80)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_grace IS NULL
       OR NOT isfinite(p_grace)
       OR p_grace <= interval '0'
       OR p_grace > interval '366 days' THEN
        RAISE EXCEPTION 'p_grace must be a positive interval of at most 366 days, got %',
            COALESCE(p_grace::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Rotations and seeders serialise here (the lock conflicts with itself and every writer;
    -- readers such as the boot query are never blocked and see the old or the new ACTIVE row).
    LOCK TABLE public.policy_versions IN SHARE ROW EXCLUSIVE MODE;

    SELECT pv.status::text, pv.checksum
      INTO v_existing_status, v_existing_checksum
      FROM public.policy_versions AS pv
     WHERE pv.version = p_version;
    IF FOUND THEN
        IF v_existing_checksum <> p_checksum THEN
            RAISE EXCEPTION 'POLICY_CHECKSUM_CONFLICT: policy version % already exists (%) with '
                            'checksum %, not %', quote_literal(p_version), v_existing_status,
                            v_existing_checksum, p_checksum
                USING ERRCODE = 'P7101',
                      HINT = 'A published version never changes: give the changed document a '
                             'new policyVersion.';
        END IF;
        RETURN QUERY SELECT p_version, v_existing_status, p_checksum, false,
                            NULL::text, NULL::timestamptz;
        RETURN;
    END IF;

    SELECT pv.version
      INTO v_active
      FROM public.policy_versions AS pv
     WHERE pv.status = 'ACTIVE'::public.policy_version_status;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'NO_ACTIVE_POLICY: there is no ACTIVE policy version to rotate from'
            USING ERRCODE = 'P7103',
                  HINT = 'Seed the first version with symphony-schema seed-policy.';
    END IF;

    SELECT pv.version
      INTO v_newest
      FROM public.policy_versions AS pv
     ORDER BY public.policy_version_sort_key(pv.version) COLLATE "C" DESC, pv.version DESC
     LIMIT 1;
    IF public.policy_version_sort_key(p_version) COLLATE "C"
       <= public.policy_version_sort_key(v_newest) COLLATE "C" THEN
        RAISE EXCEPTION 'POLICY_VERSION_NOT_NEWER: policy version % is not newer than %, the '
                        'newest published version', quote_literal(p_version),
                        quote_literal(v_newest)
            USING ERRCODE = 'P7102',
                  HINT = 'Digit runs compare as numbers, other characters byte-wise (ADR 0105).';
    END IF;

    -- Demote first (the unique index admits one ACTIVE row), then insert; the one-ACTIVE
    -- constraint trigger is deferred to the end of the transaction whatever the caller set.
    SET CONSTRAINTS public.trg_policy_versions_keep_one_active DEFERRED;
    v_expires := statement_timestamp() + p_grace;
    UPDATE public.policy_versions AS pv
       SET status = 'GRACE'::public.policy_version_status,
           grace_expires_at = v_expires
     WHERE pv.version = v_active;
    INSERT INTO public.policy_versions (version, status, checksum, created_at)
    VALUES (p_version, 'ACTIVE'::public.policy_version_status, p_checksum, clock_timestamp());

    RETURN QUERY SELECT p_version, 'ACTIVE'::text, p_checksum, true, v_active, v_expires;
END
$_$;


ALTER FUNCTION public.rotate_policy_version(p_version text, p_checksum text, p_grace interval) OWNER TO symphony_owner;

--
-- Name: FUNCTION rotate_policy_version(p_version text, p_checksum text, p_grace interval); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.rotate_policy_version(p_version text, p_checksum text, p_grace interval) IS 'Makes p_version (checksum p_checksum) the ACTIVE policy version and demotes the current ACTIVE one to GRACE until statement_timestamp() + p_grace, atomically; a no-op for a version that exists with the same checksum. 22023 bad argument, P7101 checksum conflict, P7102 not newer, P7103 no ACTIVE version. EXECUTE for symphony_control only.';


--
-- Name: set_outbox_retry_ceiling(integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION set_outbox_retry_ceiling(p_ceiling integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) IS 'Sets the retry ceiling (a whole number >= 1; 22023 otherwise) for every session at once and returns the previous one. EXECUTE for symphony_control only.';


--
-- Name: uuid_strategy(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.uuid_strategy() RETURNS text
    LANGUAGE sql PARALLEL SAFE
    AS $$
    SELECT CASE pg_catalog.uuid_extract_version(public.uuid_v7_or_random())
               WHEN 7 THEN 'uuidv7'
               ELSE 'gen_random_uuid'
           END
$$;


ALTER FUNCTION public.uuid_strategy() OWNER TO symphony_owner;

--
-- Name: FUNCTION uuid_strategy(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.uuid_strategy() IS '''uuidv7'' or ''gen_random_uuid'': what public.uuid_v7_or_random() actually generates (read from the version nibble of a freshly generated UUID).';


--
-- Name: uuid_v7_or_random(); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.uuid_v7_or_random() RETURNS uuid
    LANGUAGE sql PARALLEL SAFE
    AS $$SELECT pg_catalog.uuidv7()$$;


ALTER FUNCTION public.uuid_v7_or_random() OWNER TO symphony_owner;

--
-- Name: FUNCTION uuid_v7_or_random(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.uuid_v7_or_random() IS 'The one UUID generator for defaults and lease tokens: uuidv7() (time-ordered) when the server provided it when revision 0001 ran, gen_random_uuid() otherwise. See uuid_strategy().';


SET default_table_access_method = heap;

--
-- Name: alembic_version; Type: TABLE; Schema: public; Owner: (migrating user)
--

CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);


--
-- Name: archived_ledger_partitions; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.archived_ledger_partitions (
    partition_name text NOT NULL,
    range_from uuid NOT NULL,
    range_to uuid NOT NULL,
    state text NOT NULL,
    row_count bigint NOT NULL,
    sha256 text NOT NULL,
    file_name text NOT NULL,
    columns text[] NOT NULL,
    archived_at timestamp with time zone DEFAULT now() NOT NULL,
    archived_by text DEFAULT SESSION_USER NOT NULL,
    restored_at timestamp with time zone,
    CONSTRAINT ck_archived_ledger_partitions_range CHECK ((range_from < range_to)),
    CONSTRAINT ck_archived_ledger_partitions_restored_at CHECK (((state = 'RESTORED'::text) = (restored_at IS NOT NULL))),
    CONSTRAINT ck_archived_ledger_partitions_row_count CHECK ((row_count >= 0)),
    CONSTRAINT ck_archived_ledger_partitions_sha256 CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT ck_archived_ledger_partitions_state CHECK ((state = ANY (ARRAY['ARCHIVED'::text, 'RESTORED'::text])))
);


ALTER TABLE public.archived_ledger_partitions OWNER TO symphony_owner;

--
-- Name: TABLE archived_ledger_partitions; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.archived_ledger_partitions IS 'One row per ledger partition written to a verified archive file and dropped (state ARCHIVED), or brought back from it (RESTORED): its outbox_id range, row count and the sha256 of the file.';


--
-- Name: outbox_rail_references; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.outbox_rail_references (
    rail_code text NOT NULL,
    rail_reference text NOT NULL,
    outbox_id uuid NOT NULL,
    attempt_no integer NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ck_outbox_rail_references_attempt_no_positive CHECK ((attempt_no >= 1))
);


ALTER TABLE public.outbox_rail_references OWNER TO symphony_owner;

--
-- Name: TABLE outbox_rail_references; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.outbox_rail_references IS 'Every rail reference reported by a DISPATCHED attempt, unique per rail (P7013 otherwise), with its job. Written only by public.record_outbox_rail_references().';


--
-- Name: outbox_rails; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.outbox_rails (
    rail_code text NOT NULL,
    returns_reference boolean DEFAULT true NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    description text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by text DEFAULT SESSION_USER NOT NULL,
    CONSTRAINT ck_outbox_rails_description_length CHECK (((description IS NULL) OR (octet_length(description) <= 1024))),
    CONSTRAINT ck_outbox_rails_rail_code_canonical CHECK (((rail_code COLLATE "C") ~ '^[A-Z][A-Z0-9_]{0,31}$'::text))
);


ALTER TABLE public.outbox_rails OWNER TO symphony_owner;

--
-- Name: TABLE outbox_rails; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.outbox_rails IS 'Registered payment rails: canonical upper-case codes (input is matched case-insensitively), whether a DISPATCHED attempt must carry a rail reference, and whether enqueue accepts the rail. Written only by public.register_outbox_rail() and public.disable_outbox_rail().';


--
-- Name: outbox_settings; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.outbox_settings (
    singleton boolean DEFAULT true NOT NULL,
    retry_ceiling integer DEFAULT 20 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by text DEFAULT SESSION_USER NOT NULL,
    CONSTRAINT ck_outbox_settings_retry_ceiling_positive CHECK ((retry_ceiling >= 1)),
    CONSTRAINT ck_outbox_settings_singleton CHECK (singleton)
);


ALTER TABLE public.outbox_settings OWNER TO symphony_owner;

--
-- Name: TABLE outbox_settings; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.outbox_settings IS 'Outbox settings, one row: retry_ceiling (attempt number from which a retry or a lost lease is recorded as FAILED; default 20). Changed only with public.set_outbox_retry_ceiling().';


--
-- Name: participant_outbox_sequences; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.participant_outbox_sequences (
    participant_id text NOT NULL,
    next_sequence_id bigint NOT NULL,
    CONSTRAINT ck_participant_outbox_sequences_next_sequence_id_positive CHECK ((next_sequence_id >= 1))
);


ALTER TABLE public.participant_outbox_sequences OWNER TO symphony_owner;

--
-- Name: TABLE participant_outbox_sequences; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.participant_outbox_sequences IS 'Next sequence number to hand out per participant. Written only by the allocator upsert, in public.bump_participant_outbox_seq() and inlined in public.enqueue_payment_outbox().';


--
-- Name: payment_outbox_attempts; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_attempts (
    attempt_id uuid DEFAULT public.uuid_v7_or_random() NOT NULL,
    outbox_id uuid NOT NULL,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb,
    attempt_no integer NOT NULL,
    state public.outbox_attempt_state NOT NULL,
    claimed_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    worker_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_token uuid,
    recorded_by text DEFAULT SESSION_USER,
    acted_by text,
    reason text,
    ticket text,
    related_outbox_id uuid,
    CONSTRAINT ck_payment_outbox_attempts_attempt_no_positive CHECK ((attempt_no >= 1)),
    CONSTRAINT ck_payment_outbox_attempts_latency_ms_nonnegative CHECK (((latency_ms IS NULL) OR (latency_ms >= 0))),
    CONSTRAINT ck_payment_outbox_attempts_payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text))
)
PARTITION BY RANGE (outbox_id);


ALTER TABLE public.payment_outbox_attempts OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_attempts; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_attempts IS 'Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001, on every partition too), written only by the outbox functions. At most one outcome (DISPATCHED, FAILED or CANCELLED) per outbox_id; a REDRIVEN row after FAILED or CANCELLED names the job that replaced it. All rows of a job name its participant. Partitioned by RANGE (outbox_id), one partition per UTC enqueue day in schema symphony_ledger (ADR 0130).';


--
-- Name: COLUMN payment_outbox_attempts.payload; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.payload IS 'The job''s payload, copied into rows written before revision 0024; NULL since then (the payload is stored once in public.payment_outbox_payloads).';


--
-- Name: COLUMN payment_outbox_attempts.claimed_at; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.claimed_at IS 'When the lease of the attempt was taken (since 0014; before, when the attempt was recorded).';


--
-- Name: COLUMN payment_outbox_attempts.lease_token; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.lease_token IS 'The lease the attempt ran under (for a ZOMBIE_REQUEUE or a lost lease FAILED: the lease that expired). NULL for rows recorded before 0014 and for rows inserted by the control plane.';


--
-- Name: COLUMN payment_outbox_attempts.recorded_by; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.recorded_by IS 'session_user of the transaction that recorded the row (the login, not the worker''s self-reported worker_id). NULL for rows recorded before 0014.';


--
-- Name: COLUMN payment_outbox_attempts.acted_by; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.acted_by IS 'session_user of the operator who cancelled or redrove the job (CANCELLED and REDRIVEN rows).';


--
-- Name: COLUMN payment_outbox_attempts.reason; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.reason IS 'Why the operator intervened (required for CANCELLED and REDRIVEN rows).';


--
-- Name: COLUMN payment_outbox_attempts.ticket; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.ticket IS 'The change or incident ticket of the intervention (required for CANCELLED and REDRIVEN rows).';


--
-- Name: COLUMN payment_outbox_attempts.related_outbox_id; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_attempts.related_outbox_id IS 'On a REDRIVEN row: the new job that replaced this one.';


--
-- Name: payment_outbox_attempts_default; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_attempts_default (
    attempt_id uuid DEFAULT public.uuid_v7_or_random() CONSTRAINT payment_outbox_attempts_attempt_id_not_null NOT NULL,
    outbox_id uuid CONSTRAINT payment_outbox_attempts_outbox_id_not_null NOT NULL,
    instruction_id text CONSTRAINT payment_outbox_attempts_instruction_id_not_null NOT NULL,
    participant_id text CONSTRAINT payment_outbox_attempts_participant_id_not_null NOT NULL,
    sequence_id bigint CONSTRAINT payment_outbox_attempts_sequence_id_not_null NOT NULL,
    idempotency_key text CONSTRAINT payment_outbox_attempts_idempotency_key_not_null NOT NULL,
    rail_type text CONSTRAINT payment_outbox_attempts_rail_type_not_null NOT NULL,
    payload jsonb,
    attempt_no integer CONSTRAINT payment_outbox_attempts_attempt_no_not_null NOT NULL,
    state public.outbox_attempt_state CONSTRAINT payment_outbox_attempts_state_not_null NOT NULL,
    claimed_at timestamp with time zone DEFAULT now() CONSTRAINT payment_outbox_attempts_claimed_at_not_null NOT NULL,
    completed_at timestamp with time zone,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    worker_id text,
    created_at timestamp with time zone DEFAULT now() CONSTRAINT payment_outbox_attempts_created_at_not_null NOT NULL,
    lease_token uuid,
    recorded_by text DEFAULT SESSION_USER,
    acted_by text,
    reason text,
    ticket text,
    related_outbox_id uuid,
    CONSTRAINT ck_payment_outbox_attempts_attempt_no_positive CHECK ((attempt_no >= 1)),
    CONSTRAINT ck_payment_outbox_attempts_latency_ms_nonnegative CHECK (((latency_ms IS NULL) OR (latency_ms >= 0))),
    CONSTRAINT ck_payment_outbox_attempts_payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text))
);


ALTER TABLE public.payment_outbox_attempts_default OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_attempts_default; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_attempts_default IS 'Default partition of the attempts ledger: rows whose outbox_id falls in no daily partition. Must stay empty (the invariants gate reports rows here).';


--
-- Name: payment_outbox_idempotency_keys; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_idempotency_keys (
    instruction_id text NOT NULL,
    idempotency_key text NOT NULL,
    outbox_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    participant_id text
);


ALTER TABLE public.payment_outbox_idempotency_keys OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_idempotency_keys; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_idempotency_keys IS 'Every idempotency key ever enqueued, with the job it queued last. Written only by public.enqueue_payment_outbox(); its primary key serialises enqueues of one key.';


--
-- Name: COLUMN payment_outbox_idempotency_keys.participant_id; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_idempotency_keys.participant_id IS 'The participant of the job the key names (revision 0031): written by both enqueues and, since 0035, by the P7005 guards (hand writes); back-filled from the queue, the ledger or the payload row. NULL for keys whose job had left no trace when 0031 ran (archived, or removed by hand) and for key rows inserted by redrive_outbox_job (a job without a key row).';


--
-- Name: payment_outbox_payloads; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_payloads (
    participant_id text NOT NULL,
    outbox_id uuid NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ck_payment_outbox_payloads_payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text))
);


ALTER TABLE public.payment_outbox_payloads OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_payloads; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_payloads IS 'The payload of every outbox job, stored once (ledger rows since 0024 carry none). Append-only (UPDATE, DELETE and TRUNCATE raise P0001); written only by enqueue_payment_outbox() and redrive_outbox_job(). Keyed (participant_id, outbox_id): distributed by participant_id and partitioned by outbox_id with the ledger.';


--
-- Name: payment_outbox_pending; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_pending (
    outbox_id uuid DEFAULT public.uuid_v7_or_random() NOT NULL,
    instruction_id text NOT NULL,
    participant_id text NOT NULL,
    sequence_id bigint NOT NULL,
    idempotency_key text NOT NULL,
    rail_type text NOT NULL,
    payload jsonb,
    attempt_count integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_by text,
    lease_token uuid,
    lease_expires_at timestamp with time zone,
    is_head boolean DEFAULT false NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    in_doubt boolean DEFAULT false NOT NULL,
    claimed_at timestamp with time zone,
    CONSTRAINT ck_payment_outbox_pending_attempt_count_nonnegative CHECK ((attempt_count >= 0)),
    CONSTRAINT ck_payment_outbox_pending_lease_all_or_nothing CHECK ((((claimed_by IS NULL) AND (lease_token IS NULL) AND (lease_expires_at IS NULL)) OR ((claimed_by IS NOT NULL) AND (lease_token IS NOT NULL) AND (lease_expires_at IS NOT NULL)))),
    CONSTRAINT ck_payment_outbox_pending_payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text))
)
WITH (autovacuum_vacuum_scale_factor='0', autovacuum_vacuum_threshold='10000');


ALTER TABLE public.payment_outbox_pending OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_pending; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_pending IS 'Outbox work queue: one row per enqueued payment instruction until its terminal attempt. attempt_count caches the highest attempt number; payment_outbox_attempts is the truth.';


--
-- Name: COLUMN payment_outbox_pending.payload; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_pending.payload IS 'The job''s payload, copied into rows queued before revision 0038; NULL since (ADR 0167): the job''s row in payment_outbox_payloads is its one copy, which the claim returns.';


--
-- Name: COLUMN payment_outbox_pending.is_head; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_pending.is_head IS 'True for the participant''s queued job with the lowest sequence_id: the only one of its jobs a claim may lease (per-participant FIFO). Maintained by enqueue, the completions and trg_promote_outbox_head.';


--
-- Name: COLUMN payment_outbox_pending.priority; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_pending.priority IS 'Enqueue priority (higher is claimed first across participants; never within one).';


--
-- Name: COLUMN payment_outbox_pending.in_doubt; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_pending.in_doubt IS 'True once an earlier lease of the job ended without a recorded outcome (a ZOMBIE_REQUEUE attempt is in the ledger): the rail may already have the payment.';


--
-- Name: COLUMN payment_outbox_pending.claimed_at; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON COLUMN public.payment_outbox_pending.claimed_at IS 'When the current lease was taken (NULL without a lease, and for leases taken before 0014).';


--
-- Name: payment_outbox_stale_outcomes; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.payment_outbox_stale_outcomes (
    stale_outcome_id uuid DEFAULT public.uuid_v7_or_random() NOT NULL,
    outbox_id uuid NOT NULL,
    lease_token uuid NOT NULL,
    worker_id text NOT NULL,
    state public.outbox_attempt_state NOT NULL,
    rail_reference text,
    rail_code text,
    error_code text,
    error_message text,
    latency_ms integer,
    reported_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    recorded_by text DEFAULT SESSION_USER NOT NULL
);


ALTER TABLE public.payment_outbox_stale_outcomes OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_stale_outcomes; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_stale_outcomes IS 'What a rail said for an attempt whose lease had been replaced (the completion got P7002): written only by public.record_stale_outbox_outcome(); for reconciliation, never applied to the queue or the ledger.';


--
-- Name: policy_versions; Type: TABLE; Schema: public; Owner: symphony_owner
--

CREATE TABLE public.policy_versions (
    version text NOT NULL,
    status public.policy_version_status NOT NULL,
    is_active boolean GENERATED ALWAYS AS ((status = 'ACTIVE'::public.policy_version_status)) STORED NOT NULL,
    grace_expires_at timestamp with time zone,
    checksum text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ck_policy_versions_active_without_grace CHECK (((status <> 'ACTIVE'::public.policy_version_status) OR (grace_expires_at IS NULL))),
    CONSTRAINT ck_policy_versions_checksum_sha256_hex CHECK ((checksum ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT ck_policy_versions_grace_with_expiry CHECK (((status <> 'GRACE'::public.policy_version_status) OR (grace_expires_at IS NOT NULL)))
);


ALTER TABLE public.policy_versions OWNER TO symphony_owner;

--
-- Name: TABLE policy_versions; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.policy_versions IS 'Boot policy versions. Exactly one ACTIVE row once seeded (at most one: uq_policy_versions_one_active; never none again: trg_policy_versions_keep_one_active). Rotated with rotate_policy_version(); rows are immutable but for ACTIVE -> GRACE -> RETIRED.';


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: (migrating user)
--

CREATE TABLE public.schema_migrations (
    version text NOT NULL,
    description text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_by text DEFAULT CURRENT_USER NOT NULL,
    execution_ms integer,
    CONSTRAINT ck_schema_migrations_checksum CHECK ((checksum ~ '^sha256:[0-9a-f]{64}$'::text)),
    CONSTRAINT ck_schema_migrations_execution_ms CHECK (((execution_ms IS NULL) OR (execution_ms >= 0)))
);


--
-- Name: TABLE schema_migrations; Type: COMMENT; Schema: public; Owner: (migrating user)
--

COMMENT ON TABLE public.schema_migrations IS 'Migration ledger written by the Symphony migration engine: one row per applied revision with the checksum of its files. Applied revisions are immutable.';


--
-- Name: payment_outbox_attempts_default; Type: TABLE ATTACH; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts ATTACH PARTITION public.payment_outbox_attempts_default DEFAULT;


--
-- Name: alembic_version alembic_version_pkc; Type: CONSTRAINT; Schema: public; Owner: (migrating user)
--

ALTER TABLE ONLY public.alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);


--
-- Name: archived_ledger_partitions pk_archived_ledger_partitions; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.archived_ledger_partitions
    ADD CONSTRAINT pk_archived_ledger_partitions PRIMARY KEY (partition_name);


--
-- Name: outbox_rail_references pk_outbox_rail_references; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.outbox_rail_references
    ADD CONSTRAINT pk_outbox_rail_references PRIMARY KEY (rail_code, rail_reference);


--
-- Name: outbox_rails pk_outbox_rails; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.outbox_rails
    ADD CONSTRAINT pk_outbox_rails PRIMARY KEY (rail_code);


--
-- Name: outbox_settings pk_outbox_settings; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.outbox_settings
    ADD CONSTRAINT pk_outbox_settings PRIMARY KEY (singleton);


--
-- Name: participant_outbox_sequences pk_participant_outbox_sequences; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.participant_outbox_sequences
    ADD CONSTRAINT pk_participant_outbox_sequences PRIMARY KEY (participant_id);


--
-- Name: payment_outbox_attempts pk_payment_outbox_attempts; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts
    ADD CONSTRAINT pk_payment_outbox_attempts PRIMARY KEY (outbox_id, participant_id, attempt_id);


--
-- Name: payment_outbox_attempts_default pk_payment_outbox_attempts_default; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts_default
    ADD CONSTRAINT pk_payment_outbox_attempts_default PRIMARY KEY (outbox_id, participant_id, attempt_id);


--
-- Name: payment_outbox_idempotency_keys pk_payment_outbox_idempotency_keys; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_idempotency_keys
    ADD CONSTRAINT pk_payment_outbox_idempotency_keys PRIMARY KEY (instruction_id, idempotency_key);


--
-- Name: payment_outbox_payloads pk_payment_outbox_payloads; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_payloads
    ADD CONSTRAINT pk_payment_outbox_payloads PRIMARY KEY (participant_id, outbox_id);


--
-- Name: payment_outbox_pending pk_payment_outbox_pending; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_pending
    ADD CONSTRAINT pk_payment_outbox_pending PRIMARY KEY (outbox_id);


--
-- Name: payment_outbox_stale_outcomes pk_payment_outbox_stale_outcomes; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_stale_outcomes
    ADD CONSTRAINT pk_payment_outbox_stale_outcomes PRIMARY KEY (stale_outcome_id);


--
-- Name: policy_versions pk_policy_versions; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT pk_policy_versions PRIMARY KEY (version);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: (migrating user)
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: payment_outbox_attempts uq_payment_outbox_attempts_outbox_attempt_no; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts
    ADD CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no UNIQUE (outbox_id, participant_id, attempt_no);


--
-- Name: payment_outbox_attempts_default uq_payment_outbox_attempts_outbox_attempt_no_default; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts_default
    ADD CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no_default UNIQUE (outbox_id, participant_id, attempt_no);


--
-- Name: payment_outbox_pending uq_payment_outbox_pending_instruction_idempotency; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_pending
    ADD CONSTRAINT uq_payment_outbox_pending_instruction_idempotency UNIQUE (instruction_id, idempotency_key);


--
-- Name: payment_outbox_pending uq_payment_outbox_pending_participant_sequence; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_pending
    ADD CONSTRAINT uq_payment_outbox_pending_participant_sequence UNIQUE (participant_id, sequence_id);


--
-- Name: ix_payment_outbox_attempts_recent_trouble; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_recent_trouble ON ONLY public.payment_outbox_attempts USING btree (created_at) WHERE (state = ANY (ARRAY['RETRYABLE'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state, 'CANCELLED'::public.outbox_attempt_state, 'ZOMBIE_REQUEUE'::public.outbox_attempt_state]));


--
-- Name: ix_payment_outbox_attempts_recent_trouble_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_recent_trouble_default ON public.payment_outbox_attempts_default USING btree (created_at) WHERE (state = ANY (ARRAY['RETRYABLE'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state, 'CANCELLED'::public.outbox_attempt_state, 'ZOMBIE_REQUEUE'::public.outbox_attempt_state]));


--
-- Name: ix_payment_outbox_attempts_related_outbox; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_related_outbox ON ONLY public.payment_outbox_attempts USING btree (related_outbox_id) WHERE (related_outbox_id IS NOT NULL);


--
-- Name: ix_payment_outbox_attempts_related_outbox_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_related_outbox_default ON public.payment_outbox_attempts_default USING btree (related_outbox_id) WHERE (related_outbox_id IS NOT NULL);


--
-- Name: ix_payment_outbox_pending_claimable; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_pending_claimable ON public.payment_outbox_pending USING btree (priority DESC, next_attempt_at, outbox_id) WHERE (is_head AND (lease_token IS NULL));


--
-- Name: ix_payment_outbox_pending_claimable_rail; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_pending_claimable_rail ON public.payment_outbox_pending USING btree (rail_type, priority DESC, next_attempt_at, outbox_id) WHERE (is_head AND (lease_token IS NULL));


--
-- Name: ix_payment_outbox_pending_lease_expires; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_pending_lease_expires ON public.payment_outbox_pending USING btree (lease_expires_at, outbox_id) WHERE (lease_token IS NOT NULL);


--
-- Name: ix_payment_outbox_stale_outcomes_outbox; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_stale_outcomes_outbox ON public.payment_outbox_stale_outcomes USING btree (outbox_id);


--
-- Name: uq_payment_outbox_attempts_one_outcome; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_outcome ON ONLY public.payment_outbox_attempts USING btree (outbox_id, participant_id) WHERE (state = ANY (ARRAY['DISPATCHED'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state, 'CANCELLED'::public.outbox_attempt_state]));


--
-- Name: uq_payment_outbox_attempts_one_outcome_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_outcome_default ON public.payment_outbox_attempts_default USING btree (outbox_id, participant_id) WHERE (state = ANY (ARRAY['DISPATCHED'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state, 'CANCELLED'::public.outbox_attempt_state]));


--
-- Name: uq_payment_outbox_attempts_one_redrive; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_redrive ON ONLY public.payment_outbox_attempts USING btree (outbox_id, participant_id) WHERE (state = 'REDRIVEN'::public.outbox_attempt_state);


--
-- Name: uq_payment_outbox_attempts_one_redrive_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_redrive_default ON public.payment_outbox_attempts_default USING btree (outbox_id, participant_id) WHERE (state = 'REDRIVEN'::public.outbox_attempt_state);


--
-- Name: uq_policy_versions_one_active; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_policy_versions_one_active ON public.policy_versions USING btree ((true)) WHERE (status = 'ACTIVE'::public.policy_version_status);


--
-- Name: ix_payment_outbox_attempts_recent_trouble_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.ix_payment_outbox_attempts_recent_trouble ATTACH PARTITION public.ix_payment_outbox_attempts_recent_trouble_default;


--
-- Name: ix_payment_outbox_attempts_related_outbox_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.ix_payment_outbox_attempts_related_outbox ATTACH PARTITION public.ix_payment_outbox_attempts_related_outbox_default;


--
-- Name: pk_payment_outbox_attempts_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.pk_payment_outbox_attempts ATTACH PARTITION public.pk_payment_outbox_attempts_default;


--
-- Name: uq_payment_outbox_attempts_one_outcome_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.uq_payment_outbox_attempts_one_outcome ATTACH PARTITION public.uq_payment_outbox_attempts_one_outcome_default;


--
-- Name: uq_payment_outbox_attempts_one_redrive_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.uq_payment_outbox_attempts_one_redrive ATTACH PARTITION public.uq_payment_outbox_attempts_one_redrive_default;


--
-- Name: uq_payment_outbox_attempts_outbox_attempt_no_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.uq_payment_outbox_attempts_outbox_attempt_no ATTACH PARTITION public.uq_payment_outbox_attempts_outbox_attempt_no_default;


--
-- Name: payment_outbox_attempts trg_deny_outbox_attempts_mutation; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_deny_outbox_attempts_mutation BEFORE DELETE OR UPDATE ON public.payment_outbox_attempts FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_mutation;


--
-- Name: payment_outbox_attempts trg_deny_outbox_attempts_truncate; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_deny_outbox_attempts_truncate BEFORE TRUNCATE ON public.payment_outbox_attempts FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_truncate;


--
-- Name: payment_outbox_attempts_default trg_deny_outbox_attempts_truncate; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_deny_outbox_attempts_truncate BEFORE TRUNCATE ON public.payment_outbox_attempts_default FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

ALTER TABLE public.payment_outbox_attempts_default ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_truncate;


--
-- Name: payment_outbox_payloads trg_deny_outbox_payloads_mutation; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_deny_outbox_payloads_mutation BEFORE DELETE OR UPDATE ON public.payment_outbox_payloads FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_payloads_mutation();

ALTER TABLE public.payment_outbox_payloads ENABLE ALWAYS TRIGGER trg_deny_outbox_payloads_mutation;


--
-- Name: payment_outbox_payloads trg_deny_outbox_payloads_truncate; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_deny_outbox_payloads_truncate BEFORE TRUNCATE ON public.payment_outbox_payloads FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_payloads_mutation();

ALTER TABLE public.payment_outbox_payloads ENABLE ALWAYS TRIGGER trg_deny_outbox_payloads_truncate;


--
-- Name: payment_outbox_attempts trg_guard_archived_outbox_id; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_archived_outbox_id BEFORE INSERT ON public.payment_outbox_attempts FOR EACH ROW WHEN ((CURRENT_USER <> 'symphony_owner'::name)) EXECUTE FUNCTION public.guard_archived_outbox_id();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_archived_outbox_id;


--
-- Name: payment_outbox_pending trg_guard_archived_outbox_id; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_archived_outbox_id BEFORE INSERT OR UPDATE OF outbox_id ON public.payment_outbox_pending FOR EACH ROW WHEN ((CURRENT_USER <> 'symphony_owner'::name)) EXECUTE FUNCTION public.guard_archived_outbox_id();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_guard_archived_outbox_id;


--
-- Name: payment_outbox_attempts trg_guard_attempt_participant; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_attempt_participant BEFORE INSERT ON public.payment_outbox_attempts FOR EACH ROW EXECUTE FUNCTION public.guard_attempt_participant();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_attempt_participant;


--
-- Name: payment_outbox_idempotency_keys trg_guard_idempotency_key_archived; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_idempotency_key_archived BEFORE UPDATE OF outbox_id ON public.payment_outbox_idempotency_keys FOR EACH ROW WHEN ((old.outbox_id IS DISTINCT FROM new.outbox_id)) EXECUTE FUNCTION public.guard_idempotency_key_archived();

ALTER TABLE public.payment_outbox_idempotency_keys ENABLE ALWAYS TRIGGER trg_guard_idempotency_key_archived;


--
-- Name: payment_outbox_attempts trg_guard_outbox_attempts_insert; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_outbox_attempts_insert BEFORE INSERT ON public.payment_outbox_attempts FOR EACH ROW WHEN ((CURRENT_USER <> 'symphony_owner'::name)) EXECUTE FUNCTION public.guard_outbox_attempts_insert();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_outbox_attempts_insert;


--
-- Name: payment_outbox_pending trg_guard_outbox_pending_write; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_outbox_pending_write BEFORE INSERT OR UPDATE OF outbox_id ON public.payment_outbox_pending FOR EACH ROW WHEN ((CURRENT_USER <> 'symphony_owner'::name)) EXECUTE FUNCTION public.guard_outbox_pending_write();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_guard_outbox_pending_write;


--
-- Name: policy_versions trg_guard_policy_version_identity; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_policy_version_identity BEFORE UPDATE ON public.policy_versions FOR EACH ROW EXECUTE FUNCTION public.guard_policy_version_identity();

ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_identity;


--
-- Name: policy_versions trg_guard_policy_version_lifecycle; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_policy_version_lifecycle BEFORE INSERT OR DELETE OR UPDATE ON public.policy_versions FOR EACH ROW EXECUTE FUNCTION public.guard_policy_version_lifecycle();

ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_lifecycle;


--
-- Name: policy_versions trg_guard_policy_version_truncate; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_guard_policy_version_truncate BEFORE TRUNCATE ON public.policy_versions FOR EACH STATEMENT EXECUTE FUNCTION public.guard_policy_version_lifecycle();

ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_truncate;


--
-- Name: payment_outbox_pending trg_notify_outbox_work; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_notify_outbox_work AFTER INSERT ON public.payment_outbox_pending FOR EACH ROW WHEN ((new.is_head AND (new.lease_token IS NULL) AND (new.next_attempt_at <= now()))) EXECUTE FUNCTION public.notify_outbox_work();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_notify_outbox_work;


--
-- Name: payment_outbox_pending trg_place_outbox_head; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_place_outbox_head BEFORE INSERT OR UPDATE OF participant_id, sequence_id, is_head ON public.payment_outbox_pending FOR EACH ROW WHEN ((CURRENT_USER <> 'symphony_owner'::name)) EXECUTE FUNCTION public.place_outbox_head();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_place_outbox_head;


--
-- Name: policy_versions trg_policy_versions_keep_one_active; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE CONSTRAINT TRIGGER trg_policy_versions_keep_one_active AFTER UPDATE ON public.policy_versions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ((old.status = 'ACTIVE'::public.policy_version_status)) EXECUTE FUNCTION public.keep_one_active_policy_version();

ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_policy_versions_keep_one_active;


--
-- Name: payment_outbox_pending trg_promote_outbox_head; Type: TRIGGER; Schema: public; Owner: symphony_owner
--

CREATE TRIGGER trg_promote_outbox_head AFTER DELETE ON public.payment_outbox_pending FOR EACH ROW WHEN ((old.is_head AND ((CURRENT_USER <> 'symphony_owner'::name) OR (old.lease_token IS NULL) OR (old.lease_expires_at <= clock_timestamp())))) EXECUTE FUNCTION public.promote_outbox_head();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_promote_outbox_head;


--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner
--

REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO symphony_owner;
GRANT USAGE ON SCHEMA public TO symphony_ingest;
GRANT USAGE ON SCHEMA public TO symphony_executor;
GRANT USAGE ON SCHEMA public TO symphony_control;
GRANT USAGE ON SCHEMA public TO symphony_readonly;
GRANT USAGE ON SCHEMA public TO symphony_auditor;
GRANT USAGE ON SCHEMA public TO test_user;


--
-- Name: FUNCTION archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.archive_ledger_partition(p_partition text, p_row_count bigint, p_sha256 text, p_file_name text, p_columns text[]) FROM PUBLIC;


--
-- Name: FUNCTION bump_participant_outbox_seq(p_participant_id text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.bump_participant_outbox_seq(p_participant_id text) FROM PUBLIC;


--
-- Name: FUNCTION cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) TO symphony_control;


--
-- Name: FUNCTION cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) TO symphony_control;


--
-- Name: FUNCTION check_outbox_payload_numbers(p_payload jsonb); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.check_outbox_payload_numbers(p_payload jsonb) FROM PUBLIC;


--
-- Name: FUNCTION claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO symphony_executor;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO symphony_control;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO test_user;


--
-- Name: FUNCTION claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO symphony_executor;
GRANT ALL ON FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO symphony_control;
GRANT ALL ON FUNCTION public.claim_outbox_batch_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text, p_lease_seconds integer, p_rail_types text[]) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempt_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch_for_participant(p_participant_id text, p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO test_user;


--
-- Name: FUNCTION deny_outbox_attempts_mutation(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.deny_outbox_attempts_mutation() FROM PUBLIC;


--
-- Name: FUNCTION deny_outbox_payloads_mutation(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.deny_outbox_payloads_mutation() FROM PUBLIC;


--
-- Name: FUNCTION disable_outbox_rail(p_rail_code text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.disable_outbox_rail(p_rail_code text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.disable_outbox_rail(p_rail_code text) TO symphony_control;


--
-- Name: FUNCTION enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) TO symphony_ingest;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) TO symphony_control;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) TO test_user;


--
-- Name: FUNCTION enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO symphony_ingest;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO symphony_control;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch(p_instruction_ids text[], p_participant_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO test_user;


--
-- Name: FUNCTION enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO symphony_ingest;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO symphony_control;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox_batch_for_participant(p_participant_id text, p_instruction_ids text[], p_idempotency_keys text[], p_rail_types text[], p_payloads jsonb[], p_not_before timestamp with time zone[], p_priorities smallint[]) TO test_user;


--
-- Name: FUNCTION ensure_ledger_partitions(p_days_ahead integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.ensure_ledger_partitions(p_days_ahead integer) FROM PUBLIC;


--
-- Name: FUNCTION extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.extend_outbox_lease(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO test_user;


--
-- Name: FUNCTION extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.extend_outbox_lease_for_participant(p_participant_id text, p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_lease_seconds integer) TO test_user;


--
-- Name: FUNCTION guard_archived_outbox_id(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_archived_outbox_id() FROM PUBLIC;


--
-- Name: FUNCTION guard_attempt_participant(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_attempt_participant() FROM PUBLIC;


--
-- Name: FUNCTION guard_idempotency_key_archived(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_idempotency_key_archived() FROM PUBLIC;


--
-- Name: FUNCTION guard_outbox_attempts_insert(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_outbox_attempts_insert() FROM PUBLIC;


--
-- Name: FUNCTION guard_outbox_pending_write(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_outbox_pending_write() FROM PUBLIC;


--
-- Name: FUNCTION guard_policy_version_identity(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_policy_version_identity() FROM PUBLIC;


--
-- Name: FUNCTION guard_policy_version_lifecycle(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_policy_version_lifecycle() FROM PUBLIC;


--
-- Name: FUNCTION keep_one_active_policy_version(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.keep_one_active_policy_version() FROM PUBLIC;


--
-- Name: FUNCTION ledger_uuid_lower_bound(p_at timestamp with time zone); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.ledger_uuid_lower_bound(p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_ledger_partition_restored(p_partition text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.mark_ledger_partition_restored(p_partition text) FROM PUBLIC;


--
-- Name: FUNCTION notify_outbox_work(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.notify_outbox_work() FROM PUBLIC;


--
-- Name: FUNCTION outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_check_enqueue_args(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) FROM PUBLIC;


--
-- Name: FUNCTION outbox_id_ok(p_value text, p_max_bytes integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_id_ok(p_value text, p_max_bytes integer) FROM PUBLIC;


--
-- Name: FUNCTION outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_enqueue_args_ok(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb, p_not_before timestamp with time zone, p_priority smallint) FROM PUBLIC;


--
-- Name: FUNCTION outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_limit_bytes(p_names text[], p_values text[], p_max_bytes integer[]) FROM PUBLIC;


--
-- Name: FUNCTION outbox_metrics(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_metrics() FROM PUBLIC;
GRANT ALL ON FUNCTION public.outbox_metrics() TO symphony_readonly;
GRANT ALL ON FUNCTION public.outbox_metrics() TO symphony_auditor;
GRANT ALL ON FUNCTION public.outbox_metrics() TO symphony_control;


--
-- Name: FUNCTION outbox_payload_numbers_plain(p_payload jsonb); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_payload_numbers_plain(p_payload jsonb) FROM PUBLIC;


--
-- Name: FUNCTION outbox_pin_plan_settings(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_pin_plan_settings() FROM PUBLIC;


--
-- Name: FUNCTION outbox_promote_participant_head(p_participant_id text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_promote_participant_head(p_participant_id text) FROM PUBLIC;


--
-- Name: FUNCTION outbox_rail_code(p_rail_type text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_rail_code(p_rail_type text) FROM PUBLIC;


--
-- Name: FUNCTION outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_require_ids(p_names text[], p_values text[], p_max_bytes integer) FROM PUBLIC;


--
-- Name: FUNCTION outbox_restore_plan_settings(p_saved text[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_restore_plan_settings(p_saved text[]) FROM PUBLIC;


--
-- Name: FUNCTION outbox_retry_ceiling(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_retry_ceiling() FROM PUBLIC;


--
-- Name: FUNCTION place_outbox_head(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.place_outbox_head() FROM PUBLIC;


--
-- Name: FUNCTION policy_version_accepted(p_version text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.policy_version_accepted(p_version text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.policy_version_accepted(p_version text) TO symphony_ingest;
GRANT ALL ON FUNCTION public.policy_version_accepted(p_version text) TO symphony_executor;
GRANT ALL ON FUNCTION public.policy_version_accepted(p_version text) TO symphony_control;


--
-- Name: FUNCTION policy_version_sort_key(p_version text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.policy_version_sort_key(p_version text) FROM PUBLIC;


--
-- Name: FUNCTION promote_outbox_head(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.promote_outbox_head() FROM PUBLIC;


--
-- Name: FUNCTION protect_ledger_partition(p_partition regclass); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.protect_ledger_partition(p_partition regclass) FROM PUBLIC;


--
-- Name: FUNCTION record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.record_outbox_rail_reference(p_outbox_id uuid, p_attempt_no integer, p_rail_type text, p_rail_reference text) FROM PUBLIC;


--
-- Name: FUNCTION record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.record_outbox_rail_references(p_outbox_ids uuid[], p_attempt_nos integer[], p_rail_types text[], p_rail_references text[], p_elements integer[]) FROM PUBLIC;


--
-- Name: FUNCTION record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) TO symphony_control;
GRANT ALL ON FUNCTION public.record_stale_outbox_outcome(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer) TO test_user;


--
-- Name: FUNCTION redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.redrive_outbox_job(p_outbox_id uuid, p_reason text, p_ticket text) TO symphony_control;


--
-- Name: FUNCTION redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.redrive_outbox_job_for_participant(p_participant_id text, p_outbox_id uuid, p_reason text, p_ticket text) TO symphony_control;


--
-- Name: FUNCTION register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.register_outbox_rail(p_rail_code text, p_returns_reference boolean, p_description text) TO symphony_control;


--
-- Name: FUNCTION repair_expired_leases(p_batch_size integer, p_worker_id text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO symphony_executor;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO symphony_control;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO test_user;


--
-- Name: FUNCTION repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) TO symphony_executor;
GRANT ALL ON FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) TO symphony_control;
GRANT ALL ON FUNCTION public.repair_expired_leases_for_participant(p_participant_id text, p_batch_size integer, p_worker_id text) TO test_user;


--
-- Name: FUNCTION retire_expired_policy_versions(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.retire_expired_policy_versions() FROM PUBLIC;
GRANT ALL ON FUNCTION public.retire_expired_policy_versions() TO symphony_control;


--
-- Name: FUNCTION rotate_policy_version(p_version text, p_checksum text, p_grace interval); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.rotate_policy_version(p_version text, p_checksum text, p_grace interval) FROM PUBLIC;
GRANT ALL ON FUNCTION public.rotate_policy_version(p_version text, p_checksum text, p_grace interval) TO symphony_control;


--
-- Name: FUNCTION set_outbox_retry_ceiling(p_ceiling integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.set_outbox_retry_ceiling(p_ceiling integer) TO symphony_control;


--
-- Name: FUNCTION uuid_strategy(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.uuid_strategy() FROM PUBLIC;
GRANT ALL ON FUNCTION public.uuid_strategy() TO symphony_ingest;
GRANT ALL ON FUNCTION public.uuid_strategy() TO symphony_executor;
GRANT ALL ON FUNCTION public.uuid_strategy() TO symphony_control;
GRANT ALL ON FUNCTION public.uuid_strategy() TO symphony_readonly;
GRANT ALL ON FUNCTION public.uuid_strategy() TO symphony_auditor;
GRANT ALL ON FUNCTION public.uuid_strategy() TO test_user;


--
-- Name: FUNCTION uuid_v7_or_random(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.uuid_v7_or_random() FROM PUBLIC;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO symphony_ingest;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO symphony_executor;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO symphony_control;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO symphony_readonly;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO symphony_auditor;
GRANT ALL ON FUNCTION public.uuid_v7_or_random() TO test_user;


--
-- Name: TABLE outbox_rail_references; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.outbox_rail_references TO symphony_control;
GRANT SELECT ON TABLE public.outbox_rail_references TO symphony_readonly;
GRANT SELECT ON TABLE public.outbox_rail_references TO symphony_auditor;


--
-- Name: TABLE outbox_rails; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.outbox_rails TO symphony_control;
GRANT SELECT ON TABLE public.outbox_rails TO symphony_readonly;
GRANT SELECT ON TABLE public.outbox_rails TO symphony_auditor;


--
-- Name: TABLE participant_outbox_sequences; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.participant_outbox_sequences TO symphony_control;


--
-- Name: TABLE payment_outbox_attempts; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_auditor;


--
-- Name: TABLE payment_outbox_payloads; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.payment_outbox_payloads TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_payloads TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_payloads TO symphony_auditor;


--
-- Name: TABLE payment_outbox_pending; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_auditor;


--
-- Name: TABLE payment_outbox_stale_outcomes; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.payment_outbox_stale_outcomes TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_stale_outcomes TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_stale_outcomes TO symphony_auditor;


--
-- Name: TABLE policy_versions; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT ON TABLE public.policy_versions TO symphony_executor;
GRANT SELECT ON TABLE public.policy_versions TO symphony_readonly;
GRANT SELECT ON TABLE public.policy_versions TO symphony_auditor;
GRANT SELECT,INSERT,UPDATE ON TABLE public.policy_versions TO symphony_control;


--
-- Name: TABLE schema_migrations; Type: ACL; Schema: public; Owner: (migrating user)
--

GRANT SELECT ON TABLE public.schema_migrations TO symphony_auditor;


--
-- Name: DEFAULT PRIVILEGES FOR FUNCTIONS; Type: DEFAULT ACL; Schema: -; Owner: symphony_owner
--

ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner REVOKE ALL ON FUNCTIONS FROM PUBLIC;


-- =================================================================================================
-- 3. Database (settings and ACL of the database this file is applied to)
-- Written for whatever the database is called where the file is applied.
-- =================================================================================================

-- Database settings (ALTER DATABASE ... SET): none.

-- Database ACL: the default (owner: all; PUBLIC: CONNECT, TEMPORARY).


-- =================================================================================================
-- 4. Migration ledger
-- applied_at and applied_by take their defaults when this file is applied;
-- execution_ms stays NULL because no revision is executed.
-- =================================================================================================

INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0001_init', 'Init: version gate, UUID helpers, enum types, outbox tables, indexes, append-only enforcement.', 'sha256:93192172fe698a14d4df99e0f21325923593bbcc9bb7e62432cb0a57f7090d8b');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0002_outbox_functions', 'Outbox functions: retry ceiling, sequence allocator, enqueue, claim, complete, repair.', 'sha256:7516e9f2b10dde5840c9d307e77aeff1a27321520ba2df80147acc0fd1dbbe9c');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0003_roles', 'Roles: create the Symphony roles and enforce their attributes (no memberships, no passwords).', 'sha256:63da02000cdab9f1c057f399b993d11ec9527452d52e7c8d577247798b3c866f');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0004_privileges', 'Privileges: ownership, deny-by-default, function-first grants for the outbox objects.', 'sha256:04499be873a9639be119c7497f16a1f81484742813e7cae709493b64fe161818');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0005_policy_versions', 'Policy versions: status type, policy_versions table, its constraints and grants.', 'sha256:7925430f20fb08fdb64d59662862ada694ef650ed188e4aa1a22099dc1674d97');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0006_outbox_hot_path', 'Outbox hot path: generic claim plans, one-statement fencing, one enqueue look-up.', 'sha256:44f74ba33c4f56ba5e0459c2fe05c2f9009a3e10a5df5a99f2f0d65f1f4314b1');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0007_batched_completion', 'Batched completion: complete_outbox_attempts_batch, many leases in one call, all or nothing.', 'sha256:240231922ca64cfbb89a10cbe62b45761b14ceca4b51ebe13a5183ac2d74f692');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0008_stable_hot_path_plans', 'Stable hot-path plans: index access whatever the queue''s statistics say.', 'sha256:8e536e610e915cbb58c6c2a2490917e66e35bce75153b4e68b804296faca27d2');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0009_queue_autovacuum', 'Queue autovacuum: vacuum the pending queue after a fixed number of dead rows, not a share.', 'sha256:b0c15de40c761dbf02787be98c14b83ecd940d017929c51ff8e635e0fc2a9a17');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0010_reject_blank_long_ids', 'Reject blank and oversized ids: whitespace-only ids and ids too long for indexes are 22023.', 'sha256:0e6bd2e4e6afe2c1a70ba62bf51b9f47bd04e05632c7c224e4e6729da11db48a');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0011_outbox_hardening', 'Outbox hardening: claims record lost leases, stored retry ceiling, no advisory locks.', 'sha256:782a03ca4f2b8ed8bbfab779651b9142b2813934954e3c6142fcd3b09a98ccc1');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0012_serialise_the_p7005_guards', 'Serialise the P7005 guards on the idempotency key', 'sha256:5221e625fb4f857a8aebabfaf4e811b01555168f70f9136ae23eee973fac9de8');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0013_sql_rule_helpers', 'SQL rules in one place: the id rule and the plan-settings pin are helper functions.', 'sha256:42ea8c7ec525c5f132c777ff119725c749e8c27e1cfc2ab0dd1ea691069192dd');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0014_fifo_dispatch', 'Dispatch: per-participant FIFO, rail-scoped claims, heartbeats, in-doubt jobs, stale outcomes.', 'sha256:f3b400bd428875cd2dffd8fa98c2d6526a55515ee8a00b5337986871141cbe1a');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0015_fifo_claim_indexes', 'Indexes of claimable heads (the claim of per-participant FIFO), in one transaction.', 'sha256:a29262b44177b4337464aa74366697e00ce567e851bcf910db2c34819b10819b');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0016_policy_rotation', 'Policy rotation: rotate, accept and retire policy versions; immutability triggers', 'sha256:de39e8a4858565111f62f0fc84f9ca1c2eb302f609ed7fe1e0e9b96554cba62f');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0017_outbox_operations_states', 'Outbox operations: the CANCELLED and REDRIVEN states and the audit columns of the ledger', 'sha256:96d1212ac39c16503dc82eaf095a81d47d7f243c261c333e19123784cb4c6164');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0018_outbox_operations_indexes', 'Outbox operations: the one-outcome rule with CANCELLED, redrive and metrics indexes', 'sha256:6bf33b76610c1d3553f19ed0c9ed742f3bccf2aa63acb72ce34c6b6217b4cc1c');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0019_outbox_operations', 'Outbox operations: audited cancel and redrive, metrics, rails and rail references', 'sha256:cacef4c49baa8475b5e049f281ab58df3671b1dc99c2d84d3945547342573235');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0020_enqueue_uses_rails', 'Enqueue and claim use the rails table: canonical rail codes, exact payload numbers', 'sha256:c50423934b93d294d8fce70d991ed6946144702714962382c89ee8f554d430b8');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0021_redrive_joins_the_line', 'A redriven job takes its place in its participant''s FIFO line (is_head set as enqueue does)', 'sha256:9338db54e96bc01c23aad7182656a0d61277cd21126b35a63d7432da1f0864b3');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0022_metrics_read_in_doubt', 'outbox_metrics() counts in-doubt jobs from the queue''s in_doubt flag, not a ledger probe', 'sha256:788e13a1f6d0e000f09cad68ce2d04303586b0d2137f51df584431d684f8c545');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0023_completion_rail_references', 'A DISPATCHED completion records its rail reference, unique per rail (P7013 when reused)', 'sha256:4d5e1897bbf000b2b3714cac6087b9c35d42797b8567c8f15eabf50af4c5c744');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0024_payload_stored_once', 'The payload is stored once per job in payment_outbox_payloads; ledger rows stop copying it', 'sha256:27e7a91f5805e37bb6874743df2a40e81fba44a1810b97842d1dcb73376394fc');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0025_partition_attempts_ledger', 'Partition the attempts ledger by outbox_id (UTC enqueue day), archive bookkeeping', 'sha256:7761cfcd4ee625ac98ed59f29dd0f89744cf6bf663d083808584327491e8e586');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0026_outbox_work_notify', 'Idle executors wake on a NOTIFY when a claimable job is enqueued (issue 17 P6, ADR 0151)', 'sha256:3e83296b796be8e83dd5b54815aad4f1f8ad14d58634f5e824759555adcfa691');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0027_enqueue_batch', 'enqueue_payment_outbox_batch: many jobs per call, each via enqueue (issue 17 P4b, ADR 0152)', 'sha256:d617ec5b16edface43b9464fe04d4e7a9aab4775ebbc52e03817f8655dd8903f');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0028_enqueue_prunes_the_ledger', 'Enqueue reads the partitioned ledger by the key row''s job: one partition, none for a new key', 'sha256:b6070a85a79f6bdd0803c5b0e7fee0d09466829ae57dcb08ad3c88e5cea552ad');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0029_claim_for_participant', 'claim_outbox_batch_for_participant: the claim of one participant (ADRs 0145, 0163)', 'sha256:2418f62988c14f727dbcf5fd6833d63a2a5b37bbcb5c3e6ba9419f9643b08656');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0030_citus_worker_defaults', 'On a Citus coordinator, the owner''s default privileges are replayed on every worker', 'sha256:a17f13c0b41c456e75318d381576a21f8f09ef764b7e2ca6fd6f60ccf626522e');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0031_enqueue_set_based', 'Cheaper enqueue, set-based batch enqueue, participant_id on the key table (issue 17 P4/P4b)', 'sha256:9d34170f5e50596f55fad25fa57ad585bc5adde7710884ed54da4a6de4ea4b87');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0032_hot_path_round_two', 'Hot path, round two (issue 17, ADR 0158): claims scan expired leases only when unleased heads', 'sha256:fba05b4befa88205673c924b940a4ca4ce5f3583e99d3dcf1abf7dbcedf652f9');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0033_wake_one_worker', 'Wake one worker per notification (issue 17 P6, ADR 0159): the work notification carries a', 'sha256:1590874d3a6a23c2ebabb6816f0601fb6c3a037a5263ef2ca81b18dbc7558c62');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0034_participant_first', 'Participant-first outbox functions (issue 16, ADR 0147): completion, batch completion, repair,', 'sha256:7c206678e33dab309a6cf52e84312e9c6be63fe90a00eeb96e71f88e5a493167');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0035_guards_for_shards', 'The pending-write, ledger-insert and participant guards filter by the row''s participant on a', 'sha256:c8be374820e173e2b613a0d341ecaefa13d96c939e3a20d2c62e12a2897958c2');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0036_distribute_on_citus', 'On a Citus coordinator with the owner logging in between the nodes: the outbox distributed by', 'sha256:8c283dd1ced353378a9ef7920808c6efea50fc2a402d0a20b02af5ebaf18b283');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0037_set_based_completion', 'Completion, round three (issue 17 P1/P2b, ADR 0165): the batched completion records its rail', 'sha256:922e19f4efb06b53862566b180e24ac672a0d684113b0049fba6163f1df01db8');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0038_lean_queue_row', 'The payload leaves the queue row (issue 17 P1, P4, P4b; ADR 0167): the queue''s payload column', 'sha256:ebd578a61512ddfd7aed3a80905f9d5128ad471e509456f7cc825df5efa6d44f');
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0039_one_id_predicate', 'One owner of the id rule (issue 17 follow-up, ADR 0165): enqueue''s argument predicate states', 'sha256:7bb4598ca4faa0dcbede9fe70aa434813302b78fbad237617b7fa2ea0ef9828b');
INSERT INTO public.alembic_version (version_num) VALUES ('0039_one_id_predicate');
