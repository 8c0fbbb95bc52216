-- 0030 the owner's default privileges on every Citus worker (issue 16, ADRs 0126, 0145).
--
-- Citus propagates roles, grants and functions to its workers but not ALTER DEFAULT PRIVILEGES
-- (ADR 0128): after 0004 the workers' pg_default_acl was empty, so an object symphony_owner
-- creates on a worker (a shard, a function Citus creates there) would start with PostgreSQL's
-- built-in grants to PUBLIC. On a Citus coordinator this revision replays 0004's three
-- statements on every active worker through run_command_on_workers (idempotent: a REVOKE that
-- is already in place changes nothing) and fails with the worker's own error if one refuses.
-- Without the citus extension it does nothing. A worker added later gets them by running this
-- file's statement again (docs/operations/citus.md); INV-059 fails until it has them.

DO $citus$
DECLARE
    v_failed text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $sql$
        SELECT pg_catalog.string_agg(w.nodename || ':' || w.nodeport || ': ' || w.result, '; ')
          FROM pg_catalog.run_command_on_workers($cmd$
                   ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner
                       REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
                   ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner
                       REVOKE ALL ON TABLES FROM PUBLIC;
                   ALTER DEFAULT PRIVILEGES FOR ROLE symphony_owner
                       REVOKE ALL ON SEQUENCES FROM PUBLIC
               $cmd$::text) AS w
         WHERE NOT w.success
    $sql$ INTO v_failed;
    IF v_failed IS NOT NULL THEN
        RAISE EXCEPTION 'default privileges of symphony_owner not replayed on every worker: %',
            v_failed
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$citus$;
