-- 0025 partition the attempts ledger (issue 15, ADR 0130-0134).
--
-- public.payment_outbox_attempts becomes a table partitioned by RANGE (outbox_id): outbox_id is
-- a UUIDv7 whose first 48 bits are the enqueue time in milliseconds, so every attempt of a job
-- lands in the partition of its enqueue day. The partitions live in schema symphony_ledger
-- (owned by symphony_owner, no privilege for anybody else): readers and writers go through the
-- parent, whose privileges are the only ones checked. The revision does not depend on the exact
-- column list: the new parent is built from the old table with LIKE, the rows are copied with
-- SELECT *, and the functions keep referring to the table by name (none is restated here).
--
-- Executed by the migration engine as one string inside one transaction.


-- 1. The partitions' schema. Its relations are operational state (like rows: which days exist
--    depends on when maintenance ran), so the baseline leaves the schema out (ADR 0130).
CREATE SCHEMA symphony_ledger;
ALTER SCHEMA symphony_ledger OWNER TO symphony_owner;
REVOKE ALL ON SCHEMA symphony_ledger FROM PUBLIC;


-- 2. Move the old table aside, freeing its index-backed names. The renames (squawk) are the
--    point: inside this transaction the partitioned table takes over every name, and the old one
--    is dropped below; clients and functions only ever see public.payment_outbox_attempts.
--    First, the ledger must be exactly what revisions 0001-0024 made of it (the list below is
--    read from the catalog at 0024): an index or trigger added by hand would otherwise be lost
--    silently with the old table.
DO $$
DECLARE
    v_indexes text;
    v_triggers text;
BEGIN
    SELECT pg_catalog.string_agg(c.relname::text, ',' ORDER BY c.relname) INTO v_indexes
      FROM pg_catalog.pg_index AS x
      JOIN pg_catalog.pg_class AS c ON c.oid = x.indexrelid
     WHERE x.indrelid = 'public.payment_outbox_attempts'::pg_catalog.regclass;
    SELECT pg_catalog.string_agg(t.tgname::text, ',' ORDER BY t.tgname) INTO v_triggers
      FROM pg_catalog.pg_trigger AS t
     WHERE t.tgrelid = 'public.payment_outbox_attempts'::pg_catalog.regclass
       AND NOT t.tgisinternal;
    IF v_indexes IS DISTINCT FROM
           'ix_payment_outbox_attempts_instruction_idempotency,'
           'ix_payment_outbox_attempts_recent_trouble,ix_payment_outbox_attempts_related_outbox,'
           'pk_payment_outbox_attempts,uq_payment_outbox_attempts_one_outcome,'
           'uq_payment_outbox_attempts_one_redrive,uq_payment_outbox_attempts_outbox_attempt_no'
       OR v_triggers IS DISTINCT FROM
           'trg_deny_outbox_attempts_mutation,trg_deny_outbox_attempts_truncate,'
           'trg_guard_outbox_attempts_insert' THEN
        RAISE EXCEPTION 'public.payment_outbox_attempts is not the ledger revision 0024 left '
                        '(indexes: %; triggers: %); nothing was converted', v_indexes, v_triggers
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Remove the hand-made objects, or add them to a revision first.';
    END IF;
END
$$;

-- squawk-ignore renaming-table
ALTER TABLE public.payment_outbox_attempts RENAME TO payment_outbox_attempts_old;
ALTER TABLE public.payment_outbox_attempts_old
    -- squawk-ignore renaming-object
    RENAME CONSTRAINT pk_payment_outbox_attempts TO pk_payment_outbox_attempts_old;
ALTER TABLE public.payment_outbox_attempts_old
    -- squawk-ignore renaming-object
    RENAME CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no
    TO uq_payment_outbox_attempts_old_outbox_attempt_no;
ALTER INDEX public.uq_payment_outbox_attempts_one_outcome
    -- squawk-ignore renaming-object
    RENAME TO uq_payment_outbox_attempts_old_one_outcome;
ALTER INDEX public.uq_payment_outbox_attempts_one_redrive
    -- squawk-ignore renaming-object
    RENAME TO uq_payment_outbox_attempts_old_one_redrive;
