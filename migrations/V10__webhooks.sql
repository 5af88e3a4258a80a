-- Webhooks (Standard Webhooks): endpoints per organizer, and one delivery row per (change,
-- endpoint) written in the transaction of the change, with a `deliver_webhook` job in the
-- outbox (queue `webhooks`). A failed attempt schedules the next one through the outbox
-- (next_attempt_at), so retries can span days, beyond SQS's 15-minute delay.

CREATE TABLE webhooks (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organizer_id     TEXT        NOT NULL CHECK (length(organizer_id) BETWEEN 1 AND 255),
    url              TEXT        NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    event_types      TEXT[]      NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 20),
    description      TEXT        CHECK (length(description) <= 500),
    -- `whsec_` + base64 of 32 random bytes; shown once, at creation and rotation
    secret           TEXT        NOT NULL,
    -- the secret before the last rotation, still signing (second signature) until previous_until
    previous_secret  TEXT,
    previous_until   TIMESTAMPTZ,
    enabled          BOOLEAN     NOT NULL DEFAULT true,
    -- why the service disabled it (410 Gone, failing for 3 days); null when enabled or by hand
    disabled_reason  TEXT,
    -- the first failed attempt since the last success
    failing_since    TIMESTAMPTZ,
    version          INTEGER     NOT NULL DEFAULT 1,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The fan-out of a change: the organizer's enabled endpoints.
CREATE INDEX idx_webhooks_organizer ON webhooks (organizer_id) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       BIGINT      NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- the `webhook-id` header: the same for every attempt and redelivery (receivers dedupe on it)
    message_id       TEXT        NOT NULL,
    event_type       TEXT        NOT NULL,
    -- the body sent: {"type", "timestamp", "data"}
    payload          JSONB       NOT NULL,
    status           TEXT        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    last_status      INTEGER,
    last_error       TEXT,
    last_duration_ms INTEGER,
    next_attempt_at  TIMESTAMPTZ,
    -- the start of the current retry window (creation, or a manual redelivery): attempts stop
    -- 3 days after it
    window_start     TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at  TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ
);

CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

ALTER TABLE job_outbox DROP CONSTRAINT job_outbox_queue_check;
ALTER TABLE job_outbox ADD CONSTRAINT job_outbox_queue_check
    CHECK (queue IN ('email', 'ticket-generation', 'webhooks'));

-- Writing a change's webhooks: one delivery per enabled endpoint of the organizer subscribed to
-- the event type, and one `deliver_webhook` job per delivery, in the caller's transaction.
-- Returns how many were written (0 without subscribers: one index probe). Called by the Rust
-- commands (domain::webhooks::emit) and inline by the one-statement paths (registration,
-- check-in), so they announce their change without another round trip.
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION webhook_emit(organizer text, event_type text, data jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH d AS (
        INSERT INTO webhook_deliveries (webhook_id, message_id, event_type, payload, next_attempt_at)
        SELECT w.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), event_type,
               jsonb_build_object('type', event_type, 'timestamp', webhook_time(clock_timestamp()), 'data', data),
               now()
          FROM webhooks w
         WHERE w.organizer_id = organizer AND w.enabled AND event_type = ANY (w.event_types)
         ORDER BY w.id
     RETURNING id)
    INSERT INTO job_outbox (job_id, queue, job_type, payload)
    SELECT gen_random_uuid(), 'webhooks', 'deliver_webhook', jsonb_build_object('deliveryId', d.id)
      FROM d;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- A guest as the API shows it (domain::guests::Guest), for the webhooks the SQL paths write.
CREATE FUNCTION webhook_guest(g guests, ticket_id bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', g.id, 'eventId', g.event_id, 'firstName', g.first_name, 'lastName', g.last_name,
        'email', g.email, 'phone', g.phone, 'status', g.status, 'ticketTypeId', g.ticket_type_id,
        'ticketId', ticket_id, 'createdAt', webhook_time(g.created_at), 'updatedAt', webhook_time(g.updated_at))
$$;
