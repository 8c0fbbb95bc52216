-- 0005 policy versions: the policy status type, public.policy_versions, its constraints and its
-- grants. Services boot with SELECT version FROM public.policy_versions WHERE is_active; seeding
-- and the boot check live outside migrations (no seed rows here).


CREATE TYPE public.policy_version_status AS ENUM ('ACTIVE', 'GRACE', 'RETIRED');

COMMENT ON TYPE public.policy_version_status IS
'Lifecycle of a policy version: ACTIVE (the one services boot with), GRACE (still accepted until '
'grace_expires_at), RETIRED.';


CREATE TABLE public.policy_versions (
    version text NOT NULL,
    status public.policy_version_status NOT NULL,
    -- Stored so the boot query is a plain boolean filter that cannot be written inconsistently.
    is_active boolean NOT NULL
        GENERATED ALWAYS AS (status = 'ACTIVE'::public.policy_version_status) STORED,
    grace_expires_at timestamptz,
    checksum text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_policy_versions PRIMARY KEY (version),
    -- Lowercase hex SHA-256 of the RFC 8785 canonical policy document: a malformed checksum is a
    -- seeding bug and must never be stored.
    CONSTRAINT ck_policy_versions_checksum_sha256_hex CHECK (checksum ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_policy_versions_active_without_grace
        CHECK (status <> 'ACTIVE'::public.policy_version_status OR grace_expires_at IS NULL),
    CONSTRAINT ck_policy_versions_grace_with_expiry
        CHECK (status <> 'GRACE'::public.policy_version_status OR grace_expires_at IS NOT NULL)
);

COMMENT ON TABLE public.policy_versions IS
'Boot policy versions. Exactly one ACTIVE row is expected at boot (at most one is enforced by '
'uq_policy_versions_one_active; at least one by the boot check, which fails closed).';

-- At most one ACTIVE version: a unique index over a constant, restricted to ACTIVE rows, admits
-- a single such row. (A unique index on is_active would also forbid two GRACE/RETIRED rows.)
CREATE UNIQUE INDEX uq_policy_versions_one_active
    ON public.policy_versions ((true))
    WHERE status = 'ACTIVE'::public.policy_version_status;


-- Ownership and deny-by-default, as 0004 did for the outbox objects.
-- CREATE on public only for the hand-over (a non-superuser migrator needs it; see 0004).
GRANT CREATE ON SCHEMA public TO symphony_owner;
ALTER TYPE public.policy_version_status OWNER TO symphony_owner;
ALTER TABLE public.policy_versions OWNER TO symphony_owner;
REVOKE CREATE ON SCHEMA public FROM symphony_owner;

REVOKE ALL ON TABLE public.policy_versions FROM PUBLIC;

-- The executor reads the boot policy; the control plane seeds and rotates it (never DELETE:
-- retired versions stay for audit); readers and auditors see it.
GRANT SELECT ON TABLE public.policy_versions
    TO symphony_executor, symphony_readonly, symphony_auditor;
GRANT SELECT, INSERT, UPDATE ON TABLE public.policy_versions TO symphony_control;
