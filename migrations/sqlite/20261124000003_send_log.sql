-- The send log as ops read it: newest first, by (created_at, id), filtered
-- by customer, status, campaign or channel. Each filter's index ends in
-- (created_at, id), so a page (with a time range and a keyset cursor) is one
-- range of one index read in order. They replace the (x, id) indexes, which
-- served the same equality lookups; the campaign planner's per-customer
-- look-backs (`created_at >= …`) become ranges too.
DROP INDEX messages_by_campaign;
DROP INDEX messages_by_customer;
DROP INDEX messages_by_status;
CREATE INDEX messages_by_campaign ON messages (campaign_id, created_at, id);
CREATE INDEX messages_by_customer ON messages (customer_id, created_at, id);
CREATE INDEX messages_by_status ON messages (status, created_at, id);
CREATE INDEX messages_by_channel ON messages (channel, created_at, id);
CREATE INDEX messages_by_created ON messages (created_at, id);

-- A retry gives a failed or dead message a fresh budget of
-- dispatch.max_attempts provider calls: the calls made before it are kept
-- here, the attempt numbers (and `message_attempts`) carry on from them.
ALTER TABLE messages ADD COLUMN attempts_before_retry INTEGER NOT NULL DEFAULT 0;

-- Every retry: who asked, when, and what the message was before.
CREATE TABLE message_retries (
    id                INTEGER PRIMARY KEY,
    message_id        INTEGER NOT NULL REFERENCES messages (id),
    actor             TEXT NOT NULL,
    at                INTEGER NOT NULL,
    previous_status   TEXT NOT NULL,
    previous_reason   TEXT,
    previous_detail   TEXT,
    previous_attempts INTEGER NOT NULL
);
CREATE INDEX message_retries_by_message ON message_retries (message_id, at);
