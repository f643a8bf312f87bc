-- outreach schema, SQLite dialect.
-- Instants are UTC epoch milliseconds (INTEGER) so queue and ordering columns
-- compare as integers. Local calendar facts (an order's local date and minute of
-- day) are computed at import time in the store's own time zone.

CREATE TABLE stores (
    code          TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    sms_signature TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    phone         TEXT,           -- E.164
    email         TEXT,
    wechat_openid TEXT,
    birth_month   INTEGER CHECK (birth_month BETWEEN 1 AND 12),
    birth_day     INTEGER CHECK (birth_day BETWEEN 1 AND 31),
    birth_year    INTEGER,
    store_code    TEXT REFERENCES stores (code),
    tags          TEXT NOT NULL DEFAULT '',   -- ';'-joined, canonical order
    sms_opt_in    INTEGER,        -- 1 yes, 0 no, NULL unknown
    email_opt_in  INTEGER,
    wechat_opt_in INTEGER,
    joined_at     INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX customers_by_store ON customers (store_code);
-- No index on birthday or phone: both are in random order, and keeping them
-- tripled the time of a 1,000,000-customer import (every batch rewrote most of
-- their pages). Birthdays are found by a daily set-based scan; opt-outs are
-- keyed by address in opt_outs.

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    store_code   TEXT NOT NULL REFERENCES stores (code),
    amount_fen   INTEGER NOT NULL,
    ordered_at   INTEGER NOT NULL,
    local_date   INTEGER NOT NULL,   -- days since 1970-01-01, store-local
    local_minute INTEGER NOT NULL,   -- 0..1439, store-local
    coupon_code  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, ordered_at);
CREATE INDEX orders_by_coupon ON orders (coupon_code) WHERE coupon_code IS NOT NULL;

-- Per-customer attributes recomputed by the segments job.
CREATE TABLE customer_attributes (
    customer_id      TEXT PRIMARY KEY REFERENCES customers (id),
    recency_days     INTEGER,
    order_count      INTEGER NOT NULL,
    total_spent_fen  INTEGER NOT NULL,
    avg_order_fen    INTEGER,
    order_count_90d  INTEGER NOT NULL,
    spent_90d_fen    INTEGER NOT NULL,
    spent_365d_fen   INTEGER NOT NULL,
    first_order_at   INTEGER,
    last_order_at    INTEGER,
    favorite_daypart TEXT,
    r_score          INTEGER,
    f_score          INTEGER,
    m_score          INTEGER,
    lifecycle        TEXT NOT NULL,
    value_tier       TEXT NOT NULL,
    computed_at      INTEGER NOT NULL
);
CREATE INDEX customer_attributes_by_lifecycle ON customer_attributes (lifecycle);

-- Current segment membership (built-in stages and custom segments) and its history.
CREATE TABLE segment_memberships (
    segment     TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    entered_at  INTEGER NOT NULL,
    PRIMARY KEY (segment, customer_id)
);
CREATE INDEX segment_memberships_by_customer ON segment_memberships (customer_id);

CREATE TABLE segment_transitions (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    segment     TEXT NOT NULL,
    change      TEXT NOT NULL CHECK (change IN ('entered', 'left')),
    at          INTEGER NOT NULL
);
CREATE INDEX segment_transitions_by_customer ON segment_transitions (customer_id, at);
CREATE INDEX segment_transitions_by_segment ON segment_transitions (segment, at);

-- One row per (job, scheduled tick): whoever inserts it runs it.
CREATE TABLE job_ticks (
    job           TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    claimed_by    TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    outcome       TEXT CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail        TEXT,
    PRIMARY KEY (job, scheduled_for)
);

CREATE TABLE campaign_runs (
    id            INTEGER PRIMARY KEY,
    campaign_id   TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    outcome       TEXT,
    planned       INTEGER NOT NULL DEFAULT 0,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    detail        TEXT,
    UNIQUE (campaign_id, scheduled_for)
);

-- The send log. dedupe_key = campaign / customer / occurrence: at most one message each.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key          TEXT NOT NULL UNIQUE,
    campaign_id         TEXT NOT NULL,
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    occurrence          TEXT NOT NULL,
    channel             TEXT,
    provider            TEXT,
    address             TEXT,
    status              TEXT NOT NULL CHECK (status IN
        ('queued', 'deferred', 'sending', 'sent', 'delivered', 'failed', 'dead', 'suppressed')),
    reason              TEXT,
    detail              TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER,
    lease_until         INTEGER,
    provider_message_id TEXT,
    coupon_code         TEXT,
    payload             TEXT,      -- rendered message, JSON
    created_at          INTEGER NOT NULL,
    sent_at             INTEGER,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_by_campaign ON messages (campaign_id, id);
CREATE INDEX messages_by_customer ON messages (customer_id, id);
CREATE INDEX messages_by_status ON messages (status, id);
CREATE INDEX messages_by_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE message_attempts (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages (id),
    attempt       INTEGER NOT NULL,
    provider      TEXT NOT NULL,
    at            INTEGER NOT NULL,
    outcome       TEXT NOT NULL,
    provider_code TEXT,
    detail        TEXT,
    UNIQUE (message_id, attempt)
);

CREATE TABLE coupons (
    code              TEXT PRIMARY KEY,
    campaign_id       TEXT NOT NULL,
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    message_id        INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    kind              TEXT NOT NULL CHECK (kind IN ('amount_off', 'percent_off', 'free_item')),
    value             INTEGER NOT NULL CHECK (value >= 0),
    min_spend_fen     INTEGER NOT NULL DEFAULT 0,
    issued_at         INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    redeemed_order_id TEXT UNIQUE,
    redeemed_at       INTEGER
);
CREATE INDEX coupons_by_campaign ON coupons (campaign_id);

CREATE TABLE opt_outs (
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'wechat')),
    address    TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel, address)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
