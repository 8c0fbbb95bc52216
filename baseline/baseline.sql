-- Symphony schema baseline at revision 0013_partition_attempts_ledger.
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
    'ZOMBIE_REQUEUE'
);


ALTER TYPE public.outbox_attempt_state OWNER TO symphony_owner;

--
-- Name: TYPE outbox_attempt_state; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TYPE public.outbox_attempt_state IS 'Outcome of one outbox attempt. DISPATCHED and FAILED are terminal; RETRYABLE and ZOMBIE_REQUEUE put the job back in the queue; DISPATCHING is legacy and never written.';


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
    IF p_participant_id IS NULL OR pg_catalog.btrim(p_participant_id, E' \t\n\r\f\x0B') = '' THEN
        RAISE EXCEPTION 'p_participant_id must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF pg_catalog.octet_length(p_participant_id) > 1024 THEN
        RAISE EXCEPTION 'p_participant_id must be at most 1024 bytes, got %',
            pg_catalog.octet_length(p_participant_id)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

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
-- Name: claim_outbox_batch(integer, text, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) RETURNS TABLE(outbox_id uuid, instruction_id text, participant_id text, sequence_id bigint, idempotency_key text, rail_type text, payload jsonb, attempt_count integer, lease_token uuid, lease_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) IS 'Leases up to p_batch_size (1..1000) due rows, oldest due first (FOR UPDATE SKIP LOCKED): rows without a lease and rows whose lease expired. Each claim gets a fresh lease_token valid for p_lease_seconds (1..86400). An expired lease it takes over is recorded as a ZOMBIE_REQUEUE attempt (attempt_count follows), or as FAILED at outbox_retry_ceiling(): that job leaves the queue and is not returned, so a claim may return fewer rows than are due.';


--
-- Name: complete_outbox_attempt(uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text DEFAULT NULL::text, p_rail_code text DEFAULT NULL::text, p_error_code text DEFAULT NULL::text, p_error_message text DEFAULT NULL::text, p_latency_ms integer DEFAULT NULL::integer, p_retry_delay_seconds integer DEFAULT 1) RETURNS TABLE(attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) IS 'Records the outcome of a leased attempt. P7002 (LEASE_LOST) unless worker, token and an unexpired lease match; P7003 unless the state is DISPATCHED, FAILED or RETRYABLE. RETRYABLE at or above outbox_retry_ceiling() becomes FAILED. Terminal outcomes remove the pending row; retries requeue it after max(1, p_retry_delay_seconds) seconds. Returns (attempt_no, state).';


--
-- Name: complete_outbox_attempts_batch(text, uuid[], uuid[], text[], text[], text[], text[], text[], integer[], integer[]); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[] DEFAULT NULL::text[], p_rail_codes text[] DEFAULT NULL::text[], p_error_codes text[] DEFAULT NULL::text[], p_error_messages text[] DEFAULT NULL::text[], p_latency_ms integer[] DEFAULT NULL::integer[], p_retry_delay_seconds integer[] DEFAULT NULL::integer[]) RETURNS TABLE(outbox_id uuid, attempt_no integer, state public.outbox_attempt_state)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) OWNER TO symphony_owner;

--
-- Name: FUNCTION complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) IS 'Records the outcomes of up to 1000 leases of one worker (parallel arrays, element i describes p_outbox_ids[i]; states as text) exactly as complete_outbox_attempt() would, all or nothing: P7002 (LEASE_LOST) naming the first stale outbox when any lease is missing, expired or not this worker''s and token''s (DETAIL lists all of them), P7003 for a state other than DISPATCHED, FAILED or RETRYABLE, 22023 for invalid arguments; nothing is recorded then. Returns (outbox_id, attempt_no, state) per element, in input order.';


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
-- Name: enqueue_payment_outbox(text, text, text, text, jsonb); Type: FUNCTION; Schema: public; Owner: symphony_owner
--

