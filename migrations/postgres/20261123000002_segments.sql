-- Segments: per-customer attributes, custom segment membership, their history,
-- and the customers whose attributes must be recomputed by the next
-- incremental run. Nothing used these tables before; they are rebuilt.

DROP TABLE customer_attributes;
DROP TABLE segment_memberships;
DROP TABLE segment_transitions;

-- One row per customer, written by the segments job. Day numbers are days since
-- 1970-01-01 in the store's local calendar.
CREATE TABLE customer_attributes (
    customer_id      TEXT COLLATE "C" PRIMARY KEY,
    store_key        TEXT COLLATE "C" NOT NULL,   -- the customer's store code, '' for none
    joined_at        TIMESTAMPTZ NOT NULL,        -- joined_at, or when first imported
    joined_day       INTEGER NOT NULL,            -- its local day in the store's zone
    order_count      INTEGER NOT NULL,
    total_spent_fen  BIGINT NOT NULL,
    avg_order_fen    BIGINT,
    order_count_90d  INTEGER NOT NULL,
    spent_90d_fen    BIGINT NOT NULL,
    spent_365d_fen   BIGINT NOT NULL,
    first_order_at   TIMESTAMPTZ,
    last_order_at    TIMESTAMPTZ,
    first_order_day  INTEGER,
    last_order_day   INTEGER,
    favorite_daypart TEXT,
    r_score          INTEGER,
    f_score          INTEGER,
    m_score          INTEGER,
    rfm              TEXT,
    lifecycle        TEXT NOT NULL DEFAULT '',
    value_tier       TEXT NOT NULL DEFAULT '',
    -- First local day on which a windowed figure (90 or 365 days) changes by the
    -- passage of time alone, or a future-dated order becomes current.
    next_change_day  INTEGER,
    computed_day     INTEGER NOT NULL,
    computed_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX customer_attributes_due ON customer_attributes (next_change_day)
    WHERE next_change_day IS NOT NULL;

-- Incremental runs find customers whose stage moves with the date, or whose
-- score moves with a threshold, by range.
CREATE INDEX customer_attributes_recency ON customer_attributes (store_key, last_order_day);
CREATE INDEX customer_attributes_frequency ON customer_attributes (store_key, order_count);
CREATE INDEX customer_attributes_monetary ON customer_attributes (store_key, total_spent_fen);
CREATE INDEX customer_attributes_spend_365d ON customer_attributes (store_key, spent_365d_fen);
CREATE INDEX customer_attributes_joined ON customer_attributes (store_key, joined_at);

-- What the last run ranked with, per store key: its calendar and thresholds.
-- An incremental run re-ranks only customers between the old and new values.
CREATE TABLE segment_run_state (
    store_key     TEXT COLLATE "C" PRIMARY KEY,
    today         BIGINT NOT NULL,
    new_since     TIMESTAMPTZ NOT NULL,
    active_since  TIMESTAMPTZ NOT NULL,
    at_risk_since TIMESTAMPTZ NOT NULL,
    lapsed_since  TIMESTAMPTZ NOT NULL,
    r1 BIGINT NOT NULL, r2 BIGINT NOT NULL, r3 BIGINT NOT NULL, r4 BIGINT NOT NULL,
    f1 BIGINT NOT NULL, f2 BIGINT NOT NULL, f3 BIGINT NOT NULL, f4 BIGINT NOT NULL,
    m1 BIGINT NOT NULL, m2 BIGINT NOT NULL, m3 BIGINT NOT NULL, m4 BIGINT NOT NULL,
    t1 BIGINT NOT NULL, t2 BIGINT NOT NULL
);

-- Membership of custom segments (lifecycle and value tier are columns above).
CREATE TABLE segment_memberships (
    segment     TEXT COLLATE "C" NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL,
    entered_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (segment, customer_id)
);
CREATE INDEX segment_memberships_by_customer ON segment_memberships (customer_id);

-- Every change of lifecycle stage, value tier and custom segment membership.
-- segment is 'lifecycle:<stage>', 'tier:<tier>' or the custom segment's name.
CREATE TABLE segment_transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL,
    segment     TEXT COLLATE "C" NOT NULL,
    change      TEXT NOT NULL CHECK (change IN ('entered', 'left')),
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX segment_transitions_by_customer ON segment_transitions (customer_id, at);
CREATE INDEX segment_transitions_by_segment ON segment_transitions (segment, at);

-- Customers whose orders or store changed since their attributes were computed.
CREATE TABLE segment_dirty (
    customer_id TEXT COLLATE "C" PRIMARY KEY
);

-- Statement-level triggers with transition tables: one set-based insert per
-- statement (a COPY or a multi-row upsert), not one per row.
CREATE FUNCTION mark_dirty_from_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        INSERT INTO segment_dirty (customer_id)
            SELECT DISTINCT customer_id FROM new_rows ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO segment_dirty (customer_id)
            SELECT DISTINCT id FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION mark_dirty_from_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO segment_dirty (customer_id)
        SELECT DISTINCT customer_id FROM old_rows ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_dirty_on_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_new();
CREATE TRIGGER orders_dirty_on_update AFTER UPDATE ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_new();
CREATE TRIGGER orders_dirty_on_update_old AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_old();
CREATE TRIGGER orders_dirty_on_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_old();
CREATE TRIGGER customers_dirty_on_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_new();
-- Every update of a customer: the importer only updates rows that changed,
-- and a store or join-date change must be seen.
CREATE TRIGGER customers_dirty_on_update AFTER UPDATE ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_from_new();
