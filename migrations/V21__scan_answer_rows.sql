-- A check-in under an Idempotency-Key stores its answer in its own statement (issue 17: what a
-- keyed check-in pays).
--
-- Until now a keyed check-in ran in a transaction: BEGIN, the scan statement, the key's INSERT
-- with the answer rendered by the API, COMMIT. Four round trips where an unkeyed check-in makes
-- one, and each round trip costs PostgreSQL a wake-up and a protocol exchange: measured with
-- pgbench (16 clients, the entry statement of infra/benchmarks/checkin-list-entry.sql), the key
-- in that transaction cost 0.15-0.2 ms of the database's CPU on an entry of 0.45 ms, and the
-- same key written by the statement itself 0.03-0.06 ms.
--
-- So the accepted entry's statement inserts the key itself (shared/domain/src/checkin/scan.rs,
-- `keyed`), with the answer's row as a value of this type: the columns the API renders the
-- answer from, copied as they are (no text or JSON is produced in the statement). A replay
-- reads them back with `(answer_row).*` and renders the same answer from the same values
-- (shared/edge/src/idempotency.rs, `lookup`), whatever changed since. A test compares this type
-- with the statement's select list (scan::tests).
--
-- `body` stays the answer of every other keyed request (and of a refused check-in); a row has
-- one or the other.
CREATE TYPE scan_answer AS (
    scan_id             BIGINT,
    scanned_at          TIMESTAMPTZ,
    on_list             BIGINT,
    tk_id               BIGINT,
    ticket_code         TEXT,
    tk_status           TEXT,
    validated_at        TIMESTAMPTZ,
    validated_by        TEXT,
    validation_location TEXT,
    qr_payload          TEXT,
    qr_code_data        TEXT,
    tk_created_at       TIMESTAMPTZ,
    id                  BIGINT,
    event_id            BIGINT,
    first_name          TEXT,
    last_name           TEXT,
    email               TEXT,
    phone               TEXT,
    status              TEXT,
    ticket_type_id      BIGINT,
    ticket_id           BIGINT,
    created_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ,
    e_title             TEXT,
    e_date              TIMESTAMPTZ,
    e_location          TEXT,
    e_status            TEXT,
    e_organizer         TEXT,
    tt_id               BIGINT,
    tt_name             TEXT,
    tt_price            BIGINT,
    tt_quantity         INTEGER,
    tt_taken            INTEGER,
    tt_held             INTEGER
);

ALTER TABLE idempotency_keys ADD COLUMN answer_row scan_answer;

-- An expired key taken over by a new request's answer (a body) loses the old answer row.
CREATE OR REPLACE FUNCTION idempotency_answer(p_caller TEXT, p_key TEXT, p_fingerprint TEXT, p_status INTEGER,
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
           SET fingerprint = excluded.fingerprint, status = excluded.status, body = excluded.body,
               answer_row = NULL, created_at = now()
         WHERE k.created_at < now() - interval '24 hours';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END
$$;
