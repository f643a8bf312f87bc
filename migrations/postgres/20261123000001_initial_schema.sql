-- outreach schema, PostgreSQL dialect.
-- Instants are timestamptz. Local calendar facts (an order's local date and
-- minute of day) are computed at import time in the store's own time zone.

CREATE TABLE stores (
    code          TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    sms_signature TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE customers (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT,
    phone         TEXT,           -- E.164
    email         TEXT,
    wechat_openid TEXT,
    birth_month   INTEGER CHECK (birth_month BETWEEN 1 AND 12),
    birth_day     INTEGER CHECK (birth_day BETWEEN 1 AND 31),
    birth_year    INTEGER,
    store_code    TEXT COLLATE "C",   -- a store code; checked by the importer (see orders)
    tags          TEXT NOT NULL DEFAULT '',   -- ';'-joined, canonical order
    sms_opt_in    BOOLEAN,        -- NULL = unknown
    email_opt_in  BOOLEAN,
    wechat_opt_in BOOLEAN,
    joined_at     TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX customers_by_store ON customers (store_code);
-- No index on birthday or phone: both are in random order, and keeping them
-- tripled the time of a 1,000,000-customer import (every batch rewrote most of
-- their pages). Birthdays are found by a daily set-based scan; opt-outs are
-- keyed by address in opt_outs.

-- No foreign keys on the bulk-imported columns: their per-row triggers cost
-- half of an import's server time. The importer checks stores and customers
-- in the same transaction as the insert, and neither is ever deleted.
CREATE TABLE orders (
    id           TEXT COLLATE "C" PRIMARY KEY,
    customer_id  TEXT COLLATE "C" NOT NULL,
    store_code   TEXT COLLATE "C" NOT NULL,
    amount_fen   BIGINT NOT NULL,
    ordered_at   TIMESTAMPTZ NOT NULL,
    local_date   DATE NOT NULL,      -- store-local
    local_minute SMALLINT NOT NULL,  -- 0..1439, store-local
    coupon_code  TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, ordered_at);
CREATE INDEX orders_by_coupon ON orders (coupon_code) WHERE coupon_code IS NOT NULL;

-- Per-customer attributes recomputed by the segments job.
CREATE TABLE customer_attributes (
    customer_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES customers (id),
    recency_days     INTEGER,
    order_count      INTEGER NOT NULL,
    total_spent_fen  BIGINT NOT NULL,
    avg_order_fen    BIGINT,
    order_count_90d  INTEGER NOT NULL,
    spent_90d_fen    BIGINT NOT NULL,
    spent_365d_fen   BIGINT NOT NULL,
    first_order_at   TIMESTAMPTZ,
    last_order_at    TIMESTAMPTZ,
    favorite_daypart TEXT,
    r_score          INTEGER,
    f_score          INTEGER,
    m_score          INTEGER,
    lifecycle        TEXT NOT NULL,
    value_tier       TEXT NOT NULL,
    computed_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX customer_attributes_by_lifecycle ON customer_attributes (lifecycle);

-- Current segment membership (built-in stages and custom segments) and its history.
CREATE TABLE segment_memberships (
    segment     TEXT COLLATE "C" NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    entered_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (segment, customer_id)
);
CREATE INDEX segment_memberships_by_customer ON segment_memberships (customer_id);

CREATE TABLE segment_transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    segment     TEXT COLLATE "C" NOT NULL,
    change      TEXT NOT NULL CHECK (change IN ('entered', 'left')),
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX segment_transitions_by_customer ON segment_transitions (customer_id, at);
CREATE INDEX segment_transitions_by_segment ON segment_transitions (segment, at);

-- One row per (job, scheduled tick): whoever inserts it runs it.
CREATE TABLE job_ticks (
    job           TEXT COLLATE "C" NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    claimed_by    TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT CHECK (outcome IN ('ok', 'failed', 'skipped')),
    detail        TEXT,
    PRIMARY KEY (job, scheduled_for)
);

CREATE TABLE campaign_runs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id   TEXT COLLATE "C" NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT,
    planned       INTEGER NOT NULL DEFAULT 0,
    suppressed    INTEGER NOT NULL DEFAULT 0,
    detail        TEXT,
    UNIQUE (campaign_id, scheduled_for)
);

-- The send log. dedupe_key = campaign / customer / occurrence: at most one message each.
CREATE TABLE messages (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key          TEXT COLLATE "C" NOT NULL UNIQUE,
    campaign_id         TEXT COLLATE "C" NOT NULL,
    customer_id         TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    occurrence          TEXT NOT NULL,
    channel             TEXT,
    provider            TEXT,
    address             TEXT,
    status              TEXT NOT NULL CHECK (status IN
        ('queued', 'deferred', 'sending', 'sent', 'delivered', 'failed', 'dead', 'suppressed')),
    reason              TEXT,
    detail              TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ,
    lease_until         TIMESTAMPTZ,
    provider_message_id TEXT,
    coupon_code         TEXT,
    payload             JSONB,     -- rendered message
    created_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
CREATE INDEX messages_by_campaign ON messages (campaign_id, id);
CREATE INDEX messages_by_customer ON messages (customer_id, id);
CREATE INDEX messages_by_status ON messages (status, id);
CREATE INDEX messages_by_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE message_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    BIGINT NOT NULL REFERENCES messages (id),
    attempt       INTEGER NOT NULL,
    provider      TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL,
    outcome       TEXT NOT NULL,
    provider_code TEXT,
    detail        TEXT,
    UNIQUE (message_id, attempt)
);

CREATE TABLE coupons (
    code              TEXT COLLATE "C" PRIMARY KEY,
    campaign_id       TEXT COLLATE "C" NOT NULL,
    customer_id       TEXT COLLATE "C" NOT NULL REFERENCES customers (id),
    message_id        BIGINT NOT NULL UNIQUE REFERENCES messages (id),
    kind              TEXT NOT NULL CHECK (kind IN ('amount_off', 'percent_off', 'free_item')),
    value             INTEGER NOT NULL CHECK (value >= 0),
    min_spend_fen     BIGINT NOT NULL DEFAULT 0,
    issued_at         TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    redeemed_order_id TEXT COLLATE "C" UNIQUE,
    redeemed_at       TIMESTAMPTZ
);
CREATE INDEX coupons_by_campaign ON coupons (campaign_id);

CREATE TABLE opt_outs (
    channel    TEXT NOT NULL CHECK (channel IN ('sms', 'email', 'wechat')),
    address    TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, address)
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
