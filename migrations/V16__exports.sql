-- Exports (contract part 2, "Exports"): a guest or scan list of one event written as a CSV object
-- (S3) by the `build_export` job, which streams the rows page by page (keyset pagination on
-- idx_guests_event (event_id, id) and idx_ticket_scans_list (list_id, id), both there already),
-- so an export of any size is built in flat memory.
--
-- The object key is a function of the export (exports/<eventId>/<id>.csv): a retried job
-- overwrites the object it may have half-written instead of leaving a second one.
CREATE TABLE exports (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    kind           TEXT        NOT NULL CHECK (kind IN ('guests', 'scans')),
    format         TEXT        NOT NULL DEFAULT 'csv' CHECK (format IN ('csv')),
    status         TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    -- who asked (the JWT's sub and role): the export_ready email goes to this user
    requested_by   TEXT        NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 255),
    requested_role TEXT        NOT NULL,
    -- rows written (without the header line), the object's key and size, once done
    row_count      BIGINT      CHECK (row_count >= 0),
    object_key     TEXT,
    size_bytes     BIGINT      CHECK (size_bytes >= 0),
    -- why a failed export failed (never SQL or credentials: the job's own words)
    error          TEXT,
    -- runs of the job so far (a crashed run counts too): the job gives up after a few
    attempts       INTEGER     NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ,
    CONSTRAINT exports_done_complete CHECK (
        (status = 'done') = (object_key IS NOT NULL AND row_count IS NOT NULL AND completed_at IS NOT NULL)),
    CONSTRAINT exports_failed_reason CHECK ((status = 'failed') = (error IS NOT NULL))
);

CREATE INDEX idx_exports_event ON exports (event_id, id);
