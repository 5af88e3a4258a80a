-- The `version` columns V8 and V10 added to checkin_lists and webhooks were incremented but
-- never read: the ETag of a row is its xmin (shared/domain/src/etag.rs), which every write
-- changes by itself. One source of truth; no column to keep in step.
ALTER TABLE checkin_lists DROP COLUMN version;
ALTER TABLE webhooks DROP COLUMN version;
