-- 0003 roles: role existence and role attributes. No memberships and no passwords: which login may
-- act as which runtime role is environment setup (CLI or test harness), not schema.
--
-- Roles are cluster-wide. This revision runs once per database, so on a cluster where another
-- database (or an operator) already created a role, it must not fail and must not trust the
-- existing attributes: it creates what is missing and then enforces the declared attributes on
-- every role, every time.
--
-- The attributes are compared first and only the ones that differ are altered: a migrating user
-- with CREATEROLE but without SUPERUSER may not touch SUPERUSER, REPLICATION or BYPASSRLS at all,
-- so an unconditional ALTER would fail on a cluster that is already correct. Skipping no-op
-- ALTERs also keeps concurrent migrations of two databases from updating the same catalog row.
DO $$
DECLARE
    v_role record;
    v_current pg_catalog.pg_roles%ROWTYPE;
    v_changes text[];
BEGIN
    FOR v_role IN
        SELECT r.rolname, r.rolcanlogin, r.description
          FROM (
              VALUES
              ('symphony_owner', false,
               'Symphony: owns every Symphony object; SECURITY DEFINER functions run as it.'),
              ('symphony_ingest', false,
               'Symphony runtime role: enqueue through public.enqueue_payment_outbox() only.'),
              ('symphony_executor', false,
               'Symphony runtime role: claim, complete and repair through functions; '
               'reads the boot policy.'),
              ('symphony_control', false,
               'Symphony control plane: admin reads and writes, '
               'never mutates the attempts ledger.'),
              ('symphony_readonly', false,
               'Symphony runtime role: read-only dashboards.'),
              ('symphony_auditor', false,
               'Symphony runtime role: audit reads, including the migration ledger.'),
              ('test_user', true,
               'Symphony test/CI login; its password is set outside migrations '
               '(TEST_DB_PASSWORD).')
          ) AS r (rolname, rolcanlogin, description)
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_roles AS x WHERE x.rolname = v_role.rolname
        ) THEN
            BEGIN
                EXECUTE pg_catalog.format(
                    'CREATE ROLE %I WITH %s '
                    'NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
                    v_role.rolname,
                    CASE WHEN v_role.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END
                );
            EXCEPTION
                -- Another database's migration created it concurrently; enforce below.
                WHEN duplicate_object OR unique_violation THEN
                    NULL;
            END;
        END IF;

        SELECT x.* INTO STRICT v_current
          FROM pg_catalog.pg_roles AS x
         WHERE x.rolname = v_role.rolname;

        v_changes := ARRAY[]::text[];
        IF v_current.rolcanlogin IS DISTINCT FROM v_role.rolcanlogin THEN
            v_changes := v_changes || CASE WHEN v_role.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END;
        END IF;
        IF v_current.rolsuper THEN
            v_changes := v_changes || 'NOSUPERUSER'::text;
        END IF;
        IF v_current.rolcreatedb THEN
            v_changes := v_changes || 'NOCREATEDB'::text;
        END IF;
        IF v_current.rolcreaterole THEN
            v_changes := v_changes || 'NOCREATEROLE'::text;
        END IF;
        IF v_current.rolreplication THEN
            v_changes := v_changes || 'NOREPLICATION'::text;
        END IF;
        IF v_current.rolbypassrls THEN
            v_changes := v_changes || 'NOBYPASSRLS'::text;
        END IF;

        IF pg_catalog.cardinality(v_changes) > 0 THEN
            RAISE NOTICE 'enforcing attributes of role %: %',
                v_role.rolname, pg_catalog.array_to_string(v_changes, ' ');
            EXECUTE pg_catalog.format(
                'ALTER ROLE %I WITH %s',
                v_role.rolname,
                pg_catalog.array_to_string(v_changes, ' ')
            );
        END IF;

        -- Same rule for the comment (a shared catalog row): write it only when it differs, so
        -- migrations of several databases of one cluster do not update the same row needlessly.
        IF pg_catalog.shobj_description(v_current.oid, 'pg_authid')
           IS DISTINCT FROM v_role.description THEN
            EXECUTE pg_catalog.format(
                'COMMENT ON ROLE %I IS %L', v_role.rolname, v_role.description
            );
        END IF;
    END LOOP;
END
$$;
