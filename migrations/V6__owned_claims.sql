-- A claim on a job belongs to the attempt that took it (issue 14, F1). The same delivery
-- lineage (an SQS message id, an in-process job) may take its own claim again: an attempt
-- that failed while the database was unreachable could not release it, and its retry must
-- not be refused as "another worker is running this job" until the claim expires.
ALTER TABLE processed_jobs ADD COLUMN claimed_by TEXT;
