-- Personal-data erasure (the contract's "Audit log and personal data"): an erased guest keeps its
-- row, seat and counts, with placeholders instead of its name, email and phone.
ALTER TABLE guests ADD COLUMN erased_at TIMESTAMPTZ;
