-- Idempotency keys (the contract's "API conventions for integrations"): per caller and key, the
-- request's fingerprint and its answer, for 24 hours (the sweep prunes older ones).
--
-- A unit of work claims its key as its transaction's first statement, so the key is committed
-- with the change itself: a concurrent request with the same key waits on the primary key until
-- the first commits (then replays its answer) or rolls back (then runs). `body` is written in
-- that transaction too (the command's result); `status` and the final body by the HTTP layer
-- once it answered. A row with a body but no status is a change whose process died before
-- answering: a retry replays the stored result and changes nothing again.
CREATE TABLE idempotency_keys (
    caller      TEXT        NOT NULL,
    key         TEXT        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint TEXT        NOT NULL,
    status      INTEGER,
    body        BYTEA,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);

CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);