CREATE FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) RETURNS TABLE(outbox_id uuid, sequence_id bigint, created_at timestamp with time zone, state text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) OWNER TO symphony_owner;

--
-- Name: FUNCTION enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) IS 'Idempotent enqueue keyed on (instruction_id, idempotency_key), serialised on the primary key of payment_outbox_idempotency_keys. Returns the queued row (state PENDING), or the latest attempt once the job has been worked on. P7004 when the key is reused with a different participant, rail type or payload; 22023 on invalid arguments (payload over 65536 bytes).';


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

COMMENT ON FUNCTION public.guard_archived_outbox_id() IS 'Trigger function: refuses (P7020 JOB_ARCHIVED) a queue or ledger row written by anyone but the outbox functions for an outbox_id whose ledger partition is archived.';


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
        (instruction_id, idempotency_key, outbox_id)
    VALUES (NEW.instruction_id, NEW.idempotency_key, NEW.outbox_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    UPDATE public.payment_outbox_idempotency_keys AS k
       SET outbox_id = k.outbox_id
     WHERE k.instruction_id = NEW.instruction_id
       AND k.idempotency_key = NEW.idempotency_key;

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
BEGIN
    -- Serialise with every other writer of this payment (enqueue, the other guard).
    INSERT INTO public.payment_outbox_idempotency_keys AS k
        (instruction_id, idempotency_key, outbox_id)
    VALUES (NEW.instruction_id, NEW.idempotency_key, NEW.outbox_id)
    ON CONFLICT ON CONSTRAINT pk_payment_outbox_idempotency_keys DO NOTHING;
    UPDATE public.payment_outbox_idempotency_keys AS k
       SET outbox_id = k.outbox_id
     WHERE k.instruction_id = NEW.instruction_id
       AND k.idempotency_key = NEW.idempotency_key;

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


ALTER FUNCTION public.guard_outbox_pending_write() OWNER TO symphony_owner;

--
-- Name: FUNCTION guard_outbox_pending_write(); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.guard_outbox_pending_write() IS 'Trigger function: refuses (P7005) a queue row written by anyone but the outbox functions for a job that already has a terminal attempt; serialised with enqueue and the attempts guard on the payment''s row in payment_outbox_idempotency_keys.';


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
    -- the parent's, so a 23505 still names the rule: uq_payment_outbox_attempts_one_terminal_p20261130.
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
                            'trg_guard_archived_outbox_id')
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


ALTER FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) OWNER TO symphony_owner;

--
-- Name: FUNCTION repair_expired_leases(p_batch_size integer, p_worker_id text); Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) IS 'Requeues up to p_batch_size (1..1000) rows whose lease expired (SKIP LOCKED): appends a ZOMBIE_REQUEUE attempt, clears the lease, bumps attempt_count and makes the row due now, keeping its place in the queue; at outbox_retry_ceiling() the attempt is FAILED and the job leaves the queue. Never touches rows with a live lease or without a lease. Returns (outbox_id, attempt_no).';


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
    payload jsonb NOT NULL,
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
    CONSTRAINT ck_payment_outbox_attempts_attempt_no_positive CHECK ((attempt_no >= 1)),
    CONSTRAINT ck_payment_outbox_attempts_latency_ms_nonnegative CHECK (((latency_ms IS NULL) OR (latency_ms >= 0))),
    CONSTRAINT ck_payment_outbox_attempts_payload_is_object CHECK ((jsonb_typeof(payload) = 'object'::text))
)
PARTITION BY RANGE (outbox_id);


ALTER TABLE public.payment_outbox_attempts OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_attempts; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_attempts IS 'Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001, on every partition too). At most one terminal attempt (DISPATCHED or FAILED) per outbox_id. Partitioned by RANGE (outbox_id), one partition per UTC enqueue day in schema symphony_ledger (ADR 0130).';


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
    payload jsonb CONSTRAINT payment_outbox_attempts_payload_not_null NOT NULL,
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
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


