-- 0016 policy rotation (issue 14, ADRs 0105-0107): the control-plane side of
-- public.policy_versions.
--
-- 1. public.rotate_policy_version(version, checksum, grace) - control only - inserts the new
--    version as ACTIVE and demotes the current ACTIVE to GRACE with grace_expires_at =
--    statement_timestamp() + grace, in one transaction serialised by SHARE ROW EXCLUSIVE on the
--    table (the lock seed-policy takes too). Idempotent for the same version and checksum.
--    SQLSTATEs: 22023 (bad argument), P7101 POLICY_CHECKSUM_CONFLICT, P7102
--    POLICY_VERSION_NOT_NEWER ("newer": ADR 0105), P7103 NO_ACTIVE_POLICY.
-- 2. public.policy_version_accepted(version) - ingest, executor, control - is the version ACTIVE,
--    or GRACE with grace_expires_at still ahead? Never depends on the retirer having run.
-- 3. public.retire_expired_policy_versions() - control - GRACE rows past their expiry become
--    RETIRED.
-- 4. Immutability in the database (ADR 0106), by triggers enabled ALWAYS: a version's version,
--    checksum and created_at never change (P7104); rows are never deleted or truncated; RETIRED
--    rows never change; a new row is ACTIVE; status moves only ACTIVE -> GRACE -> RETIRED, a GRACE
--    row keeps its expiry. A deferred constraint trigger refuses to commit a transaction that
--    demoted the ACTIVE row without adding another (P7103): never zero ACTIVE versions.


