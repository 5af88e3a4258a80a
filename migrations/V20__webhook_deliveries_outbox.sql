-- Webhook deliveries are their own outbox (issue 17: what a check-in pays for its webhooks).
--
-- Until now a change wrote, per subscribed endpoint, a delivery row and a `deliver_webhook` job
-- row in `job_outbox`, which the relay then updated twice (leased, then marked dispatched): three
-- writes on top of the delivery, on the path of every registration and check-in. The delivery row
-- already says everything the job did (which delivery, when its next attempt is due), so it is
-- now the only row a change writes:
--
-- * `webhook_write` inserts the deliveries, due after `due_in`, and returns their ids.
-- * The hot one-statement paths (registration, check-in) write them due a minute later and the
--   API sends one `deliver_webhook` message per id to the `webhooks` queue right after its commit
--   (`ApiState::apply`), with no further write. If that send was lost (the process died after
--   the commit, the queue refused it), the relay finds the delivery due a minute later and sends
--   it.
-- * Other changes (publishing an event, approving a guest, an export, an offer) write them due
--   at once, and the relay that runs after their commit sends them, as it sends due jobs.
-- * The relay (`domain::outbox::relay_deliveries`: the scheduled sweep, the relay after each
--   commit and after each worker batch, the local relay loop) leases due deliveries by pushing
--   `next_attempt_at` forward, then sends them. A failed attempt sets the next one's time in the
--   same column, so retries over days take the same path.
-- * The message's job id is derived from (delivery, attempts made): a message sent twice for one
--   attempt (the post-commit send and a sweep after a long queue backlog) runs once
--   (`processed_jobs`); every attempt after a failure is a job of its own.
--
-- Deliveries pending when this migration runs are the relay's from now on: their jobs not yet
-- handed to the queue are settled below. A job already in the queue still runs; should the relay
-- also send its delivery before that job ran, the endpoint receives it twice with the same
-- `webhook-id`, which Standard Webhooks receivers deduplicate (delivery is at least once).

-- The relay's question, "which pending deliveries are due?", without reading the others.
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- One delivery per enabled endpoint of the organizer subscribed to the event type, in the
-- caller's transaction, due after `due_in`; their ids (empty without subscribers: one index
-- probe). Called by the Rust commands (domain::webhooks::emit, due at once) and inline by the
-- one-statement paths (registration, check-in: due in a minute, sent after the commit; import:
-- due at once).
-- PL/pgSQL, not SQL: a SQL function that is not inlined (this one writes) is parsed and planned
-- again at every execution of the statement that calls it (before PostgreSQL 18), which cost a
-- check-in 0.4 ms of the database's CPU; PL/pgSQL keeps its plan for the session.
CREATE FUNCTION webhook_write(organizer text, event_type text, data jsonb, due_in interval) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    WITH d AS (
        INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, next_attempt_at)
        SELECT w.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), event_type,
               jsonb_build_object('type', event_type, 'timestamp', webhook_time(clock_timestamp()), 'data', data),
               now() + due_in
          FROM webhooks w
         WHERE w.organizer_id = organizer AND w.enabled AND event_type = ANY (w.event_types)
         ORDER BY w.id
     RETURNING id)
    SELECT COALESCE(array_agg(id ORDER BY id), '{}') INTO ids FROM d;
    RETURN ids;
END $$;

UPDATE job_outbox SET dispatched_at = now(), last_error = 'superseded: the relay sends the delivery (V20)'
 WHERE job_type = 'deliver_webhook' AND dispatched_at IS NULL;
