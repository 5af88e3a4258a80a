-- Initial schema of the core service. Applied by refinery (the local server at start,
-- the migrate step on deploy); never edit an applied migration, add a V<n+1>__ file.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Events -------------------------------------------------------------------------------
-- registered_count is a counter kept in step by the guest commands in the same
-- transaction as the guest row: it makes the capacity check a single conditional UPDATE
-- (see shared::guests::commands). Check-ins are counted from guests instead, so that
-- validations at the door never queue on the event row.
CREATE TABLE events (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organizer_id      TEXT        NOT NULL CHECK (length(organizer_id) BETWEEN 1 AND 255),
    title             TEXT        NOT NULL CHECK (length(title) BETWEEN 3 AND 255),
    description       TEXT        CHECK (length(description) <= 10000),
    event_date        TIMESTAMPTZ NOT NULL,
    location          TEXT        NOT NULL CHECK (length(location) BETWEEN 1 AND 255),
    max_attendees     INTEGER     NOT NULL CHECK (max_attendees BETWEEN 1 AND 100000),
    requires_approval BOOLEAN     NOT NULL DEFAULT false,
    status            TEXT        NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'published', 'cancelled', 'completed')),
    registered_count  INTEGER     NOT NULL DEFAULT 0,
    -- set once the first guest registers; an event that ever had a guest cannot be deleted
    ever_registered   BOOLEAN     NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_capacity CHECK (registered_count BETWEEN 0 AND max_attendees)
);

CREATE INDEX idx_events_status ON events (status);
CREATE INDEX idx_events_status_date ON events (status, event_date);
CREATE INDEX idx_events_organizer_date ON events (organizer_id, event_date);
CREATE INDEX idx_events_organizer_created ON events (organizer_id, created_at);
CREATE INDEX idx_events_created ON events (created_at);
CREATE INDEX idx_events_date ON events (event_date);
-- `search` is a case-insensitive substring match on title and location: trigram GIN
-- indexes make `ILIKE '%term%'` an index scan instead of a sequential scan.
CREATE INDEX idx_events_title_trgm ON events USING gin (title gin_trgm_ops);
CREATE INDEX idx_events_location_trgm ON events USING gin (location gin_trgm_ops);

-- Ticket types -------------------------------------------------------------------------
-- `sold` counts the seats held by pending, confirmed and checked-in guests.
CREATE TABLE ticket_types (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_cents BIGINT      NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
    quantity    INTEGER     NOT NULL CHECK (quantity BETWEEN 1 AND 100000),
    sold        INTEGER     NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ticket_types_capacity CHECK (sold BETWEEN 0 AND quantity)
);

CREATE UNIQUE INDEX ticket_types_event_name_key ON ticket_types (event_id, lower(name));

-- Guests -------------------------------------------------------------------------------
CREATE TABLE guests (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       BIGINT      NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    ticket_type_id BIGINT      REFERENCES ticket_types (id) ON DELETE RESTRICT,
    first_name     TEXT        NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name      TEXT        NOT NULL CHECK (length(last_name) BETWEEN 1 AND 100),
    email          TEXT        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    phone          TEXT        CHECK (phone ~ '^\+[1-9][0-9]{1,14}$'),
    status         TEXT        NOT NULL
                   CHECK (status IN ('pending', 'confirmed', 'checked_in', 'cancelled')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_guests_event ON guests (event_id);
CREATE INDEX idx_guests_event_status ON guests (event_id, status);
CREATE INDEX idx_guests_ticket_type ON guests (ticket_type_id);
-- One active registration per email per event; a cancelled guest may register again.
CREATE UNIQUE INDEX guests_event_email_active_key ON guests (event_id, lower(email))
    WHERE status <> 'cancelled';
CREATE INDEX idx_guests_search_trgm ON guests
    USING gin ((first_name || ' ' || last_name || ' ' || email) gin_trgm_ops);

-- Tickets ------------------------------------------------------------------------------
CREATE TABLE tickets (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guest_id            BIGINT      NOT NULL UNIQUE REFERENCES guests (id) ON DELETE CASCADE,
    event_id            BIGINT      NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    ticket_type_id      BIGINT      REFERENCES ticket_types (id) ON DELETE RESTRICT,
    ticket_code         TEXT        NOT NULL CHECK (ticket_code ~ '^TC-[0-9]{4}-[A-Z0-9]{8,}$'),
    status              TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    qr_payload          TEXT,
    qr_code_data        TEXT,
    validated_at        TIMESTAMPTZ,
    validated_by        TEXT,
    validation_location TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT tickets_validation_complete CHECK (
        (validated_at IS NULL) = (validated_by IS NULL)
    )
);

CREATE UNIQUE INDEX idx_tickets_code ON tickets (ticket_code);
CREATE INDEX idx_tickets_event ON tickets (event_id);

-- Scan log: every validation attempt, accepted or refused ------------------------------
CREATE TABLE ticket_scans (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id  BIGINT      REFERENCES tickets (id) ON DELETE CASCADE,
    event_id   BIGINT      REFERENCES events (id) ON DELETE CASCADE,
    scanner_id TEXT        NOT NULL,
    location   TEXT        NOT NULL,
    result     TEXT        NOT NULL,
    scanned_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_ticket_scans_ticket ON ticket_scans (ticket_id);
CREATE INDEX idx_ticket_scans_event ON ticket_scans (event_id, result);

-- Job outbox: jobs are written in the transaction of the change that causes them and
-- dispatched to the queue backend by the relay (at least once; workers dedupe by job_id).
CREATE TABLE job_outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        UUID        NOT NULL UNIQUE,
    queue         TEXT        NOT NULL CHECK (queue IN ('email', 'ticket-generation')),
    job_type      TEXT        NOT NULL,
    payload       JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts      INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error    TEXT,
    dispatched_at TIMESTAMPTZ
);

CREATE INDEX idx_job_outbox_pending ON job_outbox (next_attempt_at) WHERE dispatched_at IS NULL;

-- Processed jobs: the workers' idempotency record (a redelivered message does nothing twice).
CREATE TABLE processed_jobs (
    job_id       UUID        PRIMARY KEY,
    job_type     TEXT        NOT NULL,
    outcome      TEXT        NOT NULL CHECK (outcome IN ('done', 'failed_permanently')),
    detail       TEXT,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
