-- Deleted tickets reach offline scanners. Deleting a guest deletes its ticket; a scanner that
-- downloaded the ticket before must learn not to admit it. The offline dataset's changes
-- (checkin::offline) include these tombstones: the ticket's id, type and payload hash, and when
-- it went. They are kept 30 days (the sweep prunes them; a cursor older than that gets a full
-- download instead, and offline scans are at most 7 days old).
CREATE TABLE ticket_tombstones (
    ticket_id      BIGINT      PRIMARY KEY,
    event_id       BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    ticket_type_id BIGINT,
    payload_hash   TEXT,
    deleted_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_ticket_tombstones_event ON ticket_tombstones (event_id, deleted_at);
CREATE INDEX idx_ticket_tombstones_deleted ON ticket_tombstones (deleted_at);

CREATE FUNCTION ticket_tombstones_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_tombstones (ticket_id, event_id, ticket_type_id, payload_hash)
    SELECT o.id, o.event_id, o.ticket_type_id, encode(sha256(convert_to(o.qr_payload, 'UTF8')), 'hex')
      FROM old_rows o
     WHERE EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id)
     ORDER BY o.id
        ON CONFLICT (ticket_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER tickets_tombstone AFTER DELETE ON tickets
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_tombstones_after_delete();