ALTER TABLE public.payment_outbox_idempotency_keys OWNER TO symphony_owner;

--
-- Name: TABLE payment_outbox_idempotency_keys; Type: COMMENT; Schema: public; Owner: symphony_owner
--

COMMENT ON TABLE public.payment_outbox_idempotency_keys IS 'Every idempotency key ever enqueued, with the job it queued last. Written only by public.enqueue_payment_outbox(); its primary key serialises enqueues of one key.';


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
    payload jsonb NOT NULL,
    attempt_count integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_by text,
    lease_token uuid,
    lease_expires_at timestamp with time zone,
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

COMMENT ON TABLE public.policy_versions IS 'Boot policy versions. Exactly one ACTIVE row is expected at boot (at most one is enforced by uq_policy_versions_one_active; at least one by the boot check, which fails closed).';


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
    ADD CONSTRAINT pk_payment_outbox_attempts PRIMARY KEY (outbox_id, attempt_id);


--
-- Name: payment_outbox_attempts_default pk_payment_outbox_attempts_default; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts_default
    ADD CONSTRAINT pk_payment_outbox_attempts_default PRIMARY KEY (outbox_id, attempt_id);


--
-- Name: payment_outbox_idempotency_keys pk_payment_outbox_idempotency_keys; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_idempotency_keys
    ADD CONSTRAINT pk_payment_outbox_idempotency_keys PRIMARY KEY (instruction_id, idempotency_key);


--
-- Name: payment_outbox_pending pk_payment_outbox_pending; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_pending
    ADD CONSTRAINT pk_payment_outbox_pending PRIMARY KEY (outbox_id);


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
    ADD CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no UNIQUE (outbox_id, attempt_no);


--
-- Name: payment_outbox_attempts_default uq_payment_outbox_attempts_outbox_attempt_no_default; Type: CONSTRAINT; Schema: public; Owner: symphony_owner
--

ALTER TABLE ONLY public.payment_outbox_attempts_default
    ADD CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no_default UNIQUE (outbox_id, attempt_no);


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
-- Name: ix_payment_outbox_attempts_instruction_idempotency; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_instruction_idempotency ON ONLY public.payment_outbox_attempts USING btree (instruction_id, idempotency_key);


--
-- Name: ix_payment_outbox_attempts_instruction_idempotency_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_attempts_instruction_idempotency_default ON public.payment_outbox_attempts_default USING btree (instruction_id, idempotency_key);


--
-- Name: ix_payment_outbox_pending_due_unleased; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_pending_due_unleased ON public.payment_outbox_pending USING btree (next_attempt_at, outbox_id) WHERE (lease_token IS NULL);


--
-- Name: ix_payment_outbox_pending_lease_expires; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE INDEX ix_payment_outbox_pending_lease_expires ON public.payment_outbox_pending USING btree (lease_expires_at, outbox_id) WHERE (lease_token IS NOT NULL);


--
-- Name: uq_payment_outbox_attempts_one_terminal; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_terminal ON ONLY public.payment_outbox_attempts USING btree (outbox_id) WHERE (state = ANY (ARRAY['DISPATCHED'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state]));


--
-- Name: uq_payment_outbox_attempts_one_terminal_default; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_terminal_default ON public.payment_outbox_attempts_default USING btree (outbox_id) WHERE (state = ANY (ARRAY['DISPATCHED'::public.outbox_attempt_state, 'FAILED'::public.outbox_attempt_state]));


--
-- Name: uq_policy_versions_one_active; Type: INDEX; Schema: public; Owner: symphony_owner
--

CREATE UNIQUE INDEX uq_policy_versions_one_active ON public.policy_versions USING btree ((true)) WHERE (status = 'ACTIVE'::public.policy_version_status);


--
-- Name: ix_payment_outbox_attempts_instruction_idempotency_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.ix_payment_outbox_attempts_instruction_idempotency ATTACH PARTITION public.ix_payment_outbox_attempts_instruction_idempotency_default;


