-- 0012 serialise the P7005 guards on the payment's idempotency key (red team, ADR 0100).
--
-- The guards of 0011 (ADR 0063) each looked at committed rows only. Two control-plane
-- transactions racing on one job - one writing its queue row again, the other inserting its
-- terminal attempt - both passed, and the worker's completion then failed for ever with 23505
-- (uq_payment_outbox_attempts_one_terminal), the undocumented end issue 11 item 4 forbids.
--
-- Both guards now first write the payment's row in public.payment_outbox_idempotency_keys
-- (inserted when missing, else updated in place without a change): the second of two racing
-- writers waits for the first to commit and then sees its row (READ COMMITTED: P7005), or gets
-- 40001 (REPEATABLE READ, SERIALIZABLE) and retries into P7005. Enqueue serialises on the same
-- row, so a control-plane write and an enqueue of one key are serialised too. The outbox
-- functions (as symphony_owner) skip the guards, as before: the hot path is unchanged.
--
-- The guards read and write the key table, on which no runtime role has a privilege, so they
-- run as their owner (SECURITY DEFINER, search_path pinned). CREATE OR REPLACE keeps owner,
-- grants (none) and the triggers.

CREATE OR REPLACE FUNCTION public.guard_outbox_attempts_insert() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_outbox_attempts_insert() IS
'Trigger function: refuses (P7005) an attempt inserted by anyone but the outbox functions for a '
'job that is still in public.payment_outbox_pending; serialised with enqueue and the queue guard '
'on the payment''s row in payment_outbox_idempotency_keys.';


CREATE OR REPLACE FUNCTION public.guard_outbox_pending_write() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_outbox_pending_write() IS
'Trigger function: refuses (P7005) a queue row written by anyone but the outbox functions for a '
'job that already has a terminal attempt; serialised with enqueue and the attempts guard on the '
'payment''s row in payment_outbox_idempotency_keys.';
