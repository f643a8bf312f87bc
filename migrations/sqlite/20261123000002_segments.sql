-- Segments: per-customer attributes, custom segment membership, their history,
-- and the customers whose attributes must be recomputed by the next
-- incremental run. Nothing used these tables before; they are rebuilt.

DROP TABLE customer_attributes;
DROP TABLE segment_memberships;
DROP TABLE segment_transitions;

-- One row per customer, written by the segments job. Day numbers are days since
-- 1970-01-01 in the store's local calendar; instants are epoch milliseconds.
CREATE TABLE customer_attributes (
    customer_id      TEXT PRIMARY KEY,
    store_key        TEXT NOT NULL,      -- the customer's store code, '' for none
    joined_at        INTEGER NOT NULL,   -- joined_at, or when the customer was first imported
    joined_day       INTEGER NOT NULL,   -- its local day (with the store's UTC offset at computation)
    order_count      INTEGER NOT NULL,
    total_spent_fen  INTEGER NOT NULL,
    avg_order_fen    INTEGER,
    order_count_90d  INTEGER NOT NULL,
    spent_90d_fen    INTEGER NOT NULL,
    spent_365d_fen   INTEGER NOT NULL,
    first_order_at   INTEGER,
    last_order_at    INTEGER,
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
    computed_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX customer_attributes_due ON customer_attributes (next_change_day)
    WHERE next_change_day IS NOT NULL;
-- Per-store distributions for the quintile and tier thresholds: a GROUP BY
-- over one of these is an index scan instead of a sort of every customer.
CREATE INDEX customer_attributes_recency ON customer_attributes (store_key, last_order_day);
CREATE INDEX customer_attributes_frequency ON customer_attributes (store_key, order_count);
CREATE INDEX customer_attributes_monetary ON customer_attributes (store_key, total_spent_fen, order_count);
CREATE INDEX customer_attributes_spend_365d ON customer_attributes (store_key, spent_365d_fen);
-- Incremental runs find customers whose stage moves with the date by range.
CREATE INDEX customer_attributes_joined ON customer_attributes (store_key, joined_at);

-- What the last run ranked with, per store key: its calendar and thresholds.
-- An incremental run re-ranks only customers between the old and new values.
CREATE TABLE segment_run_state (
    store_key     TEXT PRIMARY KEY,
    today         INTEGER NOT NULL,
    new_since     INTEGER NOT NULL,
    active_since  INTEGER NOT NULL,
    at_risk_since INTEGER NOT NULL,
    lapsed_since  INTEGER NOT NULL,
    r1 INTEGER NOT NULL, r2 INTEGER NOT NULL, r3 INTEGER NOT NULL, r4 INTEGER NOT NULL,
    f1 INTEGER NOT NULL, f2 INTEGER NOT NULL, f3 INTEGER NOT NULL, f4 INTEGER NOT NULL,
    m1 INTEGER NOT NULL, m2 INTEGER NOT NULL, m3 INTEGER NOT NULL, m4 INTEGER NOT NULL,
    t1 INTEGER NOT NULL, t2 INTEGER NOT NULL
);

-- Membership of custom segments (lifecycle and value tier are columns above).
CREATE TABLE segment_memberships (
    segment     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    entered_at  INTEGER NOT NULL,
    PRIMARY KEY (segment, customer_id)
) WITHOUT ROWID;
CREATE INDEX segment_memberships_by_customer ON segment_memberships (customer_id);

-- Every change of lifecycle stage, value tier and custom segment membership.
-- segment is 'lifecycle:<stage>', 'tier:<tier>' or the custom segment's name.
CREATE TABLE segment_transitions (
    id          INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL,
    segment     TEXT NOT NULL,
    change      TEXT NOT NULL CHECK (change IN ('entered', 'left')),
    at          INTEGER NOT NULL
);
CREATE INDEX segment_transitions_by_customer ON segment_transitions (customer_id, at);
CREATE INDEX segment_transitions_by_segment ON segment_transitions (segment, at);

-- Customers whose orders or store changed since their attributes were computed.
-- Inserts are marked by the store, once per imported batch (a row trigger on
-- every inserted order made imports half again as slow). Updates and deletes,
-- which touch only changed rows, are marked by the triggers below. They test
-- for the row instead of INSERT OR IGNORE: inside a trigger, the outer
-- statement's conflict policy (an upsert's) would replace IGNORE.
CREATE TABLE segment_dirty (
    customer_id TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TRIGGER orders_dirty_on_update AFTER UPDATE ON orders BEGIN
    INSERT INTO segment_dirty (customer_id) SELECT NEW.customer_id
        WHERE NOT EXISTS (SELECT 1 FROM segment_dirty WHERE customer_id = NEW.customer_id);
    INSERT INTO segment_dirty (customer_id) SELECT OLD.customer_id
        WHERE NOT EXISTS (SELECT 1 FROM segment_dirty WHERE customer_id = OLD.customer_id);
END;
CREATE TRIGGER orders_dirty_on_delete AFTER DELETE ON orders BEGIN
    INSERT INTO segment_dirty (customer_id) SELECT OLD.customer_id
        WHERE NOT EXISTS (SELECT 1 FROM segment_dirty WHERE customer_id = OLD.customer_id);
END;
CREATE TRIGGER customers_dirty_on_update AFTER UPDATE ON customers BEGIN
    INSERT INTO segment_dirty (customer_id) SELECT NEW.id
        WHERE NOT EXISTS (SELECT 1 FROM segment_dirty WHERE customer_id = NEW.id);
END;
