-- One offline upload of 500 entries on a check-in list (issue 15), as the service runs it
-- (shared/domain/src/checkin/scan.rs: `batch`, then `apply` over the 500 attempts, in ONE
-- transaction): the list read (`locate`), the 500 tickets locked FOR NO KEY UPDATE in id order,
-- the scans of these client scan ids already recorded (none: a first upload) and the tickets'
-- states on the list read, then the 500 scan rows inserted with unnest (ScanColumns::insert), the
-- 500 states upserted with unnest (write_presence), and the 500 tickets marked validated and
-- checked in (first entries anywhere; no guest row is written: migrations/V22) with their guest.checked_in webhooks (none in
-- the benchmark: 500 calls of webhook_write that find no endpoint). The statements are the
-- service's (the harness checks that each is still in scan.rs / lists.rs, parameters aside), their
-- $n parameters as :variables; the service binds each column as one array of 500, which the first
-- SELECT builds here (outside the transaction: the service builds them in its own memory) for 500
-- consecutive tickets of the pool.
--   pgbench -n -M prepared -c C -j 2 -t N -f checkin-batch.sql -D first_ticket=<first of the pool>
--           -D last_ticket=<last of the pool> -D clients=C -D i=0 -D event_id=<the pool's event>
--           -D list_id=<a list of that event> -D location='North gate' -D reentry=false DB
-- Client k uploads tickets first_ticket + 500 (k + C j) .. + 499 in its j-th transaction (no two
-- transactions share a ticket); past last_ticket the first SELECT returns no row and \gset aborts
-- the client (pgbench reports it). pgbench's tps is uploads per second: scans per second = 500 x tps.
\set lo :first_ticket + 500 * (:client_id + :clients * :i)
\set i :i + 1
SELECT array_agg(g ORDER BY g) AS ids,
       array_agg(:event_id::bigint) AS event_ids,
       array_agg('pgbench-' || :client_id) AS scanners,
       array_agg(:location::text) AS locations,
       array_agg('accepted'::text) AS results,
       array_agg('entry'::text) AS directions,
       array_agg(NULL::text) AS codes,
       array_agg(('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid ORDER BY g) AS cids,
       array_agg(now()) AS received,
       array_agg(now() - interval '10 minutes' + (g - :lo) * interval '1 ms' ORDER BY g) AS scanned,
       array_agg(NULL::bigint) AS conflicts,
       array_agg(true) AS inside, array_agg(1) AS entries, array_agg(0) AS exits
  FROM generate_series(:lo, :lo + 499) g
HAVING max(g) <= :last_ticket \gset
BEGIN;
SELECT l.event_id, l.name, l.ticket_type_ids, l.allow_reentry, l.opens_at, l.closes_at,
                l.is_default, e.organizer_id, e.status, l.xmin::text AS version,
                l.updated_at
           FROM checkin_lists l JOIN events e ON e.id = l.event_id
          WHERE l.id = :list_id ;
SELECT id, event_id, guest_id, ticket_type_id, status = 'cancelled' AS cancelled,
                    validated_at IS NOT NULL AS validated, ticket_code
               FROM tickets WHERE id = ANY (:ids) ORDER BY id FOR NO KEY UPDATE;
SELECT client_scan_id, id, result, code, ticket_id FROM ticket_scans
                  WHERE list_id = :list_id AND client_scan_id = ANY (:cids);
SELECT ticket_id, inside, entries, exits FROM checkin_states
              WHERE list_id = :list_id AND ticket_id = ANY (:ids);
INSERT INTO ticket_scans (ticket_id, event_id, list_id, scanner_id, location, result,
                                           direction, code, client_scan_id, received_at, scanned_at, conflict_with)
                 SELECT u.ticket_id, u.event_id, :list_id, u.scanner_id, u.location, u.result, u.direction, u.code,
                        u.client_scan_id, u.received_at, COALESCE(u.scanned_at, now()), u.conflict_with
                   FROM unnest(:ids::bigint[], :event_ids::bigint[], :scanners::text[], :locations::text[], :results::text[], :directions::text[],
                               :codes::text[], :cids::uuid[], :received::timestamptz[], :scanned::timestamptz[], :conflicts::bigint[])
                        WITH ORDINALITY AS u (ticket_id, event_id, scanner_id, location, result, direction,
                                              code, client_scan_id, received_at, scanned_at, conflict_with, n)
                  ORDER BY u.n
                     ON CONFLICT (list_id, client_scan_id) WHERE client_scan_id IS NOT NULL DO NOTHING
                 RETURNING id;
INSERT INTO checkin_states AS s (list_id, ticket_id, inside, entries, exits, reentry)
             SELECT :list_id, u.id, u.inside, u.entries, u.exits, :reentry
               FROM unnest(:ids::bigint[], :inside::bool[], :entries::int[], :exits::int[]) AS u (id, inside, entries, exits)
              ORDER BY u.id
                 ON CONFLICT (list_id, ticket_id) DO UPDATE
                SET inside = excluded.inside, entries = excluded.entries, exits = excluded.exits,
                    reentry = excluded.reentry, changed_at = now();
WITH v AS (
                    UPDATE tickets t
                       SET validated_at = COALESCE(u.at, now()), validated_by = u.by,
                           validation_location = u.loc, checked_in_at = now(), updated_at = now()
                      FROM unnest(:ids::bigint[], :scanned::timestamptz[], :scanners::text[], :locations::text[]) AS u (id, at, by, loc)
                     WHERE t.id = u.id AND t.validated_at IS NULL
                 RETURNING t.id, t.guest_id, t.event_id, t.checked_in_at),
                      hook AS (
                    SELECT cardinality(webhook_write(e.organizer_id, 'guest.checked_in',
                                                     webhook_guest(ROW(g.*)::guests, v.id, v.checked_in_at),
                                                     interval '0')) AS n
                      FROM v JOIN guests g ON g.id = v.guest_id JOIN events e ON e.id = v.event_id)
                 SELECT COALESCE(sum(n), 0)::bigint FROM hook;
COMMIT;
