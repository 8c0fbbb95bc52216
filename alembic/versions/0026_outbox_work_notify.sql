-- 0022 wake idle executors without polling (issue 17 P6, ADR 0151).
--
-- A row-level AFTER INSERT trigger on the queue sends NOTIFY symphony_outbox_work (payload: the
-- job's rail code) when the inserted job is claimable at once: its participant's head, due now.
-- Enqueue needs no change (it inserts the row; the trigger fires for any writer, ALWAYS, like the
-- head triggers of 0014). PostgreSQL delivers a notification only when the transaction commits
-- (so a woken worker's claim sees the job) and folds identical notifications of one transaction
-- into one, so a transaction that enqueues many jobs of a rail wakes the listeners once.
--
-- Coalesced across transactions too: a transaction that notifies takes PostgreSQL's cluster-wide
-- notify lock at commit and holds it through its commit's flush, which serialises the commits of
-- all notifying transactions (measured: 8 enqueue clients ran at ~210 jobs/s with an ungated
-- trigger against ~640 without). So only one transaction per rail notifies at a time: it holds
-- the rail's row in outbox_rails (FOR NO KEY UPDATE SKIP LOCKED, no advisory lock: INV rule)
-- until it commits; a concurrent enqueue of that rail skips its notification (and the lock) and
-- commits in the group. Its job is found by the workers the holder's notification wakes when it
-- committed first, else by the next notification or the executors' fallback poll.
--
-- A job queued behind its participant's head is not claimable yet and sends nothing: the worker
-- that completes the head claims again anyway. Work that becomes due with time (a retry's delay,
-- a not-before time, an expired lease) sends nothing either: executors keep a slow fallback poll
-- (docs/operations/executor-guide.md, reference_worker.wait_for_work).

CREATE FUNCTION public.notify_outbox_work() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    -- The rail's gate: held by this transaction (taken now or by an earlier job of it) or by a
    -- concurrent one, which will notify for the rail when it commits.
    PERFORM 1
       FROM public.outbox_rails AS r
      WHERE r.rail_code = NEW.rail_type
        FOR NO KEY UPDATE SKIP LOCKED;
    IF FOUND THEN
        PERFORM pg_catalog.pg_notify('symphony_outbox_work', NEW.rail_type);
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION public.notify_outbox_work() IS
'Trigger function (AFTER INSERT of a claimable head on payment_outbox_pending): NOTIFY '
'symphony_outbox_work with the job''s rail code, delivered at commit, folded per transaction; '
'only the transaction holding the rail''s outbox_rails row (FOR NO KEY UPDATE SKIP LOCKED) '
'notifies, concurrent ones of the rail skip.';

REVOKE ALL ON FUNCTION public.notify_outbox_work() FROM PUBLIC;

GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.notify_outbox_work() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

CREATE TRIGGER trg_notify_outbox_work
    AFTER INSERT ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (new.is_head AND new.lease_token IS NULL AND new.next_attempt_at <= now())
    EXECUTE FUNCTION public.notify_outbox_work();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_notify_outbox_work;
