-- Indexes for list orders that had none, found by the EXPLAIN checks of the performance harness
-- (infra/benchmarks/run.sh) on 100 000 events of one organizer:
--
-- GET /api/events?sort=title sorted every event of the organizer to return one page
-- (Sort top-N heapsort over a Seq Scan of events, ~66 ms; with the index: an Index Scan that
-- stops after the page, ~0.1 ms). The second index serves an admin's title sort (no organizer).
CREATE INDEX idx_events_organizer_title ON events (organizer_id, title, id);
CREATE INDEX idx_events_title ON events (title, id);

-- GET /api/events/{id}/guests pages a guest list by id within an event: (event_id, id) reads a
-- page in that order (idx_guests_event could not, so the planner walked guests_pkey from the
-- first guest of every event). It also serves everything idx_guests_event served (its prefix),
-- which goes: one index less to maintain per registration.
-- It keeps the seed's name, idx_guests_event.
DROP INDEX idx_guests_event;
CREATE INDEX idx_guests_event ON guests (event_id, id);