ALTER INDEX public.ix_payment_outbox_attempts_related_outbox
    -- squawk-ignore renaming-object
    RENAME TO ix_payment_outbox_attempts_old_related_outbox;
ALTER INDEX public.ix_payment_outbox_attempts_recent_trouble
    -- squawk-ignore renaming-object
    RENAME TO ix_payment_outbox_attempts_old_recent_trouble;
ALTER INDEX public.ix_payment_outbox_attempts_instruction_idempotency
    -- squawk-ignore renaming-object
    RENAME TO ix_payment_outbox_attempts_old_instruction_idempotency;


-- 3. The partitioned parent: every column, default, NOT NULL, CHECK and comment of the old table
--    (the columns of 0014 and 0017, the payload nullable since 0024). (sqlfluff's postgres
--    dialect cannot parse LIKE together with PARTITION BY: noqa PRS.)
CREATE TABLE public.payment_outbox_attempts (  -- noqa: PRS
    LIKE public.payment_outbox_attempts_old
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE
    INCLUDING COMPRESSION INCLUDING GENERATED
) PARTITION BY RANGE (outbox_id);

COMMENT ON TABLE public.payment_outbox_attempts IS
'Append-only ledger of outbox attempts (UPDATE, DELETE and TRUNCATE raise P0001, on every '
'partition too), written only by the outbox functions. At most one outcome (DISPATCHED, FAILED '
'or CANCELLED) per outbox_id; a REDRIVEN row after FAILED or CANCELLED names the job that '
'replaced it. All rows of a job name its participant. Partitioned by RANGE (outbox_id), one '
'partition per UTC enqueue day in schema symphony_ledger (ADR 0130).';

-- Unique keys contain the partition key (outbox_id) and the future distribution column
-- (participant_id, ADR 0126), outbox_id first: every look-up of the outbox functions names the
-- job, not always its participant. They keep their rules because every row of a job names the
-- same participant (trg_guard_attempt_participant below, ADR 0134).
ALTER TABLE public.payment_outbox_attempts
    ADD CONSTRAINT pk_payment_outbox_attempts
    PRIMARY KEY (outbox_id, participant_id, attempt_id);
ALTER TABLE public.payment_outbox_attempts
    ADD CONSTRAINT uq_payment_outbox_attempts_outbox_attempt_no
    UNIQUE (outbox_id, participant_id, attempt_no);

-- At most one outcome per job: a second one would be a double dispatch (0018).
CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_outcome
    ON public.payment_outbox_attempts (outbox_id, participant_id)
    WHERE state IN ('DISPATCHED', 'FAILED', 'CANCELLED');

-- A job is redriven at most once (0018).
CREATE UNIQUE INDEX uq_payment_outbox_attempts_one_redrive
    ON public.payment_outbox_attempts (outbox_id, participant_id)
    WHERE state = 'REDRIVEN';

-- outbox show: the job a redriven job came from (0018). One probe per partition: the related
-- job's enqueue day is not known from the new job's id.
CREATE INDEX ix_payment_outbox_attempts_related_outbox
    ON public.payment_outbox_attempts (related_outbox_id)
    WHERE related_outbox_id IS NOT NULL;

-- outbox_metrics(): the last hour's retries, failures, cancellations and lost leases (0018).
CREATE INDEX ix_payment_outbox_attempts_recent_trouble
    ON public.payment_outbox_attempts (created_at)
    WHERE state IN ('RETRYABLE', 'FAILED', 'CANCELLED', 'ZOMBIE_REQUEUE');

-- Kept for reading the history of a key (the control plane, the auditor); enqueue finds a key in
-- public.payment_outbox_idempotency_keys first (ADR 0133).
CREATE INDEX ix_payment_outbox_attempts_instruction_idempotency
    ON public.payment_outbox_attempts (instruction_id, idempotency_key);


-- 4. UUID bounds of a UTC day, and the partition maintenance function.
CREATE FUNCTION public.ledger_uuid_lower_bound(p_at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.substr(h, 1, 8) || '-' || pg_catalog.substr(h, 9, 4)
            || '-0000-0000-000000000000')::pg_catalog.uuid
      FROM (SELECT pg_catalog.lpad(pg_catalog.to_hex(
                       pg_catalog.floor(pg_catalog.date_part('epoch', p_at) * 1000)::bigint),
                   12, '0') AS h) AS x
