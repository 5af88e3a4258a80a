-- An accepted entry on a check-in list, as the service runs it (issue 15): the one statement of
-- shared/domain/src/checkin/scan.rs, statement(Shape { Entry, on a list, no key, deliveries by
-- the guarded call }), with the select list of
-- domain::tickets::queries::columns() written out: the list (published event, the caller's
-- tenancy, the list's window), the ticket locked if the list admits it, the conditional upsert of
-- its state on the list, the ticket marked validated and checked in on the first entry anywhere
-- (no guest row is written: migrations/V22), the scan row,
-- the guest.checked_in webhooks of the organizer's endpoints (none in the benchmark: webhook_write
-- is called only when the organizer has a subscribed endpoint), and the answer's ticket. One round trip, its own
-- transaction.
-- $1 ticket -> :tid, $2 scanner -> :scanner, $3 location -> :location, $4 the caller's organizer
-- -> :org, $5 the list -> :list_id. The harness checks that this text is still the service's
-- (the statement is compared with domain::checkin::scan::statement after the variables are
-- mapped back) and EXPLAINs it.
--   pgbench -n -M prepared -c C -j 2 -T S -f checkin-list-entry.sql -D first_ticket=<a ticket of the
--           list's event> -D clients=C -D i=0 -D list_id=<a list> -D org=<organizer>
--           -D scanner=pgbench -D location='North gate' DB
-- Each transaction enters a ticket no other transaction touches (client k takes first_ticket + k,
-- + k + C, + k + 2C, ...). An entry that is not accepted returns no row, and \gset then aborts the
-- client (pgbench reports it): a ticket past the pool is another event's, never on this list.
\set tid :first_ticket + :client_id + :clients * :i
\set i :i + 1
WITH l AS (
            SELECT l.id, l.event_id, l.allow_reentry, l.ticket_type_ids, e.organizer_id
              FROM checkin_lists l JOIN events e ON e.id = l.event_id
             WHERE l.id = :list_id AND e.status = 'published'
               AND (:org::text IS NULL OR e.organizer_id = :org::text)
               AND (l.opens_at IS NULL OR l.opens_at <= now())
               AND (l.closes_at IS NULL OR now() < l.closes_at)),
              k AS (
            SELECT t.id, t.guest_id, t.event_id, l.id AS list_id, l.allow_reentry
              FROM tickets t JOIN l ON l.event_id = t.event_id
             WHERE t.id = :tid AND t.status = 'active'
               AND (cardinality(l.ticket_type_ids) = 0 OR t.ticket_type_id = ANY (l.ticket_type_ids))
               FOR NO KEY UPDATE OF t),
              s AS (
            INSERT INTO checkin_states AS s (list_id, ticket_id, inside, entries, exits, reentry)
            SELECT k.list_id, k.id, true, 1, 0, k.allow_reentry FROM k
                ON CONFLICT (list_id, ticket_id) DO UPDATE
               SET inside = true, entries = s.entries + 1, reentry = excluded.reentry, changed_at = now()
             WHERE NOT s.inside AND (s.entries = 0 OR excluded.reentry)
         RETURNING s.list_id, s.ticket_id),
              v AS (
            UPDATE tickets t SET validated_at = now(), validated_by = :scanner, validation_location = :location,
                   checked_in_at = now(), updated_at = now()
              FROM s WHERE t.id = s.ticket_id AND t.validated_at IS NULL
         RETURNING t.*),
              log AS (
            INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, result, direction)
            SELECT k.id, k.event_id, k.list_id, :scanner::text, :location::text, 'accepted', 'entry'
              FROM s JOIN k ON k.id = s.ticket_id
         RETURNING id, scanned_at, list_id),
              hook AS (
            SELECT webhook_write(e.organizer_id, 'guest.checked_in',
                                 webhook_guest(ROW(g.*)::guests, v.id, v.checked_in_at), interval '1 minute') AS ids
              FROM v JOIN guests g ON g.id = v.guest_id JOIN events e ON e.id = v.event_id
             WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.organizer_id = e.organizer_id AND w.enabled
                             AND 'guest.checked_in' = ANY (w.event_types)))
        SELECT log.id AS scan_id, log.scanned_at AS scanned_at, log.list_id AS on_list,
               COALESCE((SELECT ids FROM hook), ARRAY[]::bigint[]) AS hooks, t.id AS tk_id, t.ticket_code, t.status AS tk_status, t.validated_at, t.validated_by,
                t.validation_location, t.qr_payload, t.qr_code_data, t.created_at AS tk_created_at,
                g.id, g.event_id, g.first_name, g.last_name, g.email, g.phone, CASE WHEN g.status = 'confirmed' AND t.checked_in_at IS NOT NULL THEN 'checked_in' ELSE g.status END AS status, g.ticket_type_id, t.id AS ticket_id, g.created_at, GREATEST(g.updated_at, t.checked_in_at) AS updated_at,
                e.title AS e_title, e.event_date AS e_date, e.location AS e_location, e.status AS e_status,
                e.organizer_id AS e_organizer,
                tt.id AS tt_id, tt.name AS tt_name, tt.price_cents AS tt_price, tt.quantity AS tt_quantity,
                seats_taken(tt.event_id, tt.id) AS tt_taken,
                (SELECT count(*)::int FROM waitlist_entries w
                  WHERE w.event_id = tt.event_id AND w.ticket_type_id = tt.id AND w.status = 'offered') AS tt_held
          FROM log CROSS JOIN k
          JOIN LATERAL (SELECT * FROM v UNION ALL
                        SELECT * FROM tickets x WHERE x.id = k.id AND NOT EXISTS (SELECT 1 FROM v)) t ON true
          JOIN guests g ON g.id = k.guest_id
          JOIN events e ON e.id = k.event_id
          LEFT JOIN ticket_types tt ON tt.id = t.ticket_type_id \gset entry_
