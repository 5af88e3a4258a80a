-- Incremental sync (`updatedSince` on the event, guest and scan lists): the lists filter and
-- sort by updated_at, so each gets an index in its list's order.
CREATE INDEX idx_events_organizer_updated ON events (organizer_id, updated_at, id);
CREATE INDEX idx_events_updated ON events (updated_at, id);
CREATE INDEX idx_guests_event_updated ON guests (event_id, updated_at, id);

-- A scan changes when it is reverted. Rows from before this migration carry its time (a sync
-- receives them once more, which a client handles like any update).
ALTER TABLE ticket_scans ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
