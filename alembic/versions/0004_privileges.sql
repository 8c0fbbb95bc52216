-- 0004 privileges: ownership, deny-by-default, function-first grants for the outbox objects.
--
-- The matrix granted here is declared once, as data, in symphony_schema/privileges.py; the tests
-- and the invariant gate compare the live catalog against it in both directions. A change here
-- without a change there (or the reverse) fails them.


-- Ownership. 0001/0002 ran as the migrating user because symphony_owner did not exist yet. The
-- SECURITY DEFINER functions must run as symphony_owner, never as a superuser, and the owner of
-- the tables is the only role that can use them without grants.
--
-- PostgreSQL lets a non-superuser migrator (managed PostgreSQL) hand an object to a new owner only
-- if that owner may CREATE in the object's schema. symphony_owner never keeps that right: it is
-- granted for the hand-over and revoked again below, inside this revision's transaction, so no
-- other session ever sees it. For a superuser migrator the pair is a no-op.
GRANT CREATE ON SCHEMA public TO symphony_owner;

ALTER TYPE public.outbox_attempt_state OWNER TO symphony_owner;

ALTER TABLE public.participant_outbox_sequences OWNER TO symphony_owner;
ALTER TABLE public.payment_outbox_pending OWNER TO symphony_owner;
ALTER TABLE public.payment_outbox_attempts OWNER TO symphony_owner;

ALTER FUNCTION public.uuid_v7_or_random() OWNER TO symphony_owner;
ALTER FUNCTION public.uuid_strategy() OWNER TO symphony_owner;
ALTER FUNCTION public.deny_outbox_attempts_mutation() OWNER TO symphony_owner;
ALTER FUNCTION public.outbox_retry_ceiling() OWNER TO symphony_owner;
ALTER FUNCTION public.bump_participant_outbox_seq(text) OWNER TO symphony_owner;
ALTER FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb) OWNER TO symphony_owner;
ALTER FUNCTION public.claim_outbox_batch(integer, text, integer) OWNER TO symphony_owner;
ALTER FUNCTION public.complete_outbox_attempt(
    uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer
) OWNER TO symphony_owner;
ALTER FUNCTION public.repair_expired_leases(integer, text) OWNER TO symphony_owner;

REVOKE CREATE ON SCHEMA public FROM symphony_owner;


-- Deny by default on schema public. PUBLIC loses CREATE (nobody may plant objects next to ours)
-- and USAGE too: only the roles listed in the matrix may resolve names in public at all. The
-- owner needs USAGE because its SECURITY DEFINER functions look up public.* as symphony_owner.
-- The database owner keeps its rights through pg_database_owner, the schema's owner.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO
    symphony_owner,
    symphony_ingest,
    symphony_executor,
    symphony_control,
    symphony_readonly,
    symphony_auditor,
    test_user;


-- Deny by default on every table: nothing for PUBLIC. Re-stated although new tables start closed,
-- so the intent does not depend on how the objects were created.
REVOKE ALL ON TABLE
    public.participant_outbox_sequences,
    public.payment_outbox_pending,
    public.payment_outbox_attempts
FROM PUBLIC;

-- Deny by default on every function. PostgreSQL grants EXECUTE to PUBLIC on every new function;
-- without this revoke the function-first design would be hollow. (0001/0002 already revoked
-- right after each CREATE; this keeps the whole rule in one place.)
REVOKE ALL ON FUNCTION
    public.uuid_v7_or_random(),
    public.uuid_strategy(),
    public.deny_outbox_attempts_mutation(),
    public.outbox_retry_ceiling(),
    public.bump_participant_outbox_seq(text),
    public.enqueue_payment_outbox(text, text, text, text, jsonb),
    public.claim_outbox_batch(integer, text, integer),
    public.complete_outbox_attempt(
        uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer
    ),
    public.repair_expired_leases(integer, text)
FROM PUBLIC;

-- Future objects created by symphony_owner start closed too (default privileges are per database
-- and apply to objects the role creates; functions would otherwise be executable by PUBLIC).
ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner REVOKE ALL ON TABLES FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner REVOKE ALL ON SEQUENCES FROM PUBLIC;


-- The migration ledger is created by the migration engine, not by a revision, and stays owned by
-- the migrating user. Only the owner and the auditor may read it.
REVOKE ALL ON TABLE public.schema_migrations FROM PUBLIC;
GRANT SELECT ON TABLE public.schema_migrations TO symphony_auditor;


-- Table grants (schema.md section 6). Runtime roles reach the data through functions; direct
-- table access is limited to the control plane and to readers. Option A: symphony_control may
-- only SELECT and INSERT the attempts ledger, never UPDATE, DELETE or TRUNCATE it. Nobody but the
-- owner has TRUNCATE, TRIGGER or REFERENCES anywhere.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.payment_outbox_pending TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_pending TO symphony_readonly, symphony_auditor;

GRANT SELECT, INSERT ON TABLE public.payment_outbox_attempts TO symphony_control;
GRANT SELECT ON TABLE public.payment_outbox_attempts TO symphony_readonly, symphony_auditor;

GRANT SELECT, INSERT, UPDATE ON TABLE public.participant_outbox_sequences TO symphony_control;


-- Function grants. bump_participant_outbox_seq() and outbox_retry_ceiling() stay owner-only: they
-- are internals of enqueue and complete, which run as the owner.
GRANT EXECUTE ON FUNCTION public.enqueue_payment_outbox(text, text, text, text, jsonb)
    TO symphony_ingest, symphony_control, test_user;

GRANT EXECUTE ON FUNCTION
    public.claim_outbox_batch(integer, text, integer),
    public.complete_outbox_attempt(
        uuid, uuid, text, public.outbox_attempt_state, text, text, text, text, integer, integer
    ),
    public.repair_expired_leases(integer, text)
TO symphony_executor, symphony_control, test_user;

-- Column defaults call uuid_v7_or_random() as the inserting role (e.g. symphony_control).
GRANT EXECUTE ON FUNCTION public.uuid_v7_or_random(), public.uuid_strategy()
TO symphony_ingest, symphony_executor, symphony_control, symphony_readonly, symphony_auditor,
    test_user;
