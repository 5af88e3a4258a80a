-- The check-in as the service ran it from the accepted path's one statement until check-in lists
-- (issue 15; since then the part-1 endpoint enters the ticket on its event's default list with the
-- statement of checkin-list-entry.sql, the default list instead of a list id), kept as a reference
-- (domain::tickets::checkin, ACCEPT): the tenancy check (the event's organizer), the
-- conditional ticket update, the guest update and the scan row as writable CTEs, one round
-- trip and its own transaction (no BEGIN/COMMIT round trips). The service's statement also
-- returns the answer's ticket (joins on the updated rows); a refused scan finds no row in
-- `accepted` and is explained and logged by a second transaction on that rare path.
--   pgbench ... -f validation-one-statement.sql -D first_ticket=.. -D clients=C -D i=0 -D org=<organizer>
\set tid :first_ticket + :client_id + :clients * :i
\set i :i + 1
WITH accepted AS (
    UPDATE tickets t
       SET validated_at = now(), validated_by = 'pgbench-' || :client_id, validation_location = 'Entrance A', updated_at = now()
     WHERE t.id = :tid AND t.status = 'active' AND t.validated_at IS NULL
       AND EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.status = 'published' AND e.organizer_id = :org)
 RETURNING t.id, t.guest_id, t.event_id, t.validated_at),
     checked_in AS (
    UPDATE guests g SET status = 'checked_in', updated_at = now() FROM accepted a WHERE g.id = a.guest_id RETURNING g.id),
     scan AS (
    INSERT INTO ticket_scans (ticket_id, event_id, scanner_id, location, result)
    SELECT a.id, a.event_id, 'pgbench-' || :client_id, 'Entrance A', 'accepted' FROM accepted a RETURNING 1)
SELECT a.validated_at, (SELECT count(*) FROM checked_in), (SELECT count(*) FROM scan) FROM accepted a;
