-- 0035 the guard triggers, restated for shards (issue 16, ADRs 0145 step 2, 0149).
--
-- On a distributed database the guards fire on a worker's shard, where Citus lets a statement
-- reach only the co-located shards of the same node: a look-up of the ledger or the key table
-- by outbox_id or by key alone is a query of every shard and cannot be planned there
-- (0A000 could not create distributed plan; tests/cluster). Each guard now asks first whether
-- it fires on the table itself (one node, or a coordinator whose tables are not distributed) or
-- on a shard of it (TG_RELID is then the shard, not the table):
-- * on the table itself, every statement is the one of 0011/0012/0025, except that a key row
--   the P7005 guards insert now records the row's participant_id (0031 left it NULL);
-- * on a shard, every statement filters by the row's participant_id (the distribution column),
--   so it runs on the co-located shard of the same node: the key row is written and locked
--   under (participant_id, instruction_id, idempotency_key), the queue and the ledger are read
--   under (participant_id, outbox_id). guard_attempt_participant has nothing to look up there:
--   on a distributed ledger a job is (participant_id, outbox_id), the queue's and the ledger's
--   keys hold per that pair, and an attempt naming another participant names another job
--   (ADR 0149 lists it among the cluster's exceptions).
-- guard_archived_outbox_id and guard_idempotency_key_archived read archived_ledger_partitions,
-- a reference table on a distributed database (a local read on every node): unchanged.

CREATE OR REPLACE FUNCTION public.guard_attempt_participant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

CREATE OR REPLACE FUNCTION public.guard_outbox_pending_write() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

CREATE OR REPLACE FUNCTION public.guard_outbox_attempts_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_attempt_participant() IS
'Trigger function: refuses (23505) a ledger row whose participant_id differs from the one the '
'job''s earlier rows name, so the unique keys that carry participant_id still allow one outcome, '
'one redrive and one row per attempt number per job. On a shard of a distributed ledger (Citus) '
'it looks nothing up: a job is (participant_id, outbox_id) there (revision 0035, ADR 0149).';

COMMENT ON COLUMN public.payment_outbox_idempotency_keys.participant_id IS
'The participant of the job the key names (revision 0031): written by both enqueues and, since '
'0035, by the P7005 guards (hand writes); back-filled from the queue, the ledger or the payload '
'row. NULL for keys whose job had left no trace when 0031 ran (archived, or removed by hand) and '
'for key rows inserted by redrive_outbox_job (a job without a key row).';
