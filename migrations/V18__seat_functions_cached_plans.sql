-- seats_taken and seats_held in PL/pgSQL: the same queries, with plans cached per connection.
--
-- A LANGUAGE sql function whose body reads a table is not inlined into the calling statement,
-- and PostgreSQL plans its body again each time the calling statement runs: in the one-statement
-- check-in (a ticket's answer shows its type's sold and held seats) that was about 0.1–0.2 ms of
-- PostgreSQL CPU per entry, measured with pgbench (infra/benchmarks/RESULTS.md), and the same per
-- ticket type in every event list page. PL/pgSQL prepares the query once per connection and
-- keeps its plan, so a call costs an index lookup.
CREATE OR REPLACE FUNCTION seats_taken(p_event BIGINT, p_type BIGINT) RETURNS INTEGER
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (SELECT COALESCE(sum(taken), 0)::integer FROM seat_shards
             WHERE event_id = p_event AND COALESCE(ticket_type_id, 0) = COALESCE(p_type, 0));
END
$$;

CREATE OR REPLACE FUNCTION seats_held(p_event BIGINT, p_type BIGINT) RETURNS INTEGER
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN (SELECT count(*)::integer FROM waitlist_entries
             WHERE event_id = p_event AND status = 'offered'
               AND (p_type IS NULL OR ticket_type_id = p_type));
END
$$;
