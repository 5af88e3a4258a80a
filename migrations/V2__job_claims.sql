-- Workers claim a job before running it, so two deliveries of one message processed at the
-- same moment (two Lambda invocations, or twice in one batch) cannot both act on it.
-- A claim left by a worker that died expires at claimed_until and may be taken again.
ALTER TABLE processed_jobs DROP CONSTRAINT processed_jobs_outcome_check;
ALTER TABLE processed_jobs
    ADD CONSTRAINT processed_jobs_outcome_check
        CHECK (outcome IN ('in_progress', 'done', 'failed_permanently')),
    ADD COLUMN claimed_until TIMESTAMPTZ;
