-- The answer of a request under an Idempotency-Key, stored after it was sent
-- (shared/edge/src/idempotency.rs, `store`).
--
-- A unit of work already stored its result with its change, in the change's own transaction
-- (`record_in`): this later write only adds the final status and body. Losing it in a crash
-- costs nothing but a less exact replay (the stored result, status 200, after a short wait),
-- so its commit does not wait for the WAL flush: one synchronous commit per keyed request, not
-- two. The setting is local to the statement's own transaction.
CREATE FUNCTION idempotency_store(p_caller TEXT, p_key TEXT, p_fingerprint TEXT, p_status INTEGER, p_body BYTEA)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO idempotency_keys AS k (caller, key, fingerprint, status, body)
    VALUES (p_caller, p_key, p_fingerprint, p_status, p_body)
        ON CONFLICT (caller, key) DO UPDATE SET status = excluded.status, body = excluded.body
     WHERE k.fingerprint = excluded.fingerprint AND k.status IS NULL;
END
$$;
