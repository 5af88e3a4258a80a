-- Check-in lists (door operations): several entrances and areas per event, entry and exit,
-- supervised undo and offline scanning. The contract's part 2, "Check-in lists".

-- Lists ----------------------------------------------------------------------------------
-- ticket_type_ids: the ticket types the list admits, empty = every ticket type of the event.
-- A ticket type a list names cannot be deleted (events::commands refuses it), so a list never
-- silently widens to "every type".
CREATE TABLE checkin_lists (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name            TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    ticket_type_ids BIGINT[]    NOT NULL DEFAULT '{}',
    allow_reentry   BOOLEAN     NOT NULL DEFAULT false,
    opens_at        TIMESTAMPTZ,
    closes_at       TIMESTAMPTZ,
    is_default      BOOLEAN     NOT NULL DEFAULT false,
    -- the row version behind the list's ETag (integrations issue); bumped by every change
    version         INTEGER     NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT checkin_lists_window CHECK (opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at)
);

CREATE UNIQUE INDEX checkin_lists_event_name_key ON checkin_lists (event_id, lower(name));
-- One default list per event: the part-1 check-in endpoints scan on it.
CREATE UNIQUE INDEX checkin_lists_default_key ON checkin_lists (event_id) WHERE is_default;

-- Every event gets its default list in the transaction that creates it, however it is created
-- (the API, a bulk INSERT ... SELECT of the benchmark's seed): a statement-level trigger over
-- the inserted rows.
CREATE FUNCTION checkin_lists_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checkin_lists (event_id, name, is_default)
    SELECT id, 'Default', true FROM new_rows ORDER BY id;
    RETURN NULL;
END $$;

LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;
CREATE TRIGGER events_default_checkin_list AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION checkin_lists_default();
INSERT INTO checkin_lists (event_id, name, is_default, created_at)
SELECT id, 'Default', true, created_at FROM events ORDER BY id;

-- A ticket's state on a list -------------------------------------------------------------
-- One row per (list, ticket) once the ticket has been scanned in on that list. An entry is
-- accepted by one conditional upsert (`ON CONFLICT ... DO UPDATE ... WHERE NOT inside AND
-- (entries = 0 OR reentry)`): PostgreSQL locks the row and evaluates the condition on its
-- latest version, so of any number of racing entries exactly one finds the ticket outside.
-- entries / exits count the accepted, not reverted, scans: the list's stats are sums over
-- these rows (no counter row that every scan would queue on).
-- No secondary index, and the columns a scan changes are not indexed: every later scan of the
-- ticket is a HOT update, kept on the same page by the fillfactor.
CREATE TABLE checkin_states (
    list_id    BIGINT      NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    ticket_id  BIGINT      NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    inside     BOOLEAN     NOT NULL,
    entries    INTEGER     NOT NULL CHECK (entries >= 0),
    exits      INTEGER     NOT NULL CHECK (exits >= 0),
    -- the list's allow_reentry when the row was last written (the upsert's condition can
    -- only read the row and `excluded`)
    reentry    BOOLEAN     NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (list_id, ticket_id),
    CONSTRAINT checkin_states_inside CHECK (inside = (entries = exits + 1) OR (NOT inside AND entries = exits))
) WITH (fillfactor = 70);

-- The scan log gains the list, the direction, offline fields and undo ----------------------
ALTER TABLE ticket_scans
    ADD COLUMN list_id        BIGINT REFERENCES checkin_lists (id) ON DELETE CASCADE,
    ADD COLUMN direction      TEXT   NOT NULL DEFAULT 'entry' CHECK (direction IN ('entry', 'exit')),
    -- the contract's error code of a refused scan or a conflict (null when accepted)
    ADD COLUMN code           TEXT,
    -- offline scans: the device's id for the scan (idempotency) and when the server got it
    -- (scanned_at is when it happened at the door)
    ADD COLUMN client_scan_id UUID,
    ADD COLUMN received_at    TIMESTAMPTZ,
    -- a conflict: the accepted scan that admitted the ticket first (null: the ticket was cancelled)
    ADD COLUMN conflict_with  BIGINT,
    ADD COLUMN reverted_at    TIMESTAMPTZ,
    ADD COLUMN reverted_by    TEXT,
    ADD CONSTRAINT ticket_scans_revert_complete CHECK ((reverted_at IS NULL) = (reverted_by IS NULL));

-- Existing scans belong to their event's default list; existing check-ins are entries on it.
UPDATE ticket_scans s SET list_id = l.id
  FROM checkin_lists l WHERE l.event_id = s.event_id AND l.is_default;
UPDATE ticket_scans SET code = CASE result
        WHEN 'already_validated' THEN 'TICKET_ALREADY_VALIDATED'
        WHEN 'cancelled' THEN 'TICKET_CANCELLED'
        WHEN 'event_not_published' THEN 'INVALID_STATE'
        WHEN 'not_found' THEN 'NOT_FOUND'
        WHEN 'invalid_signature' THEN 'INVALID_SIGNATURE'
        WHEN 'unavailable' THEN 'SERVICE_UNAVAILABLE' END
 WHERE result <> 'accepted';
INSERT INTO checkin_states (list_id, ticket_id, inside, entries, exits, reentry, changed_at)
SELECT l.id, t.id, true, 1, 0, false, t.validated_at
  FROM tickets t JOIN checkin_lists l ON l.event_id = t.event_id AND l.is_default
 WHERE t.validated_at IS NOT NULL;

-- The scan log of a list, newest first (and the stats of the event's lists). It replaces the
-- (event_id, result) index: one index per scan row written, not two.
DROP INDEX idx_ticket_scans_event;
CREATE INDEX idx_ticket_scans_list ON ticket_scans (list_id, id);
-- Conflicts are rare: a partial index gets no entry for any other scan.
CREATE INDEX idx_ticket_scans_conflicts ON ticket_scans (list_id, id) WHERE result = 'conflict';
-- An offline scan is recorded once per list, however many times it is uploaded.
CREATE UNIQUE INDEX ticket_scans_client_scan_key ON ticket_scans (list_id, client_scan_id)
    WHERE client_scan_id IS NOT NULL;

-- Audit log ------------------------------------------------------------------------------
-- Written in the transaction of the change it records (door operations: reverted scans).
-- The integrations issue lists it over the API and adds the other changes.
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    BIGINT      REFERENCES events (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_sub   TEXT        NOT NULL,
    actor_role  TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    entity      TEXT        NOT NULL,
    entity_id   BIGINT,
    changes     JSONB       NOT NULL DEFAULT '{}'
);

CREATE INDEX idx_audit_log_event ON audit_log (event_id, id);
