-- The keys' creation times are indexed for the sweep only (functions/outbox-sweep, `prune`:
-- keys older than 24 hours), and a block range index does that job at no cost to the writes
-- (issue 17: what a keyed request pays).
--
-- Every keyed request inserts one key. Its b-tree on `created_at` took an index entry with each,
-- always on the rightmost leaf page, which every concurrent keyed request locks in turn: one of
-- the two index inserts of a keyed check-in's key, and the only one nothing reads on the hot
-- path. Keys are appended in creation order, so the heap is ordered by `created_at` and a BRIN
-- index of its block ranges answers "older than 24 hours" as well: an insert into a range not
-- summarized yet writes nothing to the index, `autosummarize` has autovacuum summarize each range
-- once it is full, and the sweep reads the ranges that may hold old keys (the unsummarized ones,
-- the newest, are read whole and filtered).
--
-- Not CONCURRENTLY: migrations run in a transaction. Building a BRIN index reads the table once
-- (24 hours of keys) and holds off keyed writes for that time only.
DROP INDEX idx_idempotency_keys_created;
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys USING brin (created_at)
    WITH (autosummarize = on);
