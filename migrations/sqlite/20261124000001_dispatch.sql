-- Dispatch: the token of the claim that holds a message in `sending`; only
-- that claim may settle it, so a worker whose lease ran out cannot overwrite
-- the outcome of the worker that took the message over.
ALTER TABLE messages ADD COLUMN claim_token TEXT;
