-- A first full run (customer_attributes empty) writes each customer's order
-- figures here, ranks them once the histogram of all of them is known, and
-- writes each row of customer_attributes once, with its scores, stage and
-- tier, instead of inserting the figures and updating every row again.
-- Every full run empties it first: rows left by a run that stopped are
-- never read. One run at a time uses it (the segments job's run lease).
CREATE TABLE segment_fill (
    customer_id      TEXT PRIMARY KEY,
    store_key        TEXT NOT NULL,
    joined_at        INTEGER NOT NULL,
    joined_day       INTEGER NOT NULL,
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
    next_change_day  INTEGER,
    computed_day     INTEGER NOT NULL,
    computed_at      INTEGER NOT NULL
) WITHOUT ROWID;
