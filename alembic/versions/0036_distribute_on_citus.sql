-- 0036 the act of distributing (issue 16; ADRs 0126, 0145, 0146, 0149).
--
-- Without the citus extension this revision does nothing: plain PostgreSQL keeps its keys,
-- tables and functions. On a Citus coordinator it refuses (55000, one line naming the missing
-- step, nothing written) unless:
--   * at least one active worker is registered;
--   * symphony_owner can log in (ADR 0146: Citus opens its node-to-node connections as the
--     current user, the owner inside the outbox functions) and every node has a
--     pg_dist_authinfo row for it in this database (`symphony-schema cluster owner-login` does
--     both on the local topology; docs/operations/citus.md for other clusters);
--   * every key row of payment_outbox_idempotency_keys names its participant (0031 left NULL
--     the keys whose job had left no trace; a row Citus cannot place would be lost).
-- Then, in one transaction, in sequential mode (Citus refuses objects created after parallel
-- distributed work in one transaction) and with citus.enable_unsafe_triggers (the guards,
-- the FIFO and notify triggers fire on the shards):
--   0. the queue's keys widen to (participant_id, outbox_id) and (participant_id,
--      instruction_id, idempotency_key) under their old names, with plain indexes for the
--      look-ups by outbox_id and by key (ADR 0163); the key table's primary key widens to
--      (participant_id, instruction_id, idempotency_key): idempotency is per participant on a
--      cluster (ADR 0149 lists it among the exceptions);
--   1. the control plane becomes reference tables (read locally on every node, ADR 0146):
--      outbox_settings, outbox_rails, policy_versions, archived_ledger_partitions;
--   2. the allocator, the queue, the payloads, the ledger (with its partitions) and the key table
--      are distributed by participant_id in one co-location group; outbox_rail_references by
--      rail_reference in its own (unique per rail across participants: P7013);
--   3. the functions of the list below are distributed by their participant argument,
--      co-located with the queue. The list is the one place that names them.
-- payment_outbox_stale_outcomes, schema_migrations and alembic_version stay on the coordinator.
-- INV-058 (gate_cluster.DECLARED_TABLES / DECLARED_FUNCTIONS) declares the same placement.

