-- 0039 one owner of the id rule (issue 17 follow-up, ADR 0165).
--
-- 0031 wrote enqueue's argument predicate, outbox_enqueue_args_ok, with the id rule (not NULL,
-- not blank, at most 1024 bytes) stated inline four times; 0037 made that rule one predicate,
-- outbox_id_ok, which the completions and claims call. The enqueue predicate now calls it too:
-- the same truth value for every argument, still LANGUAGE sql IMMUTABLE, so PostgreSQL inlines
-- both into enqueue's statements as before. Owner, grants and comment stay (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION public.outbox_enqueue_args_ok(
    p_instruction_id text,
    p_participant_id text,
    p_idempotency_key text,
    p_rail_type text,
    p_payload jsonb,
    p_not_before timestamptz,
    p_priority smallint
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN public.outbox_id_ok(p_instruction_id, 1024)
   AND public.outbox_id_ok(p_participant_id, 1024)
   AND public.outbox_id_ok(p_idempotency_key, 1024)
   AND public.outbox_id_ok(p_rail_type, 1024)
   AND p_payload IS NOT NULL
   AND pg_catalog.jsonb_typeof(p_payload) = 'object'
   AND pg_catalog.octet_length(p_payload::text) <= 65536
   AND p_priority IS NOT NULL
   AND (p_not_before IS NULL OR pg_catalog.isfinite(p_not_before));
