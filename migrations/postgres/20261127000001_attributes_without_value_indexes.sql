-- The quintile and tier thresholds are read from segment_histogram, and an
-- incremental run finds the customers a moved threshold or date re-ranks with
-- one scan of customer_attributes. Nothing reads the per-value indexes any
-- more, and each new order moved the customer's entry in all of them.
-- The recency index stays: win-back campaigns find lapsed customers by it.
DROP INDEX customer_attributes_frequency;
DROP INDEX customer_attributes_monetary;
DROP INDEX customer_attributes_spend_365d;
DROP INDEX customer_attributes_joined;

-- Scores, stage and tier are rewritten in place after the order figures:
-- with room left on each page, and none of those columns indexed, such an
-- update is a heap-only tuple (no index entry written). Applies to pages
-- written from now on.
ALTER TABLE customer_attributes SET (fillfactor = 80);

-- An incremental run adds its customers' changes to the histogram: room on
-- each page keeps those updates heap-only too.
ALTER TABLE segment_histogram SET (fillfactor = 70);
