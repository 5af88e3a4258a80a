-- The sweep prunes processed-job records by age every minute (outbox-sweep, prune.rs): their
-- key is a random UUID, so the age needs an index of its own. (The outbox and the scan log
-- are pruned in id order: their oldest rows come first.)
CREATE INDEX idx_processed_jobs_processed_at ON processed_jobs (processed_at);
