-- The answer of a request under an Idempotency-Key, stored after it was sent
-- (shared/edge/src/idempotency.rs, `store`); true when written.
--
-- A unit of work writes its key once, as the last statement of its transaction, with its final
-- answer or with its result (`record_in`). `p_complete`: this request's transaction stored its
-- result, which this completes with the status and final body. Otherwise the answer (a refusal
-- whose transaction rolled back, a refusal of the input before any transaction) is stored only
-- where the key has no row: a concurrent duplicate that was refused because the first request
-- holds what it asked for must not overwrite that request's answer; false tells it to replay
-- that one instead.
--
-- Losing this write in a crash costs nothing but a less exact replay, so its commit does not
-- wait for the WAL flush. The setting is local to the statement's own transaction.
-- (idempotency_store, migrations/V17, is what the previous release calls.)
CREATE FUNCTION idempotency_answer(p_caller TEXT, p_key TEXT, p_fingerprint TEXT, p_status INTEGER,
                                   p_body BYTEA, p_complete BOOLEAN)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_complete THEN
        UPDATE idempotency_keys SET status = p_status, body = p_body
         WHERE caller = p_caller AND key = p_key AND fingerprint = p_fingerprint AND status IS NULL;
    ELSE
        INSERT INTO idempotency_keys AS k (caller, key, fingerprint, status, body)
        VALUES (p_caller, p_key, p_fingerprint, p_status, p_body)
            ON CONFLICT (caller, key) DO UPDATE
           SET fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body, created_at = now()
         WHERE k.created_at < now() - interval '24 hours';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END
$$;