-- "Newer" (ADR 0105): versions compare as runs of digits (by numeric value) and runs of other
-- characters (byte-wise), left to right; a version that is a prefix of another is older. The key
-- encodes a digit run as '1', its length without leading zeros in four digits, then the digits;
-- another run as '2', the run, then chr(1) (control characters are refused in versions). Keys
-- compare with COLLATE "C".
CREATE FUNCTION public.policy_version_sort_key(p_version text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.policy_version_sort_key(text) IS
'Sort key of a policy version (ADR 0105): digit runs compare as numbers, other runs byte-wise, '
'compare keys with COLLATE "C". Internal: used by rotate_policy_version().';

REVOKE ALL ON FUNCTION public.policy_version_sort_key(text) FROM PUBLIC;


CREATE FUNCTION public.rotate_policy_version(
    p_version text,
    p_checksum text,
    p_grace interval
) RETURNS TABLE (
    version text,
    status text,
    checksum text,
    created boolean,
    demoted_version text,
    demoted_grace_expires_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
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
$$;

COMMENT ON FUNCTION public.rotate_policy_version(text, text, interval) IS
'Makes p_version (checksum p_checksum) the ACTIVE policy version and demotes the current ACTIVE '
'one to GRACE until statement_timestamp() + p_grace, atomically; a no-op for a version that '
'exists with the same checksum. 22023 bad argument, P7101 checksum conflict, P7102 not newer, '
'P7103 no ACTIVE version. EXECUTE for symphony_control only.';

REVOKE ALL ON FUNCTION public.rotate_policy_version(text, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.rotate_policy_version(text, text, interval) TO symphony_control;


-- Per request: one primary-key lookup. statement_timestamp(), so a long transaction does not
-- keep accepting a version whose grace has ended.
CREATE FUNCTION public.policy_version_accepted(p_version text) RETURNS boolean
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.policy_version_accepted(text) IS
'True when the policy version is ACTIVE, or GRACE with grace_expires_at after '
'statement_timestamp(); false otherwise (unknown, RETIRED, expired, NULL). Does not depend on '
'retire_expired_policy_versions() having run.';

REVOKE ALL ON FUNCTION public.policy_version_accepted(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.policy_version_accepted(text)
    TO symphony_ingest, symphony_executor, symphony_control;


CREATE FUNCTION public.retire_expired_policy_versions()
RETURNS TABLE (version text, grace_expires_at timestamptz)
LANGUAGE sql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    UPDATE public.policy_versions AS pv
       SET status = 'RETIRED'::public.policy_version_status
     WHERE pv.status = 'GRACE'::public.policy_version_status
       AND pv.grace_expires_at <= statement_timestamp()
    RETURNING pv.version, pv.grace_expires_at
$$;

COMMENT ON FUNCTION public.retire_expired_policy_versions() IS
'Moves every GRACE policy version whose grace_expires_at has passed to RETIRED and returns them. '
'EXECUTE for symphony_control (a scheduler); acceptance never waits for it.';

REVOKE ALL ON FUNCTION public.retire_expired_policy_versions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.retire_expired_policy_versions() TO symphony_control;


-- INV-053: what identifies a published version never changes, for anyone.
CREATE FUNCTION public.guard_policy_version_identity() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_policy_version_identity() IS
'Trigger function: refuses (P7104) any change of a policy version''s version, checksum or '
'created_at.';

REVOKE ALL ON FUNCTION public.guard_policy_version_identity() FROM PUBLIC;


-- INV-052: the lifecycle. New rows are ACTIVE; ACTIVE -> GRACE -> RETIRED only; a GRACE row keeps
-- its expiry; RETIRED rows never change; nothing is deleted or truncated.
CREATE FUNCTION public.guard_policy_version_lifecycle() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.guard_policy_version_lifecycle() IS
'Trigger function: refuses (P7104) deleting or truncating policy versions, changing a RETIRED '
'one, inserting one that is not ACTIVE, and any status move but ACTIVE -> GRACE -> RETIRED.';

REVOKE ALL ON FUNCTION public.guard_policy_version_lifecycle() FROM PUBLIC;


-- INV-050: a transaction that demoted the ACTIVE version must add another before it commits.
-- SECURITY DEFINER: it reads the table whoever made the change.
CREATE FUNCTION public.keep_one_active_policy_version() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

COMMENT ON FUNCTION public.keep_one_active_policy_version() IS
'Constraint trigger function (deferred): refuses (P7103) to commit a transaction that leaves '
'public.policy_versions without an ACTIVE version after demoting one.';

REVOKE ALL ON FUNCTION public.keep_one_active_policy_version() FROM PUBLIC;


GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER FUNCTION public.policy_version_sort_key(text) OWNER TO symphony_owner;
ALTER FUNCTION public.rotate_policy_version(text, text, interval) OWNER TO symphony_owner;
ALTER FUNCTION public.policy_version_accepted(text) OWNER TO symphony_owner;
ALTER FUNCTION public.retire_expired_policy_versions() OWNER TO symphony_owner;
ALTER FUNCTION public.guard_policy_version_identity() OWNER TO symphony_owner;
ALTER FUNCTION public.guard_policy_version_lifecycle() OWNER TO symphony_owner;
ALTER FUNCTION public.keep_one_active_policy_version() OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;


CREATE TRIGGER trg_guard_policy_version_identity
    BEFORE UPDATE ON public.policy_versions
    FOR EACH ROW
    EXECUTE FUNCTION public.guard_policy_version_identity();

CREATE TRIGGER trg_guard_policy_version_lifecycle
    BEFORE INSERT OR UPDATE OR DELETE ON public.policy_versions
    FOR EACH ROW
    EXECUTE FUNCTION public.guard_policy_version_lifecycle();

CREATE TRIGGER trg_guard_policy_version_truncate
    BEFORE TRUNCATE ON public.policy_versions
    FOR EACH STATEMENT
    EXECUTE FUNCTION public.guard_policy_version_lifecycle();

CREATE CONSTRAINT TRIGGER trg_policy_versions_keep_one_active
    AFTER UPDATE ON public.policy_versions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (old.status = 'ACTIVE'::public.policy_version_status)
    EXECUTE FUNCTION public.keep_one_active_policy_version();

-- ENABLE ALWAYS: session_replication_role = replica must not switch any of them off.
ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_identity;
ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_lifecycle;
ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_guard_policy_version_truncate;
ALTER TABLE public.policy_versions ENABLE ALWAYS TRIGGER trg_policy_versions_keep_one_active;

COMMENT ON TABLE public.policy_versions IS
'Boot policy versions. Exactly one ACTIVE row once seeded (at most one: '
'uq_policy_versions_one_active; never none again: trg_policy_versions_keep_one_active). Rotated '
'with rotate_policy_version(); rows are immutable but for ACTIVE -> GRACE -> RETIRED.';
