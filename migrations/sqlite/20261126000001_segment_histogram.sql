-- Each store's histogram of the four values that scores and tiers rank:
-- recency (last order day), frequency (order count) and money (total spent)
-- among customers who ordered, and 365-day spend among all. The quintile and
-- tier thresholds are read from it (a few thousand rows) instead of from all
-- customers. A full run rebuilds it; an incremental run adds the changes of
-- the customers it recomputes, in the same transaction as their figures.
CREATE TABLE segment_histogram (
    metric    TEXT NOT NULL CHECK (metric IN ('r', 'f', 'm', 't')),
    store_key TEXT NOT NULL,
    value     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (metric, store_key, value)
) WITHOUT ROWID;

INSERT INTO segment_histogram (metric, store_key, value, n)
SELECT 'r', store_key, last_order_day, count(*)
  FROM customer_attributes WHERE last_order_day IS NOT NULL GROUP BY store_key, last_order_day
UNION ALL
SELECT 'f', store_key, order_count, count(*)
  FROM customer_attributes WHERE order_count > 0 GROUP BY store_key, order_count
UNION ALL
SELECT 'm', store_key, total_spent_fen, count(*)
  FROM customer_attributes WHERE order_count > 0 GROUP BY store_key, total_spent_fen
UNION ALL
SELECT 't', store_key, spent_365d_fen, count(*)
  FROM customer_attributes GROUP BY store_key, spent_365d_fen;