--
-- Name: pk_payment_outbox_attempts_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.pk_payment_outbox_attempts ATTACH PARTITION public.pk_payment_outbox_attempts_default;


--
-- Name: uq_payment_outbox_attempts_one_terminal_default; Type: INDEX ATTACH; Schema: public; Owner: symphony_owner
--

ALTER INDEX public.uq_payment_outbox_attempts_one_terminal ATTACH PARTITION public.uq_payment_outbox_attempts_one_terminal_default;


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
-- Name: FUNCTION claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.claim_outbox_batch(p_batch_size integer, p_worker_id text, p_lease_seconds integer) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempt(p_outbox_id uuid, p_lease_token uuid, p_worker_id text, p_state public.outbox_attempt_state, p_rail_reference text, p_rail_code text, p_error_code text, p_error_message text, p_latency_ms integer, p_retry_delay_seconds integer) TO test_user;


--
-- Name: FUNCTION complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_executor;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO symphony_control;
GRANT ALL ON FUNCTION public.complete_outbox_attempts_batch(p_worker_id text, p_outbox_ids uuid[], p_lease_tokens uuid[], p_states text[], p_rail_references text[], p_rail_codes text[], p_error_codes text[], p_error_messages text[], p_latency_ms integer[], p_retry_delay_seconds integer[]) TO test_user;


--
-- Name: FUNCTION deny_outbox_attempts_mutation(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.deny_outbox_attempts_mutation() FROM PUBLIC;


--
-- Name: FUNCTION enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) TO symphony_ingest;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) TO symphony_control;
GRANT ALL ON FUNCTION public.enqueue_payment_outbox(p_instruction_id text, p_participant_id text, p_idempotency_key text, p_rail_type text, p_payload jsonb) TO test_user;


--
-- Name: FUNCTION ensure_ledger_partitions(p_days_ahead integer); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.ensure_ledger_partitions(p_days_ahead integer) FROM PUBLIC;


--
-- Name: FUNCTION guard_archived_outbox_id(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.guard_archived_outbox_id() FROM PUBLIC;


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
-- Name: FUNCTION ledger_uuid_lower_bound(p_at timestamp with time zone); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.ledger_uuid_lower_bound(p_at timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_ledger_partition_restored(p_partition text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.mark_ledger_partition_restored(p_partition text) FROM PUBLIC;


--
-- Name: FUNCTION outbox_retry_ceiling(); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.outbox_retry_ceiling() FROM PUBLIC;


--
-- Name: FUNCTION protect_ledger_partition(p_partition regclass); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.protect_ledger_partition(p_partition regclass) FROM PUBLIC;


--
-- Name: FUNCTION repair_expired_leases(p_batch_size integer, p_worker_id text); Type: ACL; Schema: public; Owner: symphony_owner
--

REVOKE ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO symphony_executor;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO symphony_control;
GRANT ALL ON FUNCTION public.repair_expired_leases(p_batch_size integer, p_worker_id text) TO test_user;


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
-- Name: TABLE participant_outbox_sequences; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.participant_outbox_sequences TO symphony_control;


--
-- Name: TABLE payment_outbox_attempts; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT,INSERT ON TABLE public.payment_outbox_attempts TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_auditor;


--
-- Name: TABLE payment_outbox_pending; Type: ACL; Schema: public; Owner: symphony_owner
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.payment_outbox_pending TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_auditor;


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
INSERT INTO public.schema_migrations (version, description, checksum) VALUES ('0013_partition_attempts_ledger', 'Partition the attempts ledger by outbox_id (UTC enqueue day), archive bookkeeping', 'sha256:a279b0cfa96a2441b03ea78fe725b1b4cd54bd5c109055c6da5b4096f18ff584');
INSERT INTO public.alembic_version (version_num) VALUES ('0013_partition_attempts_ledger');