$$;

COMMENT ON FUNCTION public.ledger_uuid_lower_bound(timestamptz) IS
'The smallest UUIDv7 generated at or after p_at (its first 48 bits are the Unix time in '
'milliseconds): the range bound of a ledger partition.';

REVOKE ALL ON FUNCTION public.ledger_uuid_lower_bound(timestamptz) FROM PUBLIC;

-- Every partition carries its own TRUNCATE trigger: statement triggers of a partitioned table
-- do not fire for a TRUNCATE naming one partition. Row triggers are cloned by PostgreSQL with
-- the parent's ENABLE ALWAYS. Also used on a partition somebody created by hand (ADR 0131).
CREATE FUNCTION public.protect_ledger_partition(p_partition regclass) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.protect_ledger_partition(regclass) IS
'Gives a ledger partition its own BEFORE TRUNCATE deny trigger, sets its append-only and '
'insert-guard triggers to ENABLE ALWAYS and names its indexes after the parent''s (plus the '
'partition suffix). Returns true when something had to be fixed.';

REVOKE ALL ON FUNCTION public.protect_ledger_partition(regclass) FROM PUBLIC;

CREATE FUNCTION public.ensure_ledger_partitions(p_days_ahead integer DEFAULT 14)
RETURNS TABLE (partition_name text, action text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.ensure_ledger_partitions(integer) IS
'Creates the daily ledger partitions (symphony_ledger.attempts_pYYYYMMDD, UTC days) from today '
'to p_days_ahead days ahead (default 14, 1-366) and protects every partition; returns what it '
'created or fixed. 22023 on a bad argument, 55000 when the default partition holds rows of a '
'day to create.';

REVOKE ALL ON FUNCTION public.ensure_ledger_partitions(integer) FROM PUBLIC;


-- 5. The record of archived partitions (written only by archive_ledger_partition and
--    restore bookkeeping below; nobody but the owner can read or change it).
CREATE TABLE public.archived_ledger_partitions (
    partition_name text NOT NULL,
    range_from uuid NOT NULL,
    range_to uuid NOT NULL,
    state text NOT NULL,
    row_count bigint NOT NULL,
    sha256 text NOT NULL,
    file_name text NOT NULL,
    columns text[] NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    archived_by text NOT NULL DEFAULT session_user,
    restored_at timestamptz,
    CONSTRAINT pk_archived_ledger_partitions PRIMARY KEY (partition_name),
    CONSTRAINT ck_archived_ledger_partitions_state CHECK (state IN ('ARCHIVED', 'RESTORED')),
    CONSTRAINT ck_archived_ledger_partitions_range CHECK (range_from < range_to),
    CONSTRAINT ck_archived_ledger_partitions_row_count CHECK (row_count >= 0),
    CONSTRAINT ck_archived_ledger_partitions_sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_archived_ledger_partitions_restored_at
        CHECK ((state = 'RESTORED') = (restored_at IS NOT NULL))
);

COMMENT ON TABLE public.archived_ledger_partitions IS
'One row per ledger partition written to a verified archive file and dropped (state ARCHIVED), '
'or brought back from it (RESTORED): its outbox_id range, row count and the sha256 of the file.';


-- 6. The default partition: an outbox_id outside every daily range (not a UUIDv7, or beyond the
--    days created ahead) is still stored, never refused; the gate reports any row in it.
CREATE TABLE public.payment_outbox_attempts_default
    PARTITION OF public.payment_outbox_attempts DEFAULT;

COMMENT ON TABLE public.payment_outbox_attempts_default IS
'Default partition of the attempts ledger: rows whose outbox_id falls in no daily partition. '
'Must stay empty (the invariants gate reports rows here).';


-- 7. The history partition: every outbox_id before today (UTC); the rows are copied in step 13,
--    once today's and the coming days' partitions exist (a job enqueued today has its rows there).
DO $$
DECLARE
    v_to uuid := public.ledger_uuid_lower_bound(
        (pg_catalog.now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC');
BEGIN
    EXECUTE pg_catalog.format(
        'CREATE TABLE symphony_ledger.attempts_history PARTITION OF public.payment_outbox_attempts '
        'FOR VALUES FROM (MINVALUE) TO (%L)', v_to);
END
$$;


-- 10. Archive and restore bookkeeping (the files are written and verified by
--     `symphony-schema attempts archive/restore`, ADR 0132).
CREATE FUNCTION public.archive_ledger_partition(
    p_partition text,
    p_row_count bigint,
    p_sha256 text,
    p_file_name text,
    p_columns text[]
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
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
$$;

COMMENT ON FUNCTION public.archive_ledger_partition(text, bigint, text, text, text[]) IS
'The retention step after the archive file was written and re-read: locks the partition, '
'checks that no job of its range is queued (55000) and that it holds exactly p_row_count rows '
'(22000), records it in public.archived_ledger_partitions and drops it, in one transaction.';

REVOKE ALL ON FUNCTION public.archive_ledger_partition(text, bigint, text, text, text[])
    FROM PUBLIC;

CREATE FUNCTION public.mark_ledger_partition_restored(p_partition text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.mark_ledger_partition_restored(text) IS
'The last restore step: checks the recreated partition holds the recorded row count, protects '
'it and marks its archive RESTORED.';

REVOKE ALL ON FUNCTION public.mark_ledger_partition_restored(text) FROM PUBLIC;


-- 11. A duplicate enqueue of a key whose job's partition was archived: enqueue finds neither a
--     queue row nor a ledger row and moves the key to a new outbox_id. That move is refused, so
--     the archived payment is recognised and never queued again (ADR 0133).
CREATE FUNCTION public.guard_idempotency_key_archived() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_idempotency_key_archived() IS
'Trigger function: refuses (P7020 JOB_ARCHIVED) moving an idempotency key away from an outbox_id '
'whose ledger partition is archived, so a duplicate of an archived payment is never queued again.';

REVOKE ALL ON FUNCTION public.guard_idempotency_key_archived() FROM PUBLIC;

CREATE TRIGGER trg_guard_idempotency_key_archived
    BEFORE UPDATE OF outbox_id ON public.payment_outbox_idempotency_keys
    FOR EACH ROW
    WHEN (OLD.outbox_id IS DISTINCT FROM NEW.outbox_id)
    EXECUTE FUNCTION public.guard_idempotency_key_archived();

ALTER TABLE public.payment_outbox_idempotency_keys
    ENABLE ALWAYS TRIGGER trg_guard_idempotency_key_archived;


-- Direct writes by anyone but the outbox functions (which run as symphony_owner and skip these
-- triggers): since 0019 no runtime role may write the queue or the ledger, but a superuser or
-- the migrating role repairing by hand still can, and the P7005 guards of 0011/0012 still watch
-- them. A queue row or a ledger row for an outbox_id in an archived range would queue the payment
-- again (the P7005 guard cannot see its archived terminal attempt) or put a second outcome row in
-- the default partition. Both are refused.
CREATE FUNCTION public.guard_archived_outbox_id() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_archived_outbox_id() IS
'Trigger function: refuses (P7020 JOB_ARCHIVED) a queue or ledger row written by anyone but the '
'outbox functions (a superuser or the migrating role by hand) for an outbox_id whose ledger '
'partition is archived.';

REVOKE ALL ON FUNCTION public.guard_archived_outbox_id() FROM PUBLIC;

CREATE TRIGGER trg_guard_archived_outbox_id
    BEFORE INSERT OR UPDATE OF outbox_id ON public.payment_outbox_pending
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.guard_archived_outbox_id();

ALTER TABLE public.payment_outbox_pending ENABLE ALWAYS TRIGGER trg_guard_archived_outbox_id;

CREATE TRIGGER trg_guard_archived_outbox_id
    BEFORE INSERT ON public.payment_outbox_attempts
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.guard_archived_outbox_id();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_archived_outbox_id;


-- Every row of a job names the job's participant, so the unique keys above, which carry
-- participant_id for Citus (ADR 0126), keep one outcome, one redrive and one attempt number per
-- job (ADR 0134). The outbox functions copy participant_id from the job's queue row (or, for a
-- redrive, from its outcome row) while holding that row's lock; this trigger makes it a rule for
-- every writer, the owner included. It reads the job's own rows in one partition.
CREATE FUNCTION public.guard_attempt_participant() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_participant text;
BEGIN
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

COMMENT ON FUNCTION public.guard_attempt_participant() IS
'Trigger function: refuses (23505) a ledger row whose participant_id differs from the one the '
'job''s earlier rows name, so the unique keys that carry participant_id still allow one outcome, '
'one redrive and one row per attempt number per job.';

REVOKE ALL ON FUNCTION public.guard_attempt_participant() FROM PUBLIC;


-- 12. Ownership (in a CREATE window on public, as in 0011). The partitions are created by
--     ensure_ledger_partitions() as symphony_owner; the ones made here are handed over.
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TABLE public.payment_outbox_attempts OWNER TO symphony_owner;
ALTER TABLE public.payment_outbox_attempts_default OWNER TO symphony_owner;
ALTER TABLE public.archived_ledger_partitions OWNER TO symphony_owner;
ALTER TABLE symphony_ledger.attempts_history OWNER TO symphony_owner;
ALTER FUNCTION public.ledger_uuid_lower_bound(timestamptz) OWNER TO symphony_owner;
ALTER FUNCTION public.protect_ledger_partition(regclass) OWNER TO symphony_owner;
ALTER FUNCTION public.ensure_ledger_partitions(integer) OWNER TO symphony_owner;
ALTER FUNCTION public.archive_ledger_partition(text, bigint, text, text, text[])
    OWNER TO symphony_owner;
ALTER FUNCTION public.mark_ledger_partition_restored(text) OWNER TO symphony_owner;
ALTER FUNCTION public.guard_idempotency_key_archived() OWNER TO symphony_owner;
ALTER FUNCTION public.guard_archived_outbox_id() OWNER TO symphony_owner;
ALTER FUNCTION public.guard_attempt_participant() OWNER TO symphony_owner;
-- Today and 14 days ahead, and every partition protected and its indexes named (the default
-- partition's are in public, hence still inside the window).
SELECT pg_catalog.count(*) FROM public.ensure_ledger_partitions(14);
REVOKE CREATE ON SCHEMA public FROM symphony_owner;


-- 13. The existing rows: before today into the history partition, today's jobs into today's.
--     Before the insert guards below (they would refuse rows of jobs still queued).
INSERT INTO public.payment_outbox_attempts SELECT * FROM public.payment_outbox_attempts_old;


-- 14. The ledger's triggers, on the parent and (cloned by PostgreSQL, with the parent's ENABLE
--     ALWAYS) on every partition; TRUNCATE has its own trigger per partition (protect above).
CREATE TRIGGER trg_deny_outbox_attempts_mutation
    BEFORE UPDATE OR DELETE ON public.payment_outbox_attempts
    FOR EACH ROW EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

CREATE TRIGGER trg_deny_outbox_attempts_truncate
    BEFORE TRUNCATE ON public.payment_outbox_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION public.deny_outbox_attempts_mutation();

CREATE TRIGGER trg_guard_outbox_attempts_insert
    BEFORE INSERT ON public.payment_outbox_attempts
    FOR EACH ROW
    WHEN (current_user <> 'symphony_owner'::name)
    EXECUTE FUNCTION public.guard_outbox_attempts_insert();

CREATE TRIGGER trg_guard_attempt_participant
    BEFORE INSERT ON public.payment_outbox_attempts
    FOR EACH ROW EXECUTE FUNCTION public.guard_attempt_participant();

ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_mutation;
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_deny_outbox_attempts_truncate;
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_outbox_attempts_insert;
ALTER TABLE public.payment_outbox_attempts ENABLE ALWAYS TRIGGER trg_guard_attempt_participant;


-- 15. The old table goes; the functions name public.payment_outbox_attempts and now reach the
--     partitioned one (none is restated here).
-- squawk-ignore ban-drop-table
DROP TABLE public.payment_outbox_attempts_old;


-- 16. Privileges as 0019 left them: read by control, readonly and the auditor; written only by
--     the outbox functions (symphony_owner). Partitions and the archive record: owner only.
REVOKE ALL ON TABLE public.payment_outbox_attempts FROM PUBLIC;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_readonly;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_auditor;
REVOKE ALL ON TABLE public.payment_outbox_attempts_default FROM PUBLIC;
REVOKE ALL ON TABLE public.archived_ledger_partitions FROM PUBLIC;