DO $citus$
DECLARE
    v_workers integer;
    v_missing text;
    v_unplaced bigint;
    v_fn record;
    v_table text;
    v_hba text;
    v_ok boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;

    -- What the operator provides first -------------------------------------------------------
    EXECUTE $sql$
        SELECT count(*)::integer FROM pg_catalog.pg_dist_node
         WHERE isactive AND noderole = 'primary' AND groupid <> 0
    $sql$ INTO v_workers;
    IF v_workers = 0 THEN
        RAISE EXCEPTION 'cannot distribute: no active Citus worker is registered on this '
                        'coordinator; add the workers first (citus_add_node)'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE $sql$
        SELECT pg_catalog.string_agg(n.node, ', ' ORDER BY n.node)
          FROM (SELECT 'the coordinator' AS node
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_authinfo AS a
                                    WHERE a.rolename = 'symphony_owner')
                UNION ALL
                SELECT w.nodename || ':' || w.nodeport
                  FROM pg_catalog.run_command_on_workers($cmd$
                           SELECT count(*) FROM pg_catalog.pg_dist_authinfo
                            WHERE rolename = 'symphony_owner'
                       $cmd$::text) AS w
                 WHERE NOT w.success OR w.result = '0') AS n
    $sql$ INTO v_missing;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'cannot distribute: no pg_dist_authinfo row for symphony_owner in this '
                        'database on %; add it on every node first (ADR 0146: symphony-schema '
                        'cluster owner-login, or docs/operations/citus.md)', v_missing
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Every node's pg_hba.conf asks the owner for a password (or refuses it): the first host
    -- line that applies to the owner by user name is not trust. Read when the migrating user
    -- may read pg_hba_file_rules (a superuser); ADR 0149.
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        v_hba := $hba$
            SELECT COALESCE((SELECT r.auth_method <> 'trust'
                               FROM pg_catalog.pg_hba_file_rules AS r
                              WHERE r.error IS NULL
                                AND r.type IN ('host', 'hostssl', 'hostnossl')
                                AND r.user_name && ARRAY['symphony_owner', 'all']
                              ORDER BY r.rule_number
                              LIMIT 1), false)
        $hba$;
        EXECUTE v_hba INTO v_ok;
        SELECT pg_catalog.string_agg(n.node, ', ' ORDER BY n.node) INTO v_missing
          FROM (SELECT 'the coordinator' AS node WHERE NOT v_ok
                UNION ALL
                SELECT w.nodename || ':' || w.nodeport
                  FROM pg_catalog.run_command_on_workers(v_hba) AS w
                 WHERE NOT w.success OR w.result <> 't') AS n;
        IF v_missing IS NOT NULL THEN
            RAISE EXCEPTION 'cannot distribute: pg_hba.conf of % lets symphony_owner in without '
                            'a password; put "host all symphony_owner <node address>/32 '
                            'scram-sha-256" before its trust lines first (ADR 0146: '
                            'symphony-schema cluster owner-login, or docs/operations/citus.md)',
                v_missing
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;
    SELECT count(*) INTO v_unplaced
      FROM public.payment_outbox_idempotency_keys AS k
     WHERE k.participant_id IS NULL;
    IF v_unplaced > 0 THEN
        RAISE EXCEPTION 'cannot distribute: % key row(s) of payment_outbox_idempotency_keys have '
                        'no participant_id (their jobs left no trace); set it by hand from the '
                        'archive, or delete the rows of payments that may be enqueued again',
            v_unplaced
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    -- ADR 0146: on a cluster the owner logs in (between the nodes: pg_hba.conf and
    -- pg_dist_authinfo above). Revision 0003 makes it NOLOGIN on every migration of a database
    -- of the cluster; this one lets it log in again.
    ALTER ROLE symphony_owner LOGIN;

    PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);

    -- 0. Keys holding the distribution column ---------------------------------------------
    ALTER TABLE public.payment_outbox_pending
        DROP CONSTRAINT pk_payment_outbox_pending,
        ADD CONSTRAINT pk_payment_outbox_pending PRIMARY KEY (participant_id, outbox_id),
        DROP CONSTRAINT uq_payment_outbox_pending_instruction_idempotency,
        ADD CONSTRAINT uq_payment_outbox_pending_instruction_idempotency
            UNIQUE (participant_id, instruction_id, idempotency_key);
    CREATE INDEX ix_payment_outbox_pending_outbox_id
        ON public.payment_outbox_pending (outbox_id);
    CREATE INDEX ix_payment_outbox_pending_key
        ON public.payment_outbox_pending (instruction_id, idempotency_key);
    ALTER TABLE public.payment_outbox_idempotency_keys
        DROP CONSTRAINT pk_payment_outbox_idempotency_keys,
        ADD CONSTRAINT pk_payment_outbox_idempotency_keys
            PRIMARY KEY (participant_id, instruction_id, idempotency_key);

    -- 1. The control plane, on every node --------------------------------------------------
    PERFORM pg_catalog.create_reference_table('public.outbox_settings');
    PERFORM pg_catalog.create_reference_table('public.outbox_rails');
    PERFORM pg_catalog.create_reference_table('public.policy_versions');
    PERFORM pg_catalog.create_reference_table('public.archived_ledger_partitions');

    -- 2. The participant's rows, co-located; the rail references in their own group --------
    PERFORM pg_catalog.create_distributed_table('public.participant_outbox_sequences',
                                                'participant_id', colocate_with => 'none');
    FOREACH v_table IN ARRAY ARRAY['public.payment_outbox_pending',
                                   'public.payment_outbox_payloads',
                                   'public.payment_outbox_attempts',
                                   'public.payment_outbox_idempotency_keys']
    LOOP
        PERFORM pg_catalog.create_distributed_table(
            v_table, 'participant_id', colocate_with => 'public.participant_outbox_sequences');
    END LOOP;
    PERFORM pg_catalog.create_distributed_table('public.outbox_rail_references',
                                                'rail_reference', colocate_with => 'none');

    -- 3. The delegated functions: THE list (one line per function; INV-058 declares the same).
    FOR v_fn IN
        SELECT f.signature, f.argument, f.force
          FROM (VALUES
              ('public.claim_outbox_batch_for_participant(text, integer, text, integer, text[])',
               'p_participant_id', true),
              ('public.enqueue_payment_outbox(text, text, text, text, jsonb, timestamptz, '
               'smallint)', 'p_participant_id', true),
              ('public.enqueue_payment_outbox_batch_for_participant(text, text[], text[], '
               'text[], jsonb[], timestamptz[], smallint[])', 'p_participant_id', true),
              -- Not forced: they record rail references, whose registry is distributed by the
              -- reference (ADR 0146); outside a transaction block Citus still delegates them.
              ('public.complete_outbox_attempt_for_participant(text, uuid, uuid, text, '
               'public.outbox_attempt_state, text, text, text, text, integer, integer)',
               'p_participant_id', false),
              ('public.complete_outbox_attempts_batch_for_participant(text, text, uuid[], '
               'uuid[], text[], text[], text[], text[], text[], integer[], integer[])',
               'p_participant_id', false),
              ('public.repair_expired_leases_for_participant(text, integer, text)',
               'p_participant_id', true),
              ('public.cancel_outbox_job_for_participant(text, uuid, text, text)',
               'p_participant_id', true),
              ('public.redrive_outbox_job_for_participant(text, uuid, text, text)',
               'p_participant_id', true),
              ('public.extend_outbox_lease_for_participant(text, uuid, uuid, text, integer)',
               'p_participant_id', true)
          ) AS f (signature, argument, force)
    LOOP
        PERFORM pg_catalog.create_distributed_function(
            v_fn.signature::pg_catalog.regprocedure, v_fn.argument, colocate_with => 'payment_outbox_pending',
            force_delegation => v_fn.force);
    END LOOP;
END
$citus$;
